"""Cameras: OpenCV pinhole cameras in the world frame (+Z up, meters), and camera paths.

A camera looks along its +z, x right, y down (OpenCV, as gsplat and viser
use). `viewmats` are world-to-camera 4x4 matrices, `Ks` 3x3 intrinsics in
pixels with the principal point in pixel units (pixel centres at +0.5).

Camera paths (`orbit_path`, `walk_path`, `flyover_path`) are built for worlds
as worldgen makes them: ground near z = 0, a footprint of some tens of meters
around the origin, a sky dome far outside it. They estimate the scene's extent
from the Gaussians' means with `scene_bounds`, which ignores the sky dome.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from worldgen.errors import UsageError

#: the world's up axis
UP = (0.0, 0.0, 1.0)

#: how far (meters) from the origin a point may lie and still count as part of the footprint, not the sky
FOOTPRINT_LIMIT = 100.0

#: largest image side we render
MAX_IMAGE_SIDE = 16384

PathKind = Literal["orbit", "walk", "flyover"]


@dataclass(frozen=True, eq=False)
class Cameras:
    """C pinhole cameras sharing one image size."""

    viewmats: Tensor  # [C, 4, 4] world-to-camera
    Ks: Tensor  # [C, 3, 3] intrinsics, pixels
    width: int
    height: int

    def __post_init__(self) -> None:
        check_image_size(self.width, self.height)
        if self.viewmats.ndim != 3 or self.viewmats.shape[1:] != (4, 4):
            raise UsageError(f"viewmats must have shape [C, 4, 4], got {tuple(self.viewmats.shape)}")
        if self.Ks.shape != (self.viewmats.shape[0], 3, 3):
            raise UsageError(f"Ks must have shape [{self.viewmats.shape[0]}, 3, 3], got {tuple(self.Ks.shape)}")
        if not (torch.isfinite(self.viewmats).all() and torch.isfinite(self.Ks).all()):
            raise UsageError("camera matrices hold NaN or infinite values")

    def __len__(self) -> int:
        return self.viewmats.shape[0]

    @property
    def positions(self) -> Tensor:
        """Camera centres in the world frame. [C, 3]"""
        rot = self.viewmats[:, :3, :3]
        return -(rot.transpose(1, 2) @ self.viewmats[:, :3, 3:4])[..., 0]

    def __getitem__(self, index: int | slice) -> Cameras:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Cameras(self.viewmats[index], self.Ks[index], self.width, self.height)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Cameras:
        return Cameras(self.viewmats.to(device, dtype), self.Ks.to(device, dtype), self.width, self.height)

    @classmethod
    def look_at(
        cls,
        positions: Tensor | Sequence[float] | Sequence[Sequence[float]],  # [C, 3] or [3]
        targets: Tensor | Sequence[float] | Sequence[Sequence[float]],  # [C, 3] or [3]
        *,
        fov_deg: float = 60.0,
        width: int = 512,
        height: int = 512,
        up: Sequence[float] = UP,
        dtype: torch.dtype = torch.float32,
    ) -> Cameras:
        """Cameras at `positions` looking at `targets`, vertical field of view `fov_deg` degrees."""
        pos = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 3)
        tgt = torch.as_tensor(targets, dtype=torch.float64).reshape(-1, 3)
        pos, tgt = torch.broadcast_tensors(pos, tgt)
        viewmats = look_at(pos, tgt, up=up).to(dtype)
        K = intrinsics_from_fov(fov_deg, width, height).to(dtype)
        return cls(viewmats, K.expand(len(viewmats), 3, 3).clone(), width, height)


def check_image_size(width: int, height: int) -> None:
    """Raise UsageError unless 1 <= width, height <= MAX_IMAGE_SIDE."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise UsageError(f"image {name} must be an integer, got {value!r}")
        if not 1 <= value <= MAX_IMAGE_SIDE:
            raise UsageError(f"image {name} must be between 1 and {MAX_IMAGE_SIDE} pixels, got {value}")


