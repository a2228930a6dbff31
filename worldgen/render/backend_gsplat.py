"""The CUDA backend: gsplat's fused rasterizer (classic mode), for Gaussians on a CUDA device.

gsplat compiles and runs CUDA kernels only; on a machine without a GPU its first
call fails, so `worldgen.render` picks this backend only for CUDA tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians
from worldgen.render.rasterize import RasterConfig


def available(device: torch.device) -> bool:
    """Whether gsplat can render tensors on `device`."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def rasterize_gsplat(
    g: Gaussians,
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    backgrounds: Tensor,  # [C, 3]
    with_depth: bool = False,
    config: RasterConfig = RasterConfig(),
) -> tuple[Tensor, Tensor, Tensor | None]:
    """All C views at once: (colors [C, H, W, 3], alphas [C, H, W, 1], depths [C, H, W, 1] or None)."""
    if not available(g.device):
        raise UsageError("the gsplat backend needs the Gaussians on a CUDA device; use backend='torch' on CPU")
    from gsplat import rasterization

    dtype = g.dtype
    g = g.to(dtype=torch.float32)  # gsplat's kernels are float32 only
    renders, alphas, _ = rasterization(
        means=g.means,
        quats=g.quats,
        scales=g.scales,
        opacities=g.opacities,
        colors=g.colors,
        viewmats=viewmats.to(g.means),
        Ks=Ks.to(g.means),
        width=width,
        height=height,
        near_plane=config.near_plane,
        far_plane=config.far_plane,
        eps2d=config.eps2d,
        sh_degree=g.sh_degree,
        packed=False,
        backgrounds=backgrounds.to(g.means),
        render_mode="RGB+D" if with_depth else "RGB",
        rasterize_mode="classic",
    )
    renders, alphas = renders.to(dtype), alphas.to(dtype)
    depths = renders[..., 3:4] if with_depth else None
    return renders[..., :3], alphas, depths
