"""Gaussians <-> normalised token vectors, the space the set model works in.

A coarse Gaussian becomes one 14-d token (`TOKEN_DIM`), every entry roughly in
[-2, 2]:

| slice | meaning | mapping |
| --- | --- | --- |
| 0:3 | position | ``contract(means / HALF_EXTENT)`` |
| 3:6 | size | ``(log(scales) - LOG_SCALE_MEAN) / LOG_SCALE_STD`` |
| 6:10 | rotation | unit quaternion w x y z, sign fixed so w >= 0 |
| 10:13 | colour | ``2 * rgb - 1`` |
| 13 | opacity | ``logit(opacity) / LOGIT_SCALE`` |

Positions: the footprint spans +-32 m but the sky dome sits at >= 150 m. A
plain division would squeeze the ground into a small ball around zero or put
the sky at +-5; the radial contraction (as in Mip-NeRF 360) keeps the unit ball
(``|x| <= HALF_EXTENT``) linear and maps everything outside it into the shell
``1 < |y| < 2``: ``y = (2 - 1/r) x / r`` for ``r = |x| > 1``. The sky at 150 m
lands at ``|y| = 1.79``, the footprint corner at 1.29, and every token
position is bounded, which suits noise-to-data flows. The inverse is exact.

Children (the full-detail Gaussians under one coarse Gaussian) are tokens in
their parent's local frame, the frame of `worldgen.procedural.lod` (the
dataset stores them so): offset ``R_p^T (x - mu_p) / s_p`` and log-scale
``log(s / s_p)`` per axis with ``s_p`` floored at `MIN_PARENT_SCALE`,
rotation ``q_p^-1 q`` (w >= 0), and colour and opacity as residuals on the
parent's: ``CHILD_RGB_SCALE * (rgb - rgb_p)`` and ``(logit(o) - logit(o_p)) /
LOGIT_SCALE`` (`CHILD_TOKEN_DIM` = 14). A child that copies its parent is the
zero token, so the decoder only has to learn the detail; with absolute colours
the small decoder's errors showed as bright, wrongly coloured speckles. That frame turns with the parent, so the decoder
never sees world orientation. `child_tokens_from_local` /
`child_local_from_tokens` convert between the dataset's arrays and tokens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldgen.errors import InvalidGaussiansError
from worldgen.gaussians import Gaussians, quat_multiply, quat_to_rotmat

TOKEN_DIM = 14
CHILD_TOKEN_DIM = 14

HALF_EXTENT = 32.0  # meters: half the 64 m footprint; |means| <= this stays linear
LOG_SCALE_MEAN = -1.0  # log(0.37 m)
LOG_SCALE_STD = 1.5
CHILD_LOG_SCALE_MEAN = -1.0  # children are smaller than their parent
MIN_PARENT_SCALE = 0.01  # meters; the floor worldgen.procedural.lod uses
CHILD_LOG_SCALE_STD = 1.0
CHILD_RGB_SCALE = 4.0  # child colour token = 4 * (rgb - parent rgb); data residuals are mostly below 0.1
LOGIT_SCALE = 4.0
OPACITY_EPS = 1e-4  # opacities are clamped to [eps, 1 - eps] before the logit
_MAX_CONTRACTED = 1.999  # keeps the inverse contraction finite (|x| <= 1000 * HALF_EXTENT)

POS, SCALE, ROT, RGB, OPACITY = slice(0, 3), slice(3, 6), slice(6, 10), slice(10, 13), slice(13, 14)


# -- positions -------------------------------------------------------------------------


def contract(x: Tensor) -> Tensor:
    """Radial contraction: identity inside the unit ball, (2 - 1/r) x / r outside. [..., 3] -> [..., 3]"""
    r = x.norm(dim=-1, keepdim=True)
    safe_r = r.clamp_min(1.0)
    return torch.where(r <= 1.0, x, (2.0 - 1.0 / safe_r) * x / safe_r)


def uncontract(y: Tensor) -> Tensor:
    """Exact inverse of `contract`; |y| is clamped below 2. [..., 3] -> [..., 3]"""
    c = y.norm(dim=-1, keepdim=True)
    safe_c = c.clamp(1.0, _MAX_CONTRACTED)
    r = 1.0 / (2.0 - safe_c)
    return torch.where(c <= 1.0, y, y / c.clamp_min(1.0) * r)


def _fix_sign(q: Tensor) -> Tensor:
    """Unit quaternion with w >= 0 (q and -q are the same rotation). [..., 4]"""
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def _logit(p: Tensor) -> Tensor:
    p = p.clamp(OPACITY_EPS, 1.0 - OPACITY_EPS)
    return torch.log(p) - torch.log1p(-p)


def _quat_conj(q: Tensor) -> Tensor:
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


# -- coarse tokens ---------------------------------------------------------------------


def encode(
    means: Tensor,  # [..., 3] meters
    quats: Tensor,  # [..., 4] w x y z
    scales: Tensor,  # [..., 3] meters
    opacities: Tensor,  # [...] in [0, 1]
    rgb: Tensor,  # [..., 3] in [0, 1]
) -> Tensor:
    """Coarse Gaussians as normalised tokens. -> [..., TOKEN_DIM]"""
    return torch.cat(
        [
            contract(means / HALF_EXTENT),
            (torch.log(scales.clamp_min(1e-8)) - LOG_SCALE_MEAN) / LOG_SCALE_STD,
            _fix_sign(quats),
            2.0 * rgb - 1.0,
            _logit(opacities)[..., None] / LOGIT_SCALE,
        ],
        dim=-1,
    )


def decode(tokens: Tensor) -> dict[str, Tensor]:  # [..., TOKEN_DIM]
    """Exact inverse of `encode`: dict of means, quats, scales, opacities, rgb (physical units)."""
    _check_dim(tokens, TOKEN_DIM)
    return {
        "means": uncontract(tokens[..., POS]) * HALF_EXTENT,
        "quats": _fix_sign(tokens[..., ROT]),
        "scales": torch.exp(tokens[..., SCALE] * LOG_SCALE_STD + LOG_SCALE_MEAN),
        "opacities": torch.sigmoid(tokens[..., 13] * LOGIT_SCALE),
        "rgb": ((tokens[..., RGB] + 1.0) * 0.5).clamp(0.0, 1.0),
    }


#: the support of generated worlds: the procedural data reach ~250 m (sky dome corners) and 10 m splats
SAMPLE_MAX_DISTANCE = 400.0  # meters from the centre
SAMPLE_SCALE_RANGE = (1e-3, 30.0)  # meters


def clamp_to_support(tokens: Tensor) -> Tensor:
    """Sampled coarse tokens pulled inside the data's support (like clipping x0 in image diffusion).

    A flow sample can overshoot where the data never go: a token radius near 2
    means kilometres, a large scale token a splat that covers the view. Positions
    are pulled radially inside `SAMPLE_MAX_DISTANCE`, log-scales into
    `SAMPLE_SCALE_RANGE`; everything inside the support is left exactly as it is.
    [..., TOKEN_DIM] -> [..., TOKEN_DIM]
    """
    _check_dim(tokens, TOKEN_DIM)
    out = tokens.clone()
    limit = 2.0 - HALF_EXTENT / SAMPLE_MAX_DISTANCE  # contract(SAMPLE_MAX_DISTANCE / HALF_EXTENT)
    c = out[..., POS].norm(dim=-1, keepdim=True)
    out[..., POS] = out[..., POS] * (limit / c.clamp_min(limit))
    lo, hi = ((math.log(v) - LOG_SCALE_MEAN) / LOG_SCALE_STD for v in SAMPLE_SCALE_RANGE)
    out[..., SCALE] = out[..., SCALE].clamp(lo, hi)
    return out


def gaussians_to_tokens(g: Gaussians) -> Tensor:
    """A set of Gaussians as tokens (view-dependent SH bands are dropped). [N, TOKEN_DIM]"""
    return encode(g.means, g.quats, g.scales, g.opacities, g.rgb)


def tokens_to_gaussians(tokens: Tensor, *, sh_degree: int = 0) -> Gaussians:  # [N, TOKEN_DIM]
    """Tokens back to a `Gaussians` (non-finite tokens raise `InvalidGaussiansError`)."""
    if tokens.ndim != 2:
        raise InvalidGaussiansError(f"tokens must be [N, {TOKEN_DIM}], got {tuple(tokens.shape)}")
    if not torch.isfinite(tokens).all():
        raise InvalidGaussiansError("tokens hold NaN or infinite values")
    f = decode(tokens)
    return Gaussians.from_rgb(f["means"], f["rgb"], f["scales"], f["opacities"], f["quats"], sh_degree=sh_degree)


# -- child tokens (parent's local frame) -------------------------------------------------


def child_tokens_from_local(
    offsets: Tensor,  # [..., C, 3] R_p^T (x - mu_p) / s_p
    log_scales: Tensor,  # [..., C, 3] log(s / s_p)
    quats: Tensor,  # [..., C, 4] q_p^-1 q
    rgb: Tensor,  # [..., C, 3]
    opacities: Tensor,  # [..., C]
    parent_rgb: Tensor,  # [..., 3]
    parent_opacities: Tensor,  # [...]
) -> Tensor:  # [..., C, CHILD_TOKEN_DIM]
    """The dataset's local-frame children (lod.Children fields) as normalised child tokens."""
    return torch.cat(
        [
            offsets,
            (log_scales - CHILD_LOG_SCALE_MEAN) / CHILD_LOG_SCALE_STD,
            _fix_sign(quats),
            CHILD_RGB_SCALE * (rgb - parent_rgb[..., None, :]),
            (_logit(opacities) - _logit(parent_opacities)[..., None])[..., None] / LOGIT_SCALE,
        ],
        dim=-1,
    )


