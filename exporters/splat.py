"""The antimatter15 .splat format: 32 bytes per splat, no header.

Each record, little endian::

    position f32 x3 | scale f32 x3 (linear) | r g b a u8 | rotation u8 x4 (w x y z)

with ``rgb = clip((0.5 + C0 * sh0) * 255)``, ``a = clip(opacity * 255)``
(both truncated to integers, as the reference converter and
``gsplat.export_splats`` do) and ``rotation = clip(q / |q| * 128 + 128)``.
The reader decodes ``c / 255`` and ``(r - 128) / 128`` as the viewers do, so a
round trip changes colours and opacities by less than 1/255 and each
quaternion component by at most 1/128 (before renormalising).

There are no higher SH bands: saving Gaussians with SH degree > 0 drops them
(with a `LossyExportWarning`). Splats are written in the reference
converter's order: descending ``opacity * scale_x * scale_y * scale_z``
(a stable sort, so the file is deterministic).

Frame: by default ``up="-y"`` (x right, y down, z forward), the frame of the
3DGS scenes antimatter15's viewer was made for; ``up="z"`` keeps worldgen's frame.
Negative scales in a file are read as their absolute value (viewers square them).
"""

from __future__ import annotations

import os
import struct
import warnings
from typing import TYPE_CHECKING

import numpy as np

from exporters.common import (
    C0,
    OnInvalid,
    SplatArrays,
    as_arrays,
    check_writable,
    f64,
    make_arrays,
    read_bytes,
    visibility_score,
    write_array,
)
from exporters.frames import Up, to_file_frame, to_world
from worldgen.errors import FormatError
from worldgen.io import atomic_open

if TYPE_CHECKING:
    from worldgen.gaussians import Gaussians

DEFAULT_UP: Up = "-y"
MAX_SH_DEGREE = 0
RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert RECORD.itemsize == 32


class LossyExportWarning(UserWarning):
    """A format cannot hold everything a `Gaussians` holds (e.g. SH bands in .splat)."""


def visibility_order(a: SplatArrays) -> np.ndarray:
    """Indices sorting `a` by descending opacity x volume, as the reference .splat converter does. [N]"""
    return np.argsort(-visibility_score(a), kind="stable")


def _records(a: SplatArrays) -> np.ndarray:
    """The .splat records of `a`, sorted. [N] of RECORD"""
    rec = np.empty(len(a), dtype=RECORD)  # filled in the splats' order, then sorted as whole 32-byte records
    rec["position"] = a.means
    rec["scale"] = a.scales
    rgba = np.empty((len(a), 4))
    rgba[:, :3] = 0.5 + C0 * f64(a.sh0[:, 0])
    rgba[:, 3] = a.opacities
    rgba *= 255
    q = f64(a.quats)
    q = q / np.linalg.norm(q, axis=1, keepdims=True) * 128 + 128
    rec["rgba"] = np.clip(rgba, 0, 255).astype(np.uint8)  # truncated, like the reference's astype(uint8)
    rec["rot"] = np.clip(q, 0, 255).astype(np.uint8)
    return rec[visibility_order(a)]


def _prepare(a: SplatArrays, up: Up) -> SplatArrays:
    a = check_writable(a)
    if a.sh_degree > 0:
        warnings.warn(f".splat holds no SH bands: dropping SH degree {a.sh_degree} (view-dependent colour)", LossyExportWarning, stacklevel=3)
        a = a.with_sh_degree(0)
    return to_file_frame(a, up)


def encode_splat(a: SplatArrays | Gaussians, *, up: Up = DEFAULT_UP) -> bytes:
    """The .splat file of `a` as bytes (SH bands dropped)."""
    return _records(_prepare(as_arrays(a), up)).tobytes()


def save_splat(a: SplatArrays, path: str | os.PathLike, *, up: Up = DEFAULT_UP) -> None:
    """Write `a` as an antimatter15 .splat, atomically (SH bands dropped)."""
    if len(a) == 0:
        raise FormatError(f"{path}: a .splat file cannot hold zero splats (it would be an empty file)")
    rec = _records(_prepare(a, up))
    with atomic_open(path) as f:
        write_array(f, rec)


def _encode_splat_reference(g: Gaussians, *, up: Up = DEFAULT_UP) -> bytes:
    """Slow twin of `encode_splat`: torch's visibility sort, one struct.pack per splat, as the reference converter."""
    import torch

    from worldgen.ops import visibility_score as torch_visibility_score

    a = _prepare(as_arrays(g), up)
    g = a.to_gaussians().to(dtype=torch.float64)
    g = g[torch.sort(torch_visibility_score(g), descending=True, stable=True).indices]
    out = bytearray()
    clip8 = lambda v: int(min(max(v, 0.0), 255.0))  # noqa: E731  (truncates, like astype(uint8))
    for i in range(len(g)):
        q = g.quats[i] / g.quats[i].norm()
        rgb = [clip8((0.5 + C0 * float(c)) * 255) for c in g.sh0[i, 0]]
        out += struct.pack("<3f3f", *g.means[i].tolist(), *g.scales[i].tolist())
        out += bytes(rgb + [clip8(float(g.opacities[i]) * 255)] + [clip8(float(c) * 128 + 128) for c in q])
    return bytes(out)


def decode_splat(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Splats (world frame, SH degree 0) from the bytes of a .splat file."""
    if not data:
        raise FormatError(f"{name}: the file is empty")
    if len(data) % RECORD.itemsize:
        raise FormatError(
            f"{name}: {len(data)} bytes is not a whole number of 32-byte .splat records (truncated, or not a .splat)"
        )
    rec = np.frombuffer(data, dtype=RECORD)
    n = len(rec)
    rgba = rec["rgba"].astype(np.float64) / 255
    a = make_arrays(
        name,
        means=rec["position"],
        quats=(rec["rot"].astype(np.float64) - 128) / 128,
        scales=np.abs(rec["scale"]),
        opacities=rgba[:, 3],
        sh0=((rgba[:, :3] - 0.5) / C0).reshape(n, 1, 3),
        shN=np.zeros((n, 0, 3)),
        on_invalid=on_invalid,
    )
    return to_world(a, up, name)


def load_splat(path: str | os.PathLike, *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Read an antimatter15 .splat into world-frame splats (SH degree 0)."""
    return decode_splat(read_bytes(path), str(path), up=up, on_invalid=on_invalid)


def _decode_splat_reference(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP) -> SplatArrays:
    """Slow twin of `decode_splat`: one struct.unpack per record."""
    rows = [struct.unpack_from("<3f3f4B4B", data, off) for off in range(0, len(data), 32)]
    arr = np.array(rows, dtype=np.float64).reshape(-1, 14)
    n = len(arr)
    a = make_arrays(
        name,
        means=arr[:, 0:3],
        quats=(arr[:, 10:14] - 128) / 128,
        scales=np.abs(arr[:, 3:6]),
        opacities=arr[:, 9] / 255,
        sh0=((arr[:, 6:9] / 255 - 0.5) / C0).reshape(n, 1, 3),
        shN=np.zeros((n, 0, 3)),
    )
    return to_world(a, up, name)


__all__ = ["DEFAULT_UP", "RECORD", "LossyExportWarning", "decode_splat", "encode_splat", "load_splat", "save_splat", "visibility_order"]
