"""Binary glTF (.glb) with the KHR_gaussian_splatting extension (release candidate, ellipse kernel).

One mesh with one POINTS primitive whose attributes hold the splats, one
accessor and one buffer view each, in the order splat-transform writes them::

    POSITION                                   VEC3 float (with min / max)
    COLOR_0                                    VEC4 unsigned byte normalized (point-cloud fallback)
    KHR_gaussian_splatting:ROTATION            VEC4 float, x y z w, unit length
    KHR_gaussian_splatting:SCALE               VEC3 float, linear standard deviations
    KHR_gaussian_splatting:OPACITY             SCALAR float in [0, 1]
    KHR_gaussian_splatting:SH_DEGREE_0_COEF_0  VEC3 float, rgb
    KHR_gaussian_splatting:SH_DEGREE_l_COEF_m  VEC3 float, m = 0 .. 2l (order -l .. l), l = 1 .. degree

and the primitive's extension object ``{"kernel": "ellipse", "colorSpace":
"srgb_rec709_display", "sortingMethod": "cameraDistance", "projection":
"perspective"}``. Values are float32 and exact (positions, SH), or float32
roundings of worldgen's values (rotations renormalised in float64).

Where the extension leaves a choice, the writer does what splat-transform 3.7
does: one accessor per attribute, tightly packed, no node transform, no
material. One thing differs: COLOR_0 holds *linear* colour, the sRGB-decoded
``clip(0.5 + C0 * sh0)``, with the opacity as alpha, because glTF defines
COLOR_0 as linear and the extension's fallback note says so; splat-transform
stores the sRGB values themselves.

Frame: the glTF frame (``up="gltf"``: +Y up, +Z forward, -X right), the
frame the spec recommends and splat-transform writes (its .glb of a .ply is
that .ply turned 180 degrees about the up axis, and so is ours).

The reader takes float attributes and the quantised forms the extension allows
(normalized signed byte / short rotations, unsigned byte / short scales and
opacities), byte strides, several splat primitives and node transforms made of
translation, rotation and uniform scale. It refuses, with a FormatError,
external or data-URI buffers, sparse accessors, compression extensions, other
kernels and colour spaces, and files whose counts or offsets the file's bytes
cannot hold.
"""

from __future__ import annotations

import json
import os
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

from exporters.common import (
    C0,
    REST_COEFFS,
    OnInvalid,
    SplatArrays,
    as_arrays,
    check_writable,
    f64,
    make_arrays,
    read_bytes,
    write_array,
)
from exporters.frames import Up, quat_left_matrix, rotmat_to_quat, sh_rotation, to_file_frame, to_world
from worldgen.errors import FormatError
from worldgen.io import atomic_open

if TYPE_CHECKING:
    from worldgen.gaussians import Gaussians

