"""What every format's reader and writer share: `SplatArrays`, reading a file, checking values.

The format modules work on numpy only, so that `worldgen info` and `worldgen
convert` never import torch (most of a second at start-up). `SplatArrays`
is not a second Gaussian type: it is the `Gaussians` fields as numpy arrays at
the file boundary, and `exporters.load` / `exporters.save` turn it into and
out of the one `Gaussians` there.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from worldgen.errors import FormatError, InvalidGaussiansError

if TYPE_CHECKING:
    from worldgen.gaussians import Gaussians

#: what a reader does with rows holding NaN/Inf or a zero quaternion
OnInvalid = Literal["error", "drop"]

#: degree-0 SH constant: rgb = 0.5 + C0 * sh0 (as worldgen.sh.C0, without importing torch)
C0 = 0.28209479177387814
#: number of SH coefficients beyond the first for each degree (as worldgen.sh.REST_COEFFS)
REST_COEFFS = {0: 0, 1: 3, 2: 8, 3: 15}

#: rows a writer fills and writes at a time, in one reused buffer: a large file costs no large fresh allocation
CHUNK = 1 << 16
#: a quaternion whose norm is within this of 1 is kept exactly as stored
_UNIT_TOL = 1e-6
#: how far from 1 a quaternion's norm may be in a set that is written (as worldgen.gaussians.QUAT_NORM_TOL)
QUAT_NORM_TOL = 1e-3
FIELDS = ("means", "quats", "scales", "opacities", "sh0", "shN")


def sh_degree_of(k: int) -> int:
    """SH degree from the number of higher coefficients K (0, 3, 8 or 15)."""
    for degree, count in REST_COEFFS.items():
        if count == k:
            return degree
    raise InvalidGaussiansError(f"shN must hold 0, 3, 8 or 15 coefficients per colour channel, got {k}")


@dataclass(frozen=True, eq=False)
class SplatArrays:
    """The fields of a `Gaussians` as numpy arrays (float32 or float64), in some frame.

    Same names, shapes and meanings as `worldgen.gaussians.Gaussians`:
    activated values, w x y z quaternions.
    """

    means: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] w x y z, unit length
    scales: np.ndarray  # [N, 3] standard deviations along the local axes
    opacities: np.ndarray  # [N] in [0, 1]
    sh0: np.ndarray  # [N, 1, 3]
    shN: np.ndarray  # [N, K, 3], K in {0, 3, 8, 15}

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        shapes = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "sh0": (n, 1, 3)}
        for f, shape in shapes.items():
            if getattr(self, f).shape != shape:
                raise InvalidGaussiansError(f"SplatArrays.{f} has shape {getattr(self, f).shape}, expected {shape}")
        if self.shN.ndim != 3 or self.shN.shape[0] != n or self.shN.shape[2] != 3:
            raise InvalidGaussiansError(f"SplatArrays.shN has shape {self.shN.shape}, expected [N, K, 3]")
        sh_degree_of(self.shN.shape[1])

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.shN.shape[1])

    def replace(self, **fields: np.ndarray) -> SplatArrays:
        return dataclasses.replace(self, **fields)

    def take(self, rows: np.ndarray | slice) -> SplatArrays:
        """The rows named by integer indices, a boolean mask or a slice (a view). rows: [M] or [N] bool"""
        return SplatArrays(**{f: getattr(self, f)[rows] for f in FIELDS})

    def with_sh_degree(self, degree: int) -> SplatArrays:
        """Pad with zeros or truncate the higher SH bands to `degree`."""
        k, have = REST_COEFFS[degree], self.shN.shape[1]
        if k <= have:
            return self if k == have else self.replace(shN=self.shN[:, :k])
        pad = np.zeros((len(self), k - have, 3), dtype=self.shN.dtype)
        return self.replace(shN=np.concatenate([self.shN, pad], axis=1))

    @classmethod
    def from_gaussians(cls, g: Gaussians) -> SplatArrays:
        """The fields of `g` (any device, float32 or float64) as numpy arrays, without a copy where possible."""
        arrays = {}
        for f in FIELDS:
            t = getattr(g, f).detach().cpu()
            arrays[f] = t.numpy() if t.dtype.is_floating_point and t.dtype.itemsize >= 4 else t.float().numpy()
        return cls(**arrays)

    def to_gaussians(self) -> Gaussians:
        """A float32 `Gaussians` on the CPU holding these values (imports torch)."""
        import torch

        from worldgen.gaussians import Gaussians

        return Gaussians(**{f: torch.from_numpy(_owned_float32(getattr(self, f))) for f in FIELDS})


def as_arrays(g: Gaussians | SplatArrays) -> SplatArrays:
    """`g` itself if it is a SplatArrays, else the arrays of a Gaussians."""
    return g if isinstance(g, SplatArrays) else SplatArrays.from_gaussians(g)


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole file; an empty file is a FormatError."""
    data = Path(path).read_bytes()
    if not data:
        raise FormatError(f"{path}: the file is empty")
    return data


def sigmoid64(x: np.ndarray) -> np.ndarray:
    """Logistic function in float64, without overflow warnings."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def logit64(p: np.ndarray) -> np.ndarray:
    """Inverse of the logistic function in float64 (p in [0, 1] -> [-inf, inf])."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(p) - np.log1p(-p)


