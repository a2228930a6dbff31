"""Frames and the dispatching entry points: save/load, up axes, atomic writes."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters import default_up, format_of, load, save
from exporters.frames import file_from_world, from_file_frame, rotate, to_file_frame
from tests.conftest import random_gaussians
from worldgen.errors import FormatError, InvalidGaussiansError, UsageError
from worldgen.sh import eval_sh


@settings(max_examples=12)  # each example fits SH rotation matrices twice
@given(degree=st.sampled_from([0, 1, 2, 3]), up=st.sampled_from(["y", "-y"]), seed=st.integers(0, 2**16))
def test_fast_rotate_matches_gaussians_transform(degree, up, seed):
    g = random_gaussians(20, sh_degree=degree, seed=seed, dtype=torch.float64)
    r = file_from_world(up)
    fast, slow = rotate(g, r), g.transform(r)
    for f in ("means", "quats", "scales", "opacities", "sh0", "shN"):
        torch.testing.assert_close(getattr(fast, f), getattr(slow, f), atol=1e-10, rtol=1e-10, msg=f)


@pytest.mark.parametrize("up,world_up_in_file", [("z", [0, 0, 1]), ("y", [0, 1, 0]), ("-y", [0, -1, 0])])
def test_up_axis_lands_where_named(up, world_up_in_file):
    g = random_gaussians(1).replace(means=torch.tensor([[0.0, 0.0, 1.0]]))
    assert to_file_frame(g, up).means[0].tolist() == world_up_in_file
    assert torch.det(file_from_world(up)) == 1.0  # proper rotations: handedness kept


def test_view_dependent_colour_survives_the_frame_change():
    g = random_gaussians(5, sh_degree=3, dtype=torch.float64)
    d = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64), dim=1)
    f = to_file_frame(g, "-y")
    seen_in_world = eval_sh(g.colors, d)
    seen_in_file = eval_sh(f.colors, d @ file_from_world("-y").T)
    torch.testing.assert_close(seen_in_file, seen_in_world)
    torch.testing.assert_close(from_file_frame(f, "-y").shN, g.shN)


@pytest.mark.parametrize("ext,up", [("ply", "-y"), ("splat", "-y"), ("spz", "y")])
def test_each_format_has_a_documented_default_and_an_override(tmp_path, ext, up):
    assert default_up(f"w.{ext}") == up
    g = random_gaussians(8).replace(sh0=torch.zeros(8, 1, 3))
    save(g, tmp_path / f"w.{ext}")
    for override in ("z", "y", "-y"):
        save(g, tmp_path / f"o.{ext}", up=override)
        got = load(tmp_path / f"o.{ext}", up=override)
        assert torch.allclose(got.means.sort(dim=0).values, g.means.sort(dim=0).values, atol=1e-3)
    # read in the wrong frame, a world comes back tipped over
    wrong = load(tmp_path / f"w.{ext}", up="z")
    assert not torch.allclose(wrong.means.sort(dim=0).values, g.means.sort(dim=0).values, atol=1e-1)


def test_unknown_extension_and_up_and_options(tmp_path):
    g = random_gaussians(3)
    with pytest.raises(FormatError, match=r"w\.obj: unknown extension '\.obj'.*\.ply, \.splat, \.spz"):
        save(g, tmp_path / "w.obj")
    with pytest.raises(FormatError, match="unknown extension"):
        load(tmp_path / "noext")
    with pytest.raises(UsageError, match="unknown up axis 'x'"):
        save(g, tmp_path / "w.ply", up="x")
    with pytest.raises(UsageError, match="takes no option version"):
        save(g, tmp_path / "w.ply", version=3)
    assert format_of("A.SPZ") == "spz"


def test_writes_are_atomic_an_existing_file_survives_a_failed_write(tmp_path):
    good = random_gaussians(5)
    for ext in ("ply", "splat", "spz"):
        path = tmp_path / f"w.{ext}"
        save(good, path)
        before = path.read_bytes()
        bad = good.replace(means=good.means.clone().index_fill_(0, torch.tensor([2]), float("nan")))
        with pytest.raises(InvalidGaussiansError):
            save(bad, path)
        with pytest.raises(FormatError):  # coordinates too large for .spz fixed point; other formats accept them
            save(good.replace(means=good.means * 1e9), tmp_path / "huge.spz")
        assert path.read_bytes() == before
        assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary files left behind


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
    for ext in ("ply", "spz"):
        save(empty, tmp_path / f"e.{ext}")
        got = load(tmp_path / f"e.{ext}")
        assert len(got) == 0 and got.sh_degree == 3
    with pytest.raises(FormatError, match="cannot hold zero splats"):  # it would be an empty file
        save(empty, tmp_path / "e.splat")
    assert not (tmp_path / "e.splat").exists()


def test_ply_to_spz_is_the_reference_converters_axis_flip():
    # nianticlabs/spz converts a 3DGS .ply (RDF, y down) to .spz (RUB) by negating y and z,
    # with the matching SH sign flips; our defaults (-y for .ply, y for .spz) compose to the same.
    from exporters.ply import decode_ply, encode_ply
    from exporters.spz import pack_spz, unpack_spz

    g = random_gaussians(50, sh_degree=1, seed=9, dtype=torch.float64)
    g = g.replace(shN=g.shN.clamp(-0.9, 0.9))  # inside .spz's SH range (band 1 only permutes under these rotations)
    in_ply = decode_ply(encode_ply(g), up="z")  # the values as the .ply file stores them
    in_spz = unpack_spz(pack_spz(g), up="z")  # the values as the .spz file stores them
    flip = torch.tensor([1.0, -1.0, -1.0])
    assert (in_spz.means - in_ply.means * flip).abs().max() <= 2.0**-12
    # SH degree 1 basis is (-y, z, -x): flipping y and z negates the first two coefficients
    sh_flip = torch.tensor([-1.0, -1.0, 1.0])[None, :, None]
    assert (in_spz.shN - in_ply.shN * sh_flip).abs().max() <= 4.5 / 128 + 1e-6
