"""Frames, `SplatArrays` and the dispatching entry points: save/load, read/write, up axes, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters import FORMATS, default_up, format_of, load, read, save, write
from exporters.common import SplatArrays, check_writable, most_visible
from exporters.frames import UP_CHOICES, file_from_world, from_file_frame, rotate, to_file_frame
from tests.conftest import random_gaussians
from worldgen.errors import FormatError, InvalidGaussiansError, UsageError
from worldgen.ops import most_visible as torch_most_visible
from worldgen.sh import eval_sh

FIELDS = ("means", "quats", "scales", "opacities", "sh0", "shN")
EXTS = [e[1:] for e in FORMATS]


def arrays(g) -> SplatArrays:
    return SplatArrays.from_gaussians(g)


@settings(max_examples=16)  # each example fits SH rotation matrices twice
@given(degree=st.sampled_from([0, 1, 2, 3]), up=st.sampled_from(["y", "-y", "gltf"]), seed=st.integers(0, 2**16))
def test_fast_rotate_matches_gaussians_transform(degree, up, seed):
    g = random_gaussians(20, sh_degree=degree, seed=seed, dtype=torch.float64)
    r = file_from_world(up)
    fast, slow = rotate(arrays(g), r), g.transform(torch.from_numpy(r))
    for f in FIELDS:
        np.testing.assert_allclose(getattr(fast, f), getattr(slow, f).numpy(), atol=1e-10, rtol=1e-10, err_msg=f)


@pytest.mark.parametrize(
    "up,world_up_in_file,world_forward_in_file",
    [("z", [0, 0, 1], [0, 1, 0]), ("y", [0, 1, 0], [0, 0, -1]), ("-y", [0, -1, 0], [0, 0, 1]), ("gltf", [0, 1, 0], [0, 0, 1])],
)
def test_up_and_forward_land_where_documented(up, world_up_in_file, world_forward_in_file):
    g = arrays(random_gaussians(2)).replace(means=np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float32))
    assert to_file_frame(g, up).means.tolist() == [world_up_in_file, world_forward_in_file]
    assert np.linalg.det(file_from_world(up)) == 1.0  # proper rotations: handedness kept
    assert set(UP_CHOICES) == {"z", "y", "-y", "gltf"}


@pytest.mark.parametrize("up", ["-y", "y", "gltf"])
def test_view_dependent_colour_survives_the_frame_change(up):
    g = random_gaussians(5, sh_degree=3, dtype=torch.float64)
    d = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64), dim=1)
    f = to_file_frame(arrays(g), up).to_gaussians().to(dtype=torch.float64)
    seen_in_world = eval_sh(g.colors, d)
    seen_in_file = eval_sh(f.colors, d @ torch.from_numpy(file_from_world(up)).T)
    torch.testing.assert_close(seen_in_file, seen_in_world, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(from_file_frame(to_file_frame(arrays(g), up), up).shN, g.shN.numpy(), atol=1e-12)


# -- SplatArrays: the numpy twins of Gaussians' checks and of most_visible ----------------------


def test_arrays_and_gaussians_hold_the_same_values():
    g = random_gaussians(30, sh_degree=2)
    a = arrays(g)
    assert len(a) == 30 and a.sh_degree == 2
    back = a.to_gaussians()
    for f in FIELDS:
        assert torch.equal(getattr(back, f), getattr(g, f)), f
    assert a.with_sh_degree(3).shN.shape == (30, 15, 3) and a.with_sh_degree(0).shN.shape == (30, 0, 3)
    with pytest.raises(InvalidGaussiansError, match="quats has shape"):
        SplatArrays(a.means, a.quats[:, :3], a.scales, a.opacities, a.sh0, a.shN)


@pytest.mark.parametrize(
    "field,row,value",
    [("means", 3, np.nan), ("quats", 1, 2.0), ("scales", 4, -1.0), ("opacities", 0, 1.5), ("shN", 2, np.inf), ("sh0", 5, np.nan)],
)
def test_check_writable_says_what_gaussians_validate_says(field, row, value):
    g = random_gaussians(8, sh_degree=1)
    broken = getattr(g, field).clone()
    broken[row] = value
    g = g.replace(**{field: broken})
    with pytest.raises(InvalidGaussiansError) as slow:
        g.validate()
    with pytest.raises(InvalidGaussiansError) as fast:
        check_writable(arrays(g))
    assert str(fast.value) == str(slow.value)
    assert check_writable(arrays(random_gaussians(8))) is not None


@given(n=st.integers(0, 60), keep=st.integers(0, 70), seed=st.integers(0, 2**16))
def test_most_visible_matches_the_torch_twin(n, keep, seed):
    g = random_gaussians(n, seed=seed, dtype=torch.float64)
    if n:  # ties: equal scores keep the earlier row
        g = g.replace(opacities=torch.where(torch.arange(n) % 3 == 0, 0.5, g.opacities))
        g = g.replace(scales=torch.where((torch.arange(n) % 3 == 0)[:, None], 0.1, g.scales))
    fast, slow = most_visible(arrays(g), keep), torch_most_visible(g, keep)
    np.testing.assert_array_equal(fast.means, slow.means.numpy())


# -- dispatch ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ext,up", [("ply", "-y"), ("splat", "-y"), ("spz", "y"), ("glb", "gltf"), ("sog", "-y")])
def test_each_format_has_a_documented_default_and_an_override(tmp_path, ext, up):
    assert default_up(f"w.{ext}") == up
    g = random_gaussians(8).replace(sh0=torch.zeros(8, 1, 3))
    save(g, tmp_path / f"w.{ext}")
    for override in UP_CHOICES:
        save(g, tmp_path / f"o.{ext}", up=override)
        got = load(tmp_path / f"o.{ext}", up=override)
        assert torch.allclose(got.means.sort(dim=0).values, g.means.sort(dim=0).values, atol=0.05)
    # read in the wrong frame, a world comes back tipped over
    wrong = load(tmp_path / f"w.{ext}", up="z")
    assert not torch.allclose(wrong.means.sort(dim=0).values, g.means.sort(dim=0).values, atol=1e-1)


@pytest.mark.parametrize("ext", EXTS)
def test_read_and_write_are_load_and_save_on_arrays(tmp_path, ext):
    g = random_gaussians(40, sh_degree=0 if ext == "splat" else 1, seed=3)
    save(g, tmp_path / f"a.{ext}")
    write(arrays(g), tmp_path / f"b.{ext}")
    assert (tmp_path / f"a.{ext}").read_bytes() == (tmp_path / f"b.{ext}").read_bytes()
    a, b = read(tmp_path / f"a.{ext}"), load(tmp_path / f"a.{ext}")
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f).numpy(), err_msg=f)


def test_the_file_path_never_imports_torch(tmp_path):
    save(random_gaussians(50, sh_degree=1), tmp_path / "w.ply")
    script = (
        "import sys\n"
        "from exporters import read, write\n"
        "from exporters.common import most_visible\n"
        f"a = read({str(tmp_path / 'w.ply')!r})\n"
        f"for ext in {EXTS!r}:\n"
        f"    write(most_visible(a, 20), {str(tmp_path)!r} + '/o.' + ext, **({{'version': 4}} if ext == 'spz' else {{}}))\n"
        f"    read({str(tmp_path)!r} + '/o.' + ext)\n"
        "import warnings\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
    )
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, cwd=os.getcwd())
    assert r.returncode == 0, r.stderr


def test_unknown_extension_and_up_and_options(tmp_path):
    g = random_gaussians(3)
    with pytest.raises(FormatError, match=r"w\.obj: unknown extension '\.obj'.*\.ply, \.splat, \.spz, \.glb, \.sog"):
        save(g, tmp_path / "w.obj")
    with pytest.raises(FormatError, match="unknown extension"):
        load(tmp_path / "noext")
    with pytest.raises(UsageError, match="unknown up axis 'x'"):
        save(g, tmp_path / "w.ply", up="x")
    with pytest.raises(UsageError, match=r"\.ply takes no option version"):
        save(g, tmp_path / "w.ply", version=3)
    with pytest.raises(UsageError, match=r"\.glb takes no option normals \(it takes: none\)"):
        save(g, tmp_path / "w.glb", normals=True)
    assert format_of("A.SPZ") == "spz" and format_of("w.GLB") == "gltf" and format_of("w.sog") == "sog"


@pytest.mark.parametrize("ext", EXTS)
def test_writes_are_atomic_an_existing_file_survives_a_failed_write(tmp_path, ext):
    good = random_gaussians(5)
    path = tmp_path / f"w.{ext}"
    save(good, path)
    before = path.read_bytes()
    bad = good.replace(means=good.means.clone().index_fill_(0, torch.tensor([2]), float("nan")))
    with pytest.raises(InvalidGaussiansError):
        save(bad, path)
    assert path.read_bytes() == before
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary files left behind


def test_spz_fixed_point_overflow_leaves_nothing(tmp_path):
    good = random_gaussians(5)
    with pytest.raises(FormatError, match="24-bit"):  # coordinates too large for .spz fixed point; other formats accept them
        save(good.replace(means=good.means * 1e9), tmp_path / "huge.spz")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    import exporters.ply as ply_module

    path = tmp_path / "w.ply"
    save(random_gaussians(5), path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ply_module, "_body", explode)
    with pytest.raises(KeyboardInterrupt):
        save(random_gaussians(50), path)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_empty_sets_round_trip_where_the_format_can_say_so(tmp_path):
    empty = random_gaussians(0, sh_degree=3)
    for ext in ("ply", "spz", "glb"):
        save(empty, tmp_path / f"e.{ext}")
        got = load(tmp_path / f"e.{ext}")
        assert len(got) == 0 and got.sh_degree == 3
    save(empty, tmp_path / "e4.spz", version=4)
    assert len(load(tmp_path / "e4.spz")) == 0
    for ext in ("splat", "sog"):  # an empty file / images with no pixels
        with pytest.raises(FormatError, match="cannot hold zero splats"):
            save(empty, tmp_path / f"e.{ext}")
        assert not (tmp_path / f"e.{ext}").exists()


def test_ply_to_spz_is_the_reference_converters_axis_flip():
    # nianticlabs/spz converts a 3DGS .ply (RDF, y down) to .spz (RUB) by negating y and z,
    # with the matching SH sign flips; our defaults (-y for .ply, y for .spz) compose to the same.
    from exporters.ply import decode_ply, encode_ply
    from exporters.spz import pack_spz, unpack_spz

    g = random_gaussians(50, sh_degree=1, seed=9, dtype=torch.float64)
    g = g.replace(shN=g.shN.clamp(-0.9, 0.9))  # inside .spz's SH range (band 1 only permutes under these rotations)
    in_ply = decode_ply(encode_ply(g), up="z")  # the values as the .ply file stores them
    in_spz = unpack_spz(pack_spz(g), up="z")  # the values as the .spz file stores them
    flip = np.array([1.0, -1.0, -1.0])
    assert np.abs(in_spz.means - in_ply.means * flip).max() <= 2.0**-12
    # SH degree 1 basis is (-y, z, -x): flipping y and z negates the first two coefficients
    sh_flip = np.array([-1.0, -1.0, 1.0])[None, :, None]
    assert np.abs(in_spz.shN - in_ply.shN * sh_flip).max() <= 4.5 / 128 + 1e-6


def test_ply_to_glb_is_splat_transforms_turn_about_the_up_axis():
    # splat-transform writes a .ply's values into a .glb turned 180 degrees about y: x -> -x, y -> -y (SH to match)
    from exporters.gltf import decode_gltf, encode_gltf
    from exporters.ply import decode_ply, encode_ply

    g = random_gaussians(30, sh_degree=1, seed=10)
    in_ply, in_glb = decode_ply(encode_ply(g), up="z"), decode_gltf(encode_gltf(g), up="z")
    np.testing.assert_array_equal(in_glb.means, in_ply.means * np.array([-1, -1, 1], dtype=np.float32))
    np.testing.assert_allclose(in_glb.shN, in_ply.shN * np.array([-1.0, 1.0, -1.0])[None, :, None], atol=1e-6)


@pytest.mark.parametrize("src,dst", [("ply", "spz"), ("spz", "glb"), ("glb", "ply"), ("ply", "sog"), ("sog", "spz"), ("ply", "ply")])
def test_convert_turns_once_and_agrees_with_load_and_save(tmp_path, src, dst):
    from exporters import convert

    g = random_gaussians(60, sh_degree=2, seed=12)
    save(g, tmp_path / f"in.{src}")
    n, written = convert(tmp_path / f"in.{src}", tmp_path / f"direct.{dst}", max_splats=50)
    save(torch_most_visible(load(tmp_path / f"in.{src}"), 50), tmp_path / f"via_world.{dst}")
    direct, via_world = read(tmp_path / f"direct.{dst}"), read(tmp_path / f"via_world.{dst}")
    assert n == 60 and len(written) == len(direct) == 50
    for f in FIELDS:  # the same file values, up to float32 rounding of one turn against two
        np.testing.assert_allclose(getattr(direct, f), getattr(via_world, f), atol=2e-6 if f != "shN" else 1e-5, err_msg=f)