def f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def make_arrays(
    name: str | os.PathLike,
    *,
    means: np.ndarray,  # [N, 3]
    quats: np.ndarray,  # [N, 4] w x y z, any length but zero
    scales: np.ndarray,  # [N, 3] linear
    opacities: np.ndarray,  # [N] in [0, 1]
    sh0: np.ndarray,  # [N, 1, 3]
    shN: np.ndarray,  # [N, K, 3]
    on_invalid: OnInvalid = "error",
) -> SplatArrays:
    """Check decoded values and build float32 arrays (file frame, quaternions normalised, opacities clamped).

    Rows with NaN/Inf anywhere or a zero quaternion are a FormatError naming the
    file, or are dropped when ``on_invalid="drop"``.
    """
    n = means.shape[0]
    fields = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "sh0": sh0, "shN": shN}
    bad = np.zeros(n, dtype=bool)
    problems: list[str] = []
    with np.errstate(over="ignore", invalid="ignore"):
        for field, values in fields.items():
            if np.isfinite(values.sum()):  # one cheap pass; an overflowing sum of finite values only costs the row check
                continue
            rows = ~np.isfinite(values.reshape(n, -1)).all(axis=1)
            if rows.any():
                problems.append(f"{int(rows.sum())} rows with NaN/Inf {field} (first at row {int(np.argmax(rows))})")
            bad |= rows
        norms = np.sqrt(np.einsum("ij,ij->i", quats, quats))  # in the file's precision: enough to tell unit from not
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
    if off.any():  # normalise only what needs it (in float64), so unit quaternions come back bit-exact
        q = q.astype(np.float64, copy=True)
        q[off] /= np.linalg.norm(q[off], axis=1, keepdims=True)
    fields["quats"] = q
    out = {f: np.asarray(v, dtype=np.float32) for f, v in fields.items()}
    o = out["opacities"]
    if o.size and (o.min() < 0 or o.max() > 1):
        out["opacities"] = np.clip(o, 0.0, 1.0)
    return SplatArrays(**out)


def check_writable(a: SplatArrays) -> SplatArrays:
    """`a` itself if every value can be written: finite, unit quaternions, scales >= 0, opacities in [0, 1].

    The numpy twin of `Gaussians.validate` (same checks, same messages); a
    few whole-array reductions, the row-by-row search only on failure.
    """
    n = len(a)
    if n == 0:
        return a
    with np.errstate(over="ignore", invalid="ignore"):
        finite = all(np.isfinite(getattr(a, f).sum()) for f in FIELDS)  # an overflowing sum only costs the row search
        quat_error = np.abs(np.sqrt(np.einsum("ij,ij->i", a.quats, a.quats)) - 1)
        if finite and quat_error.max() <= QUAT_NORM_TOL and a.scales.min() >= 0 and 0 <= a.opacities.min() and a.opacities.max() <= 1:
            return a
        rows = lambda x: x.reshape(n, -1)  # noqa: E731
        checks = [
            (~np.isfinite(a.means).all(axis=1), "means are NaN or infinite"),
            (~np.isfinite(a.quats).all(axis=1), "quats are NaN or infinite"),
            (~np.isfinite(a.scales).all(axis=1), "scales are NaN or infinite"),
            (~np.isfinite(a.opacities), "opacities are NaN or infinite"),
            (~np.isfinite(rows(a.sh0)).all(axis=1), "SH colours are NaN or infinite"),
            (~np.isfinite(rows(a.shN)).all(axis=1), "SH colours are NaN or infinite"),
            (~(quat_error <= QUAT_NORM_TOL), "quats are not unit length"),
            ((a.scales < 0).any(axis=1), "scales are negative"),
            (~((a.opacities >= 0) & (a.opacities <= 1)), "opacities are outside [0, 1]"),
        ]
    for mask, message in checks:
        if mask.any():
            raise InvalidGaussiansError(f"{int(mask.sum())} of {n} Gaussians invalid: {message} (first at row {int(np.argmax(mask))})")
    return a  # a sum overflowed on finite values: a false alarm


def visibility_score(a: SplatArrays) -> np.ndarray:
    """log(opacity x volume) of each splat; the numpy twin of `worldgen.ops.visibility_score`. [N]"""
    with np.errstate(divide="ignore"):
        return np.log(f64(a.opacities)) + np.log(f64(a.scales)).sum(axis=1)


def most_visible(a: SplatArrays, n: int) -> SplatArrays:
    """The `n` splats of largest opacity x volume, in their original order; twin of `worldgen.ops.most_visible`."""
    if n >= len(a):
        return a
    order = np.argsort(-visibility_score(a), kind="stable")  # ties: the earlier row first
    return a.take(np.sort(order[:n]))


def write_array(f, array: np.ndarray) -> None:
    """Write a C-contiguous array's bytes without copying them."""
    f.write(memoryview(np.ascontiguousarray(array)).cast("B") if array.size else b"")


def _owned_float32(v: np.ndarray) -> np.ndarray:
    """A contiguous, writable float32 array (a copy when `v` is a read-only view of file bytes)."""
    out = np.ascontiguousarray(v, dtype=np.float32)
    return out if out.flags.writeable else out.copy()


__all__ = [
    "C0",
    "REST_COEFFS",
    "OnInvalid",
    "SplatArrays",
    "as_arrays",
    "check_writable",
    "logit64",
    "make_arrays",
    "most_visible",
    "read_bytes",
    "sigmoid64",
    "sh_degree_of",
    "visibility_score",
    "write_array",
]
