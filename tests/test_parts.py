"""Worlds as parts: the procedural engine's parts hold exactly its splats, in frames that invert exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldgen.gaussians import Gaussians
from worldgen.procedural import WorldSpec, build_world
from worldgen.procedural.parts import KINDS, TILE, WorldParts, assemble_parts, build_world_parts, tile_keys

SPECS = [
    WorldSpec(biome="pine_forest", water="lake", vegetation="dense", structure="cabin", time="sunset", weather="snow"),
    WorldSpec(biome="beach", water="ocean", structure="lighthouse", weather="rain"),
    WorldSpec(biome="swamp", water="river", structure="ruins", time="night", weather="fog"),
    WorldSpec(biome="canyon", structure="castle"),
]


def _rows(g: Gaussians) -> torch.Tensor:  # a sortable view of every field
    return torch.cat([g.means, g.rgb, g.scales, g.quats, g.opacities[:, None]], 1)


def _sorted(t: torch.Tensor) -> torch.Tensor:
    order = np.lexsort(t.numpy().T[::-1].copy())
    return t[torch.from_numpy(order)]


@pytest.mark.parametrize("spec", SPECS[:2])
def test_parts_hold_the_world_bit_for_bit(spec):
    parts = build_world_parts(spec, seed=4)
    world = build_world(spec, seed=4)
    assert torch.equal(_sorted(_rows(parts.gaussians)), _sorted(_rows(world)))


def test_parts_are_whole_objects_and_tiles():
    kinds = [build_world_parts(s, seed=1).kind_names() for s in SPECS]
    forest, beach, swamp, castle = kinds
    assert forest.count("terrain") == 100 and forest.count("sky") == 32  # 10 x 10 tiles of 8 m, 32 sky patches
    assert forest.count("house") == 1 and forest.count("snow") == 16 and forest.count("tree") > 20
    assert beach.count("tower") == 1 and beach.count("house") == 1 and beach.count("far_water") > 0
    assert swamp.count("wall") == 4 and swamp.count("column") == 6 and swamp.count("fog") == 16
    assert castle.count("wall") == 4 and castle.count("tower") == 4 and castle.count("keep") == 1
    assert "rain" not in castle and "water" not in castle
    for k in kinds:
        assert 100 <= len(k) <= 400


def test_a_house_part_is_one_house_in_its_own_frame():
    parts = build_world_parts(SPECS[0], seed=1)
    house = parts.select(parts.kinds == KINDS.index("house"))
    local = house.local()
    assert local.means.abs().max() <= 1 + 1e-5 and local.means.abs().amax(0).min() > 0.99  # fills its box
    # the cabin is 5.5 x 4.2 m in the builder's frame (walls, a roof overhang of 0.3 m on each side)
    assert 2.7 < float(house.extents[0, 0]) < 3.2 and 2.0 < float(house.extents[0, 1]) < 3.0


def test_tiles_cut_the_square_on_the_grid():
    xy = torch.tensor([[-39.9, -39.9, 0.0], [-31.9, -39.9, 0.0], [39.9, 39.9, 0.0], [60.0, 0.0, 0.0], [0.0, 120.0, 0.0]])
    names, key = tile_keys("terrain", xy)
    assert key[0] == 0 and key[1] == 10 and key[2] == 99  # ix * 10 + iy, 8 m cells from -40 m
    assert names[int(key[3])] == "far_terrain" and key[3] != key[4]
    assert TILE == 8.0


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**16))
def test_local_frames_invert_exactly(n_parts, seed):
    gen = torch.Generator().manual_seed(seed)
    pieces, yaws = [], []
    for _ in range(n_parts):
        n = int(torch.randint(1, 40, (1,), generator=gen))
        means = torch.randn(n, 3, generator=gen, dtype=torch.float64) * torch.rand(3, generator=gen, dtype=torch.float64) * 5
        quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen, dtype=torch.float64), dim=-1)
        scales = torch.rand(n, 3, generator=gen, dtype=torch.float64) + 0.01
        pieces.append(Gaussians.from_rgb(means + torch.randn(3, generator=gen, dtype=torch.float64) * 50,
                                         torch.rand(n, 3, generator=gen, dtype=torch.float64), scales,
                                         torch.rand(n, generator=gen, dtype=torch.float64), quats))  # fmt: skip
        yaws.append(float(torch.rand(1, generator=gen)) * 6.3)
    parts = assemble_parts(pieces, ["generic"] * n_parts, yaws)
    local = parts.local()
    assert local.means.abs().max() <= 1 + 1e-9  # every splat inside its box
    back = WorldParts.from_local(local, parts.counts, parts.kinds, parts.centers, parts.extents, parts.yaws).gaussians
    g = parts.gaussians
    assert torch.allclose(back.means, g.means, atol=1e-9) and torch.allclose(back.scales, g.scales, atol=1e-12)
    assert torch.allclose(back.covariances(), g.covariances(), atol=1e-9)


def test_unknown_kind_is_refused():
    g = Gaussians.from_rgb(torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1, 3), torch.ones(1))
    with pytest.raises(Exception, match="unknown part kind"):
        assemble_parts([g], ["spaceship"], [0.0])
