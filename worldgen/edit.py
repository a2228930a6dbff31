"""Edits on `Gaussians`: select splats by a box or a sphere, then delete, recolour or move them.

Pure functions: each takes a `Gaussians` and returns a new one (or a mask);
nothing is changed in place. Policy, such as an undo stack or which layer is
being edited, belongs to the caller (the viewer keeps it in `viewer/`).

A selection is a boolean mask of shape [N]; masks combine with `&`, `|`, `~`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians, quat_multiply, quat_to_rotmat, rotmat_to_quat
from worldgen.sh import rgb_to_sh0, rotate_sh

RecolorMode = Literal["replace", "tint"]


# -- selection ------------------------------------------------------------------------


def select_box(
    gaussians: Gaussians,
    center: Tensor | tuple[float, float, float],  # [3]
    size: Tensor | tuple[float, float, float],  # [3] full edge lengths along the box axes
    *,
    wxyz: Tensor | tuple[float, float, float, float] | None = None,  # [4] box orientation; axis-aligned when None
) -> Tensor:
    """Splats whose centre lies inside an (optionally rotated) box, boundary included. [N] bool"""
    center_t, size_t = _vec(gaussians, center, 3, "box center"), _vec(gaussians, size, 3, "box size")
    if (size_t < 0).any():
        raise UsageError(f"box size must be non-negative, got {size_t.tolist()}")
    local = gaussians.means - center_t
    if wxyz is not None:
        rotation = quat_to_rotmat(_vec(gaussians, wxyz, 4, "box orientation"))  # box -> world
        local = local @ rotation  # world -> box frame: R^T x, as rows
    return (local.abs() <= size_t / 2).all(dim=1)


def select_sphere(
    gaussians: Gaussians,
    center: Tensor | tuple[float, float, float],  # [3]
    radius: float,
) -> Tensor:
    """Splats whose centre lies inside a sphere, boundary included. [N] bool"""
    if not radius >= 0:
        raise UsageError(f"sphere radius must be non-negative, got {radius}")
    center_t = _vec(gaussians, center, 3, "sphere center")
    return ((gaussians.means - center_t) ** 2).sum(dim=1) <= radius * radius


def _select_box_reference(gaussians: Gaussians, center, size, *, wxyz=None) -> Tensor:
    """Row-by-row twin of `select_box`, for tests. [N] bool"""
    center_t, size_t = _vec(gaussians, center, 3, "box center"), _vec(gaussians, size, 3, "box size")
    rotation = quat_to_rotmat(_vec(gaussians, wxyz, 4, "wxyz")) if wxyz is not None else torch.eye(3).to(center_t)
    out = []
    for mean in gaussians.means:
        local = rotation.T @ (mean - center_t)
        out.append(all(abs(float(local[i])) <= float(size_t[i]) / 2 for i in range(3)))
    return torch.tensor(out, dtype=torch.bool)


def _select_sphere_reference(gaussians: Gaussians, center, radius: float) -> Tensor:
    """Row-by-row twin of `select_sphere`, for tests. [N] bool"""
    c = [float(v) for v in center]
    return torch.tensor(
        [sum((float(m[i]) - c[i]) ** 2 for i in range(3)) <= radius * radius for m in gaussians.means], dtype=torch.bool
    )


# -- edits ----------------------------------------------------------------------------


def delete(gaussians: Gaussians, mask: Tensor) -> Gaussians:  # mask: [N] bool
    """The splats outside `mask`."""
    return gaussians[~_mask(gaussians, mask)]


def keep(gaussians: Gaussians, mask: Tensor) -> Gaussians:  # mask: [N] bool
    """The splats inside `mask` (a crop)."""
    return gaussians[_mask(gaussians, mask)]


def recolor(
    gaussians: Gaussians,
    mask: Tensor,  # [N] bool
    rgb: Tensor | tuple[float, float, float],  # [3] in [0, 1]
    *,
    mode: RecolorMode = "replace",
) -> Gaussians:
    """Recolour the selected splats.

    "replace" sets their base colour to `rgb` and clears their view-dependent
    bands, so they look `rgb` from every side; "tint" multiplies their base
    colour by `rgb` and scales their higher bands by the same factors.
    """
    mask = _mask(gaussians, mask)
    rgb_t = _vec(gaussians, rgb, 3, "colour")
    if ((rgb_t < 0) | (rgb_t > 1)).any():
        raise UsageError(f"colour components must lie in [0, 1], got {rgb_t.tolist()}")
    sh0, shN = gaussians.sh0.clone(), gaussians.shN.clone()
    if mode == "replace":
        sh0[mask] = rgb_to_sh0(rgb_t).reshape(1, 1, 3).to(sh0)
        shN[mask] = 0.0
    elif mode == "tint":
        base = (gaussians.rgb[mask] * rgb_t).reshape(-1, 1, 3)
        sh0[mask] = rgb_to_sh0(base)
        shN[mask] = shN[mask] * rgb_t
    else:
        raise UsageError(f"recolour mode must be 'replace' or 'tint', got {mode!r}")
    return gaussians.replace(sh0=sh0, shN=shN)


def move(
    gaussians: Gaussians,
    mask: Tensor,  # [N] bool
    translation: Tensor | tuple[float, float, float],  # [3]
    *,
    rotation: Tensor | None = None,  # [3, 3] proper rotation about `pivot`; none when None
    pivot: Tensor | tuple[float, float, float] | None = None,  # [3]; the selection's mean centre when None
) -> Gaussians:
    """Move the selected splats rigidly: rotate about `pivot`, then translate.

    Orientations and view-dependent colour rotate with the splats; the others stay put.
    """
    mask = _mask(gaussians, mask)
    t = _vec(gaussians, translation, 3, "translation")
    if not int(mask.sum()):
        return gaussians
    means, quats, shN = gaussians.means.clone(), gaussians.quats.clone(), gaussians.shN.clone()
    if rotation is not None:
        rotation = rotation.to(gaussians.means)
        eye = torch.eye(3, dtype=rotation.dtype)
        if rotation.shape != (3, 3) or not torch.allclose(rotation @ rotation.T, eye, atol=1e-5) or torch.det(rotation) < 0:
            raise UsageError("move needs a proper 3x3 rotation matrix (orthonormal, det +1)")
        p = gaussians.means[mask].mean(0) if pivot is None else _vec(gaussians, pivot, 3, "pivot")
        means[mask] = (gaussians.means[mask] - p) @ rotation.T + p
        q = rotmat_to_quat(rotation).to(quats).expand(int(mask.sum()), 4)
        quats[mask] = quat_multiply(q, gaussians.quats[mask])
        shN[mask] = rotate_sh(gaussians.shN[mask], rotation)
    means[mask] = means[mask] + t
    return gaussians.replace(means=means, quats=quats, shN=shN)


def rotation_about_z(degrees: float, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """Rotation by `degrees` about the world's up axis (+Z). [3, 3]"""
    a = torch.deg2rad(torch.tensor(float(degrees), dtype=torch.float64))
    c, s = torch.cos(a), torch.sin(a)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64).to(dtype)


# -- helpers --------------------------------------------------------------------------


def _mask(gaussians: Gaussians, mask: Tensor) -> Tensor:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (len(gaussians),):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise UsageError(f"a selection must be a bool mask of shape [{len(gaussians)}], got {shape}")
    return mask.to(gaussians.device)


def _vec(gaussians: Gaussians, value, n: int, what: str) -> Tensor:
    t = torch.as_tensor(value, dtype=gaussians.dtype).to(gaussians.device).reshape(-1)
    if t.shape != (n,) or not torch.isfinite(t).all():
        raise UsageError(f"{what} must be {n} finite numbers, got {t.tolist()}")
    return t


__all__ = ["delete", "keep", "move", "recolor", "rotation_about_z", "select_box", "select_sphere"]
