"""worldgen.edit: selections match their row-by-row twins; edits touch only what is selected."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import random_gaussians
from worldgen import edit
from worldgen.errors import UsageError
from worldgen.gaussians import rotmat_to_quat
from worldgen.sh import eval_sh

coord = st.floats(-15, 15, allow_nan=False)
vec3 = st.tuples(coord, coord, coord)
size3 = st.tuples(*[st.floats(0, 30, allow_nan=False)] * 3)
seeds = st.integers(0, 10_000)


@given(seed=seeds, center=vec3, size=size3, q=st.tuples(*[st.floats(-1, 1)] * 4))
def test_select_box_matches_reference(seed, center, size, q):
    g = random_gaussians(40, seed=seed, dtype=torch.float64)
    wxyz = None if sum(abs(v) for v in q) < 1e-3 else q
    fast = edit.select_box(g, center, size, wxyz=wxyz)
    assert torch.equal(fast, edit._select_box_reference(g, center, size, wxyz=wxyz))


@given(seed=seeds, center=vec3, radius=st.floats(0, 30))
def test_select_sphere_matches_reference(seed, center, radius):
    g = random_gaussians(40, seed=seed, dtype=torch.float64)
    assert torch.equal(edit.select_sphere(g, center, radius), edit._select_sphere_reference(g, center, radius))


def test_select_box_around_bounds_takes_all_and_empty_box_none():
    g = random_gaussians(100)
    lo, hi = g.bounds()
    assert edit.select_box(g, (lo + hi) / 2, (hi - lo) + 1e-3).all()
    assert not edit.select_box(g, (100.0, 100.0, 100.0), (1.0, 1.0, 1.0)).any()


@given(seed=seeds, bits=st.lists(st.booleans(), min_size=30, max_size=30))
def test_delete_and_keep_partition(seed, bits):
    g = random_gaussians(30, sh_degree=1, seed=seed)
    mask = torch.tensor(bits)
    kept, dropped = edit.delete(g, mask), edit.keep(g, mask)
    assert len(kept) == 30 - sum(bits) and len(dropped) == sum(bits)
    assert torch.equal(kept.means, g.means[~mask]) and torch.equal(dropped.sh0, g.sh0[mask])


@given(seed=seeds, bits=st.lists(st.booleans(), min_size=20, max_size=20), rgb=st.tuples(*[st.floats(0, 1)] * 3))
def test_recolor_replace_sets_colour_only_where_selected(seed, bits, rgb):
    g = random_gaussians(20, sh_degree=2, seed=seed, dtype=torch.float64)
    mask = torch.tensor(bits)
    out = edit.recolor(g, mask, rgb)
    assert torch.allclose(out.rgb[mask], torch.tensor(rgb, dtype=torch.float64).expand(int(mask.sum()), 3), atol=1e-9)
    assert (out.shN[mask] == 0).all()
    assert torch.equal(out.sh0[~mask], g.sh0[~mask]) and torch.equal(out.shN[~mask], g.shN[~mask])
    assert torch.equal(out.means, g.means) and torch.equal(out.opacities, g.opacities)


def test_recolor_tint_multiplies_base_colour():
    g = random_gaussians(10, sh_degree=1, dtype=torch.float64)
    g = g.replace(sh0=g.sh0 * 0.1)  # keep rgb inside (0, 1) so no clamping
    out = edit.recolor(g, torch.ones(10, dtype=torch.bool), (0.5, 1.0, 0.0), mode="tint")
    assert torch.allclose(out.rgb, g.rgb * torch.tensor([0.5, 1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(out.shN[..., 1], g.shN[..., 1]) and (out.shN[..., 2] == 0).all()


@given(seed=seeds, bits=st.lists(st.booleans(), min_size=25, max_size=25), t=vec3)
def test_move_then_move_back_is_identity(seed, bits, t):
    g = random_gaussians(25, seed=seed, dtype=torch.float64)
    mask = torch.tensor(bits)
    moved = edit.move(g, mask, t)
    assert torch.equal(moved.means[~mask], g.means[~mask])
    assert torch.allclose(moved.means[mask], g.means[mask] + torch.tensor(t, dtype=torch.float64))
    back = edit.move(moved, mask, tuple(-v for v in t))
    assert torch.allclose(back.means, g.means, atol=1e-9)


@given(seed=seeds, degrees=st.floats(-360, 360), t=vec3)
def test_move_everything_equals_whole_set_transform(seed, degrees, t):
    g = random_gaussians(15, sh_degree=3, seed=seed, dtype=torch.float64)
    rotation = edit.rotation_about_z(degrees, dtype=torch.float64)
    everything = torch.ones(15, dtype=torch.bool)
    moved = edit.move(g, everything, t, rotation=rotation, pivot=(0.0, 0.0, 0.0))
    expected = g.transform(rotation, torch.tensor(t, dtype=torch.float64))
    assert torch.allclose(moved.means, expected.means, atol=1e-9)
    assert torch.allclose(moved.covariances(), expected.covariances(), atol=1e-9)
    assert torch.allclose(moved.shN, expected.shN, atol=1e-9)


def test_moved_splats_keep_their_view_dependent_colour_relative_to_the_rotation():
    g = random_gaussians(5, sh_degree=3, dtype=torch.float64)
    rotation = edit.rotation_about_z(90.0, dtype=torch.float64)
    moved = edit.move(g, torch.ones(5, dtype=torch.bool), (0.0, 0.0, 0.0), rotation=rotation)
    dirs = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64), dim=1)
    before = eval_sh(g.colors, dirs)
    after = eval_sh(moved.colors, dirs @ rotation.T)
    assert torch.allclose(before, after, atol=1e-8)
    assert torch.allclose(moved.means.mean(0), g.means.mean(0), atol=1e-9)  # default pivot: selection centre


def test_rotated_box_selects_in_its_own_frame():
    g = random_gaussians(1).replace(means=torch.tensor([[1.0, 1.0, 0.0]]))
    # A box 3 m long along its local x, 0.2 m wide: axis-aligned it misses (1, 1); turned 45 degrees it hits.
    assert not edit.select_box(g, (0, 0, 0), (3.0, 0.2, 0.2)).any()
    q = rotmat_to_quat(edit.rotation_about_z(45.0, dtype=torch.float64))
    assert edit.select_box(g, (0, 0, 0), (3.0, 0.2, 0.2), wxyz=tuple(q.tolist())).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda g: edit.select_sphere(g, (0, 0, 0), -1.0),
        lambda g: edit.select_box(g, (0, 0, 0), (1, -1, 1)),
        lambda g: edit.select_box(g, (0, 0), (1, 1, 1)),
        lambda g: edit.delete(g, torch.ones(3, dtype=torch.bool)),
        lambda g: edit.delete(g, torch.ones(10)),
        lambda g: edit.recolor(g, torch.ones(10, dtype=torch.bool), (2.0, 0.0, 0.0)),
        lambda g: edit.recolor(g, torch.ones(10, dtype=torch.bool), (1.0, 0.0, 0.0), mode="paint"),
        lambda g: edit.move(g, torch.ones(10, dtype=torch.bool), (float("nan"), 0, 0)),
        lambda g: edit.move(g, torch.ones(10, dtype=torch.bool), (0, 0, 0), rotation=torch.eye(3) * 2),
    ],
)
def test_bad_arguments_raise_usage_error(call):
    with pytest.raises(UsageError):
        call(random_gaussians(10))
