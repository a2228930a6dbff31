"""A keyframe path through a world, and its fly-through video (rendered with `worldgen.render`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from viewer.state import Viewpoint
from worldgen.errors import UsageError


def interpolate(keyframes: Sequence[Viewpoint], n_frames: int) -> list[Viewpoint]:
    """`n_frames` viewpoints along a Catmull-Rom curve through the keyframes (positions and look-at
    points), with the field of view interpolated linearly. The path passes through every keyframe."""
    if len(keyframes) < 2:
        raise UsageError("a fly-through needs at least 2 keyframes")
    if n_frames < 2:
        raise UsageError(f"a fly-through needs at least 2 frames, got {n_frames}")
    pos = np.array([k.position for k in keyframes], dtype=np.float64)  # [K, 3]
    tgt = np.array([k.look_at for k in keyframes], dtype=np.float64)  # [K, 3]
    fov = np.array([k.fov_degrees for k in keyframes], dtype=np.float64)  # [K]
    u = np.linspace(0.0, len(keyframes) - 1, n_frames)
    return [
        Viewpoint(tuple(_catmull_rom(pos, t)), tuple(_catmull_rom(tgt, t)), float(np.interp(t, np.arange(len(fov)), fov)))
        for t in u
    ]


def _catmull_rom(points: np.ndarray, t: float) -> np.ndarray:  # points: [K, 3] -> [3]
    """Uniform Catmull-Rom through `points` at parameter t in [0, K-1] (end points repeated)."""
    k = len(points)
    i = min(int(np.floor(t)), k - 2)
    s = t - i
    p0, p1, p2, p3 = (points[max(i - 1, 0)], points[i], points[i + 1], points[min(i + 2, k - 1)])
    return 0.5 * (
        2 * p1 + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s * s + (-p0 + 3 * p1 - 3 * p2 + p3) * s * s * s
    )


def render_flythrough(gaussians, keyframes: Sequence[Viewpoint], path: Path, *, seconds: float = 4.0, fps: int = 24,
                      width: int = 640, height: int = 360) -> Path:
    """Render the keyframe path to an .mp4 at `path` (written atomically by the renderer's video writer)."""
    if not 0.5 <= seconds <= 120:
        raise UsageError(f"video length must be between 0.5 and 120 seconds, got {seconds}")
    views = interpolate(keyframes, max(2, round(seconds * fps)))
    try:
        import torch

        from worldgen.render import Cameras, intrinsics_from_fov, render
        from worldgen.render.video import write_video
    except ImportError as e:
        raise UsageError(f"the renderer is not available: {e}") from e
    cameras = Cameras.look_at([v.position for v in views], [v.look_at for v in views], width=width, height=height)
    Ks = torch.stack([intrinsics_from_fov(v.fov_degrees, width, height) for v in views]).to(cameras.Ks)
    cameras = Cameras(cameras.viewmats, Ks, width, height)
    frames = (render(gaussians, cameras[i]).colors[0] for i in range(len(cameras)))
    write_video(path, frames, fps=fps)
    return path
