"""PlayCanvas SOG (.sog, version 2): a zip of meta.json and lossless WebP images.

The layout splat-transform 3.7 writes and SuperSplat reads (both
writers and readers are in playcanvas/splat-transform, write-sog.ts and
read-sog.ts). Every image holds one RGBA texel per splat, row by row, in a
W x H grid (W = ceil(sqrt(N) / 4) * 4, H = ceil(N / W / 4) * 4), splats in
Morton order of their positions::

    means_l.webp, means_u.webp  low and high bytes of 16-bit positions: per axis,
                                l = sign(x) * log(|x| + 1) mapped linearly from
                                [meta.means.mins, meta.means.maxs] to 0..65535
    quats.webp                  smallest-three: r, g, b = 255 * (c * sqrt(2) * 0.5 + 0.5)
                                of the other three components of the unit quaternion
                                (w x y z order, the largest made positive), a = 252 + index
    scales.webp                 r, g, b index meta.scales.codebook (256 log scales)
    sh0.webp                    r, g, b index meta.sh0.codebook (256 sh0 values); a = opacity * 255
    shN_labels.webp             r + 256 g indexes a palette of meta.shN.count SH vectors
    shN_centroids.webp          the palette: 64 entries per row, K texels each (one per
                                coefficient, r g b indexing meta.shN.codebook)

Codebooks are chosen here as 128 evenly spaced values over the data's range
plus 128 of its quantiles, so every value is within range/254 of an entry;
the SH palette is a two-level k-means tree (a palette of up to 65,536 vectors
found with ~2 sqrt(K) distance evaluations per splat instead of K). Both are
the writer's choice: readers only index them.

Precision of a round trip (docs/formats.md; tests/test_formats_sog.py):
position within (1 + |x|) * L / 131070 per axis (L the axis's log range: 1.2 mm
at 10 m for a +-100 m world); quaternion components ~3e-3; log scale, sh0 and
the palette's SH values within range/254 of their codebook's range; opacity
0.5/255; higher SH vector-quantised (exact for worlds with at most K distinct
SH vectors, lossy without a per-splat bound otherwise).

Frame: SOG is read and written in the .ply frame (``up="-y"``): splat-transform
bakes its PLY transform into SOG and PlayCanvas shows such files upright.
The reader checks every image's size against meta.count before decoding it and
meta.count against the file's size, so no header can make it allocate more
than the file implies.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters.common import (
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

DEFAULT_UP: Up = "-y"
MAX_SH_DEGREE = 3
MAX_POINTS = 100_000_000
MAX_PALETTE = 65536
_SQRT2 = math.sqrt(2.0)
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
_MAX_META = 16 << 20
_WEBP = {"lossless": True, "exact": True, "method": 1, "quality": 50}  # ~3x faster than Pillow's defaults, same size
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def grid(n: int) -> tuple[int, int]:
    """(width, height) of the texture grid for n splats, as splat-transform lays it out."""
    width = math.ceil(math.sqrt(n) / 4) * 4
    return width, math.ceil(n / width / 4) * 4


def palette_size(n: int) -> int:
    """The SH palette size for n splats: about one entry per 64 splats, a power of two in 256..65536 (n if smaller)."""
    return min(n, max(256, min(MAX_PALETTE, 2 ** round(math.log2(max(n, 1) / 64)))))


# -- quantisers ------------------------------------------------------------------------


def codebook(values: np.ndarray, *, size: int = 256) -> np.ndarray:
    """A sorted codebook of `size` floats: half evenly spaced over [min, max], half quantiles. [size]"""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return np.zeros(size)
    lo, hi = float(v.min()), float(v.max())
    sample = v if v.size <= 1 << 18 else v[np.random.default_rng(0).integers(0, v.size, 1 << 18)]
    half = size // 2
    levels = np.concatenate([np.linspace(lo, hi, size - half), np.quantile(sample, np.linspace(0, 1, half))])
    return np.sort(levels)


def nearest_code(values: np.ndarray, book: np.ndarray) -> np.ndarray:
    """Index of the nearest codebook entry for each value (book sorted). [...] -> [...] u8"""
    mid = (book[1:] + book[:-1]) / 2
    return np.searchsorted(mid, values).astype(np.uint8)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each row (squared distance), in row blocks. [N, D], [K, D] -> [N]"""
    c2 = np.einsum("kd,kd->k", centroids, centroids)
    out = np.empty(len(x), dtype=np.int64)
    step = max(1, (1 << 24) // max(1, len(centroids)))
    for i in range(0, len(x), step):
        out[i : i + step] = np.argmin(c2 - 2 * (x[i : i + step] @ centroids.T), axis=1)
    return out


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, *, iterations: int, sample: int) -> np.ndarray:
    """k centroids of the rows of x (Lloyd's iterations on at most `sample` points per centroid). [N, D] -> [k, D]"""
    if len(x) <= k:
        return np.concatenate([x, np.repeat(x[:1], k - len(x), axis=0)]) if len(x) else np.zeros((k, x.shape[1]), x.dtype)
    train = x if len(x) <= sample * k else x[rng.choice(len(x), sample * k, replace=False)]
    c = train[rng.choice(len(train), k, replace=False)].copy()
    for _ in range(iterations):
        labels = _nearest(train, c)
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, weights=train[:, j], minlength=k) for j in range(x.shape[1])], axis=1)
        full = counts > 0
        c[full] = (sums[full] / counts[full, None]).astype(c.dtype)
        c[~full] = train[rng.choice(len(train), int((~full).sum()))]  # an empty cluster restarts at a random point
    return c


