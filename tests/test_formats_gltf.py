"""glTF KHR_gaussian_splatting (.glb): the layout the extension sets, exact round trips, other writers' forms, bad input."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from exporters import load, save
from exporters.common import C0, SplatArrays
from exporters.frames import rotmat_to_quat
from exporters.gltf import EXTENSION, _decode_gltf_reference, decode_gltf, encode_gltf, sh_attribute
from tests.conftest import random_gaussians
from worldgen.errors import FormatError

FIELDS = ("means", "quats", "scales", "opacities", "sh0", "shN")
FLOAT, BYTE, UNSIGNED_BYTE, SHORT, UNSIGNED_SHORT = 5126, 5120, 5121, 5122, 5123


def parts(data: bytes) -> tuple[dict, bytes]:
    """(JSON, binary chunk) of a .glb."""
    json_len = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20 : 20 + json_len]), data[20 + json_len + 8 :]


def attribute(doc: dict, binary: bytes, semantic: str) -> np.ndarray:
    acc = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"][semantic]]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = {FLOAT: "<f4", UNSIGNED_BYTE: "u1"}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc["type"]]
    return np.frombuffer(binary, dtype, acc["count"] * width, view["byteOffset"] + acc.get("byteOffset", 0)).reshape(-1, width)


def arrays(g) -> SplatArrays:
    return SplatArrays.from_gaussians(g)


# -- what the writer writes --------------------------------------------------------------------------


@given(n=st.integers(0, 40), degree=st.sampled_from([0, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_round_trip_is_exact_in_the_file_frame(n, degree, seed):
    g = arrays(random_gaussians(n, sh_degree=degree, seed=seed))
    back = decode_gltf(encode_gltf(g, up="z"), up="z")
    assert back.sh_degree == degree
    for f in ("means", "scales", "opacities", "sh0", "shN"):
        np.testing.assert_array_equal(getattr(back, f), getattr(g, f), err_msg=f)
    np.testing.assert_allclose(back.quats, g.quats, atol=1e-7)  # renormalised in float64, stored in float32


@given(n=st.integers(1, 30), degree=st.sampled_from([0, 3]), seed=st.integers(0, 2**16))
def test_round_trip_in_the_default_glTF_frame(n, degree, seed):
    g = arrays(random_gaussians(n, sh_degree=degree, seed=seed))
    back = decode_gltf(encode_gltf(g))
    for f in ("means", "scales", "opacities", "sh0"):  # the frame turn only permutes and negates axes
        np.testing.assert_array_equal(getattr(back, f), getattr(g, f), err_msg=f)
    same = np.minimum(np.abs(back.quats - g.quats).max(axis=1), np.abs(back.quats + g.quats).max(axis=1))
    assert same.max() <= 1e-6  # q and -q: the same rotation
    np.testing.assert_allclose(back.shN, g.shN, atol=1e-6)


def test_the_json_is_what_the_extension_sets():
    g = random_gaussians(7, sh_degree=2, seed=1)
    doc, binary = parts(encode_gltf(g))
    assert doc["asset"]["version"] == "2.0" and doc["extensionsUsed"] == [EXTENSION] and "extensionsRequired" not in doc
    assert doc["scenes"] == [{"nodes": [0]}] and doc["nodes"] == [{"mesh": 0}]  # no node transform
    (prim,) = doc["meshes"][0]["primitives"]
    assert prim["mode"] == 0  # POINTS
    assert prim["extensions"][EXTENSION] == {"kernel": "ellipse", "colorSpace": "srgb_rec709_display",
                                             "sortingMethod": "cameraDistance", "projection": "perspective"}  # fmt: skip
    sh = [sh_attribute(l, m) for l in (1, 2) for m in range(2 * l + 1)]
    assert list(prim["attributes"]) == ["POSITION", "COLOR_0", f"{EXTENSION}:ROTATION", f"{EXTENSION}:SCALE",
                                        f"{EXTENSION}:OPACITY", sh_attribute(0, 0), *sh]  # fmt: skip
    kinds = {"POSITION": "VEC3", "COLOR_0": "VEC4", f"{EXTENSION}:ROTATION": "VEC4", f"{EXTENSION}:SCALE": "VEC3",
             f"{EXTENSION}:OPACITY": "SCALAR"}  # fmt: skip
    for semantic, index in prim["attributes"].items():
        acc = doc["accessors"][index]
        view = doc["bufferViews"][acc["bufferView"]]
        assert acc["type"] == kinds.get(semantic, "VEC3") and acc["count"] == 7
        assert acc["componentType"] == (UNSIGNED_BYTE if semantic == "COLOR_0" else FLOAT)
        assert acc.get("normalized", False) == (semantic == "COLOR_0")
        assert view["byteOffset"] % 4 == 0 and view["target"] == 34962 and "byteStride" not in view
    pos = doc["accessors"][prim["attributes"]["POSITION"]]
    means = attribute(doc, binary, "POSITION")
    assert pos["min"] == means.min(axis=0).tolist() and pos["max"] == means.max(axis=0).tolist()
    assert doc["buffers"] == [{"byteLength": len(binary)}]


def test_values_are_linear_scales_opacities_xyzw_unit_quaternions_in_the_glTF_frame():
    g = random_gaussians(50, sh_degree=1, seed=2)
    doc, binary = parts(encode_gltf(g))
    a = arrays(g)
    np.testing.assert_array_equal(attribute(doc, binary, "POSITION"), a.means[:, [0, 2, 1]] * [-1, 1, 1])  # x -> -x, z up -> y
    np.testing.assert_array_equal(attribute(doc, binary, f"{EXTENSION}:SCALE"), a.scales)
    np.testing.assert_array_equal(attribute(doc, binary, f"{EXTENSION}:OPACITY")[:, 0], a.opacities)
    q = attribute(doc, binary, f"{EXTENSION}:ROTATION")
    np.testing.assert_allclose(np.linalg.norm(q.astype(np.float64), axis=1), 1.0, atol=1e-7)
    turn = rotmat_to_quat(np.array([[-1.0, 0, 0], [0, 0, 1], [0, 1, 0]]))  # the frame turn, w x y z
    expected = torch.from_numpy(np.tile(turn, (50, 1))).float()
    from worldgen.gaussians import quat_multiply

    np.testing.assert_allclose(q[:, [3, 0, 1, 2]], quat_multiply(expected, g.quats).numpy(), atol=1e-6)


def test_color_0_is_the_linear_fallback_colour_with_opacity_as_alpha():
    g = random_gaussians(64, seed=3)
    doc, binary = parts(encode_gltf(g))
    rgba = attribute(doc, binary, "COLOR_0").astype(np.float64) / 255
    srgb = np.clip(0.5 + C0 * g.sh0[:, 0].double().numpy(), 0, 1)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    assert np.abs(rgba[:, :3] - linear).max() <= 0.5 / 255 + 1e-9
    assert np.abs(rgba[:, 3] - g.opacities.double().numpy()).max() <= 0.5 / 255 + 1e-9


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_fast_reader_matches_the_struct_slow_twin(degree):
    data = encode_gltf(random_gaussians(40, sh_degree=degree, seed=degree))
    fast, slow = decode_gltf(data), _decode_gltf_reference(data)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(fast, f), getattr(slow, f), err_msg=f)


def test_save_and_load(tmp_path):
    g = random_gaussians(100, sh_degree=3)
    save(g, tmp_path / "w.glb")
    back = load(tmp_path / "w.glb")
    torch.testing.assert_close(back.means, g.means, atol=0, rtol=0)
    torch.testing.assert_close(back.shN, g.shN, atol=1e-6, rtol=0)
    assert (tmp_path / "w.glb").read_bytes() == encode_gltf(g)


# -- what other writers may write ----------------------------------------------------------------------


def glb(attributes: dict[str, tuple[np.ndarray, int, bool]], *, nodes=None, extension=None, extra=None, prims=1, stride=False) -> bytes:
    """A hand-made .glb: semantic -> (values [N, W], componentType, normalized); optionally interleaved in one view."""
    views, accessors, blob, attrs = [], [], b"", {}
    if stride:  # every attribute of one element side by side in one buffer view (all float32 here)
        n = len(next(iter(attributes.values()))[0])
        stacked = np.concatenate([v.astype("<f4") for v, _, _ in attributes.values()], axis=1)
        views.append({"buffer": 0, "byteOffset": 0, "byteLength": stacked.nbytes, "byteStride": stacked.shape[1] * 4})
        col = 0
        for i, (semantic, (values, _, _)) in enumerate(attributes.items()):
            kind = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}[values.shape[1]]
            accessors.append({"bufferView": 0, "byteOffset": col * 4, "componentType": FLOAT, "count": n, "type": kind})
            attrs[semantic] = i
            col += values.shape[1]
        blob = stacked.tobytes()
    else:
        for i, (semantic, (values, component, normalized)) in enumerate(attributes.items()):
            data = values.astype({FLOAT: "<f4", BYTE: "i1", UNSIGNED_BYTE: "u1", SHORT: "<i2", UNSIGNED_SHORT: "<u2"}[component]).tobytes()
            blob += b"\0" * (-len(blob) % 4)
            views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
            kind = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}[values.shape[1]]
            accessors.append({"bufferView": i, "componentType": component, "count": len(values), "type": kind, "normalized": normalized})
            attrs[semantic] = i
            blob += data
    ext = extension or {"kernel": "ellipse", "colorSpace": "srgb_rec709_display"}
    prim = {"attributes": attrs, "mode": 0, "extensions": {EXTENSION: ext}}
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": nodes or [{"mesh": 0}],
        "meshes": [{"primitives": [prim] * prims}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
        **(extra or {}),
    }
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\0" * (-len(blob) % 4)
    head = struct.pack("<III", 0x46546C67, 2, 28 + len(text) + len(blob))
    return head + struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob


def base_attributes(n=10, seed=0, degree=0) -> dict[str, tuple[np.ndarray, int, bool]]:
    a = arrays(random_gaussians(n, sh_degree=degree, seed=seed))
    out = {
        "POSITION": (a.means, FLOAT, False),
        f"{EXTENSION}:ROTATION": (a.quats[:, [1, 2, 3, 0]], FLOAT, False),
        f"{EXTENSION}:SCALE": (a.scales, FLOAT, False),
        f"{EXTENSION}:OPACITY": (a.opacities[:, None], FLOAT, False),
        sh_attribute(0, 0): (a.sh0[:, 0], FLOAT, False),
    }
    k = 0
    for l in range(1, degree + 1):
        for m in range(2 * l + 1):
            out[sh_attribute(l, m)] = (a.shN[:, k], FLOAT, False)
            k += 1
    return out


def test_reads_the_quantised_forms_the_extension_allows():
    attrs = base_attributes(20, seed=4)
    q = attrs[f"{EXTENSION}:ROTATION"][0]
    attrs[f"{EXTENSION}:ROTATION"] = (np.round(q * 127), BYTE, True)
    attrs[f"{EXTENSION}:OPACITY"] = (np.round(attrs[f"{EXTENSION}:OPACITY"][0] * 65535), UNSIGNED_SHORT, True)
    attrs[f"{EXTENSION}:SCALE"] = (np.round(attrs[f"{EXTENSION}:SCALE"][0] * 255), UNSIGNED_BYTE, True)
    exact = decode_gltf(glb(base_attributes(20, seed=4)), up="z")
    got = decode_gltf(glb(attrs), up="z")
    assert np.abs(got.opacities - exact.opacities).max() <= 0.5 / 65535 + 1e-7
    assert np.abs(got.scales - exact.scales).max() <= 0.5 / 255 + 1e-7
    same_sign = lambda q: q * np.where(q[:, :1] < 0, -1, 1)  # noqa: E731
    assert np.abs(same_sign(got.quats) - same_sign(exact.quats)).max() <= 1.5 / 127


def test_reads_interleaved_attributes_several_primitives_and_higher_sh():
    attrs = base_attributes(12, seed=5, degree=2)
    plain = decode_gltf(glb(attrs), up="z")
    interleaved = decode_gltf(glb(attrs, stride=True), up="z")
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(interleaved, f), getattr(plain, f), err_msg=f)
    twice = decode_gltf(glb(attrs, prims=2), up="z")
    assert len(twice) == 24 and twice.sh_degree == 2
    np.testing.assert_array_equal(twice.means[12:], plain.means)


def test_applies_node_transforms_rotation_translation_and_uniform_scale():
    attrs = base_attributes(15, seed=6, degree=1)
    plain = decode_gltf(glb(attrs), up="z")
    c = np.sqrt(0.5)
    nodes = [{"children": [1], "translation": [1.0, 2.0, 3.0]}, {"mesh": 0, "rotation": [0.0, c, 0.0, c], "scale": [2.0, 2.0, 2.0]}]
    moved = decode_gltf(glb(attrs, nodes=nodes), up="z")
    ry = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])  # 90 degrees about y
    np.testing.assert_allclose(moved.means, 2 * plain.means @ ry.T + [1, 2, 3], atol=1e-5)
    np.testing.assert_allclose(moved.scales, 2 * plain.scales, rtol=1e-6)
    g = plain.to_gaussians().to(dtype=torch.float64).transform(torch.from_numpy(ry))
    np.testing.assert_allclose(moved.quats, g.quats.numpy(), atol=1e-6)
    np.testing.assert_allclose(moved.shN, g.shN.numpy(), atol=1e-6)
    matrix = np.eye(4)
    matrix[:3, :3] = 2 * ry
    matrix[:3, 3] = [1, 2, 3]
    as_matrix = decode_gltf(glb(attrs, nodes=[{"mesh": 0, "matrix": matrix.T.reshape(-1).tolist()}]), up="z")
    np.testing.assert_allclose(as_matrix.means, moved.means, atol=1e-5)


def test_reads_with_a_warning_free_default_frame():
    a = arrays(random_gaussians(5))
    world = decode_gltf(glb(base_attributes(5)))  # the file's values are in the glTF frame: y is up
    np.testing.assert_array_equal(world.means[:, 2], a.means[:, 1])


# -- bad input --------------------------------------------------------------------------------------------


def with_extra(**changes) -> bytes:
    return glb(base_attributes(), **changes)


def mutated(fn) -> bytes:
    attrs = base_attributes()
    doc_attrs = dict(attrs)
    fn(doc_attrs)
    return glb(doc_attrs)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b'{"asset": {}}' + b" " * 20, r"binary \.glb only"),
        (b"glTF" + struct.pack("<II", 1, 40) + bytes(28), "container version 1"),
        (with_extra()[:-4], "truncated or lying .glb: the header says"),
        (with_extra(extension={"kernel": "customShape", "colorSpace": "srgb_rec709_display"}), "kernel 'customShape'"),
        (with_extra(extension={"kernel": "ellipse", "colorSpace": "lin_rec709_display"}), "colorSpace 'lin_rec709_display'"),
        (with_extra(extension={"kernel": "ellipse", "colorSpace": "srgb_rec709_display",
                               "extensions": {"KHR_gaussian_splatting_compression_spz_2": {"bufferView": 0}}}), "compressed"),  # fmt: skip
        (with_extra(extra={"extensionsRequired": ["EXT_meshopt_compression"]}), "requires extensions .*EXT_meshopt_compression"),
        (with_extra(nodes=[{"mesh": 0, "scale": [1.0, 2.0, 1.0]}]), "non-uniform node scale"),
        (with_extra(nodes=[{"mesh": 0, "scale": [-1.0, -1.0, -1.0]}]), "mirrors"),
        (with_extra(nodes=[{"mesh": 0, "children": [0]}]), "appears twice"),
        (with_extra(nodes=[{"mesh": 3}]), "names no entry of meshes"),
        (mutated(lambda a: a.pop(f"{EXTENSION}:OPACITY")), "lacks the splat attributes KHR_gaussian_splatting:OPACITY"),
        (mutated(lambda a: a.update({sh_attribute(1, 0): (np.zeros((10, 3)), FLOAT, False)})), "partial"),
        (mutated(lambda a: a.update({"POSITION": (np.zeros((10, 4)), FLOAT, False)})), "POSITION has 4 components"),
        (mutated(lambda a: a.update({f"{EXTENSION}:SCALE": (np.zeros((9, 3)), FLOAT, False)})), "holds 9 elements, the primitive's POSITION 10"),
        (with_extra(extra={"meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}]}), "no KHR_gaussian_splatting primitive"),
    ],
)
def test_bad_files(data, message):
    with pytest.raises(FormatError, match=message):
        decode_gltf(data, "x.glb")


def test_external_buffers_and_sparse_accessors_are_refused():
    data = glb(base_attributes())
    doc, binary = parts(data)
    for change, message in [
        (lambda d: d["buffers"][0].update(uri="splats.bin"), "external or data-URI buffers"),
        (lambda d: d["accessors"][0].update(sparse={"count": 1}), "sparse"),
        (lambda d: d["accessors"][0].update(byteOffset=2), "not aligned"),
        (lambda d: d["bufferViews"][0].update(byteLength=10**9), "do not fit"),
        (lambda d: d["meshes"][0]["primitives"][0].update(mode=4), "mode POINTS"),
    ]:
        d = json.loads(json.dumps(doc))
        change(d)
        text = json.dumps(d).encode()
        text += b" " * (-len(text) % 4)
        rebuilt = struct.pack("<III", 0x46546C67, 2, 28 + len(text) + len(binary)) + struct.pack("<II", len(text), 0x4E4F534A) + text
        rebuilt += struct.pack("<II", len(binary), 0x004E4942) + binary
        with pytest.raises(FormatError, match=message):
            decode_gltf(rebuilt, "x.glb")


def test_nan_values_name_the_file_or_are_dropped():
    attrs = base_attributes(6)
    pos = attrs["POSITION"][0].copy()
    pos[2, 1] = np.nan
    attrs["POSITION"] = (pos, FLOAT, False)
    data = glb(attrs)
    with pytest.raises(FormatError, match=r"x\.glb: 1 rows with NaN/Inf means \(first at row 2\)"):
        decode_gltf(data, "x.glb")
    assert len(decode_gltf(data, "x.glb", on_invalid="drop")) == 5