def look_at(
    positions: Tensor,  # [C, 3]
    targets: Tensor,  # [C, 3]
    *,
    up: Sequence[float] = UP,
) -> Tensor:
    """World-to-camera matrices of OpenCV cameras at `positions` looking at `targets`. [C, 4, 4]

    Image "up" follows `up` (+Z); looking straight along `up` falls back to +Y as the image up.
    """
    positions = torch.as_tensor(positions).reshape(-1, 3)
    targets = torch.as_tensor(targets).to(positions).reshape(-1, 3)
    forward = targets - positions
    dist = forward.norm(dim=-1, keepdim=True)
    if (dist < 1e-9).any():
        raise UsageError("a camera's position and look-at point coincide: no viewing direction")
    forward = forward / dist
    up_t = torch.as_tensor(up, dtype=positions.dtype).expand_as(forward)
    right = torch.linalg.cross(forward, up_t)
    degenerate = right.norm(dim=-1) < 1e-6
    if degenerate.any():
        alt = torch.tensor([0.0, 1.0, 0.0], dtype=positions.dtype).expand_as(forward)
        right = torch.where(degenerate[:, None], torch.linalg.cross(forward, alt), right)
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.linalg.cross(forward, right)
    # a view within 1e-6 of `up` takes the fallback, which can tilt the image's down a hair upwards:
    # turn such a camera half a turn about its axis (right and down flip together, still a rotation)
    flip = degenerate & ((down * up_t).sum(-1) > 0)
    right = torch.where(flip[:, None], -right, right)
    down = torch.where(flip[:, None], -down, down)
    rot_cw = torch.stack([right, down, forward], dim=-1)  # [C, 3, 3] camera-to-world, columns x y z
    viewmats = torch.zeros(positions.shape[0], 4, 4, dtype=positions.dtype)
    viewmats[:, :3, :3] = rot_cw.transpose(1, 2)
    viewmats[:, :3, 3] = -(rot_cw.transpose(1, 2) @ positions[..., None])[..., 0]
    viewmats[:, 3, 3] = 1.0
    return viewmats


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> Tensor:
    """Pinhole intrinsics with vertical field of view `fov_deg`, square pixels, centred principal point. [3, 3]"""
    if not (isinstance(fov_deg, (int, float)) and 0.0 < fov_deg < 180.0):
        raise UsageError(f"field of view must be between 0 and 180 degrees (exclusive), got {fov_deg}")
    check_image_size(width, height)
    focal = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    return torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float64)


# -- scene extent and camera paths ------------------------------------------------------


@dataclass(frozen=True)
class SceneBounds:
    """Where a world's content lies: its footprint (not the sky dome) and its ground height."""

    center: tuple[float, float, float]  # footprint centre, z at the ground
    half_extent: float  # half the footprint's larger side, meters (>= 1)
    ground_z: float  # a low percentile of the footprint's heights
    top_z: float  # a high percentile of the footprint's heights


def scene_bounds(means: Tensor) -> SceneBounds:  # means: [N, 3]
    """Robust extent of the content of a world: the sky dome (beyond FOOTPRINT_LIMIT) and outliers are ignored."""
    if means.shape[0] == 0:
        raise UsageError("the world holds no Gaussians: there is nothing to frame")
    pts = means.detach().to("cpu", torch.float32)
    if pts.shape[0] > 200_000:
        pts = pts[torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(0))[:200_000]]
    pts = pts[torch.isfinite(pts).all(dim=1)]
    if pts.shape[0] == 0:
        raise UsageError("the world's Gaussians all have non-finite positions")
    near = pts[(pts.abs() <= FOOTPRINT_LIMIT).all(dim=1)]
    if near.shape[0] >= max(1, int(0.01 * pts.shape[0])):
        pts = near
    lo = torch.quantile(pts, 0.02, dim=0)
    hi = torch.quantile(pts, 0.98, dim=0)
    ground_z, top_z = float(torch.quantile(pts[:, 2], 0.05)), float(torch.quantile(pts[:, 2], 0.95))
    center = ((lo + hi) / 2).tolist()
    half = max(float((hi - lo)[:2].max()) / 2, 1.0)
    return SceneBounds((center[0], center[1], ground_z), half, ground_z, top_z)


def orbit_path(
    means: Tensor,  # [N, 3]
    n_frames: int,
    *,
    fov_deg: float = 60.0,
    width: int = 512,
    height: int = 512,
    radius_factor: float = 1.3,
    elevation_deg: float = 25.0,
) -> Cameras:
    """A full circle around the footprint, looking at its centre from above (one turn over `n_frames`)."""
    _check_frames(n_frames)
    b = scene_bounds(means)
    radius = radius_factor * b.half_extent
    height_above = radius * math.tan(math.radians(elevation_deg))
    angles = torch.arange(n_frames, dtype=torch.float64) * (2 * math.pi / n_frames) - math.pi / 2
    cx, cy, gz = b.center
    target_z = gz + 0.15 * max(b.top_z - gz, 0.0)
    pos = torch.stack(
        [cx + radius * angles.cos(), cy + radius * angles.sin(), torch.full_like(angles, target_z + height_above)], -1
    )
    tgt = torch.tensor([cx, cy, target_z], dtype=torch.float64).expand_as(pos)
    return Cameras.look_at(pos, tgt, fov_deg=fov_deg, width=width, height=height)


