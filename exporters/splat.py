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

import numpy as np
import torch

from exporters.common import OnInvalid, check_writable, make_gaussians, read_bytes, to_world, write_array
from exporters.frames import Up, to_file_frame
from worldgen.errors import FormatError
from worldgen.gaussians import Gaussians
from worldgen.io import atomic_open
from worldgen.sh import C0

DEFAULT_UP: Up = "-y"
RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
assert RECORD.itemsize == 32


class LossyExportWarning(UserWarning):
    """A format cannot hold everything a `Gaussians` holds (e.g. SH bands in .splat)."""


def visibility_order(g: Gaussians) -> torch.Tensor:
    """Indices sorting `g` by descending opacity x volume, as the reference .splat converter does. [N]"""
    from worldgen.ops import visibility_score

    return torch.sort(visibility_score(g), descending=True, stable=True).indices


def _records(g: Gaussians) -> np.ndarray:
    """The .splat records of `g`, sorted: a [N, 32] byte matrix viewed as RECORD. [N]"""
    n = len(g)
    floats = torch.cat([g.means, g.scales], dim=1).to(torch.float32).numpy()  # [N, 6]
    rgba = torch.cat([0.5 + C0 * g.sh0[:, 0].to(torch.float64), g.opacities.to(torch.float64)[:, None]], dim=1) * 255
    q = torch.nn.functional.normalize(g.quats.to(torch.float64), dim=1) * 128 + 128
    small = torch.cat([rgba, q], dim=1).clamp_(0, 255).to(torch.uint8).numpy()  # [N, 8], truncated like astype(uint8)
    rows = np.concatenate([floats.astype("<f4", copy=False).view(np.uint8).reshape(n, 24), small], axis=1)
    rows = torch.from_numpy(rows.view(np.int64)).index_select(0, visibility_order(g)).numpy()  # sort whole records
    return rows.view(np.uint8).view(RECORD).reshape(n)


def _prepare(g: Gaussians, up: Up) -> Gaussians:
    g = check_writable(g)
    if g.sh_degree > 0:
        warnings.warn(f".splat holds no SH bands: dropping SH degree {g.sh_degree} (view-dependent colour)", LossyExportWarning, stacklevel=3)
        g = g.with_sh_degree(0)
    return to_file_frame(g, up)


def encode_splat(g: Gaussians, *, up: Up = DEFAULT_UP) -> bytes:
    """The .splat file of `g` as bytes (SH bands dropped)."""
    return _records(_prepare(g, up)).tobytes()


def save_splat(g: Gaussians, path: str | os.PathLike, *, up: Up = DEFAULT_UP) -> None:
    """Write `g` as an antimatter15 .splat, atomically (SH bands dropped)."""
    if len(g) == 0:
        raise FormatError(f"{path}: a .splat file cannot hold zero splats (it would be an empty file)")
    rec = _records(_prepare(g, up))
    with atomic_open(path) as f:
        write_array(f, rec)


def _encode_splat_reference(g: Gaussians, *, up: Up = DEFAULT_UP) -> bytes:
    """Slow twin of `encode_splat`: one struct.pack per splat, as the reference converter."""
    g = _prepare(g, up)
    g = g[visibility_order(g)].to(dtype=torch.float64)
    out = bytearray()
    clip8 = lambda v: int(min(max(v, 0.0), 255.0))  # noqa: E731  (truncates, like astype(uint8))
    for i in range(len(g)):
        q = g.quats[i] / g.quats[i].norm()
        rgb = [clip8((0.5 + C0 * float(c)) * 255) for c in g.sh0[i, 0]]
        out += struct.pack("<3f3f", *g.means[i].tolist(), *g.scales[i].tolist())
        out += bytes(rgb + [clip8(float(g.opacities[i]) * 255)] + [clip8(float(c) * 128 + 128) for c in q])
    return bytes(out)


def decode_splat(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> Gaussians:
    """Gaussians (world frame, SH degree 0) from the bytes of a .splat file."""
    if not data:
        raise FormatError(f"{name}: the file is empty")
    if len(data) % RECORD.itemsize:
        raise FormatError(
            f"{name}: {len(data)} bytes is not a whole number of 32-byte .splat records (truncated, or not a .splat)"
        )
    rec = np.frombuffer(data, dtype=RECORD)
    n = len(rec)
    rgba = rec["rgba"].astype(np.float64) / 255
    g = make_gaussians(
        name,
        means=rec["position"],
        quats=(rec["rot"].astype(np.float64) - 128) / 128,
        scales=np.abs(rec["scale"]),
        opacities=rgba[:, 3],
        sh0=((rgba[:, :3] - 0.5) / C0).reshape(n, 1, 3),
        shN=np.zeros((n, 0, 3)),
        on_invalid=on_invalid,
    )
    return to_world(g, up, name)


def load_splat(path: str | os.PathLike, *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> Gaussians:
    """Read an antimatter15 .splat into world-frame Gaussians (SH degree 0)."""
    return decode_splat(read_bytes(path), str(path), up=up, on_invalid=on_invalid)


def _decode_splat_reference(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP) -> Gaussians:
    """Slow twin of `decode_splat`: one struct.unpack per record."""
    rows = [struct.unpack_from("<3f3f4B4B", data, off) for off in range(0, len(data), 32)]
    arr = np.array(rows, dtype=np.float64).reshape(-1, 14)
    n = len(arr)
    g = make_gaussians(
        name,
        means=arr[:, 0:3],
        quats=(arr[:, 10:14] - 128) / 128,
        scales=np.abs(arr[:, 3:6]),
        opacities=arr[:, 9] / 255,
        sh0=((arr[:, 6:9] / 255 - 0.5) / C0).reshape(n, 1, 3),
        shN=np.zeros((n, 0, 3)),
    )
    return to_world(g, up, name)


__all__ = ["DEFAULT_UP", "RECORD", "LossyExportWarning", "decode_splat", "encode_splat", "load_splat", "save_splat", "visibility_order"]
