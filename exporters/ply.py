"""The 3DGS .ply format: one `vertex` element of float32 properties.

Property order as the original 3DGS code, nerfstudio and gsplat write it::

    x y z [nx ny nz] f_dc_0..2 f_rest_0..(3K-1) opacity scale_0..2 rot_0..3

``f_rest`` is channel-major (all K red coefficients, then green, then blue),
``opacity`` is a logit, ``scale_*`` are log standard deviations and ``rot_*``
is a w, x, y, z quaternion, not necessarily normalised.

Frame: by default the file is written in the OpenCV/COLMAP frame (``up="-y"``:
x right, y down, z forward), the frame of 3DGS-trained scenes, which SuperSplat
and antimatter15-style viewers open upright. ``up="z"`` writes worldgen's +Z-up
frame as is. Values round-trip exactly through a file in the same frame
(means, SH and unit quaternions bit-exact; opacities and scales to float32
rounding of their logit/log).

The reader parses the header itself and reads the body with one
`np.frombuffer` (binary little or big endian) or one tokenised pass (ascii);
it accepts files with or without normals, any property order, float or double
properties and extra properties, and SH degree 0-3. The slow twins
`_encode_ply_reference` / `_decode_ply_reference` go through plyfile.
"""

from __future__ import annotations

import io
import os
import re
from typing import TYPE_CHECKING

import numpy as np

from exporters.common import (
    CHUNK,
    REST_COEFFS,
    OnInvalid,
    SplatArrays,
    as_arrays,
    check_writable,
    f64,
    logit64,
    make_arrays,
    read_bytes,
    sigmoid64,
    write_array,
)
from exporters.frames import Up, to_file_frame, to_world
from worldgen.errors import FormatError
from worldgen.io import atomic_open

if TYPE_CHECKING:
    from worldgen.gaussians import Gaussians

DEFAULT_UP: Up = "-y"
MAX_SH_DEGREE = 3

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "ascii"}
_MAX_HEADER = 1 << 20
_MAX_LOGIT = 30.0  # |logit(opacity)| written; sigmoid(30) is 1 in float32
_MIN_LOG_SCALE = -40.0  # log(scale) written for a zero scale
_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3")  # fmt: skip


# -- writing ---------------------------------------------------------------------------


def property_names(sh_degree: int, *, normals: bool = False) -> list[str]:
    """The vertex properties a 3DGS .ply of this SH degree holds, in file order."""
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else [])
    names += [f"f_dc_{i}" for i in range(3)] + [f"f_rest_{i}" for i in range(3 * REST_COEFFS[sh_degree])]
    return names + ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]


def _body(a: SplatArrays, *, normals: bool, out: np.ndarray | None = None) -> np.ndarray:
    """The vertex rows as one float32 matrix, filled column block by column block (into `out` if given). [N, P]"""
    n, k = len(a), a.shN.shape[1]
    c = 6 if normals else 3
    width = c + 3 + 3 * k + 1 + 3 + 4
    body = np.empty((n, width), dtype=np.float32) if out is None else out[:n]
    body[:, 0:3] = a.means
    if normals:
        body[:, 3:6] = 0.0
    body[:, c : c + 3] = a.sh0[:, 0]
    c += 3
    if k:  # channel-major: all K red coefficients, then green, then blue
        body[:, c : c + 3 * k].reshape(n, 3, k)[:] = a.shN.transpose(0, 2, 1)
    c += 3 * k
    with np.errstate(divide="ignore"):  # opacity 0 / scale 0 are clipped to finite values viewers can read
        body[:, c] = np.clip(logit64(a.opacities), -_MAX_LOGIT, _MAX_LOGIT)
        body[:, c + 1 : c + 4] = np.maximum(np.log(f64(a.scales)), _MIN_LOG_SCALE)
    body[:, c + 4 : c + 8] = a.quats
    return body


def _header(n: int, names: list[str]) -> bytes:
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    lines += [f"property float {name}" for name in names] + ["end_header", ""]
    return "\n".join(lines).encode("ascii")


def encode_ply(a: SplatArrays | Gaussians, *, up: Up = DEFAULT_UP, normals: bool = False) -> bytes:
    """The .ply file of `a` as bytes (binary little endian, float32)."""
    a = to_file_frame(check_writable(as_arrays(a)), up)
    return _header(len(a), property_names(a.sh_degree, normals=normals)) + _body(a, normals=normals).tobytes()


def save_ply(a: SplatArrays, path: str | os.PathLike, *, up: Up = DEFAULT_UP, normals: bool = False) -> None:
    """Write `a` as a 3DGS .ply, atomically. `normals=True` adds zero nx, ny, nz as the original 3DGS code does.

    The rows are filled and written CHUNK at a time in one buffer.
    """
    a = to_file_frame(check_writable(a), up)
    names = property_names(a.sh_degree, normals=normals)
    buf = np.empty((min(len(a), CHUNK), len(names)), dtype=np.float32)
    with atomic_open(path) as f:
        f.write(_header(len(a), names))
        for start in range(0, len(a), CHUNK):
            write_array(f, _body(a.take(slice(start, start + CHUNK)), normals=normals, out=buf))


