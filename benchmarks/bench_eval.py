"""Cost of the evaluation's stages per world: build, judge views, judge inference, probes, Chamfer points and distances.

Usage: python benchmarks/bench_eval.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    from worldgen.eval import judge as J
    from worldgen.eval.metrics import distance_matrix, world_points
    from worldgen.eval.probes import probe_world
    from worldgen.procedural import WorldSpec, build_world

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, seconds")
    args = p.parse_args()
    torch.set_num_threads(1)
    n = 2 if args.quick else 6
    spec = WorldSpec(biome="temperate_forest", water="lake", vegetation="dense", structure="village", weather="rain")
    t = {"build": 0.0, "views": 0.0, "judge": 0.0, "probes": 0.0, "points": 0.0}
    judge = J.Judge(J.JudgeConfig()).eval()  # inference cost does not depend on the weights
    pts = []
    for s in range(n):
        t0 = time.perf_counter()
        w = build_world(spec, seed=s)
        t1 = time.perf_counter()
        v = J.judge_views(w)
        t2 = time.perf_counter()
        judge.predict_indices(v[None])
        t3 = time.perf_counter()
        probe_world(w)
        t4 = time.perf_counter()
        pts.append(world_points(w, 1024, seed=s))
        t5 = time.perf_counter()
        for k, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            t[k] += dt / n
    t0 = time.perf_counter()
    d = distance_matrix(pts, pts)
    per_pair = (time.perf_counter() - t0) / d.numel()
    print(f"{n} worlds ({len(w)} Gaussians, dense forest + village + lake + rain), 1 thread:")
    for k, v in t.items():
        print(f"  {k:8s} {v:.3f} s/world")
    print(f"  chamfer  {1000 * per_pair:.2f} ms/pair (1024 points)")
    print(f"judge parameters: {sum(p.numel() for p in judge.parameters())}")


if __name__ == "__main__":
    main()