DEFAULT_UP: Up = "gltf"
MAX_SH_DEGREE = 3
EXTENSION = "KHR_gaussian_splatting"
GLB_MAGIC, GLB_VERSION = 0x46546C67, 2  # "glTF"
CHUNK_JSON, CHUNK_BIN = 0x4E4F534A, 0x004E4942
FLOAT, BYTE, UNSIGNED_BYTE, SHORT, UNSIGNED_SHORT = 5126, 5120, 5121, 5122, 5123
ARRAY_BUFFER = 34962
PRIMITIVE_EXTENSION = {"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "sortingMethod": "cameraDistance", "projection": "perspective"}

_COMPONENT = {FLOAT: "<f4", BYTE: "i1", UNSIGNED_BYTE: "u1", SHORT: "<i2", UNSIGNED_SHORT: "<u2"}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_MAX_JSON = 64 << 20


def sh_attribute(degree: int, m: int) -> str:
    return f"{EXTENSION}:SH_DEGREE_{degree}_COEF_{m}"


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _pad4(n: int) -> int:
    return (n + 3) & ~3


# -- writing ---------------------------------------------------------------------------


def _attributes(a: SplatArrays) -> list[tuple[str, np.ndarray, int, str, bool]]:
    """(semantic, [N, width] array, component type, accessor type, normalized) per attribute, in file order."""
    n = len(a)
    q = f64(a.quats)
    q = (q / np.linalg.norm(q, axis=1, keepdims=True))[:, [1, 2, 3, 0]]  # w x y z -> x y z w
    rgba = np.empty((n, 4))
    rgba[:, :3] = _srgb_to_linear(np.clip(0.5 + C0 * f64(a.sh0[:, 0]), 0.0, 1.0))
    rgba[:, 3] = a.opacities
    out = [
        ("POSITION", a.means, FLOAT, "VEC3", False),
        ("COLOR_0", np.round(rgba * 255).astype(np.uint8), UNSIGNED_BYTE, "VEC4", True),
        (f"{EXTENSION}:ROTATION", q, FLOAT, "VEC4", False),
        (f"{EXTENSION}:SCALE", a.scales, FLOAT, "VEC3", False),
        (f"{EXTENSION}:OPACITY", a.opacities[:, None], FLOAT, "SCALAR", False),
        (sh_attribute(0, 0), a.sh0[:, 0], FLOAT, "VEC3", False),
    ]
    k = 0
    for degree in range(1, a.sh_degree + 1):
        for m in range(2 * degree + 1):
            out.append((sh_attribute(degree, m), a.shN[:, k], FLOAT, "VEC3", False))
            k += 1
    return out


def _layout(a: SplatArrays) -> tuple[dict, list[tuple[int, np.ndarray]], int]:
    """(glTF JSON, (byte offset, array) per buffer view, binary chunk length)."""
    import worldgen

    n = len(a)
    views, accessors, attributes, parts = [], [], {}, []
    offset = 0
    for i, (semantic, values, component, kind, normalized) in enumerate(_attributes(a)):
        data = np.ascontiguousarray(values, dtype=_COMPONENT[component])
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": data.nbytes, "target": ARRAY_BUFFER})
        accessor: dict[str, Any] = {"bufferView": i, "byteOffset": 0, "componentType": component, "count": n, "type": kind}
        if normalized:
            accessor["normalized"] = True
        if semantic == "POSITION":  # glTF requires POSITION bounds
            lo, hi = (data.min(axis=0), data.max(axis=0)) if n else (np.zeros(3), np.zeros(3))
            accessor["min"], accessor["max"] = [float(v) for v in lo], [float(v) for v in hi]
        accessors.append(accessor)
        attributes[semantic] = i
        parts.append((offset, data))
        offset = _pad4(offset + data.nbytes)
    doc = {
        "asset": {"version": "2.0", "generator": f"worldgen {worldgen.__version__}"},
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes, "mode": 0, "extensions": {EXTENSION: dict(PRIMITIVE_EXTENSION)}}]}],
        "buffers": [{"byteLength": offset}],
        "bufferViews": views,
        "accessors": accessors,
    }
    return doc, parts, offset


def _glb_pieces(a: SplatArrays) -> list[bytes | np.ndarray]:
    """The .glb file as a list of byte strings and arrays to write one after the other."""
    doc, parts, bin_length = _layout(a)
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (_pad4(len(text)) - len(text))  # the JSON chunk is padded with spaces
    total = 12 + 8 + len(text) + 8 + bin_length
    pieces: list[bytes | np.ndarray] = [struct.pack("<III", GLB_MAGIC, GLB_VERSION, total), struct.pack("<II", len(text), CHUNK_JSON), text]
    pieces.append(struct.pack("<II", bin_length, CHUNK_BIN))
    end = 0
    for offset, data in parts:
        pieces += [b"\0" * (offset - end), data]
        end = offset + data.nbytes
    pieces.append(b"\0" * (bin_length - end))
    return pieces


