"""Level of detail: coarse fit, children in the local frame, both directions agree."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import random_gaussians
from worldgen.errors import UsageError
from worldgen.procedural.lod import (
    _to_children_local_reference,
    build_groups,
    build_lod,
    from_children_local,
    kd_split,
    share_budget,
    to_children_local,
)
from worldgen.gaussians import quat_to_rotmat, rotmat_to_quat


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 1000), st.integers(1, 6), st.integers(1, 5))
def test_children_round_trip(seed, m, c):
    parents = random_gaussians(m, seed=seed, dtype=torch.float64)
    members = random_gaussians(m * c, seed=seed + 1, dtype=torch.float64)
    members = members.replace(sh0=members.sh0.clamp(-1.7, 1.7))  # colours inside [0, 1]
    local = to_children_local(parents, members, c)
    back = from_children_local(parents, local)
    assert torch.allclose(back.means, members.means, atol=1e-8)
    assert torch.allclose(back.scales, members.scales, atol=1e-8)
    assert torch.allclose(back.covariances(), members.covariances(), atol=1e-8)
    assert torch.allclose(back.opacities, members.opacities)


def test_fast_local_frame_matches_reference():
    parents = random_gaussians(4, seed=0, dtype=torch.float64)
    members = random_gaussians(12, seed=1, dtype=torch.float64)
    fast, ref = to_children_local(parents, members, 3), _to_children_local_reference(parents, members, 3)
    for f in ("offsets", "log_scales", "quats", "rgb", "opacities"):
        assert torch.allclose(getattr(fast, f), getattr(ref, f), atol=1e-10), f


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000))
def test_rotmat_to_quat_batched(seed):
    q = torch.nn.functional.normalize(torch.randn(16, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=1)
    back = rotmat_to_quat(quat_to_rotmat(q))
    assert torch.allclose(quat_to_rotmat(back), quat_to_rotmat(q), atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 400), st.integers(1, 50))
def test_kd_split_is_balanced_and_complete(n, k):
    k = min(k, n)
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n * 7 + k))
    a = kd_split(x, k)
    counts = torch.bincount(a, minlength=k)
    assert len(counts) == k and counts.min() >= 1
    assert counts.max() - counts.min() <= max(2, n // k // 2 + 2)


def test_lod_of_a_world_keeps_sky_budget_and_is_deterministic():
    from worldgen.gaussians import Gaussians
    from worldgen.procedural import WorldSpec, build_world_layers

    layers = build_world_layers(WorldSpec(biome="meadow", structure="cabin"), seed=0)
    world = Gaussians.cat(list(layers.values()))
    sky = torch.cat([torch.full((len(g),), k == "sky") for k, g in layers.items()])
    a = build_lod(world, coarse_n=512, children=16, sky_mask=sky, seed=3)
    b = build_lod(world, coarse_n=512, children=16, sky_mask=sky, seed=3)
    assert torch.equal(a.coarse.means, b.coarse.means)
    assert len(a.coarse) == 512 and a.children.offsets.shape == (512, 16, 3)
    a.coarse.validate()
    n_sky = int((a.coarse.means.norm(dim=1) > 150).sum())
    assert 0 < n_sky <= 0.15 * 512
    full = a.expand()
    assert len(full) == 512 * 16
    # coarse colours follow the world: mean colour within a few percent
    assert torch.allclose(a.coarse.rgb.mean(0), full.rgb.mean(0), atol=0.08)


def test_layer_groups_keep_every_coarse_gaussian_within_one_layer():
    from worldgen.gaussians import Gaussians
    from worldgen.procedural import WorldSpec, build_world_layers

    layers = build_world_layers(WorldSpec(biome="meadow", water="lake", structure="cabin"), seed=1)
    world = Gaussians.cat(list(layers.values()))
    sky = torch.cat([torch.full((len(g),), k == "sky") for k, g in layers.items()])
    part = torch.cat([torch.full((len(g),), i) for i, g in enumerate(layers.values())])
    mixed = build_lod(world, coarse_n=512, children=16, sky_mask=sky, seed=3)
    pure = build_lod(world, coarse_n=512, children=16, sky_mask=sky, layers=part, seed=3)

    def impure(lod):  # clusters whose members come from more than one layer
        a = lod.assignment
        return sum(int(part[a == c].unique().numel() > 1) for c in range(512))

    assert impure(mixed) > 50  # without layers, lake and lakebed share clusters
    assert impure(pure) == 0
    n_sky = int((pure.coarse.means.norm(dim=1) > 150).sum())
    assert n_sky == int((mixed.coarse.means.norm(dim=1) > 150).sum())  # the sky's budget is unchanged
    ground = [i for i, (k, g) in enumerate(layers.items()) if k != "sky" and len(g)]
    expected = share_budget([int((part == i).sum()) for i in ground], 512 - n_sky)
    assert [len(pure.assignment[part == i].unique()) for i in ground] == expected
    water = list(layers).index("water")
    clusters = pure.assignment[part == water].unique()
    # the water's coarse Gaussians lie at water level, flat and level, as the water does
    wet = pure.coarse[clusters]
    assert float(wet.means[:, 2].abs().max()) < 0.05
    assert float((wet.scales.min(1).values / wet.scales.max(1).values).max()) < 0.2


@given(st.lists(st.integers(1, 500), min_size=1, max_size=8), st.integers(0, 400))
@settings(max_examples=60, deadline=None)
def test_share_budget_is_proportional_and_exact(sizes, extra):
    total = min(len(sizes) + extra, sum(sizes))
    share = share_budget(sizes, total)
    assert sum(share) == total
    assert all(1 <= k <= s for k, s in zip(share, sizes, strict=True))
    spare = total - len(sizes)
    for k, s in zip(share, sizes, strict=True):
        assert k <= s and (k == s or k >= spare * s / sum(sizes))  # never below its proportional share, unless capped


def test_groups_have_exact_size_and_keep_the_footprint_apart_from_the_sky():
    from worldgen.gaussians import Gaussians
    from worldgen.procedural import WorldSpec, build_world_layers

    layers = build_world_layers(WorldSpec(biome="meadow", water="lake", structure="cabin"), seed=2)
    world = Gaussians.cat(list(layers.values()))
    sky = torch.cat([torch.full((len(g),), k == "sky") for k, g in layers.items()])
    coarse = build_lod(world, coarse_n=512, children=4, sky_mask=sky, seed=0).coarse
    groups, members = build_groups(coarse, 8)
    again, members_again = build_groups(coarse, 8)
    assert torch.equal(members, members_again) and torch.equal(groups.means, again.means)
    assert len(groups) == 64 and members.shape == (64, 8)
    groups.validate()
    assert members.unique().numel() >= 512 - 8  # balanced groups of 7-9: a few members repeat or drop out
    far = coarse.means.norm(dim=1) > 32.0
    assert 0 < int(far.sum()) < 512
    assert all(bool(far[m].all()) or not bool(far[m].any()) for m in members)  # never sky and ground together
    # a group is the moment match of its members: its centre lies within their bounds
    lo, hi = coarse.means[members].amin(1), coarse.means[members].amax(1)
    assert bool(((groups.means >= lo - 1e-3) & (groups.means <= hi + 1e-3)).all())
    with pytest.raises(UsageError, match="groups of 7"):
        build_groups(coarse, 7)