def child_local_from_tokens(
    tokens: Tensor,  # [..., C, CHILD_TOKEN_DIM]
    parent_rgb: Tensor,  # [..., 3]
    parent_opacities: Tensor,  # [...]
) -> dict[str, Tensor]:
    """Exact inverse of `child_tokens_from_local`: offsets, log_scales, quats, rgb, opacities."""
    _check_dim(tokens, CHILD_TOKEN_DIM)
    logit = _logit(parent_opacities)[..., None] + tokens[..., 13] * LOGIT_SCALE
    return {
        "offsets": tokens[..., POS],
        "log_scales": tokens[..., SCALE] * CHILD_LOG_SCALE_STD + CHILD_LOG_SCALE_MEAN,
        "quats": _fix_sign(tokens[..., ROT]),
        "rgb": (parent_rgb[..., None, :] + tokens[..., RGB] / CHILD_RGB_SCALE).clamp(0.0, 1.0),
        "opacities": torch.sigmoid(logit),
    }


def encode_children(
    parent: dict[str, Tensor],  # means [P, 3], quats [P, 4], scales [P, 3], opacities [P], rgb [P, 3]
    means: Tensor,  # [P, C, 3]
    quats: Tensor,  # [P, C, 4]
    scales: Tensor,  # [P, C, 3]
    opacities: Tensor,  # [P, C]
    rgb: Tensor,  # [P, C, 3]
) -> Tensor:
    """World-frame children of each parent as tokens in the parent's local frame. -> [P, C, CHILD_TOKEN_DIM]"""
    rot = quat_to_rotmat(parent["quats"])  # [P, 3, 3] local -> world
    s_p = parent["scales"].clamp_min(MIN_PARENT_SCALE)[:, None]  # [P, 1, 3]
    offsets = torch.einsum("pji,pcj->pci", rot, means - parent["means"][:, None]) / s_p
    rel_q = quat_multiply(_quat_conj(_fix_sign(parent["quats"]))[:, None].expand_as(quats), quats)
    log_s = torch.log(scales.clamp_min(1e-8) / s_p)
    return child_tokens_from_local(offsets, log_s, rel_q, rgb, opacities, parent["rgb"], parent["opacities"])


