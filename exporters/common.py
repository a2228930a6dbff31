"""What every format's reader and writer share: reading a file, checking decoded
values, and turning numpy arrays into a `Gaussians`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch

from worldgen.errors import FormatError
from worldgen.gaussians import Gaussians

#: what a reader does with rows holding NaN/Inf or a zero quaternion
OnInvalid = Literal["error", "drop"]

#: a quaternion whose norm is within this of 1 is kept exactly as stored
_UNIT_TOL = 1e-6


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole file; an empty file is a FormatError."""
    data = Path(path).read_bytes()
    if not data:
        raise FormatError(f"{path}: the file is empty")
    return data


def sigmoid64(x: np.ndarray) -> np.ndarray:
    """Logistic function in float64, without overflow warnings."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


def logit64(p: np.ndarray) -> np.ndarray:
    """Inverse of the logistic function in float64 (p in [0, 1] -> [-inf, inf])."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(p) - np.log1p(-p)


def to_numpy64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def to_numpy32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy()


def make_gaussians(
    name: str | os.PathLike,
    *,
    means: np.ndarray,  # [N, 3]
    quats: np.ndarray,  # [N, 4] w x y z, any length but zero
    scales: np.ndarray,  # [N, 3] linear
    opacities: np.ndarray,  # [N] in [0, 1]
    sh0: np.ndarray,  # [N, 1, 3]
    shN: np.ndarray,  # [N, K, 3]
    on_invalid: OnInvalid = "error",
) -> Gaussians:
    """Check decoded values and build float32 Gaussians (file frame, quaternions normalised).

    Rows with NaN/Inf anywhere or a zero quaternion are a FormatError naming the
    file, or are dropped when ``on_invalid="drop"``.
    """
    n = means.shape[0]
    fields = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "sh0": sh0, "shN": shN}
    bad = np.zeros(n, dtype=bool)
    problems: list[str] = []
    with np.errstate(over="ignore", invalid="ignore"):
        for field, values in fields.items():
            if np.isfinite(np.sum(values, dtype=np.float64)):  # one cheap pass; a float64 sum cannot overflow here
                continue
            rows = ~np.isfinite(values.reshape(n, -1)).all(axis=1)
            if rows.any():
                problems.append(f"{int(rows.sum())} rows with NaN/Inf {field} (first at row {int(np.argmax(rows))})")
            bad |= rows
        norms = np.sqrt((quats.astype(np.float64) ** 2).sum(axis=1))
    zero = np.isfinite(norms) & (norms < 1e-12)
    if zero.any():
        problems.append(f"{int(zero.sum())} rows with a zero quaternion (first at row {int(np.argmax(zero))})")
    bad |= zero
    if bad.any():
        if on_invalid == "error":
            raise FormatError(f"{name}: {'; '.join(problems)} (pass on_invalid='drop' to skip such rows)")
        keep = ~bad
        fields = {f: v[keep] for f, v in fields.items()}
        norms = norms[keep]
    q = fields["quats"]
    off = np.abs(norms - 1.0) > _UNIT_TOL
    if off.any():  # normalise only what needs it, so unit quaternions come back bit-exact
        q = q.astype(np.float64, copy=True)
        q[off] /= norms[off, None]
    fields["quats"] = q
    out = {f: torch.from_numpy(_owned_float32(v)) for f, v in fields.items()}
    out["opacities"] = out["opacities"].clamp(0.0, 1.0)
    return Gaussians(**out)


def write_array(f: BinaryIO, array: np.ndarray) -> None:
    """Write a C-contiguous array's bytes without copying them."""
    f.write(memoryview(np.ascontiguousarray(array)).cast("B") if array.size else b"")


def check_writable(g: Gaussians) -> Gaussians:
    """`g.validate()`, with a fast path: one reduction per field, the full check only on suspicion."""
    from worldgen.gaussians import QUAT_NORM_TOL

    t = lambda x: bool(x)  # noqa: E731
    fine = len(g) == 0 or (
        all(t(torch.isfinite(getattr(g, f).sum())) for f in ("means", "quats", "scales", "opacities", "sh0", "shN"))
        and t(((g.quats * g.quats).sum(dim=1).sqrt() - 1).abs().max() <= QUAT_NORM_TOL)
        and t(g.scales.min() >= 0)
        and t(g.opacities.min() >= 0)
        and t(g.opacities.max() <= 1)
    )
    return g if fine else g.validate()  # validate raises with the row and the problem (or clears a false alarm)


def to_world(g: Gaussians, up: str, name: str | os.PathLike) -> Gaussians:
    """Rotate decoded Gaussians from the file frame into the world frame; overflow is a FormatError."""
    from exporters.frames import from_file_frame

    out = from_file_frame(g, up)  # type: ignore[arg-type]
    suspect = out is not g and len(out) and not all(bool(torch.isfinite(t.sum())) for t in (out.means, out.quats, out.shN))
    if suspect and not all(bool(torch.isfinite(t).all()) for t in (out.means, out.quats, out.shN)):
        raise FormatError(f"{name}: values too large to rotate into the world frame (overflow to infinity)")
    return out


def _owned_float32(v: np.ndarray) -> np.ndarray:
    """A contiguous, writable float32 array (a copy when `v` is a read-only view of file bytes)."""
    out = np.ascontiguousarray(v, dtype=np.float32)
    return out if out.flags.writeable else out.copy()


__all__ = ["check_writable", "to_world", "write_array", "OnInvalid", "logit64", "make_gaussians", "read_bytes", "sigmoid64", "to_numpy32", "to_numpy64"]
