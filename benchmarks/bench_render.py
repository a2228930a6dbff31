"""Rendering speed: ms per frame of the torch rasterizer (CPU) and of gsplat / torch on CUDA.

The scene is world-like: 60% of the splats on a bumpy 64 m ground, 25% in
blobs standing on it (trees, rocks), 15% on a sky dome of radius 200 m; the
camera is the first frame of the orbit path.

    python benchmarks/bench_render.py            # CPU: 100k and 1M splats at 512x512 and 1280x720
    python benchmarks/bench_render.py --quick    # small sizes, seconds
    python benchmarks/bench_render.py --gpu      # also CUDA: gsplat and torch at 1920x1080
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from worldgen.gaussians import Gaussians
from worldgen.render import orbit_path, render


def make_world(n: int, *, seed: int = 0) -> Gaussians:
    """A world-like scene of n splats (ground, blobs, sky dome)."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    n_ground, n_blob = int(0.6 * n), int(0.25 * n)
    n_sky = n - n_ground - n_blob
    xy = (rand(n_ground, 2) - 0.5) * 64
    ground = torch.cat([xy, (0.3 * torch.sin(xy[:, :1] / 3) * torch.cos(xy[:, 1:] / 4))], 1)
    centres = (rand(40, 3) - 0.5) * torch.tensor([56.0, 56.0, 0.0]) + torch.tensor([0.0, 0.0, 2.5])
    blob = centres[torch.randint(0, 40, (n_blob,), generator=gen)] + torch.randn(n_blob, 3, generator=gen) * 1.2
    theta, phi = rand(n_sky) * 2 * math.pi, rand(n_sky) * 0.5 * math.pi
    sky = 200 * torch.stack([phi.cos() * theta.cos(), phi.cos() * theta.sin(), phi.sin()], 1)
    means = torch.cat([ground, blob, sky])
    scale_ground = 64 / math.sqrt(max(n_ground, 1)) * 0.8
    scales = torch.cat(
        [
            torch.tensor([scale_ground, scale_ground, 0.02]).expand(n_ground, 3) * (0.5 + rand(n_ground, 3)),
            0.15 * (0.3 + rand(n_blob, 3)),
            torch.full((n_sky, 3), 200 * 2.5 / math.sqrt(max(n_sky, 1))),
        ]
    )
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=1)
    quats[:n_ground] = torch.tensor([1.0, 0, 0, 0])
    rgb = torch.cat(
        [
            torch.tensor([0.3, 0.5, 0.2]) + 0.1 * rand(n_ground, 3),
            torch.tensor([0.2, 0.35, 0.1]) + 0.3 * rand(n_blob, 3),
            torch.tensor([0.5, 0.7, 0.95]) + 0.05 * rand(n_sky, 3),
        ]
    ).clamp(0, 1)
    opacities = 0.3 + 0.7 * rand(n)
    return Gaussians.from_rgb(means, rgb, scales, opacities, quats)


def time_render(g: Gaussians, width: int, height: int, *, backend: str, repeats: int) -> float:
    """Median ms per frame."""
    cams = orbit_path(g.means, 1, width=width, height=height)
    cuda = g.device.type == "cuda"
    times = []
    with torch.no_grad():
        render(g, cams, backend=backend)  # warm-up
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            render(g, cams, backend=backend)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


def _peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--gpu", action="store_true", help="also measure on CUDA")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)

    sizes = [10_000] if args.quick else [100_000, 1_000_000]
    images = [(256, 256)] if args.quick else [(512, 512), (1280, 720)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| backend | device | splats | image | ms / frame | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        g = make_world(n)
        for w, h in images:
            ms = time_render(g, w, h, backend="torch", repeats=1 if args.quick else args.repeats)
            print(f"| torch | cpu | {n:,} | {w}x{h} | {ms:.0f} | {_peak_mib():.0f} |", flush=True)
    if args.gpu and torch.cuda.is_available():
        g = make_world(10_000 if args.quick else 1_000_000).to("cuda")
        w, h = (256, 256) if args.quick else (1920, 1080)
        for backend in ("gsplat", "torch"):
            ms = time_render(g, w, h, backend=backend, repeats=args.repeats if backend == "gsplat" else 1)
            peak = torch.cuda.max_memory_allocated() / 2**20
            print(f"| {backend} | cuda | {len(g):,} | {w}x{h} | {ms:.2f} ({1000 / ms:.0f} fps) | GPU {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
