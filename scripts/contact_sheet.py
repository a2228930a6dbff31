"""Render the contact sheet of procedural worlds (docs/contact_sheet.png): 16 worlds across biomes, times and weathers.

Usage: python scripts/contact_sheet.py [-o docs/contact_sheet.png] [--size 256]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

SHEET = [
    dict(biome="meadow", structure="cabin", vegetation="sparse"),
    dict(biome="pine_forest", water="lake", vegetation="dense", time="sunset"),
    dict(biome="desert", time="sunset", vegetation="sparse"),
    dict(biome="tundra", weather="snow", structure="village"),
    dict(biome="temperate_forest", vegetation="dense", season="autumn", structure="castle"),
    dict(biome="beach", water="ocean", structure="lighthouse", time="dawn"),
    dict(biome="mountains", water="lake", time="day"),
    dict(biome="canyon", water="river", time="day"),
    dict(biome="swamp", water="lake", weather="fog", structure="ruins"),
    dict(biome="meadow", structure="village", time="night", vegetation="sparse"),
    dict(biome="pine_forest", weather="snow", structure="cabin", time="night", vegetation="dense"),
    dict(biome="temperate_forest", season="spring", water="river", vegetation="dense"),
    dict(biome="desert", structure="ruins", time="night"),
    dict(biome="mountains", weather="fog", time="dawn", structure="castle"),
    dict(biome="meadow", weather="rain", water="river", structure="cabin"),
    dict(biome="tundra", water="ocean", structure="lighthouse", time="sunset"),
]


def main() -> None:
    from PIL import Image, ImageDraw

    from worldgen.io import atomic_path
    from worldgen.procedural import WorldSpec, build_world_layers
    from worldgen.procedural.captions import describe
    from worldgen.gaussians import Gaussians
    from worldgen.procedural.dataset import view_cameras
    from worldgen.render import render

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-o", "--output", default="docs/contact_sheet.png")
    p.add_argument("--size", type=int, default=256)
    args = p.parse_args()
    torch.set_num_threads(2)
    tiles = []
    for i, attrs in enumerate(SHEET):
        spec = WorldSpec(**attrs)
        layers = build_world_layers(spec, seed=i)
        world = Gaussians.cat(list(layers.values()))
        solid = torch.cat([layers[k].means for k in ("terrain", "structures", "vegetation")])
        cam = view_cameras(1, args.size, seed=i + 100, solid=solid)
        img = Image.fromarray(render(world, cam).images_uint8()[0].numpy())
        caption = describe(spec, np.random.default_rng(i)) if not spec.is_heldout else describe(spec, np.random.default_rng(i), split="heldout")
        label = Image.new("RGB", (args.size, 34), (20, 20, 20))
        draw = ImageDraw.Draw(label)
        words, lines = caption.split(), [""]
        for w in words:
            if len(lines[-1]) + len(w) > args.size // 6.2:
                lines.append("")
            lines[-1] += (" " if lines[-1] else "") + w
        draw.text((4, 2), "\n".join(lines[:2]), fill=(235, 235, 235))
        tile = Image.new("RGB", (args.size, args.size + 34))
        tile.paste(img, (0, 0))
        tile.paste(label, (0, args.size))
        tiles.append(tile)
        print(f"{i + 1}/{len(SHEET)} {caption}", flush=True)
    cols = 4
    w, h = tiles[0].size
    sheet = Image.new("RGB", (w * cols, h * ((len(tiles) + cols - 1) // cols)))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * h))
    with atomic_path(args.output) as tmp:
        sheet.save(tmp, format="PNG")


if __name__ == "__main__":
    main()
