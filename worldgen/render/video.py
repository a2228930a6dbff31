"""Writing rendered frames: PNG/JPEG images, GIF and MP4 videos, always atomically.

MP4 is H.264 (yuv420p) written by imageio with the ffmpeg binary that
imageio-ffmpeg ships, so no system ffmpeg is needed. Frames are uint8
[H, W, 3] tensors or arrays; odd sizes are padded by one edge row/column for
MP4 (yuv420p needs even sizes).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldgen.errors import FormatError
from worldgen.io import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".gif")


def to_uint8(frame: Tensor | np.ndarray) -> np.ndarray:
    """A frame as a contiguous uint8 [H, W, 3] array; float input is clamped from [0, 1]."""
    if isinstance(frame, Tensor):
        frame = frame.detach().cpu()
        if frame.dtype != torch.uint8:
            frame = (frame.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        frame = frame.numpy()
    elif frame.dtype != np.uint8:
        frame = (np.clip(frame.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise FormatError(f"a frame must have shape [H, W, 3], got {frame.shape}")
    return np.ascontiguousarray(frame[..., :3])


def write_image(path: str | os.PathLike, frame: Tensor | np.ndarray) -> None:
    """Write one frame as .png / .jpg."""
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise FormatError(f"cannot write an image as {path.suffix or 'a file without suffix'}: use .png or .jpg")
    image = Image.fromarray(to_uint8(frame))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG" if path.suffix.lower() == ".png" else "JPEG")


def write_video(
    path: str | os.PathLike,
    frames: Iterable[Tensor | np.ndarray],
    *,
    fps: float = 30.0,
) -> int:
    """Write frames as .mp4 or .gif as they come; returns the number of frames written."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise FormatError(f"cannot write a video as {path.suffix or 'a file without suffix'}: use .mp4 or .gif")
    if not fps > 0:
        raise FormatError(f"frames per second must be positive, got {fps}")
    import imageio.v2 as imageio

    count = 0
    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            kwargs = dict(fps=fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p")
            writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", **kwargs)
        else:
            writer = imageio.get_writer(tmp, format="GIF", mode="I", duration=1000.0 / fps, loop=0)
        try:
            for frame in frames:
                array = to_uint8(frame)
                if suffix == ".mp4":
                    array = _pad_even(array)
                writer.append_data(array)
                count += 1
        finally:
            writer.close()
        if count == 0:
            raise FormatError("no frames to write")
    return count


def _pad_even(frame: np.ndarray) -> np.ndarray:  # [H, W, 3] -> [H', W', 3], H' and W' even
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "to_uint8", "write_image", "write_video"]
