"""Save and load a world in every splat format.

Builds a small random world (+Z up, SH degree 3), writes it as a 3DGS .ply,
an antimatter15 .splat, a Niantic .spz, a glTF .glb (KHR_gaussian_splatting)
and a PlayCanvas .sog in the frames their viewers expect, reads each back into
worldgen's frame, and makes a phone-sized variant that keeps only the most
visible splats. Files land in the current directory.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from exporters import load, save
from exporters.splat import LossyExportWarning
from worldgen.gaussians import Gaussians
from worldgen.ops import most_visible


def random_world(n: int, *, seed: int = 0) -> Gaussians:
    """A scattering of coloured splats over a 20 m square, a few metres high."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([20.0, 20.0, 4.0]) + torch.tensor([0.0, 0.0, 2.0])
    g = Gaussians.from_rgb(
        means,
        rgb=torch.rand(n, 3, generator=gen),
        scales=torch.rand(n, 3, generator=gen) * 0.2 + 0.02,
        opacities=torch.rand(n, generator=gen) * 0.9 + 0.05,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=1),
        sh_degree=3,
    )
    return g.replace(shN=torch.randn(n, 15, 3, generator=gen) * 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splats", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()

    world = random_world(args.splats)
    for ext in ("ply", "splat", "spz", "glb", "sog"):
        path = args.out / f"world.{ext}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossyExportWarning)  # .splat has no SH bands
            save(world, path)
        back = load(path)
        err = (back.means.sort(dim=0).values - world.means.sort(dim=0).values).abs().max().item()
        print(f"{path}: {path.stat().st_size / 1e6:6.2f} MB, {len(back)} splats, SH degree {back.sh_degree}, max position error {err:.1e} m")

    phone = most_visible(world, args.splats // 4)
    save(phone, args.out / "world_phone.spz")
    print(f"{args.out / 'world_phone.spz'}: the {len(phone)} most visible splats")


if __name__ == "__main__":
    main()