def sh_palette(shn: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(palette [k, D], label [N]) vector-quantising SH rows with a two-level k-means tree of k1 x k2 = k leaves.

    shn: [N, D] float32. With N <= k every row is its own entry (exact).
    """
    n = len(shn)
    if n <= k:
        return shn.copy(), np.arange(n)
    rng = np.random.default_rng(seed)
    k1 = 2 ** math.ceil(math.log2(k) / 2)
    k2 = k // k1
    top = _kmeans(shn, k1, rng, iterations=8, sample=64)
    group = _nearest(shn, top)
    palette = np.repeat(top, k2, axis=0)  # a group with fewer members than k2 keeps its centroid in the spare slots
    labels = np.empty(n, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(k1 + 1))
    for g in range(k1):
        rows = order[bounds[g] : bounds[g + 1]]
        if len(rows) == 0:
            continue
        sub = _kmeans(shn[rows], k2, rng, iterations=6, sample=16)
        palette[g * k2 : (g + 1) * k2] = sub
        labels[rows] = g * k2 + _nearest(shn[rows], sub)
    return palette, labels


def morton_order(means: np.ndarray) -> np.ndarray:
    """Indices sorting positions along a 3D Z-order curve of 21 bits per axis. [N, 3] -> [N]"""
    if len(means) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = means.min(axis=0), means.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.clip((f64(means) - lo) / span * (2**21 - 1), 0, 2**21 - 1).astype(np.uint64)
    code = np.zeros(len(means), dtype=np.uint64)
    for axis in range(3):
        v = q[:, axis]
        v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
        v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
        v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
        v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
        v = (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)
        code |= v << np.uint64(axis)
    return np.argsort(code, kind="stable")


# -- writing ---------------------------------------------------------------------------


def _log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _texture(columns: list[np.ndarray], alpha: np.ndarray | int, order: np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGBA image whose texel i holds splat order[i] (texels past the last splat zero). [H, W, 4] u8"""
    img = np.zeros((height * width, 4), dtype=np.uint8)
    n = len(order)
    for c, col in enumerate(columns):
        img[:n, c] = col[order]
    img[:n, 3] = alpha[order] if isinstance(alpha, np.ndarray) else alpha
    return img.reshape(height, width, 4)


def _webp(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, "RGBA").save(buf, "WEBP", **_WEBP)
    return buf.getvalue()


def _images(a: SplatArrays, palette: int | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta.json, name -> RGBA image) of splats already in the file frame, laid out in Morton order."""
    import worldgen

    n = len(a)
    width, height = grid(n)
    order = morton_order(a.means)
    tex = lambda columns, alpha=255: _texture(columns, alpha, order, width, height)  # noqa: E731
    logpos = _log_transform(f64(a.means))
    mins, maxs = logpos.min(axis=0), logpos.max(axis=0)
    span = np.where(maxs > mins, maxs - mins, 1.0)
    q16 = np.round((logpos - mins) / span * 65535).astype(np.uint16)
    images = {
        "means_l.webp": tex([q16[:, i] & 0xFF for i in range(3)]),
        "means_u.webp": tex([q16[:, i] >> 8 for i in range(3)]),
    }

    q = f64(a.quats)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    largest = np.argmax(np.abs(q), axis=1)
    rows = np.arange(n)
    sign = np.where(q[rows, largest] < 0, -1.0, 1.0)
    others = q[rows[:, None], _OTHERS[largest]] * (sign * _SQRT2)[:, None]
    packed = np.clip(np.round(255 * (others * 0.5 + 0.5)), 0, 255).astype(np.uint8)
    images["quats.webp"] = tex([packed[:, i] for i in range(3)], (252 + largest).astype(np.uint8))

    with np.errstate(divide="ignore"):
        log_scales = np.maximum(np.log(f64(a.scales)), -30.0)  # a zero scale: exp(-30) ~ 1e-13 m, flat
    scale_book = codebook(log_scales)
    images["scales.webp"] = tex([nearest_code(log_scales[:, i], scale_book) for i in range(3)])

    sh0 = f64(a.sh0[:, 0])
    sh0_book = codebook(sh0)
    opacity = np.clip(np.round(f64(a.opacities) * 255), 0, 255).astype(np.uint8)
    images["sh0.webp"] = tex([nearest_code(sh0[:, i], sh0_book) for i in range(3)], opacity)

    meta: dict[str, Any] = {
        "version": 2,
        "asset": {"generator": f"worldgen {worldgen.__version__}"},
        "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_book.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": sh0_book.tolist(), "files": ["sh0.webp"]},
    }
    k = a.shN.shape[1]
    if k:
        size = palette or palette_size(n)
        if not 1 <= size <= MAX_PALETTE:
            raise FormatError(f"a .sog SH palette holds 1 to {MAX_PALETTE} entries, not {size}")
        rest = np.ascontiguousarray(a.shN.transpose(0, 2, 1), dtype=np.float32).reshape(n, 3 * k)  # channel-major (often free)
        centroids, labels = sh_palette(rest, size)
        sh_book = codebook(centroids)
        codes = nearest_code(centroids, sh_book).reshape(len(centroids), 3, k)  # [P, rgb, K]
        rows_needed = math.ceil(len(centroids) / 64)
        cen = np.zeros((rows_needed * 64, k, 4), dtype=np.uint8)
        cen[: len(centroids), :, :3] = codes.transpose(0, 2, 1)
        cen[: len(centroids), :, 3] = 255
        images["shN_labels.webp"] = tex([labels & 0xFF, labels >> 8])
        images["shN_centroids.webp"] = cen.reshape(rows_needed, 64 * k, 4)
        meta["shN"] = {"count": len(centroids), "bands": a.sh_degree, "codebook": sh_book.tolist(),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}  # fmt: skip
    return meta, images


def encode_sog(a: SplatArrays | Gaussians, *, up: Up = DEFAULT_UP, palette: int | None = None) -> bytes:
    """The .sog file of `a` as bytes (a zip of stored, not deflated, entries).

    palette: SH palette size (default `palette_size(len(a))`).
    """
    a = to_file_frame(check_writable(as_arrays(a)), up)
    if len(a) == 0:
        raise FormatError("a .sog file cannot hold zero splats (its images would have no pixels)")
    meta, images = _images(a, palette)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, img in images.items():
            z.writestr(zipfile.ZipInfo(name, _ZIP_TIME), _webp(img))
        z.writestr(zipfile.ZipInfo("meta.json", _ZIP_TIME), json.dumps(meta, separators=(",", ":")))
    return buf.getvalue()


def save_sog(a: SplatArrays, path: str | os.PathLike, *, up: Up = DEFAULT_UP, palette: int | None = None) -> None:
    """Write `a` as a PlayCanvas .sog, atomically."""
    try:
        data = encode_sog(a, up=up, palette=palette)
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None
    atomic_write_bytes(path, data)


# -- reading ---------------------------------------------------------------------------


def _fail(name: str, message: str) -> FormatError:
    return FormatError(f"{name}: {message}")


def _numbers(meta: Any, path: str, name: str, *, length: int | None = None) -> np.ndarray:
    """A list of finite numbers in meta.json at `path` ("means.mins"), as float64."""
    value: Any = meta
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise _fail(name, f"meta.json has no {path}")
        value = value[key]
    if not isinstance(value, list) or not value or (length is not None and len(value) != length):
        raise _fail(name, f"meta.json {path} is not a list of {length or 'some'} numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise _fail(name, f"meta.json {path} holds something that is not a number")
    out = np.array(value, dtype=np.float64)
    if not np.isfinite(out).all():
        raise _fail(name, f"meta.json {path} holds a non-finite number")
    return out


class _Archive:
    """The entries of a .sog zip, each read no larger than its use allows."""

    def __init__(self, data: bytes, name: str) -> None:
        self.name, self.size = name, len(data)
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            self.entries = {i.filename: i for i in self.zip.infolist()}
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as e:
            raise _fail(name, f"not a .sog file: not a readable zip archive ({e})") from None

    def read(self, entry: str, limit: int) -> bytes:
        info = self.entries.get(entry)
        if info is None:
            raise _fail(self.name, f"the .sog has no {entry!r}")
        if info.file_size > limit:
            raise _fail(self.name, f"the .sog entry {entry!r} claims {info.file_size} bytes, more than its splats need ({limit})")
        try:
            return self.zip.read(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError) as e:
            raise _fail(self.name, f"the .sog entry {entry!r} cannot be read ({e})") from None
        except Exception as e:  # zlib.error and friends from a corrupt deflated entry
            raise _fail(self.name, f"the .sog entry {entry!r} is corrupt ({type(e).__name__}: {e})") from None

    def image(self, entry: str, *, min_texels: int, max_texels: int, width: int | None = None) -> np.ndarray:
        """The RGBA pixels of a lossless WebP entry, its size checked before it is decoded. [H * W, 4] u8"""
        from PIL import Image, UnidentifiedImageError

        data = self.read(entry, 5 * max_texels + (1 << 20))
        try:
            with Image.open(io.BytesIO(data), formats=["WEBP"]) as img:
                w, h = img.size
                if (width is not None and w != width) or not min_texels <= w * h <= max_texels:
                    raise _fail(self.name, f"the .sog image {entry!r} is {w}x{h}; meta.json implies {min_texels} to {max_texels} texels")
                pixels = np.asarray(img.convert("RGBA"))
        except FormatError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise _fail(self.name, f"the .sog image {entry!r} is not a readable WebP ({e})") from None
        return pixels.reshape(-1, 4)


def _codes(book: np.ndarray, labels: np.ndarray, name: str, what: str) -> np.ndarray:
    if labels.size and int(labels.max()) >= len(book):
        raise _fail(name, f"the .sog {what} image indexes entry {int(labels.max())} of a {len(book)}-entry codebook")
    return book[labels]


def decode_sog(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Splats (world frame) from the bytes of a .sog file (version 2)."""
    if not data:
        raise FormatError(f"{name}: the file is empty")
    z = _Archive(data, name)
    text = z.read("meta.json", _MAX_META)  # its own FormatError, not one about JSON
    try:
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail(name, f"the .sog's meta.json is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(meta, dict):
        raise _fail(name, "the .sog's meta.json is not an object")
    if meta.get("version") != 2:
        raise _fail(name, f"SOG meta.json version {meta.get('version', '(none: legacy version 1)')!r}; worldgen reads version 2")
    n = meta.get("count")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_POINTS or n > 1024 * len(data):
        raise _fail(name, f"meta.json count {n!r} is not a splat count the {len(data)}-byte file can hold")
    width, height = grid(n)
    texels = {"min_texels": n, "max_texels": max(width * height, 2 * n + 4096)}
    lo, hi = z.image("means_l.webp", **texels)[:n], z.image("means_u.webp", **texels)[:n]
    mins, maxs = _numbers(meta, "means.mins", name, length=3), _numbers(meta, "means.maxs", name, length=3)
    span = np.where(maxs - mins != 0, maxs - mins, 1.0)
    logpos = mins + span * ((lo[:, :3].astype(np.float64) + 256.0 * hi[:, :3]) / 65535)
    with np.errstate(over="ignore"):
        means = np.sign(logpos) * np.expm1(np.abs(logpos))

    quats = z.image("quats.webp", **texels)[:n].astype(np.int64)
    tag = quats[:, 3] - 252
    valid = (tag >= 0) & (tag <= 3)
    largest = np.where(valid, tag, 0)
    vals = (quats[:, :3] / 255.0 * 2 - 1) / _SQRT2
    q = np.zeros((n, 4))
    rows = np.arange(n)
    q[rows[:, None], _OTHERS[largest]] = vals
    q[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - (vals**2).sum(axis=1)))
    q[~valid] = (1.0, 0.0, 0.0, 0.0)  # as splat-transform: a texel with no valid tag is the identity

    scales = _codes(_numbers(meta, "scales.codebook", name), z.image("scales.webp", **texels)[:n, :3], name, "scales")
    sh0_tex = z.image("sh0.webp", **texels)[:n]
    sh0 = _codes(_numbers(meta, "sh0.codebook", name), sh0_tex[:, :3], name, "sh0")
    shn = _read_shn(z, meta, n, texels, name)
    with np.errstate(over="ignore"):
        a = make_arrays(
            name,
            means=means,
            quats=q,
            scales=np.exp(scales),
            opacities=sh0_tex[:, 3] / 255.0,
            sh0=sh0.reshape(n, 1, 3),
            shN=shn,
            on_invalid=on_invalid,
        )
    return to_world(a, up, name)


def _read_shn(z: _Archive, meta: dict, n: int, texels: dict[str, int], name: str) -> np.ndarray:
    """The higher SH bands of a .sog: labels -> palette -> codebook. [N, K, 3], a view of channel-major memory"""
    info = meta.get("shN")
    if info is None:
        return np.zeros((n, 0, 3))
    bands, count = (info.get("bands"), info.get("count")) if isinstance(info, dict) else (None, None)
    if bands not in (1, 2, 3) or not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PALETTE:
        raise _fail(name, f"meta.json shN has bands {bands!r} and count {count!r}; a .sog holds bands 1-3 and 1-{MAX_PALETTE} entries")
    k = {1: 3, 2: 8, 3: 15}[bands]
    files = info.get("files")
    if not isinstance(files, list) or len(files) != 2 or not all(isinstance(f, str) for f in files):
        raise _fail(name, "meta.json shN.files is not the two image names")
    book = _numbers(meta, "shN.codebook", name).astype(np.float32)
    rows = math.ceil(count / 64)
    centroids = z.image(files[0], min_texels=64 * k * rows, max_texels=64 * k * (rows + 1), width=64 * k)
    labels_tex = z.image(files[1], **texels)[:n].astype(np.int64)
    labels = labels_tex[:, 0] + 256 * labels_tex[:, 1]
    palette = _codes(book, centroids[: count * k, :3], name, "shN centroids").reshape(count, k, 3)
    # channel-major rows, and one zero row for labels past the palette (as splat-transform: no higher SH)
    palette = np.concatenate([palette.transpose(0, 2, 1), np.zeros((1, 3, k), np.float32)])
    return np.take(palette, np.minimum(labels, count), axis=0).transpose(0, 2, 1)  # [N, K, 3] view of [N, 3, K]


def load_sog(path: str | os.PathLike, *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Read a PlayCanvas .sog (version 2, the .ply frame by default) into world-frame splats."""
    return decode_sog(read_bytes(path), str(path), up=up, on_invalid=on_invalid)


__all__ = ["DEFAULT_UP", "codebook", "decode_sog", "encode_sog", "grid", "load_sog", "morton_order", "palette_size", "save_sog", "sh_palette"]
