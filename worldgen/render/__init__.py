"""Rendering: `Gaussians` + `Cameras` -> images.

`render` runs gsplat's CUDA rasterizer on CUDA tensors and worldgen's own
pure-PyTorch rasterizer (same maths, see `rasterize.py`) everywhere else.

    from worldgen.render import Cameras, render
    cams = Cameras.look_at([0, -20, 5], [0, 0, 0], fov_deg=60, width=640, height=360)
    out = render(gaussians, cams)          # out.colors [1, 360, 640, 3]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from worldgen.errors import InvalidGaussiansError, UsageError
from worldgen.gaussians import Gaussians
from worldgen.render.cameras import (
    Cameras,
    SceneBounds,
    camera_path,
    check_image_size,
    flyover_path,
    intrinsics_from_fov,
    look_at,
    orbit_path,
    overview_camera,
    scene_bounds,
    walk_path,
)
from worldgen.render.rasterize import RasterConfig, rasterize

Backend = Literal["auto", "gsplat", "torch"]
Mode = Literal["rgb", "rgb+depth"]


@dataclass(frozen=True, eq=False)
class RenderOutput:
    """Images of C cameras."""

    colors: Tensor  # [C, H, W, 3] linear colour with the background composited, not clamped
    alphas: Tensor  # [C, H, W, 1] accumulated opacity, 1 - final transmittance
    depths: Tensor | None = None  # [C, H, W, 1] accumulated depth sum_i w_i z_i (mode="rgb+depth")

    @property
    def expected_depths(self) -> Tensor:
        """Depth per pixel normalised by coverage, sum w z / sum w; 0 where nothing was hit. [C, H, W, 1]"""
        if self.depths is None:
            raise UsageError("render with mode='rgb+depth' to get depths")
        return torch.where(self.alphas > 1e-6, self.depths / self.alphas.clamp_min(1e-6), torch.zeros_like(self.depths))

    def images_uint8(self) -> Tensor:
        """Colours as 8-bit images, clamped to [0, 1]. [C, H, W, 3] uint8"""
        return (self.colors.detach().clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu()


def render(
    gaussians: Gaussians,
    cameras: Cameras,
    width: int | None = None,
    height: int | None = None,
    *,
    backend: Backend = "auto",
    background: Tensor | Sequence[float] | None = None,  # [3] or [C, 3], default black
    mode: Mode = "rgb",
    config: RasterConfig = RasterConfig(),
) -> RenderOutput:
    """Render `gaussians` from every camera.

    `width`/`height` default to the cameras' size; another size rescales the
    intrinsics (same field of view). backend "auto" uses gsplat for CUDA
    tensors and the torch rasterizer elsewhere. An empty set of Gaussians, or
    a camera that sees none, gives an image of the background with alpha 0.
    """
    if not isinstance(gaussians, Gaussians):
        raise InvalidGaussiansError(f"render takes a Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise UsageError(f"render takes a Cameras, got {type(cameras).__name__}")
    if mode not in ("rgb", "rgb+depth"):
        raise UsageError(f"mode must be 'rgb' or 'rgb+depth', got {mode!r}")
    if backend not in ("auto", "gsplat", "torch"):
        raise UsageError(f"backend must be 'auto', 'gsplat' or 'torch', got {backend!r}")
    width = cameras.width if width is None else width
    height = cameras.height if height is None else height
    check_image_size(width, height)
    Ks = cameras.Ks.clone()
    Ks[:, 0] *= width / cameras.width
    Ks[:, 1] *= height / cameras.height
    n_cams = len(cameras)
    bg = torch.zeros(3) if background is None else torch.as_tensor(background, dtype=torch.float32)
    if bg.shape not in ((3,), (n_cams, 3)):
        raise UsageError(f"background must have shape [3] or [{n_cams}, 3], got {tuple(bg.shape)}")
    bg = bg.to(gaussians.means).expand(n_cams, 3)
    with_depth = mode == "rgb+depth"

    from worldgen.render import backend_gsplat

    use_gsplat = backend == "gsplat" or (backend == "auto" and backend_gsplat.available(gaussians.device))
    if use_gsplat:
        colors, alphas, depths = backend_gsplat.rasterize_gsplat(
            gaussians, cameras.viewmats, Ks, width, height, backgrounds=bg, with_depth=with_depth, config=config
        )
        return RenderOutput(colors, alphas, depths)

    views = [
        rasterize(
            gaussians, cameras.viewmats[c], Ks[c], width, height, background=bg[c], with_depth=with_depth, config=config
        )
        for c in range(n_cams)
    ]
    colors = torch.stack([v[0] for v in views])
    alphas = torch.stack([v[1] for v in views])
    depths = torch.stack([v[2] for v in views]) if with_depth else None
    return RenderOutput(colors, alphas, depths)


__all__ = [
    "overview_camera",
    "Backend",
    "Cameras",
    "Mode",
    "RasterConfig",
    "RenderOutput",
    "SceneBounds",
    "camera_path",
    "flyover_path",
    "intrinsics_from_fov",
    "look_at",
    "orbit_path",
    "render",
    "scene_bounds",
    "walk_path",
]