def walk_path(
    means: Tensor,  # [N, 3]
    n_frames: int,
    *,
    fov_deg: float = 70.0,
    width: int = 512,
    height: int = 512,
    eye_height: float = 1.7,
    radius_factor: float = 0.5,
) -> Cameras:
    """A ground-level walk around a loop inside the footprint, eyes `eye_height` above the local ground.

    The local ground at each step is a low percentile of the heights of the
    Gaussians within a few meters (horizontally), smoothed along the path.
    """
    _check_frames(n_frames)
    b = scene_bounds(means)
    radius = radius_factor * b.half_extent
    angles = torch.arange(n_frames, dtype=torch.float64) * (2 * math.pi / n_frames)
    cx, cy, _ = b.center
    xy = torch.stack([cx + radius * angles.cos(), cy + radius * angles.sin()], -1)  # [F, 2]
    ground = _local_ground(means, xy, default=b.ground_z, reach=max(2.0, 0.1 * b.half_extent))
    pos = torch.cat([xy, (ground + eye_height)[:, None]], -1)
    heading = torch.stack([-angles.sin(), angles.cos()], -1)  # counter-clockwise tangent
    tgt = pos + torch.cat([heading * 10.0, torch.full((n_frames, 1), -0.5, dtype=torch.float64)], -1)
    return Cameras.look_at(pos, tgt, fov_deg=fov_deg, width=width, height=height)


def flyover_path(
    means: Tensor,  # [N, 3]
    n_frames: int,
    *,
    fov_deg: float = 60.0,
    width: int = 512,
    height: int = 512,
    altitude_factor: float = 0.6,
    pitch_deg: float = 30.0,
) -> Cameras:
    """A straight flight across the footprint (along +x) at an altitude, looking ahead and down."""
    _check_frames(n_frames)
    b = scene_bounds(means)
    cx, cy, gz = b.center
    altitude = max(b.top_z, gz) + altitude_factor * b.half_extent
    t = torch.linspace(-1.0, 1.0, n_frames, dtype=torch.float64) if n_frames > 1 else torch.zeros(1, dtype=torch.float64)
    x = cx + 1.1 * b.half_extent * t
    pos = torch.stack([x, torch.full_like(x, cy - 0.3 * b.half_extent), torch.full_like(x, altitude)], -1)
    ahead = 10.0
    tgt = pos + torch.tensor([ahead, 0.0, -ahead * math.tan(math.radians(pitch_deg))], dtype=torch.float64)
    return Cameras.look_at(pos, tgt, fov_deg=fov_deg, width=width, height=height)


def camera_path(kind: PathKind, means: Tensor, n_frames: int, **kwargs) -> Cameras:
    """`orbit_path`, `walk_path` or `flyover_path` by name."""
    paths = {"orbit": orbit_path, "walk": walk_path, "flyover": flyover_path}
    if kind not in paths:
        raise UsageError(f"unknown camera path {kind!r}; choose one of {', '.join(paths)}")
    return paths[kind](means, n_frames, **kwargs)


def _check_frames(n_frames: int) -> None:
    if not isinstance(n_frames, int) or not 1 <= n_frames <= 100_000:
        raise UsageError(f"the number of frames must be between 1 and 100000, got {n_frames}")


def _local_ground(
    means: Tensor,  # [N, 3]
    xy: Tensor,  # [F, 2] float64
    *,
    default: float,
    reach: float,
) -> Tensor:
    """Ground height under each xy: 10th percentile of the z of means within `reach` meters. [F] float64"""
    pts = means.detach().to("cpu", torch.float64)
    pts = pts[(pts.abs() <= FOOTPRINT_LIMIT).all(dim=1)]
    if pts.shape[0] > 50_000:
        pts = pts[torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(0))[:50_000]]
    ground = torch.full((xy.shape[0],), default, dtype=torch.float64)
    for i in range(xy.shape[0]):  # F is a frame count: small
        near = pts[((pts[:, :2] - xy[i]).norm(dim=1) < reach), 2]
        if near.numel() >= 3:
            ground[i] = torch.quantile(near, 0.1)
    if xy.shape[0] >= 3:  # circular moving average over 5 frames: no jumps in the walk
        k = min(5, xy.shape[0])
        ground = torch.stack([ground.roll(s) for s in range(-(k // 2), k // 2 + 1)]).mean(0)
    return ground


def overview_camera(
    means: Tensor,  # [N, 3]
    *,
    position: Sequence[float] | None = None,  # [3]; default: the first pose of the orbit path
    target: Sequence[float] | None = None,  # [3]; default: a little above the ground at the centre
    fov_deg: float = 60.0,
    width: int = 960,
    height: int = 540,
) -> Cameras:
    """One camera that frames a world: the default view of `worldgen render` and previews."""
    if position is None:
        position = orbit_path(means, 1, fov_deg=fov_deg, width=width, height=height).positions[0].tolist()
    if target is None:
        b = scene_bounds(means)
        target = (b.center[0], b.center[1], b.ground_z + 0.15 * max(b.top_z - b.ground_z, 0.0))
    return Cameras.look_at(position, target, fov_deg=fov_deg, width=width, height=height)


__all__ = [
    "Cameras",
    "overview_camera",
    "SceneBounds",
    "camera_path",
    "check_image_size",
    "flyover_path",
    "intrinsics_from_fov",
    "look_at",
    "orbit_path",
    "scene_bounds",
    "walk_path",
]
