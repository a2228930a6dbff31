"""What do the decoders cost, apart from the set model? Judge worlds rebuilt from their true coarse sets.

For every prompt of the evaluation's sets, the procedural world of its spec is fitted with its
coarse set (`lod.build_lod`, layer-grouped, as the dataset does) and then rebuilt:

- `truth`:  the coarse set with its true children (`Lod.expand`): what the LOD itself keeps;
- `detail`: the coarse set through the model's detail decoder: a perfect set model's world;
- `groups`: the coarse set's groups (`lod.build_groups`) through the group decoder and then the
  detail decoder (weights with a group level only).

The worlds go through `worldgen eval`'s harness (judge, probes, report) against the usual
procedural reference, so the stated relative figure is a ceiling for the model with these decoders.

Usage: python scripts/decoder_bound.py --weights W --mode detail -o bound-report [--per-set 8]
"""

from __future__ import annotations

import argparse

import torch

from worldgen.eval.evaluate import EvalConfig, evaluate
from worldgen.eval.prompts import prompt_sets
from worldgen.eval.report import write_report
from worldgen.gaussians import Gaussians
from worldgen.model import tokens as tok
from worldgen.model.text import encode_text
from worldgen.model.world import decode_world, load_model, with_group_level
from worldgen.procedural import build_world_layers
from worldgen.procedural.lod import build_groups, build_lod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="worldgen/assets/world_model.safetensors")
    ap.add_argument("--mode", choices=("truth", "detail", "groups"), default="detail")
    ap.add_argument("--sets", nargs="+", default=["heldout_phrasing", "heldout_combination"])
    ap.add_argument("--per-set", type=int, default=8)
    ap.add_argument("--decoder-steps", type=int, default=4, help="Euler steps of each decoder flow (decode_world's 4)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--out", default="bound-report")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    if args.mode == "groups" and model.groups is None:
        ap.error(f"{args.weights} has no group level")
    plain = with_group_level(model, 0)  # coarse tokens straight into the detail decoder
    cfg = EvalConfig(sets=tuple(args.sets), per_set=args.per_set)
    specs = {c.prompt: c.spec for c in prompt_sets(cfg.sets, cfg.per_set, seed=cfg.prompt_seed)}

    def rebuild(prompt: str, seed: int) -> Gaussians:
        layers = build_world_layers(specs[prompt], seed=seed)
        world = Gaussians.cat(list(layers.values()))
        sky = torch.cat([torch.full((len(g),), k == "sky") for k, g in layers.items()])
        part = torch.cat([torch.full((len(g),), i) for i, g in enumerate(layers.values())])
        lod = build_lod(world, coarse_n=model.cfg.n_tokens, children=model.cfg.children, sky_mask=sky, layers=part,
                        seed=seed)  # fmt: skip
        if args.mode == "truth":
            return lod.expand()
        pooled = encode_text(prompt).pooled[0]
        if args.mode == "groups":
            groups, _ = build_groups(lod.coarse, model.cfg.group_size, seed=seed)
            tokens, m = tok.gaussians_to_tokens(groups), model
        else:
            tokens, m = tok.gaussians_to_tokens(lod.coarse), plain
        return decode_world(m, tokens, pooled, seed=seed, steps=args.decoder_steps).sanitize()[0]

    result = evaluate(cfg, rebuild, generator_name=f"true coarse sets, rebuilt: {args.mode} ({args.weights})")
    print(f"report -> {write_report(result, args.out)['markdown']}")


if __name__ == "__main__":
    main()
