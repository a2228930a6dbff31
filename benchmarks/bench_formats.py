"""Write and read times and file sizes of .ply, .splat and .spz, against gsplat.export_splats.

For each size, random Gaussians at SH degree 3 are saved and loaded in each
format with the default frames (the timed `save` includes the atomic rename
and fsync), and `gsplat.export_splats` builds the same .ply and .splat in
memory. Prints a Markdown table for BENCHMARKS.md.

    python benchmarks/bench_formats.py            # 100k and 1M splats
    python benchmarks/bench_formats.py --quick    # 10k and 50k
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path

import torch


def random_gaussians(n: int, *, seed: int = 0):
    from worldgen.gaussians import Gaussians

    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=g) * 10,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1),
        scales=torch.rand(n, 3, generator=g) * 0.5 + 0.01,
        opacities=torch.rand(n, generator=g) * 0.98 + 0.01,
        sh0=torch.randn(n, 1, 3, generator=g),
        shN=torch.randn(n, 15, 3, generator=g) * 0.3,
    )


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (10k, 50k) for a smoke run")
    parser.add_argument("--sizes", type=int, nargs="*", help="numbers of splats (default 100000 1000000)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    sizes = args.sizes or ([10_000, 50_000] if args.quick else [100_000, 1_000_000])

    from gsplat import export_splats

    from exporters import load, save
    from exporters.ply import encode_ply
    from exporters.splat import LossyExportWarning

    warnings.simplefilter("ignore", LossyExportWarning)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print("| splats | format | write s | read s | size MB | vs .ply size | gsplat export s | write speed-up vs gsplat |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            g = random_gaussians(n)
            raw = dict(means=g.means, scales=torch.log(g.scales), quats=g.quats, opacities=torch.logit(g.opacities), sh0=g.sh0, shN=g.shN)
            ply_size = None
            for ext in ("ply", "splat", "spz"):
                path = Path(tmp) / f"w.{ext}"
                repeats = 1 if (ext == "spz" and n >= 1_000_000) else args.repeats
                write = best_of(repeats, lambda: save(g, path))
                read = best_of(repeats, lambda: load(path))
                size = path.stat().st_size
                ply_size = ply_size or size
                ref = ""
                speedup = ""
                if ext in ("ply", "splat"):
                    t_ref = best_of(1, lambda: export_splats(**raw, format=ext))
                    ref, speedup = f"{t_ref:.2f}", f"{t_ref / write:.1f}x"
                print(f"| {n:,} | .{ext} | {write:.2f} | {read:.2f} | {size / 1e6:.1f} | {ply_size / size:.1f}x | {ref} | {speedup} |")
            enc = best_of(args.repeats, lambda: encode_ply(g))
            print(f"| {n:,} | .ply in memory (encode_ply, no disk) | {enc:.2f} | | | | | |")


if __name__ == "__main__":
    main()
