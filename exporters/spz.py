"""Niantic's .spz format: quantised columns behind a small header, gzip (v1-3) or zstd (v4).

Written as **version 3** by default (what Spark 2.x and Niantic's older
loaders read), as version 4 with ``version=4`` (``--spz-version 4``);
versions 1-4 are read. The layouts, little endian (nianticlabs/spz, load-spz.cc):

    v1-3: gzip( header16 | columns )
        header16 = u32 magic 0x5053474e ("NGSP") | u32 version | u32 numPoints
                   | u8 shDegree | u8 fractionalBits | u8 flags (0x1 antialiased) | u8 reserved
    v4:   header32 | [extensions] | TOC | zstd(column 0) | zstd(column 1) | ...
        header32 = header16 with its last byte numStreams, then u32 tocByteOffset, 12 reserved bytes
        TOC      = numStreams x (u64 compressed size, u64 uncompressed size); the streams follow
                   it back to back and end the file; a column of no bytes (SH at degree 0) has none

The columns, in this order, for N points and K = 3, 8, 15 or 24 SH coefficients:

    positions  N x 3 x 24-bit signed fixed point, 1/2^fractionalBits m (v1: float16)
    alphas     N x u8    round(opacity * 255)
    colours    N x 3 u8  round(sh0 * 0.15 * 255 + 127.5)
    scales     N x 3 u8  round((log(scale) + 10) * 16)
    rotations  v3+: N x u32 smallest-three: 2-bit index of the largest |component|
               (x y z w order), then for the other three in order a sign bit and a
               9-bit magnitude round_down(511 * |c| / sqrt(1/2) + 0.5), the largest
               made positive; v1/v2: N x 3 u8 of x y z (w >= 0) as round(127.5 c + 127.5)
    sh         N x K x 3 u8 (coefficient-major, rgb inner): round(128 c) + 128,
               snapped to buckets of 8 (degree 1, 5 bits) or 16 (degrees 2+, 4 bits)

Degree 4 (24 coefficients, v4 files) is read with its fourth band dropped,
with a `LossyReadWarning`: `Gaussians` holds degrees 0-3.

Quantisation errors of a round trip (asserted in tests/test_formats_spz.py):
position <= 2^-(fb+1) m (fb = 12, i.e. 0.12 mm, lowered only for worlds wider
than +-2048 m); opacity <= 0.5/255; sh0 <= 0.5/38.25 for sh0 in [-3.3, 3.3];
log scale <= 1/32 for log scales in [-10, 5.9]; each quaternion component
<= ~2e-3; SH degree 1 <= 4.5/128 and degrees 2-3 <= 8.5/128 for coefficients
in [-1, 1] (values outside are clipped).

Frame: SPZ stores RUB (x right, y up, z back), so the default is ``up="y"``;
world +y (forward) becomes -z. Files with extensions (flag 0x2) are refused with
a FormatError. No reader allocates what a header merely claims: numPoints is
capped by what the file's size can hold, and every gzip or zstd stream is
inflated no further than the size numPoints implies for it (a bomb stops there).
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zlib
from typing import TYPE_CHECKING, Literal

import numpy as np

from exporters.common import (
    REST_COEFFS,
    OnInvalid,
    SplatArrays,
    as_arrays,
    check_writable,
    f64,
    make_arrays,
    read_bytes,
)
from exporters.frames import Up, to_file_frame, to_world
from worldgen.errors import FormatError
from worldgen.io import atomic_write_bytes

if TYPE_CHECKING:
    from worldgen.gaussians import Gaussians

DEFAULT_UP: Up = "y"
MAX_SH_DEGREE = 3
MAGIC = 0x5053474E
HEADER = struct.Struct("<IIIBBBB")  # 16 bytes: the v1-3 header
HEADER_V4 = struct.Struct("<IIIBBBBI12x")  # 32 bytes: ... numStreams, tocByteOffset, reserved
TOC_ENTRY = struct.Struct("<QQ")
COLOR_SCALE = 0.15
SQRT1_2 = math.sqrt(0.5)
MAX_POINTS = 100_000_000
_MAX_RATIO = 1100  # deflate cannot expand more than ~1032x
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
FLAG_ANTIALIASED, FLAG_EXTENSIONS = 0x1, 0x2
#: SH coefficients per colour channel for each degree an .spz may hold (degree 4 only in v4)
SPZ_SH_COEFFS = {**REST_COEFFS, 4: 24}
#: zstd level of version-4 files: the reference writer uses 12; 6 writes ~7x faster for ~0.3 % more bytes
ZSTD_LEVEL = 6

Version = Literal[1, 2, 3, 4]


class LossyReadWarning(UserWarning):
    """A file holds more than a `Gaussians` can (SH degree 4 in .spz v4): the rest is dropped."""


def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, as C++'s std::round (exact in any float dtype)."""
    t = np.trunc(x)
    f = x - t  # exact: the fraction, in (-1, 1)
    f *= 2
    np.trunc(f, out=f)  # +-1 where |fraction| >= 0.5
    t += f
    return t


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(_round(x), 0, 255).astype(np.uint8)