def _encode_ply_reference(a: SplatArrays | Gaussians, *, up: Up = DEFAULT_UP, normals: bool = False) -> bytes:
    """Slow twin of `encode_ply`: builds the file with plyfile, property by property."""
    from plyfile import PlyData, PlyElement

    a = to_file_frame(check_writable(as_arrays(a)), up)
    names = property_names(a.sh_degree, normals=normals)
    rows = np.zeros(len(a), dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        rows[name] = _body(a, normals=normals)[:, i]
    buf = io.BytesIO()
    PlyData([PlyElement.describe(rows, "vertex")], text=False, byte_order="<").write(buf)
    return buf.getvalue()


# -- reading ---------------------------------------------------------------------------


class _Element:
    def __init__(self, name: str, count: int) -> None:
        self.name, self.count = name, count
        self.props: list[tuple[str, str]] = []  # (name, numpy type) for scalar properties
        self.has_list = False


def _parse_header(data: bytes, name: str) -> tuple[str, list[_Element], int]:
    """(format, elements, body offset) of a .ply file."""
    if not data.startswith(b"ply"):
        raise FormatError(f"{name}: not a .ply file (missing the 'ply' magic line)")
    match = re.search(rb"end_header[ \t]*\r?\n", data[:_MAX_HEADER])
    if match is None:
        raise FormatError(f"{name}: no 'end_header' line in the first {_MAX_HEADER} bytes (truncated or not a .ply)")
    try:
        text = data[: match.start()].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError(f"{name}: the .ply header is not ASCII text") from None
    fmt, elements = None, []
    for lineno, line in enumerate(text.splitlines()[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = _FORMATS[words[1]]
            elif words[0] == "element":
                count = int(words[2])
                if count < 0 or len(words) != 3:
                    raise ValueError
                if count > len(data):  # every element takes at least a byte: a lying header
                    raise FormatError(f"{name}: truncated or lying header: {count} {words[1]} elements in a {len(data)}-byte file")
                elements.append(_Element(words[1], count))
            elif words[0] == "property" and elements:
                if words[1] == "list":
                    _TYPES[words[2]], _TYPES[words[3]], words[4]  # noqa: B018  (validate)
                    elements[-1].has_list = True
                    elements[-1].props.append((words[4], "list"))
                else:
                    elements[-1].props.append((words[2], _TYPES[words[1]]))
            else:
                raise ValueError
        except FormatError:
            raise
        except (KeyError, IndexError, ValueError):
            raise FormatError(f"{name}: bad .ply header line {lineno}: {line.strip()[:80]!r}") from None
    if fmt is None:
        raise FormatError(f"{name}: the .ply header has no valid 'format' line")
    return fmt, elements, match.end()


def _vertex_matrix(data: bytes, name: str, fmt: str, elements: list[_Element], offset: int) -> tuple[np.ndarray, list[str]]:
    """The vertex element as a float64-or-float32 matrix [N, P] and its property names."""
    names = {e.name for e in elements}
    if "face" in names or "edge" in names:
        raise FormatError(f"{name}: this .ply is a mesh (it has faces or edges), not Gaussian splats")
    if "chunk" in names:
        raise FormatError(f"{name}: compressed .ply (SuperSplat 'chunk' layout) is not supported; decompress it first")
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None:
        raise FormatError(f"{name}: the .ply has no 'vertex' element")
    props = [p for p, _ in vertex.props]
    missing = [p for p in _REQUIRED if p not in props]
    if missing:
        raise FormatError(
            f"{name}: not a 3DGS splat .ply: the vertex element lacks {', '.join(missing)} (a mesh or point cloud?)"
        )
    if len(set(props)) != len(props):
        raise FormatError(f"{name}: the .ply vertex element names a property twice")
    if vertex.has_list:
        raise FormatError(f"{name}: the .ply vertex element has list properties, which 3DGS files never have")
    n = vertex.count
    if fmt == "ascii":
        if elements[0] is not vertex:
            raise FormatError(f"{name}: ascii .ply files must start with the vertex element")
        tokens = data[offset:].split(maxsplit=n * len(props))[: n * len(props)]
        if len(tokens) < n * len(props):
            raise FormatError(f"{name}: truncated: the header promises {n} vertices but the ascii body holds fewer")
        try:
            return np.array(tokens, dtype=np.float64).reshape(n, len(props)), props
        except ValueError:
            raise FormatError(f"{name}: the ascii .ply body holds something that is not a number") from None
    for e in elements:
        if e is vertex:
            break
        if e.has_list:
            raise FormatError(f"{name}: element {e.name!r} with list properties comes before the vertices")
        offset += e.count * sum(np.dtype(t).itemsize for _, t in e.props)
    dtype = np.dtype([(p, fmt + t) for p, t in vertex.props])
    available = len(data) - offset
    if available < 0 or n * dtype.itemsize > available:
        raise FormatError(
            f"{name}: truncated or lying header: {n} vertices need {n * dtype.itemsize} bytes, the file holds {max(available, 0)}"
        )
    kinds = {t for _, t in vertex.props}
    if len(kinds) == 1:  # the usual case: all float32 (or all double): one strided view, no per-field copies
        return np.frombuffer(data, dtype=fmt + kinds.pop(), count=n * len(props), offset=offset).reshape(n, len(props)), props
    rows = np.frombuffer(data, dtype=dtype, count=n, offset=offset)
    return np.stack([rows[p].astype(np.float64) for p in props], axis=1) if n else np.zeros((0, len(props))), props


def _sh_rest_columns(props: list[str], name: str) -> list[int]:
    rest = sorted((int(p[7:]), i) for i, p in enumerate(props) if re.fullmatch(r"f_rest_\d+", p))
    if [r for r, _ in rest] != list(range(len(rest))) or len(rest) not in [3 * k for k in REST_COEFFS.values()]:
        raise FormatError(f"{name}: {len(rest)} f_rest properties; a 3DGS .ply has f_rest_0.. with 0, 9, 24 or 45 of them")
    return [i for _, i in rest]


def _rest_to_shn(rest: np.ndarray, k: int) -> np.ndarray:
    """Channel-major f_rest columns [N, 3K] -> shN [N, K, 3], seen coefficient-major without a copy where it can be.

    The result is a transposed view of channel-major memory (the file's own
    bytes for float32 files), the layout `exporters.frames.rotate` and the
    .ply writer work in.
    """
    return np.asarray(rest, dtype=np.float32).reshape(rest.shape[0], 3, k).transpose(0, 2, 1)


def decode_ply(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Splats (world frame) from the bytes of a 3DGS .ply; `name` is used in error messages."""
    if not data:
        raise FormatError(f"{name}: the file is empty")
    fmt, elements, offset = _parse_header(data, name)
    mat, props = _vertex_matrix(data, name, fmt, elements, offset)
    col = {p: i for i, p in enumerate(props)}
    rest = _sh_rest_columns(props, name)
    n, k = mat.shape[0], len(rest) // 3

    def take(names: list[str] | list[int]) -> np.ndarray:
        idx = [col[c] if isinstance(c, str) else c for c in names]
        if idx == list(range(idx[0], idx[0] + len(idx))) if idx else True:
            return mat[:, idx[0] : idx[0] + len(idx)] if idx else mat[:, :0]  # a view: no copy yet
        return mat[:, idx]

    with np.errstate(over="ignore"):
        a = make_arrays(
            name,
            means=take(["x", "y", "z"]),
            quats=take(["rot_0", "rot_1", "rot_2", "rot_3"]),
            scales=np.exp(take(["scale_0", "scale_1", "scale_2"]).astype(np.float64)),
            opacities=sigmoid64(mat[:, col["opacity"]]),
            sh0=take(["f_dc_0", "f_dc_1", "f_dc_2"]).reshape(n, 1, 3),
            shN=_rest_to_shn(take(rest), k),
            on_invalid=on_invalid,
        )
    return to_world(a, up, name)


def load_ply(path: str | os.PathLike, *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Read a 3DGS .ply (binary little/big endian or ascii) into world-frame splats."""
    return decode_ply(read_bytes(path), str(path), up=up, on_invalid=on_invalid)


def _decode_ply_reference(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP) -> SplatArrays:
    """Slow twin of `decode_ply` through plyfile (trusted inputs only: no hardening)."""
    from plyfile import PlyData

    v = PlyData.read(io.BytesIO(data))["vertex"].data
    props = list(v.dtype.names)
    rest = _sh_rest_columns(props, name)
    n, k = len(v), len(rest) // 3
    col = lambda names: np.stack([v[p].astype(np.float64) for p in names], axis=1)  # noqa: E731
    a = make_arrays(
        name,
        means=col(["x", "y", "z"]),
        quats=col(["rot_0", "rot_1", "rot_2", "rot_3"]),
        scales=np.exp(col(["scale_0", "scale_1", "scale_2"])),
        opacities=sigmoid64(v["opacity"]),
        sh0=col(["f_dc_0", "f_dc_1", "f_dc_2"]).reshape(n, 1, 3),
        shN=col([props[i] for i in rest]).reshape(n, 3, k).transpose(0, 2, 1),
    )
    return to_world(a, up, name)


__all__ = ["DEFAULT_UP", "decode_ply", "encode_ply", "load_ply", "property_names", "save_ply"]