def encode_gltf(a: SplatArrays | Gaussians, *, up: Up = DEFAULT_UP) -> bytes:
    """The .glb file of `a` as bytes."""
    pieces = _glb_pieces(to_file_frame(check_writable(as_arrays(a)), up))
    return b"".join(p if isinstance(p, bytes) else p.tobytes() for p in pieces)


def save_gltf(a: SplatArrays, path: str | os.PathLike, *, up: Up = DEFAULT_UP) -> None:
    """Write `a` as a KHR_gaussian_splatting .glb, atomically."""
    pieces = _glb_pieces(to_file_frame(check_writable(a), up))
    with atomic_open(path) as f:
        for p in pieces:
            f.write(p) if isinstance(p, bytes) else write_array(f, p)


# -- reading ---------------------------------------------------------------------------


class _Doc:
    """The parsed glTF JSON and binary chunk, with typed look-ups that fail as FormatErrors."""

    def __init__(self, name: str, doc: Any, binary: memoryview | None) -> None:
        if not isinstance(doc, dict):
            raise FormatError(f"{name}: the glTF JSON is not an object")
        self.name, self.doc, self.binary = name, doc, binary

    def fail(self, message: str) -> FormatError:
        return FormatError(f"{self.name}: {message}")

    def field(self, obj: Any, key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(f"glTF {where} is not an object")
        if key not in obj:
            if default is ...:
                raise self.fail(f"glTF {where} has no {key!r}")
            return default
        value = obj[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))):
            raise self.fail(f"glTF {where}.{key} has the wrong type ({type(value).__name__})")
        return value

    def index(self, obj: Any, key: str, array: str, where: str, default: Any = ...) -> Any:
        i = self.field(obj, key, int, where, default)
        if i is None or i is default:
            return i
        items = self.field(self.doc, array, list, "root", [])
        if not 0 <= i < len(items):
            raise self.fail(f"glTF {where}.{key} = {i} names no entry of {array} ({len(items)} of them)")
        return items[i]

    def accessor(self, index: Any, count: int | None, where: str) -> np.ndarray:
        """An accessor's values as float32 (a view of the file for float data), dequantised when normalized. [count, width]"""
        accessors = self.field(self.doc, "accessors", list, "root")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(accessors):
            raise self.fail(f"{where} names no accessor ({index!r})")
        acc, at = accessors[index], f"accessors[{index}]"
        if not isinstance(acc, dict):
            raise self.fail(f"glTF {at} is not an object")
        if "sparse" in acc:
            raise self.fail(f"{at} is sparse; sparse accessors are not supported")
        n = self.field(acc, "count", int, at)
        if n < 0 or (count is not None and n != count):
            raise self.fail(f"{at} holds {n} elements, the primitive's POSITION {count}")
        component = self.field(acc, "componentType", int, at)
        kind = self.field(acc, "type", str, at)
        if component not in _COMPONENT or kind not in _WIDTH:
            raise self.fail(f"{at} has an unsupported componentType {component} / type {kind!r}")
        dtype, width = np.dtype(_COMPONENT[component]), _WIDTH[kind]
        view = self.index(acc, "bufferView", "bufferViews", at, None)
        if view is None:
            raise self.fail(f"{at} has no bufferView (an all-zero accessor is not a splat attribute)")
        buf = self.index(view, "buffer", "buffers", f"{at}.bufferView")
        if not isinstance(buf, dict) or "uri" in buf or self.binary is None:
            raise self.fail("only a .glb's own binary chunk is read; external or data-URI buffers are not supported")
        start = self.field(view, "byteOffset", int, "bufferView", 0) + self.field(acc, "byteOffset", int, at, 0)
        length = self.field(view, "byteLength", int, "bufferView")
        stride = self.field(view, "byteStride", int, "bufferView", 0) or dtype.itemsize * width
        end_of_view = self.field(view, "byteOffset", int, "bufferView", 0) + length
        element = dtype.itemsize * width
        need = start + (n - 1) * stride + element if n else start
        if start % dtype.itemsize or stride % dtype.itemsize:
            raise self.fail(f"{at} is not aligned to its component size")
        if min(start, length, stride) < 0 or stride < element or end_of_view > len(self.binary) or need > end_of_view:
            raise self.fail(f"{at}: {n} elements of {element} bytes (stride {stride}) at byte {start} do not fit the file's binary chunk")
        raw = np.ndarray((n, width), dtype=dtype, buffer=self.binary, offset=start, strides=(stride, dtype.itemsize))
        if component == FLOAT:
            return raw
        values = raw.astype(np.float32)
        if self.field(acc, "normalized", bool, at, False):  # the glTF rule: max(c / (2^(b-1) - 1), -1) or c / (2^b - 1)
            values /= {BYTE: 127.0, UNSIGNED_BYTE: 255.0, SHORT: 32767.0, UNSIGNED_SHORT: 65535.0}[component]
            np.maximum(values, -1.0, out=values)
        return values