def column_sizes(version: int, n: int, sh_degree: int) -> list[int]:
    """Bytes of the positions, alphas, colours, scales, rotations and SH columns."""
    return [n * (6 if version == 1 else 9), n, 3 * n, 3 * n, n * (4 if version >= 3 else 3), 3 * SPZ_SH_COEFFS[sh_degree] * n]


def point_size(version: int, sh_degree: int) -> int:
    """Bytes per Gaussian in the uncompressed columns."""
    return sum(column_sizes(version, 1, sh_degree))


def fractional_bits(means: np.ndarray, *, max_bits: int = 12) -> int:
    """The largest fractionalBits <= max_bits whose 24-bit fixed point holds every coordinate."""
    extent = float(np.abs(means).max()) if means.size else 0.0
    for bits in range(max_bits, -1, -1):
        if extent * 2.0**bits + 0.5 < 2**23:
            return bits
    raise FormatError(f"coordinates up to {extent:.3g} m do not fit .spz's 24-bit fixed point (limit 8.4e6 m)")


# -- writing ---------------------------------------------------------------------------


def _pack_rotations_v3(q: np.ndarray) -> np.ndarray:
    """Smallest-three packing of x y z w quaternions. [N, 4] -> [N] u32"""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    n = len(q)
    largest = np.argmax(np.abs(q), axis=1)
    negate = q[np.arange(n), largest] < 0
    others = q[np.arange(n)[:, None], _OTHERS[largest]]  # [N, 3]
    sign = ((others < 0) ^ negate[:, None]).astype(np.uint32)
    mag = np.minimum(np.floor(511.0 * np.abs(others) / SQRT1_2 + 0.5), 511).astype(np.uint32)
    parts = (sign << 9) | mag
    return (largest.astype(np.uint32) << 30) | (parts[:, 0] << 20) | (parts[:, 1] << 10) | parts[:, 2]


def _pack_rotations_v2(q: np.ndarray) -> np.ndarray:
    """x y z of w >= 0 quaternions as bytes. [N, 4] -> [N, 3] u8"""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(q[:, 3:4] < 0, -q, q)
    return _u8(q[:, :3] * 127.5 + 127.5)


def _quantise_sh(shn: np.ndarray) -> np.ndarray:
    """round(128 c) + 128, snapped to buckets of 8 (degree 1) or 16 (above), in 0..255. [N, K, 3] -> [N, K, 3] u8

    Clipping to 0..255 before snapping gives what snapping first and clipping after gives (snapping is monotonic).
    """
    q = _round(np.asarray(shn, dtype=np.float32) * np.float32(128))  # float32 is exact here (small integers)
    np.clip(q, -128, 127, out=q)
    v = q.astype(np.int16)
    v += 128
    for lo, hi, shift in ((0, 3, 3), (3, v.shape[1], 4)):  # buckets of 8 (5 bits) for degree 1, of 16 (4 bits) above
        part = v[:, lo:hi]
        part += 1 << (shift - 1)
        part >>= shift
        part <<= shift
    np.minimum(v, 255, out=v)
    return v.astype(np.uint8)


