"""A contact sheet of the same 16 prompts side by side: procedural worlds and one or more models' worlds.

The prompts are the evaluation's first 8 held-out phrasings and 8 held-out
combinations (`prompt_sets(..., 8, seed=0)`); every world is seed 0, seen from
the judge's first camera (across the footprint, horizon and sky in the top
half). A column is "procedural", a weights file, or a folder of pictures
rendered before (00.png .. 15.png, e.g. by an earlier version of the model).

Usage: python scripts/model_sheet.py -o docs/model_sheet.png --column procedural=procedural \\
           --column "cluster model (before)=old_renders/" --column "parts model=worldgen/assets/world_model.safetensors"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

SIZE = 160


def render_column(source: str, cases) -> list[np.ndarray]:
    from PIL import Image

    from worldgen.eval import judge as J

    if source != "procedural" and Path(source).is_dir():
        return [np.asarray(Image.open(Path(source) / f"{i:02d}.png").convert("RGB").resize((SIZE, SIZE))) for i in range(len(cases))]
    out = []
    for i, case in enumerate(cases):
        if source == "procedural":
            from worldgen.procedural import build_world

            world = build_world(case.spec, seed=0)
        else:
            from worldgen.pipeline import generate

            world = generate(case.prompt, seed=0, weights=source, device="cpu")
        out.append(J.render_judge_views(world, SIZE, views=(0,)).images_uint8()[0].numpy())
        print(f"{source}: {i + 1}/{len(cases)} {case.prompt}", flush=True)
    return out


def main() -> None:
    from PIL import Image, ImageDraw

    from worldgen.eval.prompts import prompt_sets
    from worldgen.io import atomic_path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="docs/model_sheet.png")
    p.add_argument("--column", action="append", required=True, help="NAME=SOURCE (procedural, a weights file or a folder)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cases = prompt_sets(("heldout_phrasing", "heldout_combination"), 8, seed=0)
    columns = [c.split("=", 1) for c in args.column]
    images = [render_column(source, cases) for _, source in columns]
    label_w, head = 220, 22
    sheet = Image.new("RGB", (label_w + SIZE * len(columns), head + SIZE * len(cases)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for j, (name, _) in enumerate(columns):
        draw.text((label_w + j * SIZE + 4, 5), name, fill=(235, 235, 235))
    for i, case in enumerate(cases):
        words, lines = case.prompt.split(), [""]
        for w in words:
            if len(lines[-1]) + len(w) > 34:
                lines.append("")
            lines[-1] += (" " if lines[-1] else "") + w
        draw.text((4, head + i * SIZE + 4), "\n".join(lines[:6]), fill=(235, 235, 235))
        for j in range(len(columns)):
            sheet.paste(Image.fromarray(images[j][i]), (label_w + j * SIZE, head + i * SIZE))
    with atomic_path(args.output) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
