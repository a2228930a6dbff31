"""Frame conventions of the file formats: which axes a file's frame has.

worldgen's world frame is right-handed, +Z up, meters (CONVENTIONS.md). The
files each format's main viewers open upright use another frame:

| ``up`` | file frame | formats that use it by default | why |
| --- | --- | --- | --- |
| ``"-y"`` | OpenCV / COLMAP: x right, y down, z forward | .ply, .splat, .sog | 3DGS-trained scenes come from COLMAP; SuperSplat, PlayCanvas and antimatter15-style viewers show them upright |
| ``"y"`` | RUB: x right, y up, z back | .spz | the SPZ spec stores RUB; Spark and Niantic's loaders convert from it |
| ``"gltf"`` | glTF: y up, z forward, x left (-x right) | .glb | the glTF coordinate system; what splat-transform writes |
| ``"z"`` | worldgen's own frame | | bit-exact values |

Each mapping is a proper rotation, so handedness is kept: the world's x stays
x for ``"-y"`` and ``"y"`` (a turn about x) and becomes -x for ``"gltf"``
(``"-y"`` turned 180 degrees about the up axis); the world's forward (+y)
becomes the file's +z for ``"-y"`` and ``"gltf"`` and -z for ``"y"``.

`rotate` works on numpy `SplatArrays` (three matrix products, SH bands
included); `Gaussians.transform` is its slow twin
(tests/test_formats_frames.py compares them).
"""

from __future__ import annotations

import functools
import os
from typing import Literal, get_args

import numpy as np

from exporters.common import REST_COEFFS, SplatArrays
from worldgen.errors import FormatError, UsageError

#: the frame of a file, named by its up axis ("gltf": +y up, +z forward)
Up = Literal["z", "y", "-y", "gltf"]
UP_CHOICES: tuple[str, ...] = get_args(Up)

# file_from_world rotation for each `up`: p_file = R @ p_world.
_FILE_FROM_WORLD = {
    "z": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "-y": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),  # Rx(+90deg): world +z -> file -y
    "y": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),  # Rx(-90deg): world +z -> file +y
    "gltf": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),  # Rz(180deg) Rx(+90deg): +z -> +y, +y -> +z
}

_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)  # fmt: skip


def check_up(up: str) -> Up:
    """`up` itself if it names a known frame, else a UsageError."""
    if up not in _FILE_FROM_WORLD:
        raise UsageError(f"unknown up axis {up!r}: choose one of {', '.join(UP_CHOICES)}")
    return up  # type: ignore[return-value]


def file_from_world(up: Up) -> np.ndarray:
    """Rotation taking world (+Z up) coordinates to the file frame named by `up`. [3, 3]"""
    return np.array(_FILE_FROM_WORLD[check_up(up)], dtype=np.float64)


def _sh_basis(dirs: np.ndarray, degree: int) -> np.ndarray:
    """The higher real SH basis functions (as `worldgen.sh.sh_basis`, without the constant). [M, 3] -> [M, K]"""
    x, y, z = dirs.T
    out = []
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [_C2[0] * x * y, _C2[1] * y * z, _C2[2] * (2 * zz - xx - yy), _C2[3] * x * z, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    return np.stack(out, axis=1)


def _sphere_points(m: int) -> np.ndarray:
    """m directions spread over the unit sphere (a Fibonacci lattice: no random generator to import). [m, 3]"""
    i = np.arange(m) + 0.5
    z = 1 - 2 * i / m
    phi = i * np.pi * (3 - np.sqrt(5))
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def sh_rotation(rotation: np.ndarray, degree: int) -> np.ndarray:
    """The block-diagonal matrix D rotating shN coefficients with the world: sh_out = D @ sh_in. [K, K]

    Each band's block is the exact least-squares fit of Y(R^T d) on Y(d) over
    sample directions (a band is closed under rotation: zero residual).
    rotation: [3, 3]
    """
    k = REST_COEFFS[degree]
    d = np.zeros((k, k))
    if k == 0:
        return d
    dirs = _sphere_points(64)
    before, after = _sh_basis(dirs, degree), _sh_basis(dirs @ rotation, degree)
    start = 0
    for band in range(1, degree + 1):
        stop = start + 2 * band + 1
        d[start:stop, start:stop] = np.linalg.lstsq(before[:, start:stop], after[:, start:stop], rcond=None)[0]
        start = stop
    return d


def rotmat_to_quat(r: np.ndarray) -> np.ndarray:
    """The unit quaternion (w, x, y, z), w >= 0, of a proper rotation matrix. [3, 3] -> [4]"""
    cands = np.array(
        [
            [1 + r[0, 0] + r[1, 1] + r[2, 2], r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]],
            [r[2, 1] - r[1, 2], 1 + r[0, 0] - r[1, 1] - r[2, 2], r[0, 1] + r[1, 0], r[0, 2] + r[2, 0]],
            [r[0, 2] - r[2, 0], r[0, 1] + r[1, 0], 1 - r[0, 0] + r[1, 1] - r[2, 2], r[1, 2] + r[2, 1]],
            [r[1, 0] - r[0, 1], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1], 1 - r[0, 0] - r[1, 1] + r[2, 2]],
        ]
    )  # row i is 4 q_i times q: the best conditioned row is the one of the largest component
    q = cands[np.argmax(np.linalg.norm(cands, axis=1))]
    q = q / np.linalg.norm(q)
    return -q if q[0] < 0 else q


