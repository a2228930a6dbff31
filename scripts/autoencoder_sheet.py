"""Procedural worlds beside the same worlds rebuilt from their parts through a model's part autoencoder.

Each row: the judge's four views of a procedural world, then the same views of
the world whose every part went through the encoder and decoder (what
`worldgen eval --bound` scores), with the share of uncovered pixels.

Usage: python scripts/autoencoder_sheet.py WEIGHTS [-o ae_sheet.png] [--worlds 4] [--size 128]
(WEIGHTS: a model file, or a run's checkpoint.safetensors)
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> None:
    from PIL import Image

    from worldgen.eval import judge as J
    from worldgen.eval.prompts import prompt_sets
    from worldgen.io import atomic_path
    from worldgen.model.world import decode_world, encode_world, load_model
    from worldgen.procedural.parts import build_world_parts

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("weights")
    p.add_argument("-o", "--output", default="ae_sheet.png")
    p.add_argument("--worlds", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from worldgen.model.world import read_metadata
    from worldgen.train import CHECKPOINT_FORMAT, checkpoint_model

    is_checkpoint = read_metadata(args.weights).get("format") == CHECKPOINT_FORMAT
    model = checkpoint_model(args.weights) if is_checkpoint else load_model(args.weights)
    rows = []
    for case in prompt_sets(("heldout_combination",), args.worlds, seed=0):
        parts = build_world_parts(case.spec, seed=0)
        rebuilt = decode_world(model, encode_world(model, parts))
        true = J.render_judge_views(parts.gaussians, args.size)
        back = J.render_judge_views(rebuilt, args.size)
        rows.append(np.concatenate([np.concatenate(list(true.images_uint8().numpy()), 1),
                                    np.concatenate(list(back.images_uint8().numpy()), 1)], 1))  # fmt: skip
        print(f"{case.prompt}: {len(parts)} parts, {len(rebuilt):,} splats, uncovered "
              f"{100 * J.uncovered_share(back):.1f}% (procedural {100 * J.uncovered_share(true):.1f}%)", flush=True)
    with atomic_path(args.output) as tmp:
        Image.fromarray(np.concatenate(rows, 0)).save(tmp, format="PNG")


if __name__ == "__main__":
    main()