def _columns(a: SplatArrays, version: int) -> tuple[int, list[bytes]]:
    """(fractionalBits, the six columns) of splats already in the file frame."""
    means = f64(a.means)
    bits = fractional_bits(means) if version > 1 else 0
    if version == 1:
        positions = means.astype("<f2").tobytes()
    else:
        fixed = _round(means * 2.0**bits).astype(np.int64).reshape(-1) & 0xFFFFFF
        positions = fixed.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    with np.errstate(divide="ignore"):
        scales = _u8((np.log(f64(a.scales)) + 10.0) * 16.0)
    quats = f64(a.quats)[:, [1, 2, 3, 0]]  # w x y z -> x y z w
    rotations = _pack_rotations_v3(quats).astype("<u4") if version >= 3 else _pack_rotations_v2(quats)
    columns = [
        positions,
        _u8(f64(a.opacities) * 255.0).tobytes(),
        _u8(f64(a.sh0[:, 0]) * (COLOR_SCALE * 255.0) + 0.5 * 255.0).tobytes(),
        scales.tobytes(),
        rotations.tobytes(),
        _quantise_sh(a.shN).tobytes(),
    ]
    return bits, columns


def _prepare(a: SplatArrays, up: Up, version: int) -> SplatArrays:
    if version not in (1, 2, 3, 4):
        raise FormatError(f".spz version {version} cannot be written; choose 1, 2, 3 or 4")
    return to_file_frame(check_writable(a), up)


def _payload(a: SplatArrays, version: int, antialiased: bool) -> bytes:
    """The version 1-3 payload (16-byte header and columns) of splats already in the file frame."""
    bits, columns = _columns(a, version)
    flags = FLAG_ANTIALIASED if antialiased else 0
    return HEADER.pack(MAGIC, version, len(a), a.sh_degree, bits, flags, 0) + b"".join(columns)


def pack_spz(a: SplatArrays | Gaussians, *, up: Up = DEFAULT_UP, version: Literal[1, 2, 3] = 3, antialiased: bool = False) -> bytes:
    """The gunzipped payload of a version 1-3 .spz of `a` (16-byte header and columns)."""
    if version == 4:
        raise FormatError(".spz version 4 has no single payload: use encode_spz(..., version=4)")
    return _payload(_prepare(as_arrays(a), up, version), version, antialiased)


def _gzip(data: bytes, level: int = 6) -> bytes:
    """A gzip stream of `data` by libdeflate: at level 6 ~6x faster than zlib's and ~2 % smaller."""
    import deflate

    return deflate.gzip_compress(data, level)


def _encode_v4(a: SplatArrays, *, antialiased: bool, level: int) -> bytes:
    import zstandard

    bits, columns = _columns(a, 4)
    cctx = zstandard.ZstdCompressor(level=level)
    streams = [cctx.compress(c) for c in columns if c]
    toc = b"".join(TOC_ENTRY.pack(len(s), len(c)) for s, c in zip(streams, [c for c in columns if c], strict=True))
    flags = FLAG_ANTIALIASED if antialiased else 0
    header = HEADER_V4.pack(MAGIC, 4, len(a), a.sh_degree, bits, flags, len(streams), HEADER_V4.size)
    return b"".join([header, toc, *streams])


def encode_spz(
    a: SplatArrays | Gaussians,
    *,
    up: Up = DEFAULT_UP,
    version: Version = 3,
    antialiased: bool = False,
    compresslevel: int | None = None,
) -> bytes:
    """The .spz file of `a` as bytes.

    compresslevel: gzip level 1-12 for versions 1-3 (libdeflate's levels;
    default 6, the reference writer's zlib level, which libdeflate meets in
    a sixth of the time and ~2 % fewer bytes), zstd level 1-22 for version 4
    (default `ZSTD_LEVEL`).
    """
    a = _prepare(as_arrays(a), up, version)
    if version == 4:
        level = ZSTD_LEVEL if compresslevel is None else compresslevel
        if not 1 <= level <= 22:
            raise FormatError(f"zstd compresslevel must be 1-22, got {level}")
        return _encode_v4(a, antialiased=antialiased, level=level)
    level = 6 if compresslevel is None else compresslevel
    if not 1 <= level <= 12:
        raise FormatError(f"gzip compresslevel must be 1-12, got {level}")
    return _gzip(_payload(a, version, antialiased), level)


