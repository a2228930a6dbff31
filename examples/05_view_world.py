"""View a world in the browser.

Builds a small world of coloured splats (a ground disc and a few columns, +Z up),
starts the worldgen viewer on it at http://127.0.0.1:8080 (or a free port) and
serves it until Ctrl-C, or for `--max-seconds`. Open the URL to fly around it,
edit it and download it as .ply, .splat or .spz.
"""

from __future__ import annotations

import argparse
import math

import torch

from viewer.app import ViewerConfig, WorldViewer
from worldgen.gaussians import Gaussians


def little_world(n: int = 20_000, seed: int = 0) -> Gaussians:
    """A grass-green disc 20 m across with four coloured columns on it."""
    g = torch.Generator().manual_seed(seed)
    m = n // 2
    r, a = 10 * torch.rand(m, generator=g).sqrt(), 2 * math.pi * torch.rand(m, generator=g)
    ground = torch.stack([r * a.cos(), r * a.sin(), 0.03 * torch.randn(m, generator=g)], dim=1)
    ground_rgb = torch.tensor([0.25, 0.55, 0.2]) + 0.08 * torch.randn(m, 3, generator=g)
    k = (n - m) // 4
    columns, column_rgb = [], []
    for i, rgb in enumerate([(0.9, 0.2, 0.1), (0.2, 0.4, 0.9), (0.95, 0.8, 0.2), (0.8, 0.8, 0.85)]):
        c = torch.tensor([5 * math.cos(i * math.pi / 2), 5 * math.sin(i * math.pi / 2), 0.0])
        pts = torch.randn(k, 3, generator=g) * torch.tensor([0.4, 0.4, 0.0])
        pts[:, 2] = 4 * torch.rand(k, generator=g)
        columns.append(pts + c)
        column_rgb.append(torch.tensor(rgb).expand(k, 3))
    means = torch.cat([ground, *columns])
    rgb = torch.cat([ground_rgb, *column_rgb]).clamp(0, 1)
    return Gaussians.from_rgb(means, rgb, torch.full((len(means), 3), 0.12), torch.full((len(means),), 0.9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args()
    viewer = WorldViewer(ViewerConfig(port=args.port))
    try:
        layer = viewer.add_world(little_world(), name="little_world")
        print(f"{layer.name}: {len(layer.gaussians):,} splats at {viewer.url}")
        viewer.serve(args.max_seconds)
    finally:
        viewer.stop()


if __name__ == "__main__":
    main()