def _split_glb(data: bytes, name: str) -> tuple[Any, memoryview | None]:
    """(parsed JSON, binary chunk) of a .glb file."""
    if len(data) < 20:
        raise FormatError(f"{name}: truncated .glb: {len(data)} bytes, shorter than its 12-byte header and first chunk header")
    magic, version, length = struct.unpack_from("<III", data)
    if magic != GLB_MAGIC:
        hint = " (a .gltf JSON file? worldgen reads binary .glb only)" if data[:1] == b"{" else ""
        raise FormatError(f"{name}: not a .glb file (no 'glTF' magic){hint}")
    if version != GLB_VERSION:
        raise FormatError(f"{name}: .glb container version {version}; worldgen reads version 2")
    if length != len(data):
        raise FormatError(f"{name}: truncated or lying .glb: the header says {length} bytes, the file holds {len(data)}")
    chunks, offset = [], 12
    while offset < len(data):
        if len(data) - offset < 8:
            raise FormatError(f"{name}: truncated .glb: a chunk header is cut off at byte {offset}")
        size, kind = struct.unpack_from("<II", data, offset)
        if size > len(data) - offset - 8:
            raise FormatError(f"{name}: truncated or lying .glb: a {size}-byte chunk at byte {offset} runs past the end")
        chunks.append((kind, memoryview(data)[offset + 8 : offset + 8 + size]))
        offset += 8 + _pad4(size)
    if not chunks or chunks[0][0] != CHUNK_JSON:
        raise FormatError(f"{name}: the .glb's first chunk is not JSON")
    if len(chunks[0][1]) > _MAX_JSON:
        raise FormatError(f"{name}: a {len(chunks[0][1])}-byte glTF JSON chunk is larger than worldgen reads ({_MAX_JSON})")
    try:
        doc = json.loads(bytes(chunks[0][1]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"{name}: the .glb's JSON chunk is not valid JSON ({str(e)[:80]})") from None
    binary = next((c for k, c in chunks[1:2] if k == CHUNK_BIN), None)
    return doc, binary


def _node_matrix(d: _Doc, node: dict, where: str) -> np.ndarray:
    """A node's local transform. [4, 4]"""
    if "matrix" in node:
        m = d.field(node, "matrix", list, where)
        if len(m) != 16 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m):
            raise d.fail(f"glTF {where}.matrix is not 16 numbers")
        return np.array(m, dtype=np.float64).reshape(4, 4).T  # column-major
    out = np.eye(4)
    t = d.field(node, "translation", list, where, [0.0, 0.0, 0.0])
    r = d.field(node, "rotation", list, where, [0.0, 0.0, 0.0, 1.0])
    s = d.field(node, "scale", list, where, [1.0, 1.0, 1.0])
    if len(t) != 3 or len(r) != 4 or len(s) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in t + r + s):
        raise d.fail(f"glTF {where} has a malformed translation, rotation or scale")
    x, y, z, w = np.array(r, dtype=np.float64) / (np.linalg.norm(r) or 1.0)
    rot = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip
    out[:3, :3] = rot * np.array(s, dtype=np.float64)
    out[:3, 3] = t
    return out


