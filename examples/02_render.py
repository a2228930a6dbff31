"""Render a small world: a still image and a short orbit video.

Builds a tiny scene of Gaussians in code (a ground patch, a few coloured
blobs and a sky dome), renders one view with `worldgen.render.render` from a
camera placed by position / look-at / vertical field of view, then an orbit
around the world written as a GIF. It runs on the CPU with the pure-PyTorch
rasterizer (gsplat is used instead when the Gaussians live on a CUDA device).
Outputs land in the current directory: `02_render.png`, `02_render.gif`.
"""

from __future__ import annotations

import argparse
import math

import torch

from worldgen.gaussians import Gaussians
from worldgen.render import Cameras, orbit_path, render
from worldgen.render.video import write_image, write_video


def small_world(seed: int = 0) -> Gaussians:
    """About 6,000 splats: ground, five blobs, sky."""
    gen = torch.Generator().manual_seed(seed)
    ground_xy = (torch.rand(3000, 2, generator=gen) - 0.5) * 20
    ground = torch.cat([ground_xy, torch.zeros(3000, 1)], 1)
    centres = torch.tensor([[-5.0, -3, 1.5], [4, -2, 1], [0, 4, 2], [-3, 5, 1], [6, 5, 1.2]])
    blobs = centres.repeat_interleave(400, 0) + 0.7 * torch.randn(2000, 3, generator=gen)
    theta = torch.rand(1000, generator=gen) * 2 * math.pi
    phi = torch.rand(1000, generator=gen) * 0.5 * math.pi
    sky = 150 * torch.stack([phi.cos() * theta.cos(), phi.cos() * theta.sin(), phi.sin()], 1)
    hues = torch.tensor([[0.9, 0.3, 0.2], [0.2, 0.6, 0.9], [0.9, 0.8, 0.2], [0.6, 0.3, 0.8], [0.2, 0.8, 0.4]])
    rgb = torch.cat(
        [torch.tensor([0.35, 0.55, 0.25]).expand(3000, 3), hues.repeat_interleave(400, 0), torch.tensor([0.55, 0.75, 0.95]).expand(1000, 3)]
    )
    scales = torch.cat([torch.tensor([0.4, 0.4, 0.03]).expand(3000, 3), torch.full((2000, 3), 0.2), torch.full((1000, 3), 12.0)])
    opacities = torch.full((6000,), 0.8)
    return Gaussians.from_rgb(torch.cat([ground, blobs, sky]), rgb, scales, opacities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--height", type=int, default=108)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()

    world = small_world()
    camera = Cameras.look_at([0.0, -16.0, 6.0], [0.0, 0.0, 1.0], fov_deg=60, width=args.width, height=args.height)
    with torch.no_grad():
        out = render(world, camera, background=[0.55, 0.75, 0.95], mode="rgb+depth")
    write_image("02_render.png", out.colors[0])
    print(f"02_render.png: coverage {float(out.alphas.mean()):.0%}, centre depth {float(out.expected_depths[0, args.height // 2, args.width // 2, 0]):.1f} m")

    tour = orbit_path(world.means, args.frames, width=args.width, height=args.height)
    with torch.no_grad():
        frames = (render(world, tour[i], background=[0.55, 0.75, 0.95]).colors[0] for i in range(len(tour)))
        count = write_video("02_render.gif", frames, fps=12)
    print(f"02_render.gif: {count} frames")


if __name__ == "__main__":
    main()
