"""3DGS .ply: exact round trips, the plyfile slow twin, other writers' files, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from plyfile import PlyData, PlyElement

from exporters import load, save
from exporters.ply import _decode_ply_reference, _encode_ply_reference, decode_ply, encode_ply, property_names
from tests.conftest import random_gaussians
from worldgen.errors import FormatError

FIELDS = ("means", "quats", "scales", "opacities", "sh0", "shN")


def assert_close(a, b, *, atol=0.0, rtol=0.0, fields=FIELDS):
    assert len(a) == len(b) and a.sh_degree == b.sh_degree
    for f in fields:
        torch.testing.assert_close(getattr(a, f).double(), getattr(b, f).double(), atol=atol, rtol=rtol, msg=f)


def write_plyfile(rows: np.ndarray, *, text=False, byte_order="<", extra=()) -> bytes:
    buf = io.BytesIO()
    PlyData([PlyElement.describe(rows, "vertex"), *extra], text=text, byte_order=byte_order).write(buf)
    return buf.getvalue()


def rows_of(g, *, normals=False, dtype="<f4", order=None) -> np.ndarray:
    """The vertex rows of `g` (file frame up=z) as a structured array, via our encoder."""
    data = encode_ply(g, up="z", normals=normals)
    names = property_names(g.sh_degree, normals=normals)
    mat = np.frombuffer(data[data.index(b"end_header\n") + 11 :], dtype="<f4").reshape(len(g), len(names))
    order = order or names
    rows = np.zeros(len(g), dtype=[(n, dtype) for n in order])
    for n in order:
        rows[n] = mat[:, names.index(n)] if n in names else 0.0
    return rows


# -- round trips --------------------------------------------------------------------------


@given(n=st.integers(0, 40), degree=st.sampled_from([0, 1, 2, 3]), seed=st.integers(0, 2**16), normals=st.booleans())
def test_round_trip_is_exact_in_the_file_frame(n, degree, seed, normals):
    g = random_gaussians(n, sh_degree=degree, seed=seed)
    back = decode_ply(encode_ply(g, up="z", normals=normals), up="z").to_gaussians()
    assert_close(back, g, fields=("means", "quats", "sh0", "shN"))  # bit-exact
    # opacities and scales pass through float32 logit / log: float32 rounding only
    assert_close(back, g, rtol=2e-6, atol=1e-7, fields=("opacities", "scales"))


@given(n=st.integers(1, 30), degree=st.sampled_from([0, 3]), seed=st.integers(0, 2**16))
def test_round_trip_in_the_default_frame_float64(n, degree, seed):
    g = random_gaussians(n, sh_degree=degree, seed=seed, dtype=torch.float64)
    back = decode_ply(encode_ply(g)).to_gaussians()  # default up="-y" both ways
    assert_close(back, g, atol=1e-5, rtol=1e-5)


def test_save_and_load_files(tmp_path, gaussians):
    save(gaussians, tmp_path / "w.ply", up="z")
    assert_close(load(tmp_path / "w.ply", up="z"), gaussians, fields=("means", "sh0", "shN", "quats"))
    save(gaussians, tmp_path / "n.ply", normals=True)
    header = (tmp_path / "n.ply").read_bytes()[:2000]
    assert b"property float nx" in header and b"property float f_rest_44" in header
    assert_close(load(tmp_path / "n.ply"), gaussians, atol=1e-5, rtol=1e-5)


def test_zero_opacity_and_scale_write_finite_values():
    g = random_gaussians(4)
    g = g.replace(opacities=torch.tensor([0.0, 1.0, 0.5, 0.5]), scales=g.scales * torch.tensor([[0.0], [1], [1], [1]]))
    data = encode_ply(g, up="z")
    body = np.frombuffer(data[data.index(b"end_header\n") + 11 :], dtype="<f4")
    assert np.isfinite(body).all()
    back = decode_ply(data, up="z").to_gaussians()
    assert back.opacities[0] < 1e-12 and back.opacities[1] == 1.0 and back.scales[0].max() < 1e-17


# -- the slow twin ------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("up", ["z", "-y"])
def test_fast_writer_matches_plyfile(degree, up):
    g = random_gaussians(50, sh_degree=degree, seed=degree)
    assert encode_ply(g, up=up) == _encode_ply_reference(g, up=up)


@pytest.mark.parametrize("text,byte_order", [(False, "<"), (False, ">"), (True, "=")])
@pytest.mark.parametrize("normals", [False, True])
def test_fast_reader_matches_plyfile_on_every_encoding(text, byte_order, normals):
    g = random_gaussians(30, sh_degree=2, seed=3)
    data = write_plyfile(rows_of(g, normals=normals), text=text, byte_order=byte_order)
    fast, slow = decode_ply(data, up="z").to_gaussians(), _decode_ply_reference(data, up="z").to_gaussians()
    assert_close(fast, slow)
    assert_close(fast, decode_ply(encode_ply(g, up="z"), up="z").to_gaussians(), atol=1e-6 if text else 0.0)


def test_reads_doubles_shuffled_order_and_extra_properties():
    g = random_gaussians(20, sh_degree=1, seed=4)
    names = property_names(1)
    shuffled = names[::-1]
    rows = rows_of(g, order=shuffled, dtype="<f8")
    extra = np.zeros(len(g), dtype=[("red", "u1"), ("confidence", "<f4")])
    merged = np.zeros(len(g), dtype=rows.dtype.descr + extra.dtype.descr)
    for n in shuffled:
        merged[n] = rows[n]
    assert_close(decode_ply(write_plyfile(merged), up="z").to_gaussians(), decode_ply(encode_ply(g, up="z"), up="z").to_gaussians(), atol=1e-7)


# -- other writers' files --------------------------------------------------------------------


def export_splats_args(g):
    """gsplat.export_splats takes raw parameters: log scales and logit opacities."""
    return dict(
        means=g.means, scales=torch.log(g.scales), quats=g.quats, opacities=torch.logit(g.opacities), sh0=g.sh0, shN=g.shN
    )


@pytest.mark.parametrize("degree", [0, 3])
def test_reads_gsplat_export_splats_ply_and_agrees_with_ours(degree):
    from gsplat import export_splats

    g = random_gaussians(64, sh_degree=degree, seed=7)
    theirs = decode_ply(export_splats(**export_splats_args(g), format="ply"), up="z").to_gaussians()
    ours = decode_ply(encode_ply(g, up="z"), up="z").to_gaussians()
    assert_close(theirs, ours, fields=("means", "quats", "sh0", "shN"))
    assert_close(theirs, ours, rtol=1e-5, atol=1e-7, fields=("opacities", "scales"))


def test_reads_original_3dgs_layout_with_normals():
    # The original 3DGS code (and nerfstudio) write x y z nx ny nz f_dc f_rest opacity scale rot, all float.
    g = random_gaussians(10, sh_degree=3, seed=8)
    rows = rows_of(g, normals=True)
    rows["nx"] = 0.0
    got = decode_ply(write_plyfile(rows), up="z").to_gaussians()
    assert_close(got, g, fields=("means", "sh0", "shN"))


# -- bad input ---------------------------------------------------------------------------------


def header(*lines: str) -> bytes:
    return ("\n".join(["ply", "format binary_little_endian 1.0", *lines, "end_header"]) + "\n").encode()


def test_a_mesh_is_a_format_error_naming_the_problem():
    verts = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    faces = np.zeros(1, dtype=[("vertex_indices", "i4", (3,))])
    data = write_plyfile(verts, extra=[PlyElement.describe(faces, "face")])
    with pytest.raises(FormatError, match="mesh"):
        decode_ply(data, "cube.ply").to_gaussians()
    with pytest.raises(FormatError, match=r"points\.ply: .*lacks f_dc_0.*opacity"):
        decode_ply(write_plyfile(verts), "points.ply").to_gaussians()


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"PK\x03\x04 zip", "not a .ply"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n", "end_header"),
        (header("element vertex -4", "property float x"), "header line"),
        (header("element vertex 1", "property quaternion x"), "header line"),
        (b"ply\nelement vertex 0\nend_header\n", "format"),
        (b"ply\nformat binary_little_endian 1.0\n\xff\xfe\nend_header\n", "ASCII"),
        (header("element vertex 1", "property float x"), "lacks"),
        (header("element face 1", "property list uchar int vertex_indices"), "mesh"),
        (header("element chunk 1", "property float min_x", "element vertex 1", "property uint packed_position"), "compressed"),
        (header("element vertex 0", *[f"property float {p}" for p in property_names(0)], "property double x"), "twice"),
        (header("comment made by hand", "element vertex 1", *[f"property float {p}" for p in property_names(0)]), "truncated"),
    ],
)
def test_bad_headers(data, message):
    with pytest.raises(FormatError, match=message):
        decode_ply(data, "bad.ply").to_gaussians()


def test_a_header_that_lies_about_the_count_is_caught_before_allocating():
    data = encode_ply(random_gaussians(10, sh_degree=3))
    lying = data.replace(b"element vertex 10\n", b"element vertex 4000000000\n")
    with pytest.raises(FormatError, match="truncated or lying header: 4000000000 vertex"):
        decode_ply(lying, "liar.ply").to_gaussians()
    with pytest.raises(FormatError, match="truncated"):
        decode_ply(data[:-5], "cut.ply").to_gaussians()
    ascii_data = write_plyfile(rows_of(random_gaussians(3)), text=True)
    with pytest.raises(FormatError, match="fewer"):
        decode_ply(ascii_data.replace(b"element vertex 3", b"element vertex 9"), "liar.ply").to_gaussians()


def test_nan_inf_and_zero_quaternions_name_the_file_and_row_or_are_dropped():
    g = random_gaussians(6, sh_degree=1)
    rows = rows_of(g)
    rows["x"][2] = np.nan
    rows["f_rest_4"][3] = np.inf
    for k in range(4):
        rows[f"rot_{k}"][5] = 0.0
    data = write_plyfile(rows)
    with pytest.raises(FormatError, match=r"w\.ply: 1 rows with NaN/Inf means \(first at row 2\).*shN.*row 3.*zero quaternion.*row 5"):
        decode_ply(data, "w.ply", up="z").to_gaussians()
    kept = decode_ply(data, "w.ply", up="z", on_invalid="drop").to_gaussians()
    assert len(kept) == 3
    assert torch.equal(kept.means, g.means[[0, 1, 4]])


def test_unnormalised_quaternions_are_normalised():
    g = random_gaussians(5)
    rows = rows_of(g)
    for k in range(4):
        rows[f"rot_{k}"] *= 3.0
    got = decode_ply(write_plyfile(rows), up="z").to_gaussians()
    torch.testing.assert_close(got.quats, g.quats, atol=1e-6, rtol=0)
    assert torch.allclose(got.quats.norm(dim=1), torch.ones(5), atol=1e-6)


def test_bad_sh_count():
    g = random_gaussians(2, sh_degree=1)
    fewer = rows_of(g, order=[n for n in property_names(1) if n != "f_rest_8"])
    with pytest.raises(FormatError, match="8 f_rest properties"):
        decode_ply(write_plyfile(fewer), "sh.ply").to_gaussians()
    gap = rows_of(g, order=[n for n in property_names(1) if n != "f_rest_0"] + ["f_rest_9"])
    with pytest.raises(FormatError, match="f_rest"):
        decode_ply(write_plyfile(gap), "sh.ply").to_gaussians()