def _splat_primitives(d: _Doc) -> list[tuple[dict, np.ndarray, str]]:
    """(primitive, global transform, where) of every KHR_gaussian_splatting primitive in the default scene."""
    nodes = d.field(d.doc, "nodes", list, "root", [])
    meshes = d.field(d.doc, "meshes", list, "root", [])
    scenes = d.field(d.doc, "scenes", list, "root", [])
    if scenes:
        scene = d.index(d.doc, "scene", "scenes", "root", scenes[0])
        roots = d.field(scene, "nodes", list, "scene", [])
    else:  # no scene: every node that is no other node's child
        children = {c for n in nodes if isinstance(n, dict) for c in n.get("children", []) if isinstance(c, int)}
        roots = [i for i in range(len(nodes)) if i not in children]
    found, stack, seen = [], [(r, np.eye(4)) for r in reversed(roots)], set()
    while stack:
        i, parent = stack.pop()
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(nodes):
            raise d.fail(f"a glTF scene or node names no node ({i!r})")
        if i in seen:
            raise d.fail(f"glTF node {i} appears twice in the scene (a cycle?)")
        seen.add(i)
        node, where = nodes[i], f"nodes[{i}]"
        world = parent @ _node_matrix(d, node, where)
        if "mesh" in node:
            mesh = d.index(node, "mesh", "meshes", where)
            for j, prim in enumerate(d.field(mesh, "primitives", list, f"meshes[{node['mesh']}]")):
                if EXTENSION in d.field(prim, "extensions", dict, "primitive", {}):
                    found.append((prim, world, f"meshes[{node['mesh']}].primitives[{j}]"))
        stack += [(c, world) for c in reversed(d.field(node, "children", list, where, []))]
    if not nodes and meshes:  # meshes without nodes: take them as they are
        for mi, mesh in enumerate(meshes):
            for j, prim in enumerate(d.field(mesh, "primitives", list, f"meshes[{mi}]")):
                if EXTENSION in d.field(prim, "extensions", dict, "primitive", {}):
                    found.append((prim, np.eye(4), f"meshes[{mi}].primitives[{j}]"))
    return found


def _check_extensions(d: _Doc) -> None:
    required = d.field(d.doc, "extensionsRequired", list, "root", [])
    other = [e for e in required if e != EXTENSION]
    if other:
        raise d.fail(f"the glTF requires extensions worldgen does not read: {', '.join(map(str, other))}")
    asset = d.field(d.doc, "asset", dict, "root")
    if not str(d.field(asset, "version", str, "asset")).startswith("2."):
        raise d.fail(f"glTF version {asset['version']!r}; worldgen reads glTF 2.x")


