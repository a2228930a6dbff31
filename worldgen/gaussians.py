"""`Gaussians`: the one container every stage of worldgen takes and returns.

Fields are named as gsplat names them and hold activated, physical values
(meters, opacities in [0, 1]); see ``docs/conventions.md``. All fields share one
device and one floating dtype.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from worldgen.errors import InvalidGaussiansError
from worldgen.sh import C0, REST_COEFFS, degree_from_rest, rotate_sh, rgb_to_sh0, sh0_to_rgb

FIELDS = ("means", "quats", "scales", "opacities", "sh0", "shN")

#: how far from 1 a quaternion's norm may be and still count as unit length
QUAT_NORM_TOL = 1e-3


@dataclass(frozen=True, eq=False)
class Gaussians:
    """An unordered set of N 3D Gaussians in the world frame (+Z up, meters)."""

    means: Tensor  # [N, 3] centres
    quats: Tensor  # [N, 4] rotations, w x y z, unit length
    scales: Tensor  # [N, 3] standard deviations along the local axes
    opacities: Tensor  # [N] in [0, 1]
    sh0: Tensor  # [N, 1, 3] degree-0 SH colour; rgb = 0.5 + C0 * sh0
    shN: Tensor  # [N, K, 3] higher SH bands, K in {0, 3, 8, 15}

    def __post_init__(self) -> None:
        self._check_shapes()

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_rgb(
        cls,
        means: Tensor,  # [N, 3]
        rgb: Tensor,  # [N, 3] in [0, 1]
        scales: Tensor,  # [N, 3]
        opacities: Tensor,  # [N]
        quats: Tensor | None = None,  # [N, 4]; identity when None
        *,
        sh_degree: int = 0,
    ) -> Gaussians:
        """Gaussians with view-independent colour `rgb` (higher SH bands zero)."""
        n = means.shape[0]
        if quats is None:
            quats = means.new_zeros(n, 4)
            quats[:, 0] = 1.0
        return cls(
            means=means,
            quats=quats,
            scales=scales,
            opacities=opacities,
            sh0=rgb_to_sh0(rgb).reshape(n, 1, 3),
            shN=means.new_zeros(n, REST_COEFFS[sh_degree], 3),
        )

    @classmethod
    def empty(cls, *, sh_degree: int = 0, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Gaussians:
        """A set of no Gaussians."""
        z = lambda *shape: torch.zeros(*shape, dtype=dtype, device=device)  # noqa: E731
        return cls(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, 1, 3), z(0, REST_COEFFS[sh_degree], 3))

    @classmethod
    def cat(cls, parts: Sequence[Gaussians]) -> Gaussians:
        """Union of several sets; higher SH bands are zero-padded to the largest degree."""
        if not parts:
            raise InvalidGaussiansError("cannot concatenate an empty list of Gaussians")
        k = max(p.shN.shape[1] for p in parts)
        parts = [p.with_sh_degree(degree_from_rest(k)) for p in parts]
        return cls(**{f: torch.cat([getattr(p, f) for p in parts]) for f in FIELDS})

    def replace(self, **fields: Tensor) -> Gaussians:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **fields)

    # -- basic properties -----------------------------------------------------------

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num(self) -> int:
        return len(self)

    @property
    def sh_degree(self) -> int:
        return degree_from_rest(self.shN.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def rgb(self) -> Tensor:
        """View-independent base colour in [0, 1], from sh0. [N, 3]"""
        return sh0_to_rgb(self.sh0[:, 0]).clamp(0.0, 1.0)

    @property
    def colors(self) -> Tensor:
        """All SH coefficients, sh0 then shN, as gsplat's `colors` argument takes them. [N, K+1, 3]"""
        return torch.cat([self.sh0, self.shN], dim=1)

    def rotation_matrices(self) -> Tensor:
        """Rotation matrices of the (normalised) quaternions. [N, 3, 3]"""
        return quat_to_rotmat(self.quats)

    def covariances(self) -> Tensor:
        """World-frame covariances R S S^T R^T. [N, 3, 3]"""
        return covariance(self.quats, self.scales)

    def bounds(self) -> tuple[Tensor, Tensor]:
        """Axis-aligned bounds of the means: (min [3], max [3])."""
        if len(self) == 0:
            raise InvalidGaussiansError("an empty set of Gaussians has no bounds")
        return self.means.amin(0), self.means.amax(0)

    # -- device, dtype, indexing ----------------------------------------------------

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Gaussians:
        return Gaussians(**{f: getattr(self, f).to(device=device, dtype=dtype) for f in FIELDS})

    def detach(self) -> Gaussians:
        return Gaussians(**{f: getattr(self, f).detach() for f in FIELDS})

    def __getitem__(self, index: Tensor | slice | Sequence[int] | int) -> Gaussians:
        """Select rows by boolean mask, integer indices or a slice (an int keeps a set of one)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        if isinstance(index, Tensor) and index.dtype == torch.bool and index.shape != (len(self),):
            raise InvalidGaussiansError(f"boolean mask of shape {tuple(index.shape)} for {len(self)} Gaussians")
        return Gaussians(**{f: getattr(self, f)[index] for f in FIELDS})

    def with_sh_degree(self, degree: int) -> Gaussians:
        """Pad with zeros or truncate the higher SH bands to `degree`."""
        k, have = REST_COEFFS[degree], self.shN.shape[1]
        if k == have:
            return self
        if k < have:
            return self.replace(shN=self.shN[:, :k])
        pad = self.shN.new_zeros(len(self), k - have, 3)
        return self.replace(shN=torch.cat([self.shN, pad], dim=1))

    # -- geometry ---------------------------------------------------------------------

    def transform(self, rotation: Tensor, translation: Tensor | None = None) -> Gaussians:
        """Apply the rigid motion x -> R x + t to the whole set (SH bands rotate too).

        rotation: [3, 3] proper rotation; translation: [3]
        """
        rotation = rotation.to(self.means)
        if rotation.shape != (3, 3):
            raise InvalidGaussiansError(f"rotation must be 3x3, got {tuple(rotation.shape)}")
        eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
        if not torch.allclose(rotation @ rotation.T, eye, atol=1e-5) or torch.linalg.det(rotation) < 0:
            raise InvalidGaussiansError("transform needs a proper rotation matrix (orthonormal, det +1)")
        means = self.means @ rotation.T
        if translation is not None:
            means = means + translation.to(self.means)
        quats = quat_multiply(rotmat_to_quat(rotation).expand_as(self.quats), self.quats)
        return self.replace(means=means, quats=quats, shN=rotate_sh(self.shN, rotation))

    def scaled(self, factor: float) -> Gaussians:
        """Uniform scaling about the origin: positions and extents both grow by `factor`."""
        if not (factor > 0 and math.isfinite(factor)):
            raise InvalidGaussiansError(f"scale factor must be positive and finite, got {factor}")
        return self.replace(means=self.means * factor, scales=self.scales * factor)

    # -- validation -------------------------------------------------------------------

    def _check_shapes(self) -> None:
        for f in FIELDS:
            if not isinstance(getattr(self, f), Tensor):
                raise InvalidGaussiansError(f"Gaussians.{f} must be a torch.Tensor, got {type(getattr(self, f)).__name__}")
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expected = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "sh0": (n, 1, 3)}
        for f, shape in expected.items():
            if tuple(getattr(self, f).shape) != shape:
                raise InvalidGaussiansError(f"Gaussians.{f} must have shape {_fmt(shape)}, got {tuple(getattr(self, f).shape)}")
        shn = self.shN
        if shn.ndim != 3 or shn.shape[0] != n or shn.shape[2] != 3 or shn.shape[1] not in REST_COEFFS.values():
            raise InvalidGaussiansError(f"Gaussians.shN must have shape [N, K, 3] with K in 0, 3, 8, 15, got {tuple(shn.shape)}")
        dtype, device = self.means.dtype, self.means.device
        if not dtype.is_floating_point:
            raise InvalidGaussiansError(f"Gaussians fields must be floating point, got {dtype}")
        for f in FIELDS:
            t = getattr(self, f)
            if t.dtype != dtype or t.device != device:
                raise InvalidGaussiansError(
                    f"Gaussians.{f} is {t.dtype} on {t.device}, but means is {dtype} on {device}: all fields must agree"
                )

    def invalid_rows(self) -> Tensor:
        """Rows with a NaN/Inf anywhere, a zero quaternion, a negative scale or an opacity outside [0, 1]. [N] bool"""
        n = len(self)
        bad = torch.zeros(n, dtype=torch.bool, device=self.device)
        for f in FIELDS:
            bad |= ~torch.isfinite(_rows(getattr(self, f))).all(dim=1)
        bad |= self.quats.norm(dim=1) < 1e-8
        bad |= (self.scales < 0).any(dim=1)
        bad |= (self.opacities < 0) | (self.opacities > 1)
        return bad

    def validate(self) -> Gaussians:
        """Check values: finite, unit quaternions, non-negative scales, opacities in [0, 1].

        Returns self, so that ``g = Gaussians(...).validate()`` reads well.
        """
        quat_error = (self.quats.norm(dim=1) - 1).abs()
        ok = (
            all(bool(torch.isfinite(getattr(self, f)).all()) for f in FIELDS)
            and bool((quat_error <= QUAT_NORM_TOL).all())
            and bool((self.scales >= 0).all())
            and bool(((self.opacities >= 0) & (self.opacities <= 1)).all())
        )
        if ok:  # the common case, in a few whole-tensor reductions
            return self
        checks = [
            (~torch.isfinite(self.means).all(dim=1), "means are NaN or infinite"),
            (~torch.isfinite(self.quats).all(dim=1), "quats are NaN or infinite"),
            (~torch.isfinite(self.scales).all(dim=1), "scales are NaN or infinite"),
            (~torch.isfinite(self.opacities), "opacities are NaN or infinite"),
            (~torch.isfinite(self.sh0[:, 0]).all(dim=1), "SH colours are NaN or infinite"),
            (~torch.isfinite(_rows(self.shN)).all(dim=1), "SH colours are NaN or infinite"),
            (~(quat_error <= QUAT_NORM_TOL), "quats are not unit length"),
            ((self.scales < 0).any(dim=1), "scales are negative"),
            (~((self.opacities >= 0) & (self.opacities <= 1)), "opacities are outside [0, 1]"),
        ]
        for mask, message in checks:
            count = int(mask.sum())
            if count:
                first = int(mask.nonzero()[0, 0])
                raise InvalidGaussiansError(f"{count} of {len(self)} Gaussians invalid: {message} (first at row {first})")
        raise AssertionError("unreachable: a failed check must name its rows")  # pragma: no cover

    def sanitize(self) -> tuple[Gaussians, int]:
        """Drop NaN/Inf/zero-quaternion rows, clamp opacities to [0, 1], normalise quaternions.

        Returns the clean set and how many rows were dropped.
        """
        bad = self.invalid_rows() & ~self._only_opacity_out_of_range()
        clean = self[~bad]
        clean = clean.replace(
            quats=torch.nn.functional.normalize(clean.quats, dim=1),
            opacities=clean.opacities.clamp(0.0, 1.0),
            scales=clean.scales.abs(),
        )
        return clean, int(bad.sum())

    def _only_opacity_out_of_range(self) -> Tensor:
        # Rows whose only fault is a finite opacity outside [0, 1] or a finite negative scale: fixable by clamping.
        finite = torch.ones(len(self), dtype=torch.bool, device=self.device)
        for f in FIELDS:
            finite &= torch.isfinite(_rows(getattr(self, f))).all(dim=1)
        return finite & (self.quats.norm(dim=1) >= 1e-8)

    def __repr__(self) -> str:
        return f"Gaussians(num={len(self)}, sh_degree={self.sh_degree}, dtype={self.dtype}, device={self.device})"


# -- quaternion helpers (w, x, y, z) ------------------------------------------------


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices of quaternions (normalised first). [..., 4] -> [..., 3, 3]"""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)  # fmt: skip


