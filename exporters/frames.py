"""Frame conventions of the file formats: which axis is "up" in a file.

worldgen's world frame is right-handed, +Z up, meters (CONVENTIONS.md). The
files each format's main viewers open upright use another frame:

| format | default ``up`` | file frame | why |
| --- | --- | --- | --- |
| .ply  | ``"-y"`` | OpenCV / COLMAP: x right, y down, z forward | 3DGS-trained scenes come from COLMAP; SuperSplat and antimatter15-style viewers show them upright |
| .splat | ``"-y"`` | same as .ply | antimatter15's viewer (camera up = -y) and every .splat converted from a 3DGS .ply |
| .spz  | ``"y"``  | RUB: x right, y up, z back | the SPZ spec stores RUB; Spark and Niantic's loaders convert from it |

``up="z"`` writes the world frame unchanged (bit-exact values). Each mapping
is a proper rotation about the x axis (x stays x), so handedness is kept and a
world's forward (+y) becomes the file's forward (+z for ``"-y"``, -z for ``"y"``).
The rotation is applied with `Gaussians.transform`, which rotates the SH bands too.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians, quat_multiply, rotmat_to_quat
from worldgen.sh import rotate_sh

#: the axis of a file's frame that points up in the world
Up = Literal["z", "y", "-y"]
UP_CHOICES: tuple[str, ...] = get_args(Up)

# file_from_world rotation for each `up`: p_file = R @ p_world.
_FILE_FROM_WORLD = {
    "z": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "-y": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),  # Rx(+90deg): world +z -> file -y
    "y": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),  # Rx(-90deg): world +z -> file +y
}


def check_up(up: str) -> Up:
    """`up` itself if it names a known frame, else a UsageError."""
    if up not in _FILE_FROM_WORLD:
        raise UsageError(f"unknown up axis {up!r}: choose one of {', '.join(UP_CHOICES)}")
    return up  # type: ignore[return-value]


def file_from_world(up: Up, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """Rotation taking world (+Z up) coordinates to a file whose up axis is `up`. [3, 3]"""
    return torch.tensor(_FILE_FROM_WORLD[check_up(up)], dtype=dtype)


def rotate(g: Gaussians, rotation: Tensor) -> Gaussians:
    """Fast path of `Gaussians.transform(rotation)` for whole files: three GEMMs.

    Positions by R, quaternions by the 4x4 left-multiplication matrix of R's
    quaternion, SH bands by the Kronecker product of the band-rotation matrix
    with the 3x3 identity (one [N, 3K] x [3K, 3K] product). `g.transform` is
    its slow twin (tests/test_formats_frames.py compares them).
    rotation: [3, 3] proper rotation
    """
    r = rotation.to(torch.float64)
    q_r = rotmat_to_quat(r)  # [4]
    left = quat_multiply(q_r.expand(4, 4), torch.eye(4, dtype=torch.float64)).T  # q_r * q == left @ q
    n, k = len(g), g.shN.shape[1]
    shn = g.shN
    if k:
        band = rotate_sh(torch.eye(k, dtype=torch.float64)[:, :, None], r)[:, :, 0].T.contiguous()  # [K, K]: out = band @ in
        kron = torch.kron(band, torch.eye(3, dtype=torch.float64)).to(g.dtype)  # [3K, 3K]
        shn = (g.shN.reshape(n, 3 * k) @ kron.T).reshape(n, k, 3)  # reshape: shN may be a strided view
    return g.replace(means=g.means @ r.T.to(g.dtype), quats=g.quats @ left.T.to(g.dtype), shN=shn)


def to_file_frame(g: Gaussians, up: Up) -> Gaussians:
    """Gaussians in the world frame -> the same Gaussians in the file frame named by `up`."""
    if check_up(up) == "z":
        return g
    return rotate(g, file_from_world(up))


def from_file_frame(g: Gaussians, up: Up) -> Gaussians:
    """Gaussians read from a file whose up axis is `up` -> the world frame (+Z up)."""
    if check_up(up) == "z":
        return g
    return rotate(g, file_from_world(up).T)


__all__ = ["UP_CHOICES", "Up", "check_up", "file_from_world", "from_file_frame", "rotate", "to_file_frame"]