def _read_primitive(d: _Doc, prim: dict, world: np.ndarray, where: str) -> dict[str, np.ndarray]:
    """One splat primitive's fields, in the glTF file frame (its node transform applied)."""
    ext = d.field(prim["extensions"], EXTENSION, dict, f"{where}.extensions")
    kernel, space = d.field(ext, "kernel", str, EXTENSION), d.field(ext, "colorSpace", str, EXTENSION, "srgb_rec709_display")
    if kernel != "ellipse":
        raise d.fail(f"{where}: KHR_gaussian_splatting kernel {kernel!r}; worldgen reads the 'ellipse' kernel")
    if space != "srgb_rec709_display":
        raise d.fail(f"{where}: colorSpace {space!r}; worldgen reads 'srgb_rec709_display' splats")
    if d.field(ext, "extensions", dict, EXTENSION, {}):
        raise d.fail(f"{where}: compressed KHR_gaussian_splatting ({', '.join(ext['extensions'])}) is not supported")
    if d.field(prim, "mode", int, where, 4) != 0:
        raise d.fail(f"{where}: a splat primitive must have mode POINTS (0)")
    attrs = d.field(prim, "attributes", dict, where)
    missing = [s for s in ("POSITION", f"{EXTENSION}:ROTATION", f"{EXTENSION}:SCALE", f"{EXTENSION}:OPACITY", sh_attribute(0, 0)) if s not in attrs]
    if missing:
        raise d.fail(f"{where} lacks the splat attributes {', '.join(missing)}")
    means = d.accessor(attrs["POSITION"], None, f"{where}.POSITION")
    n = len(means)
    get = lambda s, width: _width(d, d.accessor(attrs[s], n, f"{where}.{s}"), width, s)  # noqa: E731
    means = _width(d, means, 3, "POSITION")
    quats = get(f"{EXTENSION}:ROTATION", 4)[:, [3, 0, 1, 2]]  # x y z w -> w x y z
    scales, opacities, sh0 = get(f"{EXTENSION}:SCALE", 3), get(f"{EXTENSION}:OPACITY", 1)[:, 0], get(sh_attribute(0, 0), 3)
    degree = 0
    while degree < MAX_SH_DEGREE and sh_attribute(degree + 1, 0) in attrs:
        degree += 1
    coeffs = [sh_attribute(l, m) for l in range(1, degree + 1) for m in range(2 * l + 1)]
    if any(c not in attrs for c in coeffs) or sh_attribute(degree + 1, 0) in attrs and degree == MAX_SH_DEGREE:
        raise d.fail(f"{where}: partial or unsupported spherical-harmonics attributes (degrees 1-3, every coefficient)")
    channels = np.empty((n, 3, len(coeffs)), dtype=np.float32)  # channel-major memory, as exporters.frames.rotate works in
    for j, c in enumerate(coeffs):
        channels[:, :, j] = get(c, 3)
    shn = channels.transpose(0, 2, 1)
    fields = {"means": means, "quats": quats, "scales": np.abs(scales), "opacities": opacities, "sh0": sh0[:, None], "shN": shn}
    return _transformed(d, fields, world, where)


def _width(d: _Doc, values: np.ndarray, width: int, semantic: str) -> np.ndarray:
    if values.shape[1] != width:
        raise d.fail(f"glTF attribute {semantic} has {values.shape[1]} components, the extension says {width}")
    return values


def _transformed(d: _Doc, f: dict[str, np.ndarray], world: np.ndarray, where: str) -> dict[str, np.ndarray]:
    """Fields with a node transform (translation, rotation, uniform scale) applied."""
    if np.array_equal(world, np.eye(4)):
        return f
    m, t = world[:3, :3], world[:3, 3]
    s = np.linalg.norm(m, axis=0)
    if not np.isfinite(world).all() or abs(world[3] - [0, 0, 0, 1]).max() > 1e-9 or s.min() <= 0:
        raise d.fail(f"{where}: its node transform is not a rigid motion with positive scale")
    if abs(s - s.mean()).max() > 1e-6 * s.mean():
        raise d.fail(f"{where}: a non-uniform node scale {tuple(np.round(s, 6))} cannot be applied to splats")
    r = m / s.mean()
    if abs(r @ r.T - np.eye(3)).max() > 1e-6 or np.linalg.det(r) < 0:
        raise d.fail(f"{where}: its node transform mirrors or shears (not a rotation)")
    degree = {v: k for k, v in REST_COEFFS.items()}[f["shN"].shape[1]]
    shn = f["shN"]
    if shn.shape[1]:
        kron = np.kron(sh_rotation(r, degree), np.eye(3))
        shn = (shn.reshape(len(shn), -1) @ kron.T).reshape(shn.shape)
    return {
        "means": f["means"] @ m.T + t,
        "quats": f["quats"] @ quat_left_matrix(rotmat_to_quat(r)).T,
        "scales": f["scales"] * s.mean(),
        "opacities": f["opacities"],
        "sh0": f["sh0"],
        "shN": shn,
    }