def covariance(quats: Tensor, scales: Tensor) -> Tensor:
    """Covariances R S S^T R^T of quaternions and per-axis scales. [..., 4], [..., 3] -> [..., 3, 3]"""
    m = quat_to_rotmat(quats) * scales[..., None, :]  # R @ diag(s)
    return m @ m.transpose(-1, -2)


def shortest_axis(quats: Tensor, scales: Tensor) -> Tensor:
    """Unit axis of the smallest scale (a flat splat's normal). [..., 4], [..., 3] -> [..., 3]"""
    rot = quat_to_rotmat(quats)  # columns are the local axes
    short = scales.argmin(-1)[..., None, None].expand(*rot.shape[:-1], 1)
    return torch.gather(rot, -1, short)[..., 0]


def rotmat_to_quat(rotation: Tensor) -> Tensor:
    """Unit quaternions (w >= 0) of proper rotation matrices, batched, numerically stable. [..., 3, 3] -> [..., 4]"""
    m = rotation.to(torch.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cands = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # [..., 4, 4]: row i is 4 q_i times q, the best conditioned where q_i is the largest component
    best = cands.norm(dim=-1).argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return (q * torch.where(q[..., :1] < 0, -1.0, 1.0)).to(rotation.dtype)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b (rotation b, then a). [..., 4], [..., 4] -> [..., 4]"""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def _rows(t: Tensor) -> Tensor:
    """One row per Gaussian, also for an empty set (where reshape(0, -1) is ambiguous). [N, ...] -> [N, M]"""
    return t.reshape(t.shape[0], math.prod(t.shape[1:]))


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("N" if s == -1 else str(s) for s in shape) + "]"


__all__ = ["C0", "FIELDS", "Gaussians", "quat_multiply", "quat_to_rotmat", "rotmat_to_quat"]
