"""Third parties read our files and we read theirs: PlayCanvas splat-transform 3.7.0 and the Khronos glTF-Validator.

The tools come from npm (scripts/ensure-node-tools.sh, run by `make test`);
without node each test skips and says why. splat-transform writes .glb but
does not read it, so our .glb is compared with its .glb of the same .ply.
"""

from __future__ import annotations

import numpy as np
import pytest

from exporters import read, save, write
from exporters.common import SplatArrays
from exporters.gltf import EXTENSION, decode_gltf
from exporters.sog import decode_sog
from exporters.spz import decode_spz
from tests._node_tools import gltf_errors, splat_transform, validate_gltf
from tests.conftest import random_gaussians
from tests.test_formats_gltf import attribute, parts
from tests.test_formats_sog import assert_within_sog_precision, in_file_order, quat_error

FIELDS = ("means", "quats", "scales", "opacities", "sh0", "shN")


@pytest.fixture(scope="module")
def world():
    """A world of 500 splats, SH degree 3, with SH and colours inside .spz's ranges."""
    g = random_gaussians(500, sh_degree=3, seed=21)
    return SplatArrays.from_gaussians(g.replace(sh0=g.sh0.clamp(-3.2, 3.2), shN=g.shN.clamp(-0.95, 0.95)))


def assert_same(a: SplatArrays, b: SplatArrays, *, atol: float = 2e-6, log_scale_tol: float = 2e-6) -> None:
    """The same splats in the same order, up to float32 rounding of each tool's arithmetic."""
    assert len(a) == len(b) and a.sh_degree == b.sh_degree
    for f in ("means", "opacities", "sh0", "shN"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), atol=atol, rtol=0, err_msg=f)
    assert quat_error(a.quats, b.quats) <= atol
    assert np.abs(np.log(a.scales) - np.log(b.scales)).max() <= log_scale_tol


def assert_within_spz_precision(back: SplatArrays, a: SplatArrays) -> None:
    """docs/formats.md's .spz column (tests/test_formats_spz.py asserts the same on our own reader)."""
    assert np.abs(back.means - a.means).max() <= 2.0**-13 + 1e-6
    assert np.abs(back.opacities - a.opacities).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back.sh0 - a.sh0).max() <= 0.5 / (0.15 * 255) + 1e-5
    assert np.abs(np.log(back.scales) - np.log(a.scales)).max() <= 1 / 32 + 1e-5
    assert quat_error(back.quats, a.quats) <= 4e-3


# -- splat-transform reads our files back to the same splats ---------------------------------------------


def test_splat_transform_reads_our_sog_to_the_splats_we_read(tmp_path, world):
    write(world, tmp_path / "ours.sog")
    splat_transform(tmp_path / "ours.sog", tmp_path / "theirs.ply")
    theirs, ours = read(tmp_path / "theirs.ply"), read(tmp_path / "ours.sog")
    assert_same(theirs, ours, log_scale_tol=1e-6)
    assert_within_sog_precision(read(tmp_path / "theirs.ply", up="-y"), in_file_order(world), up="-y")


@pytest.mark.parametrize("version", [3, 4])
def test_splat_transform_reads_our_spz_to_the_splats_we_read(tmp_path, world, version):
    write(world, tmp_path / "ours.spz", version=version)
    splat_transform(tmp_path / "ours.spz", tmp_path / "theirs.ply")
    # splat-transform 3.7 copies .spz coordinates into .ply as they are (it skips the spec's RUB <-> RDF flip),
    # so its .ply holds our RUB values: read it in the .spz frame
    theirs = read(tmp_path / "theirs.ply", up="y")
    assert_same(theirs, read(tmp_path / "ours.spz"), atol=1e-5, log_scale_tol=1e-5)
    assert_within_spz_precision(theirs, world)


# -- we read splat-transform's files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def their_files(tmp_path_factory, world):
    d = tmp_path_factory.mktemp("splat_transform")
    write(world, d / "world.ply")
    for out in ("w.sog", "w.glb", "w.spz"):  # .spz: version 4, splat-transform's default
        splat_transform(d / "world.ply", d / out)
    return d


def test_we_read_splat_transforms_glb(their_files, world):
    assert_same(read(their_files / "w.glb"), world)


