"""Real spherical harmonics as 3DGS and gsplat use them (degree 0-3).

A Gaussian's colour seen along unit direction `d` (from the camera to the
Gaussian) is ``max(0, 0.5 + sum_k coeffs[k] * basis_k(d))``, with `coeffs` the
concatenation of `sh0` and `shN`.
"""

from __future__ import annotations

import torch
from torch import Tensor

C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)

#: number of SH coefficients beyond the first for each degree: K in shN's [N, K, 3].
REST_COEFFS = {0: 0, 1: 3, 2: 8, 3: 15}


def degree_from_rest(k: int) -> int:
    """SH degree from the number of higher coefficients K (0, 3, 8 or 15)."""
    for degree, count in REST_COEFFS.items():
        if count == k:
            return degree
    raise ValueError(f"shN must hold 0, 3, 8 or 15 coefficients per colour channel, got {k}")


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Degree-0 coefficient that gives colour `rgb` in [0, 1]. [..., 3] -> [..., 3]"""
    return (rgb - 0.5) / C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """Colour of the degree-0 term alone, unclamped. [..., 3] -> [..., 3]"""
    return 0.5 + C0 * sh0


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """The (degree+1)^2 basis functions at unit directions. [..., 3] -> [..., (degree+1)^2]"""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            _C2[0] * xy,
            _C2[1] * yz,
            _C2[2] * (2.0 * zz - xx - yy),
            _C2[3] * xz,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * xy * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Colour from SH coefficients along unit directions, clamped at 0.

    coeffs: [..., K+1, 3] (sh0 and shN concatenated); dirs: [..., 3] -> [..., 3]
    """
    degree = degree_from_rest(coeffs.shape[-2] - 1)
    basis = sh_basis(dirs, degree)  # [..., K+1]
    return torch.clamp_min((basis.unsqueeze(-1) * coeffs).sum(-2) + 0.5, 0.0)


def rotate_sh(shN: Tensor, rotation: Tensor) -> Tensor:
    """Rotate the higher SH bands with the world: the colour seen along R d
    after rotating equals the colour seen along d before.

    Each band l transforms by its own (2l+1)x(2l+1) matrix, found exactly by a
    least-squares fit of the basis on sample directions (the band is closed
    under rotation, so the fit has zero residual).
    shN: [N, K, 3]; rotation: [3, 3] -> [N, K, 3]
    """
    k = shN.shape[1]
    degree = degree_from_rest(k)
    if degree == 0:
        return shN
    gen = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(64, 3, generator=gen, dtype=torch.float64), dim=-1)
    rot = rotation.detach().to(torch.float64).cpu()
    before = sh_basis(dirs, degree)[:, 1:]  # [64, K]
    after = sh_basis(dirs @ rot, degree)[:, 1:]  # Y(R^T d), [64, K]
    out = torch.empty_like(shN)
    start = 0
    for band in range(1, degree + 1):
        stop = start + 2 * band + 1
        d_band = torch.linalg.lstsq(before[:, start:stop], after[:, start:stop]).solution  # [2l+1, 2l+1]
        out[:, start:stop] = torch.einsum("ji,nic->njc", d_band.to(shN), shN[:, start:stop])
        start = stop
    return out
