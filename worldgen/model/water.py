"""Water: which generated tokens are water, and putting them on the water level.

Procedural water is a sheet of flat splats on the plane z = `WATER_LEVEL`. A
flow over normalised tokens cannot hold that plane: the footprint spans about
2 token units, so 1 cm of height is 3e-4 of a unit, and generated water tokens
land within +-1 m of it, under the ground or tilted off it, where neither a
render nor the probes see a lake. The set model does learn *which* tokens are
water (their colour, shape and place agree with the prompt), so a small
per-token head reads that, and water tokens and their children are laid onto
the plane.

The head is a function of one token and the pooled condition, and settling
moves each water token by itself: the set path stays permutation-equivariant.
No preset has a head (`ModelConfig.water_width`); docs/model.md ("Water head")
has what it does to the shipped weights' worlds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldgen.gaussians import covariance, rotmat_to_quat, shortest_axis
from worldgen.model import tokens as tok
from worldgen.procedural.terrain import WATER_LEVEL

#: a water splat's thickness after settling, meters (procedural water splats are 0.02 m thick)
WATER_THICKNESS = 0.02
#: token noise the head trains under (std per token dim): it must read water off tokens that missed the plane;
#: height gets 0.03 units (about 1 m)
TRAIN_NOISE = 0.05
TRAIN_HEIGHT_NOISE = 0.03


class WaterHead(nn.Module):
    """P(water) of every coarse token, from the token and its world's pooled condition."""

    def __init__(self, token_dim: int, cond_dim: int, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(token_dim + cond_dim, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1)
        )

    def zero_init_head(self) -> None:
        """A fresh head reads nothing as water: P(water) = 5% everywhere, about the share of water in the data."""
        nn.init.zeros_(self.net[-1].weight)
        nn.init.constant_(self.net[-1].bias, math.log(0.05 / 0.95))

    def forward(self, tokens: Tensor, pooled: Tensor) -> Tensor:  # [..., D], [..., C] -> logits [...]
        cond = pooled.expand(*tokens.shape[:-1], pooled.shape[-1])
        return self.net(torch.cat([tokens, cond.to(tokens.dtype)], dim=-1)).squeeze(-1)


def water_labels(means: Tensor, quats: Tensor, scales: Tensor, *, tol: float = 2e-3) -> Tensor:  # -> [...] bool
    """Which procedural coarse Gaussians are water: on the water level (within `tol` m) and lying flat."""
    return ((means[..., 2] - WATER_LEVEL).abs() < tol) & (shortest_axis(quats, scales)[..., 2].abs() > 0.99)


def lay_flat(means: Tensor, quats: Tensor, scales: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gaussians moved onto the water level as flat sheets: the footprint of each (its covariance seen from
    above) is kept, its height becomes `WATER_LEVEL` and its thickness `WATER_THICKNESS` (or half its
    narrowest width, for smaller ones)."""
    var, axes = torch.linalg.eigh(covariance(quats, scales)[..., :2, :2])  # ascending; axes [..., 2, 2] in columns
    axes = torch.stack([axes[..., 0], axes[..., 1] * torch.det(axes)[..., None]], dim=-1)  # a proper rotation
    flat = torch.zeros(*axes.shape[:-2], 3, 3, dtype=axes.dtype, device=axes.device)
    flat[..., :2, :2] = axes
    flat[..., 2, 2] = 1.0
    sx = var.clamp_min(0).sqrt()
    thick = torch.full_like(sx[..., :1], WATER_THICKNESS).minimum(sx[..., :1] / 2)  # thinner than it is wide
    out_means = means.clone()
    out_means[..., 2] = WATER_LEVEL
    return out_means, rotmat_to_quat(flat), torch.cat([sx, thick], dim=-1)


def settle_tokens(tokens: Tensor, wet: Tensor) -> Tensor:  # [N, D], [N] bool -> [N, D]
    """Coarse tokens with the `wet` ones laid onto the water level (`lay_flat`)."""
    if not wet.any():
        return tokens
    g = tok.decode(tokens[wet])
    means, quats, scales = lay_flat(g["means"], g["quats"], g["scales"])
    out = tokens.clone()
    out[wet] = tok.encode(means, quats, scales, g["opacities"], g["rgb"]).to(tokens.dtype)
    return out


def water_loss(head: WaterHead, tokens: Tensor, pooled: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Binary cross-entropy of `head` on data coarse tokens [P, D] (their pooled conditions [P, C]), labelled by
    `water_labels` and read through noise (`TRAIN_NOISE`), so that it holds on tokens that miss the plane."""
    g = tok.decode(tokens.float())
    labels = water_labels(g["means"], g["quats"], g["scales"])
    std = torch.full((tokens.shape[-1],), TRAIN_NOISE)
    std[2] = TRAIN_HEIGHT_NOISE  # z, the last entry of the position slice
    noise = torch.randn(tokens.shape, generator=generator) * std
    logits = head(tokens + noise.to(tokens), pooled)
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