def test_we_read_splat_transforms_spz_v4(their_files, world):
    data = (their_files / "w.spz").read_bytes()
    assert data[:4] == b"NGSP" and data[4] == 4
    # its .spz holds the .ply's (RDF) values, not RUB: our reader takes the frame as told
    assert_within_spz_precision(decode_spz(data, up="-y"), world)
    upside_down = decode_spz(data)  # in the spec's RUB frame it comes out rotated 180 degrees about x
    np.testing.assert_allclose(upside_down.means, world.means * [1, -1, -1], atol=2.0**-12)


def test_we_read_splat_transforms_sog(their_files, world):
    back = decode_sog((their_files / "w.sog").read_bytes())
    # splat-transform orders by a 10-bit Morton code, we by 21 bits: match each row to the nearest splat
    nearest = ((back.means[:, None] - world.means[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert sorted(nearest.tolist()) == list(range(len(world)))  # a one-to-one match
    ref = world.take(nearest)
    assert len(back) == len(ref) and back.sh_degree == 3
    assert np.abs(back.means - ref.means).max() <= 0.01  # it truncates to 16 bits where we round: twice our bound
    assert np.abs(back.opacities - ref.opacities).max() <= 1 / 255 + 1e-6  # truncated too
    assert np.abs(back.sh0 - ref.sh0).max() <= 0.05
    assert quat_error(back.quats, ref.quats) <= 1e-2


# -- our .glb against splat-transform's .glb of the same file ----------------------------------------------


def test_our_glb_has_splat_transforms_attributes_values_and_frame(tmp_path, world):
    write(world, tmp_path / "world.ply")
    splat_transform(tmp_path / "world.ply", tmp_path / "theirs.glb")
    write(world, tmp_path / "ours.glb")
    (ours, ob), (theirs, tb) = parts((tmp_path / "ours.glb").read_bytes()), parts((tmp_path / "theirs.glb").read_bytes())
    po, pt = ours["meshes"][0]["primitives"][0], theirs["meshes"][0]["primitives"][0]
    assert list(po["attributes"]) == list(pt["attributes"]) and po["mode"] == pt["mode"] == 0
    assert po["extensions"] == pt["extensions"] and ours["extensionsUsed"] == theirs["extensionsUsed"]
    assert ours["nodes"] == theirs["nodes"] and ours["scenes"] == theirs["scenes"]
    for semantic in po["attributes"]:
        a, b = (doc["accessors"][prim["attributes"][semantic]] for doc, prim in ((ours, po), (theirs, pt)))
        assert {k: a[k] for k in ("componentType", "count", "type")} == {k: b[k] for k in ("componentType", "count", "type")}
        if semantic == "COLOR_0":
            continue
        x, y = attribute(ours, ob, semantic), attribute(theirs, tb, semantic)
        if semantic == f"{EXTENSION}:ROTATION":  # xyzw, up to the sign of a quaternion
            assert quat_error(x, y) <= 1e-6
        else:
            np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-7, err_msg=semantic)
    # COLOR_0: splat-transform stores the sRGB colour, we its linear value as glTF defines COLOR_0
    srgb = attribute(theirs, tb, "COLOR_0").astype(np.float64) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    ours_rgba = attribute(ours, ob, "COLOR_0").astype(np.float64) / 255
    assert np.abs(ours_rgba[:, :3] - linear[:, :3]).max() <= 1.5 / 255
    assert np.abs(ours_rgba[:, 3] - srgb[:, 3]).max() <= 1 / 255
    assert_same(decode_gltf((tmp_path / "ours.glb").read_bytes()), decode_gltf((tmp_path / "theirs.glb").read_bytes()))


# -- the Khronos validator ---------------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, 3])
def test_gltf_validator_finds_no_errors_in_our_glb_but_the_extension_attribute_names(tmp_path, degree):
    save(random_gaussians(200, sh_degree=degree, seed=degree), tmp_path / "w.glb")
    report = validate_gltf(tmp_path / "w.glb")
    # version 2.0.0-dev.3.10 predates KHR_gaussian_splatting's attribute names; it says the same of splat-transform's files
    assert gltf_errors(report, allow={"MESH_PRIMITIVE_INVALID_ATTRIBUTE"}) == []
    assert report["issues"]["numWarnings"] == 0
    invalid = [m["pointer"] for m in report["issues"]["messages"] if m["code"] == "MESH_PRIMITIVE_INVALID_ATTRIBUTE"]
    assert all(p.split("/")[-1].startswith(f"{EXTENSION}:") for p in invalid) and len(invalid) == 4 + (15 if degree else 0)