def save_spz(
    a: SplatArrays,
    path: str | os.PathLike,
    *,
    up: Up = DEFAULT_UP,
    version: Version = 3,
    antialiased: bool = False,
    compresslevel: int | None = None,
) -> None:
    """Write `a` as a .spz (version 3 and the RUB frame by default), atomically."""
    atomic_write_bytes(path, encode_spz(a, up=up, version=version, antialiased=antialiased, compresslevel=compresslevel))


def _pack_spz_reference(g: SplatArrays | Gaussians, *, up: Up = DEFAULT_UP) -> bytes:
    """Slow twin of `pack_spz` (version 3): one splat at a time, as load-spz.cc's loops."""
    g = to_file_frame(check_writable(as_arrays(g)), up)
    n, deg = len(g), g.sh_degree
    bits = fractional_bits(f64(g.means))
    rnd = lambda x: math.copysign(math.floor(abs(x) + 0.5), x)  # noqa: E731
    u8 = lambda x: int(min(max(rnd(x), 0), 255))  # noqa: E731
    pos, alpha, color, scale, rot, sh = bytearray(), bytearray(), bytearray(), bytearray(), bytearray(), bytearray()
    for i in range(n):
        for c in g.means[i].tolist():
            pos += (int(rnd(c * 2.0**bits)) & 0xFFFFFF).to_bytes(3, "little")
        alpha.append(u8(float(g.opacities[i]) * 255))
        color += bytes(u8(c * COLOR_SCALE * 255 + 127.5) for c in g.sh0[i, 0].tolist())
        scale += bytes(u8((math.log(s) + 10) * 16) if s > 0 else 0 for s in g.scales[i].tolist())
        w, x, y, z = g.quats[i].tolist()
        q = [x, y, z, w]
        norm = math.sqrt(sum(c * c for c in q))
        q = [c / norm for c in q]
        largest = max(range(4), key=lambda k: (abs(q[k]), -k))
        comp = largest
        for k in range(4):
            if k != largest:
                negbit = int(q[k] < 0) ^ int(q[largest] < 0)
                comp = (comp << 10) | (negbit << 9) | min(int(511 * abs(q[k]) / SQRT1_2 + 0.5), 511)
        rot += comp.to_bytes(4, "little")
        for j, rgb in enumerate(g.shN[i].tolist()):
            bucket = 8 if j < 3 else 16
            for c in rgb:
                v = int(rnd(c * 128)) + 128
                sh.append(min(max((v + bucket // 2) // bucket * bucket, 0), 255))
    return HEADER.pack(MAGIC, 3, n, deg, bits, 0, 0) + bytes(pos + alpha + color + scale + rot + sh)


# -- reading ---------------------------------------------------------------------------


def _check_header(name: str, version: int, n: int, deg: int, flags: int, file_size: int) -> int:
    """The uncompressed size of the columns a header describes, once the header is plausible.

    numPoints is capped by the file's size: gzip (v1-3) cannot inflate more than
    ~1032x; for zstd (v4) the reference loader's bound applies, 1024 x file size
    / 9 bytes of positions per point.
    """
    if deg > 4 or (deg == 4 and version < 4):
        raise FormatError(f"{name}: SH degree {deg} in a version {version} .spz header (the format holds 0-{4 if version >= 4 else 3})")
    if flags & FLAG_EXTENSIONS:
        raise FormatError(f"{name}: .spz extensions (flag 0x2) are not supported")
    expected = n * point_size(version, deg)
    plausible = n <= file_size * 1024 // 9 if version >= 4 else expected <= _MAX_RATIO * file_size + 4096
    if n > MAX_POINTS or not plausible:
        raise FormatError(f"{name}: the .spz header claims {n} points, more than the {file_size}-byte file can hold")
    return expected


def gunzip_payload(data: bytes, name: str) -> bytes:
    """The gunzipped payload of a version 1-3 file, read no further than its header's point count allows."""
    if not data:
        raise FormatError(f"{name}: the file is empty")
    if data[:2] != b"\x1f\x8b":
        raise FormatError(f"{name}: not a .spz file (no gzip magic number and no NGSP header)")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = d.decompress(data, HEADER.size)
        if len(head) < HEADER.size:
            raise FormatError(f"{name}: truncated .spz: the gzip stream ends inside the 16-byte header")
        magic, version, n, deg, _bits, flags, _ = HEADER.unpack(head)
        if magic != MAGIC:
            raise FormatError(f"{name}: wrong magic number 0x{magic:08x} in the .spz header (expected 0x{MAGIC:08x})")
        if version not in (1, 2, 3):
            raise FormatError(f"{name}: .spz version {version} in a gzip stream (versions 1-3 are gzip, 4 is zstd)")
        expected = _check_header(name, version, n, deg, flags, len(data))
        body = bytearray(head)
        while len(body) < HEADER.size + expected:
            chunk = d.decompress(d.unconsumed_tail, HEADER.size + expected - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) < HEADER.size + expected:
            raise FormatError(
                f"{name}: truncated .spz: the header promises {n} points ({expected} bytes), the data holds {len(body) - HEADER.size}"
            )
        if d.decompress(d.unconsumed_tail, 1):
            raise FormatError(f"{name}: the .spz header says {n} points but the data holds more (lying header)")
        if not d.eof:
            raise FormatError(f"{name}: truncated .spz: the gzip stream does not end")
    except zlib.error as e:
        raise FormatError(f"{name}: corrupt .spz gzip stream ({e})") from None
    return bytes(body)


def _unzstd(stream: bytes, size: int, name: str, what: str) -> bytes:
    """One zstd stream inflated to exactly `size` bytes: never more is read (a bomb stops there)."""
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stream), read_across_frames=True)
        out = bytearray()
        while len(out) <= size:
            chunk = reader.read(size + 1 - len(out))
            if not chunk:
                break
            out += chunk
    except zstandard.ZstdError as e:
        raise FormatError(f"{name}: corrupt .spz zstd stream for the {what} ({e})") from None
    if len(out) != size:
        more = "more" if len(out) > size else f"only {len(out)}"
        raise FormatError(f"{name}: the .spz {what} stream holds {more} bytes, the header implies {size} (truncated or lying)")
    return bytes(out)


_COLUMN_NAMES = ("positions", "alphas", "colours", "scales", "rotations", "SH")


def read_v4_columns(data: bytes, name: str) -> tuple[tuple[int, int, int, int, int], list[bytes]]:
    """((version, numPoints, shDegree, fractionalBits, flags), the six columns) of a version-4 file."""
    if len(data) < HEADER_V4.size:
        raise FormatError(f"{name}: truncated .spz: {len(data)} bytes, shorter than the 32-byte version-4 header")
    magic, version, n, deg, bits, flags, num_streams, toc_offset = HEADER_V4.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(f"{name}: wrong magic number 0x{magic:08x} in the .spz header (expected 0x{MAGIC:08x})")
    if version != 4:
        raise FormatError(f"{name}: .spz version {version} without gzip; only version 4 stores plain headers")
    _check_header(name, version, n, deg, flags, len(data))
    sizes = column_sizes(4, n, deg)
    streams = [i for i, size in enumerate(sizes) if size]  # a column of no bytes has no stream
    if num_streams != len(streams):
        raise FormatError(f"{name}: the .spz header names {num_streams} streams; {n} points of SH degree {deg} need {len(streams)}")
    toc_end = toc_offset + num_streams * TOC_ENTRY.size
    if toc_offset < HEADER_V4.size or toc_end > len(data):
        raise FormatError(f"{name}: truncated or lying .spz: the table of contents at byte {toc_offset} lies outside the file")
    if toc_offset != HEADER_V4.size:
        raise FormatError(f"{name}: the .spz has bytes between its header and table of contents (extensions are not supported)")
    offset, columns = toc_end, [b""] * len(sizes)
    for entry, i in enumerate(streams):
        packed, unpacked = TOC_ENTRY.unpack_from(data, toc_offset + entry * TOC_ENTRY.size)
        if unpacked != sizes[i]:
            raise FormatError(f"{name}: the .spz {_COLUMN_NAMES[i]} stream claims {unpacked} bytes; {n} points need {sizes[i]}")
        if packed > len(data) - offset:
            raise FormatError(f"{name}: truncated .spz: the {_COLUMN_NAMES[i]} stream runs past the end of the file")
        columns[i] = _unzstd(data[offset : offset + packed], sizes[i], name, _COLUMN_NAMES[i])
        offset += packed
    if offset != len(data):
        raise FormatError(f"{name}: {len(data) - offset} bytes after the last .spz stream (corrupt table of contents)")
    return (version, n, deg, bits, flags), columns


#: where component j of an x y z w quaternion sits in [three stored values, largest], for each largest index,
#: columns in w x y z order
_FROM_STORED = np.array([[3 if j == k else j - (j > k) for j in (3, 0, 1, 2)] for k in range(4)])
#: each byte's decoded value, as the reference decoder computes it per splat
_ALPHA = np.arange(256) / 255.0
_COLOUR = (np.arange(256) / 255.0 - 0.5) / COLOR_SCALE
_SCALE = np.exp(np.arange(256) / 16.0 - 10.0)
_SH = ((np.arange(256) - 128.0) / 128.0).astype(np.float32)


def _unpack_rotations_v3(comp: np.ndarray) -> np.ndarray:
    """Smallest-three words -> w x y z quaternions. [N] u32 -> [N, 4]"""
    comp = comp.astype(np.uint32)
    largest = (comp >> 30).astype(np.int64)
    parts = np.stack([(comp >> 20) & 0x3FF, (comp >> 10) & 0x3FF, comp & 0x3FF], axis=1)
    vals = np.empty((len(comp), 4))
    vals[:, :3] = SQRT1_2 * (parts & 0x1FF) / 511.0 * np.where((parts >> 9) & 1, -1.0, 1.0)
    vals[:, 3] = np.sqrt(np.maximum(0.0, 1.0 - (vals[:, :3] ** 2).sum(axis=1)))
    return np.take_along_axis(vals, _FROM_STORED[largest], axis=1)


def _decode_columns(
    name: str, version: int, n: int, deg: int, bits: int, columns: list[bytes], *, up: Up, on_invalid: OnInvalid
) -> SplatArrays:
    pos, alpha, color, scale, rot, sh = (np.frombuffer(c, dtype=np.uint8) for c in columns)
    if version == 1:
        means = pos.view("<f2").astype(np.float64).reshape(n, 3)
    else:  # 24-bit little-endian two's complement: three bytes into the top of an int32, shifted down with its sign
        word = np.zeros((3 * n, 4), dtype=np.uint8)
        word[:, 1:] = pos.reshape(-1, 3)
        means = ((word.view("<i4")[:, 0] >> 8) * np.float32(2.0**-bits)).reshape(n, 3)
    if version >= 3:
        q = _unpack_rotations_v3(rot.view("<u4"))
    else:
        xyz = rot.reshape(n, 3) / 127.5 - 1.0
        q = np.concatenate([np.sqrt(np.maximum(0.0, 1.0 - (xyz**2).sum(axis=1)))[:, None], xyz], axis=1)
    k = SPZ_SH_COEFFS[deg]
    if deg == 4:
        warnings.warn(f"{name}: SH degree 4 read as degree 3 (Gaussians hold degrees 0-3)", LossyReadWarning, stacklevel=4)
    # channel-major memory seen coefficient-major, as exporters.frames.rotate works in
    shn = _SH[sh.reshape(n, k, 3)[:, : REST_COEFFS[min(deg, 3)]].transpose(0, 2, 1)].transpose(0, 2, 1)
    a = make_arrays(
        name,
        means=means,
        quats=q,
        scales=_SCALE[scale.reshape(n, 3)],
        opacities=_ALPHA[alpha],
        sh0=_COLOUR[color.reshape(n, 1, 3)],
        shN=shn,
        on_invalid=on_invalid,
    )
    return to_world(a, up, name)


def unpack_spz(payload: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Splats (world frame) from a gunzipped version 1-3 payload (as `gunzip_payload` returns it)."""
    if len(payload) < HEADER.size:
        raise FormatError(f"{name}: truncated .spz: {len(payload)} bytes, shorter than the 16-byte header")
    magic, version, n, deg, bits, _flags, _ = HEADER.unpack_from(payload)
    if magic != MAGIC or version not in (1, 2, 3) or deg > 3:
        raise FormatError(f"{name}: bad .spz header (magic 0x{magic:08x}, version {version}, SH degree {deg})")
    sizes = column_sizes(version, n, deg)
    if len(payload) != HEADER.size + sum(sizes):
        raise FormatError(f"{name}: the .spz header says {n} points, the payload holds {len(payload) - HEADER.size} bytes")
    ends = np.cumsum([HEADER.size, *sizes])
    columns = [payload[lo:hi] for lo, hi in zip(ends[:-1], ends[1:], strict=True)]
    return _decode_columns(name, version, n, deg, bits, columns, up=up, on_invalid=on_invalid)


def decode_spz(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Splats (world frame) from the bytes of a .spz file (versions 1-4)."""
    if data[:4] == b"NGSP":
        (version, n, deg, bits, _flags), columns = read_v4_columns(data, name)
        return _decode_columns(name, version, n, deg, bits, columns, up=up, on_invalid=on_invalid)
    return unpack_spz(gunzip_payload(data, name), name, up=up, on_invalid=on_invalid)


def load_spz(path: str | os.PathLike, *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Read a .spz file (versions 1-4, RUB frame by default) into world-frame splats."""
    return decode_spz(read_bytes(path), str(path), up=up, on_invalid=on_invalid)


def _unpack_spz_reference(payload: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP) -> SplatArrays:
    """Slow twin of `unpack_spz` (version 3 only): one splat at a time."""
    _, _, n, deg, bits, _, _ = HEADER.unpack_from(payload)
    k = REST_COEFFS[deg]
    o = [HEADER.size]
    for size in (9 * n, n, 3 * n, 3 * n, 4 * n):
        o.append(o[-1] + size)
    means, quats, scales, opac, sh0, shn = [], [], [], [], [], []
    for i in range(n):
        xyz = []
        for c in range(3):
            v = int.from_bytes(payload[o[0] + 9 * i + 3 * c : o[0] + 9 * i + 3 * c + 3], "little", signed=True)
            xyz.append(v / 2.0**bits)
        means.append(xyz)
        opac.append(payload[o[1] + i] / 255)
        sh0.append([[(payload[o[2] + 3 * i + c] / 255 - 0.5) / COLOR_SCALE for c in range(3)]])
        scales.append([math.exp(payload[o[3] + 3 * i + c] / 16 - 10) for c in range(3)])
        comp = int.from_bytes(payload[o[4] + 4 * i : o[4] + 4 * i + 4], "little")
        largest, q, total = comp >> 30, [0.0] * 4, 0.0
        for j in (3, 2, 1, 0):
            if j != largest:
                mag, neg = comp & 511, (comp >> 9) & 1
                comp >>= 10
                q[j] = SQRT1_2 * mag / 511 * (-1 if neg else 1)
                total += q[j] ** 2
        q[largest] = math.sqrt(max(0.0, 1 - total))
        quats.append([q[3], q[0], q[1], q[2]])
        base = o[5] + 3 * k * i
        shn.append([[(payload[base + 3 * j + c] - 128) / 128 for c in range(3)] for j in range(k)])
    arr = lambda x, shape: np.array(x, dtype=np.float64).reshape(shape)  # noqa: E731
    a = make_arrays(
        name,
        means=arr(means, (n, 3)),
        quats=arr(quats, (n, 4)),
        scales=arr(scales, (n, 3)),
        opacities=arr(opac, (n,)),
        sh0=arr(sh0, (n, 1, 3)),
        shN=arr(shn, (n, k, 3)),
    )
    return to_world(a, up, name)


__all__ = [
    "DEFAULT_UP",
    "MAGIC",
    "LossyReadWarning",
    "decode_spz",
    "encode_spz",
    "gunzip_payload",
    "load_spz",
    "pack_spz",
    "read_v4_columns",
    "save_spz",
    "unpack_spz",
]
