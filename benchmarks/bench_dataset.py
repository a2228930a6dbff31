"""Throughput of the procedural engine and the dataset builder (worlds per second).

Usage: python benchmarks/bench_dataset.py [--quick] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    from worldgen.procedural import WorldSpec, build_world
    from worldgen.procedural.dataset import DatasetConfig, build_dataset
    from worldgen.procedural.parts import build_world_parts

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, seconds")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    n_worlds = 2 if args.quick else 8
    t = time.perf_counter()
    for s in range(n_worlds):
        build_world(WorldSpec(biome="temperate_forest", vegetation="dense", structure="village"), seed=s)
    per_world = (time.perf_counter() - t) / n_worlds
    print(f"build_world (full detail, dense forest + village): {per_world:.3f} s/world")
    t = time.perf_counter()
    for s in range(n_worlds):
        build_world_parts(WorldSpec(biome="temperate_forest", vegetation="dense", structure="village"), seed=s)
    print(f"build_world_parts (the same worlds, cut into parts): {(time.perf_counter() - t) / n_worlds:.3f} s/world")
    config = DatasetConfig(count=2 if args.quick else 32, shard_size=1 if args.quick else 8,
                           views=1 if args.quick else 2, view_size=32 if args.quick else 96)  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        build_dataset(out, config, workers=args.workers)
        dt = time.perf_counter() - t
    print(f"dataset build ({config.count} worlds as parts, {config.views} views {config.view_size}px for one world in "
          f"{config.views_every}, {args.workers} workers): {config.count / dt:.3f} worlds/s")  # fmt: skip


if __name__ == "__main__":
    main()
