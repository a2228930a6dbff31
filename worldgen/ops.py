"""Pure functions on `Gaussians`: scoring and pruning.

Policy (when to prune, to how many) lives with the callers, e.g.
``worldgen convert --max-splats``; these functions only do the work.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians


def visibility_score(g: Gaussians) -> Tensor:
    """log(opacity x volume) of each Gaussian, volume ~ scale_x * scale_y * scale_z. [N]

    Computed in the log domain so that tiny and huge splats neither underflow
    nor overflow; a zero opacity or scale scores -inf.
    """
    return torch.log(g.opacities) + torch.log(g.scales).sum(dim=1)


def most_visible(g: Gaussians, n: int) -> Gaussians:
    """The `n` Gaussians with the largest opacity x volume, in their original order.

    Ties are broken by the original index (earlier first), so the result is
    deterministic. `n >= len(g)` returns `g` unchanged.
    """
    if n < 0:
        raise UsageError(f"the number of Gaussians to keep must be >= 0, got {n}")
    if n >= len(g):
        return g
    order = torch.sort(visibility_score(g), descending=True, stable=True).indices
    keep = torch.sort(order[:n]).values
    return g[keep]


def _most_visible_reference(g: Gaussians, n: int) -> Gaussians:
    """Slow twin of `most_visible`: a Python sort of (-score, index) pairs."""
    opac, scales = g.opacities.tolist(), g.scales.tolist()
    scores = [o * sx * sy * sz for o, (sx, sy, sz) in zip(opac, scales, strict=True)]
    ranked = sorted(range(len(g)), key=lambda i: (-scores[i], i))
    return g[sorted(ranked[: max(n, 0)])]


def drop_transparent(g: Gaussians, min_opacity: float = 1 / 255) -> Gaussians:
    """Gaussians whose opacity is at least `min_opacity` (the rest are invisible in 8-bit viewers)."""
    return g[g.opacities >= min_opacity]


__all__ = ["drop_transparent", "most_visible", "visibility_score"]