def decode_children(
    parent: dict[str, Tensor],  # means [P, 3], quats [P, 4], scales [P, 3], opacities [P], rgb [P, 3]
    tokens: Tensor,  # [P, C, CHILD_TOKEN_DIM]
) -> dict[str, Tensor]:
    """Exact inverse of `encode_children`: world-frame fields, each [P, C, ...]."""
    loc = child_local_from_tokens(tokens, parent["rgb"], parent["opacities"])
    rot = quat_to_rotmat(parent["quats"])
    s_p = parent["scales"].clamp_min(MIN_PARENT_SCALE)[:, None]
    means = torch.einsum("pij,pcj->pci", rot, loc["offsets"] * s_p) + parent["means"][:, None]
    pq = _fix_sign(parent["quats"])[:, None].expand(*tokens.shape[:2], 4)
    return {
        "means": means,
        "quats": _fix_sign(quat_multiply(pq, loc["quats"])),
        "scales": torch.exp(loc["log_scales"]) * s_p,
        "opacities": loc["opacities"],
        "rgb": loc["rgb"],
    }


def _check_dim(tokens: Tensor, dim: int) -> None:
    if tokens.shape[-1] != dim:
        raise InvalidGaussiansError(f"tokens must end in {dim} channels, got shape {tuple(tokens.shape)}")