def quat_left_matrix(q: np.ndarray) -> np.ndarray:
    """L with L @ p == q * p (Hamilton product, w x y z). [4] -> [4, 4]"""
    w, x, y, z = q
    return np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])


@functools.lru_cache(maxsize=64)
def _matrices(rotation: tuple, degree: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.array(rotation)
    return r, quat_left_matrix(rotmat_to_quat(r)), sh_rotation(r, degree)


def rotate(a: SplatArrays, rotation: np.ndarray) -> SplatArrays:
    """The splats turned by a proper rotation: positions, quaternions and SH bands (three GEMMs).

    Computed in the arrays' own dtype; `Gaussians.transform` is the slow twin.
    The SH bands are turned channel by channel, [3N, K] @ [K, K], and come
    back as a coefficient-major view of channel-major memory (as .ply stores them).
    rotation: [3, 3]
    """
    r, left, d = _matrices(tuple(map(tuple, np.asarray(rotation, dtype=np.float64))), a.sh_degree)
    dt = a.means.dtype
    n, k = len(a), a.shN.shape[1]
    shn = a.shN
    if k:
        channels = np.ascontiguousarray(a.shN.transpose(0, 2, 1)).reshape(3 * n, k)  # free when shN is already such a view
        shn = (channels @ d.T.astype(dt)).reshape(n, 3, k).transpose(0, 2, 1)
    return a.replace(means=a.means @ r.T.astype(dt), quats=a.quats @ left.T.astype(dt), shN=shn)


def to_file_frame(a: SplatArrays, up: Up) -> SplatArrays:
    """Splats in the world frame -> the same splats in the file frame named by `up`."""
    return a if check_up(up) == "z" else rotate(a, file_from_world(up))


def from_file_frame(a: SplatArrays, up: Up) -> SplatArrays:
    """Splats read from a file whose frame is `up` -> the world frame (+Z up)."""
    return a if check_up(up) == "z" else rotate(a, file_from_world(up).T)


def to_world(a: SplatArrays, up: Up, name: str | os.PathLike) -> SplatArrays:
    """Rotate decoded splats into the world frame; overflow to infinity is a FormatError."""
    out = from_file_frame(a, up)
    if out is not a and len(out):
        with np.errstate(over="ignore", invalid="ignore"):
            if not all(np.isfinite(np.sum(t, dtype=np.float64)) for t in (out.means, out.quats, out.shN)):
                if not all(np.isfinite(t).all() for t in (out.means, out.quats, out.shN)):
                    raise FormatError(f"{name}: values too large to rotate into the world frame (overflow to infinity)")
    return out


__all__ = [
    "UP_CHOICES",
    "Up",
    "check_up",
    "file_from_world",
    "from_file_frame",
    "rotate",
    "rotmat_to_quat",
    "sh_rotation",
    "to_file_frame",
    "to_world",
]