def decode_gltf(data: bytes, name: str = "<bytes>", *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Splats (world frame) from the bytes of a KHR_gaussian_splatting .glb."""
    if not data:
        raise FormatError(f"{name}: the file is empty")
    doc, binary = _split_glb(data, name)
    d = _Doc(name, doc, binary)
    _check_extensions(d)
    prims = _splat_primitives(d)
    if not prims:
        raise d.fail("the .glb holds no KHR_gaussian_splatting primitive (a mesh? worldgen reads splats from .glb)")
    parts = [_read_primitive(d, prim, world, where) for prim, world, where in prims]
    if len(parts) > 1:  # several primitives: one set, SH padded to the highest degree
        k = max(p["shN"].shape[1] for p in parts)
        for p in parts:
            p["shN"] = np.concatenate([p["shN"], np.zeros((len(p["shN"]), k - p["shN"].shape[1], 3), np.float32)], axis=1)
        parts = [{f: np.concatenate([p[f] for p in parts]) for f in parts[0]}]
    with np.errstate(over="ignore", invalid="ignore"):
        a = make_arrays(name, **parts[0], on_invalid=on_invalid)
    return to_world(a, up, name)


def load_gltf(path: str | os.PathLike, *, up: Up = DEFAULT_UP, on_invalid: OnInvalid = "error") -> SplatArrays:
    """Read a KHR_gaussian_splatting .glb (glTF frame by default) into world-frame splats."""
    return decode_gltf(read_bytes(path), str(path), up=up, on_invalid=on_invalid)


def _decode_gltf_reference(data: bytes, *, up: Up = DEFAULT_UP) -> SplatArrays:
    """Slow twin of `decode_gltf` for the files `encode_gltf` writes: struct.unpack per splat, by attribute name."""
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20 : 20 + json_len])
    binary = data[20 + json_len + 8 :]
    prim = doc["meshes"][0]["primitives"][0]["attributes"]

    def rows(semantic: str) -> list[tuple]:
        acc = doc["accessors"][prim[semantic]]
        view = doc["bufferViews"][acc["bufferView"]]
        fmt = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]] * "f"
        size = struct.calcsize("<" + fmt)
        return [struct.unpack_from("<" + fmt, binary, view["byteOffset"] + i * size) for i in range(acc["count"])]

    n = doc["accessors"][prim["POSITION"]]["count"]
    degree = max([l for l in range(1, 4) if sh_attribute(l, 0) in prim], default=0)
    shn = [rows(sh_attribute(l, m)) for l in range(1, degree + 1) for m in range(2 * l + 1)]
    a = make_arrays(
        "<reference>",
        means=np.array(rows("POSITION"), dtype=np.float64).reshape(n, 3),
        quats=np.array([(w, x, y, z) for x, y, z, w in rows(f"{EXTENSION}:ROTATION")], dtype=np.float64).reshape(n, 4),
        scales=np.array(rows(f"{EXTENSION}:SCALE"), dtype=np.float64).reshape(n, 3),
        opacities=np.array(rows(f"{EXTENSION}:OPACITY"), dtype=np.float64).reshape(n),
        sh0=np.array(rows(sh_attribute(0, 0)), dtype=np.float64).reshape(n, 1, 3),
        shN=np.array(shn, dtype=np.float64).reshape(len(shn), n, 3).transpose(1, 0, 2) if shn else np.zeros((n, 0, 3)),
    )
    return to_world(a, up, "<reference>")


__all__ = ["DEFAULT_UP", "EXTENSION", "decode_gltf", "encode_gltf", "load_gltf", "save_gltf", "sh_attribute"]
