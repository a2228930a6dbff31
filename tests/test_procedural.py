"""The procedural engine: determinism, size, validity, and that each attribute does what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians
from worldgen.procedural import WorldSpec, build_world, build_world_layers, heldout_combinations, sample_spec
from worldgen.procedural.spec import VOCABULARY
from worldgen.procedural.terrain import Terrain
from worldgen.procedural.water import water_albedo


def _lum(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ torch.tensor([0.299, 0.587, 0.114])


def test_world_is_deterministic_and_big():
    spec = WorldSpec(biome="meadow", structure="cabin", water="lake")
    a, b = build_world(spec, seed=3), build_world(spec, seed=3)
    assert len(a) >= 100_000
    for f in ("means", "quats", "scales", "opacities", "sh0"):
        assert torch.equal(getattr(a, f), getattr(b, f))
    c = build_world(spec, seed=4)
    assert len(c) != len(a) or not torch.equal(c.means, a.means)
    a.validate()


def test_sky_is_a_far_dome_and_ground_near_zero():
    layers = build_world_layers(WorldSpec(biome="meadow"), seed=0)
    sky_r = layers["sky"].means.norm(dim=1)
    assert (sky_r > 60).all()  # clouds hang inside the dome, far beyond the footprint
    assert (sky_r > 150).float().mean() > 0.85
    terrain = layers["terrain"].means
    inner = terrain[(terrain[:, :2].abs() < 32).all(1)]
    assert inner[:, 2].abs().median() < 5


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000))
def test_sampled_worlds_are_valid(seed):
    spec = sample_spec(np.random.default_rng(seed))
    g = build_world(spec, seed=seed)
    g.validate()
    assert len(g) >= 100_000


def test_every_attribute_value_builds():
    base = WorldSpec()
    for name, values in VOCABULARY.items():
        for v in values:
            spec = base.replace(**{name: v})
            if name == "structure" and v == "lighthouse":
                spec = spec.replace(water="ocean")
            g = build_world(spec, seed=1)
            assert len(g) >= 100_000, (name, v)


def test_unknown_attribute_is_a_usage_error():
    with pytest.raises(UsageError, match="biome"):
        WorldSpec(biome="moon")
    with pytest.raises(UsageError):
        WorldSpec.from_dict({"biome": "desert", "colour": "red"})


def _top_surface_brightness(spec: WorldSpec, seed: int = 0) -> float:
    t = build_world_layers(spec, seed=seed)["terrain"]
    inner = (t.means[:, :2].abs() < 30).all(1)
    return float(_lum(t.rgb[inner]).mean())


def test_snow_brightens_the_terrain_top():
    for biome in ("meadow", "pine_forest", "swamp"):
        clear = _top_surface_brightness(WorldSpec(biome=biome))
        snowy = _top_surface_brightness(WorldSpec(biome=biome, weather="snow"))
        assert snowy > clear + 0.15, biome
    # under the same grey light (fog dims the sun as snow does), snow still brightens even pale sand
    for biome in ("desert", "canyon", "beach"):
        foggy = _top_surface_brightness(WorldSpec(biome=biome, weather="fog"))
        snowy = _top_surface_brightness(WorldSpec(biome=biome, weather="snow"))
        assert snowy > foggy + 0.02, biome


def test_night_darkens_the_sky():
    day = build_world_layers(WorldSpec(time="day"), seed=0)["sky"]
    night = build_world_layers(WorldSpec(time="night"), seed=0)["sky"]
    dome = lambda g: g[g.means.norm(dim=1) > 170]  # noqa: E731
    assert _lum(dome(night).rgb).median() < 0.3 * _lum(dome(day).rgb).median()


@pytest.mark.parametrize("water", ["lake", "river", "ocean"])
def test_water_adds_a_flat_region_of_water_colour(water):
    spec = WorldSpec(biome="meadow", water=water, vegetation="none")
    layers = build_world_layers(spec, seed=2)
    w = layers["water"]
    inner = w[(w.means[:, :2].abs() < 40).all(1)]
    assert len(inner) > 500
    assert torch.allclose(inner.means[:, 2], torch.zeros(len(inner)), atol=1e-4)  # flat, at water level
    # blue-ish: the water colour's dominant channel is blue or green, never red
    rgb = inner.rgb.mean(0)
    assert rgb[2] > rgb[0] and rgb[1] > rgb[0]
    # the terrain under it lies below the water level
    dry = build_world_layers(spec.replace(water="none"), seed=2)["water"]
    assert len(dry) == 0
    body = water_albedo("meadow")
    assert body[2] > body[0]


def _tall_foliage(spec: WorldSpec, seed: int = 0) -> int:
    layers = build_world_layers(spec, seed=seed)
    g = Gaussians.cat([layers["vegetation"], layers["terrain"]])
    terrain = Terrain(spec, seed, np.random.default_rng(0))
    ground = torch.from_numpy(terrain._base(g.means[:, 0].double().numpy(), g.means[:, 1].double().numpy())).float()
    tall = g.means[:, 2] - ground > 2.0
    r, gr, b = g.rgb.unbind(1)
    green_or_autumn = ((gr > r) & (gr > b)) | ((r > gr) & (gr > b) & (r > 0.3))
    return int((tall & green_or_autumn).sum())


@pytest.mark.parametrize("biome,season", [("temperate_forest", "summer"), ("temperate_forest", "autumn"), ("pine_forest", "summer")])
def test_dense_vegetation_adds_tall_green_or_autumn_clusters(biome, season):
    none = _tall_foliage(WorldSpec(biome=biome, vegetation="none", season=season))
    dense = _tall_foliage(WorldSpec(biome=biome, vegetation="dense", season=season))
    sparse = _tall_foliage(WorldSpec(biome=biome, vegetation="sparse", season=season))
    assert none < 200
    assert dense > 10_000
    assert dense > 2 * sparse


def test_autumn_leaves_are_warm():
    veg = lambda s: build_world_layers(WorldSpec(biome="temperate_forest", vegetation="dense", season=s), seed=0)["vegetation"]  # noqa: E731
    summer, autumn = veg("summer").rgb, veg("autumn").rgb
    assert (autumn[:, 0] - autumn[:, 1]).mean() > (summer[:, 0] - summer[:, 1]).mean() + 0.1


@pytest.mark.parametrize("structure", ["cabin", "village", "castle", "ruins", "lighthouse"])
def test_structure_adds_straight_edged_groups_above_ground(structure):
    spec = WorldSpec(biome="meadow", structure=structure, water="ocean" if structure == "lighthouse" else "none")
    s = build_world_layers(spec, seed=0)["structures"]
    assert len(s) > 300
    terrain = Terrain(spec, 0, np.random.default_rng(0))
    rng = np.random.default_rng([0, 0x5EED])  # the world's own terrain draws come first
    from worldgen.procedural.sky import lighting

    lighting(spec, rng)
    terrain = Terrain(spec, 0, rng)
    ground = torch.from_numpy(terrain.height(s.means[:, 0].double().numpy(), s.means[:, 1].double().numpy())).float()
    above = s[s.means[:, 2] > ground + 0.5]
    assert len(above) > 200
    # flat splats whose normals are horizontal (walls) and which share a plane with many others
    r = above.rotation_matrices()
    normal = r[:, :, 2]
    wall = normal[:, 2].abs() < 0.05
    offs = (normal * above.means).sum(1)
    key = torch.stack([torch.round(normal[:, 0] * 50), torch.round(normal[:, 1] * 50), torch.round(offs * 50)], 1)[wall]
    _, counts = torch.unique(key, dim=0, return_counts=True)
    assert int(counts[counts >= 20].sum()) > 150
    # and no such planes without a structure
    none = build_world_layers(spec.replace(structure="none"), seed=0)["structures"]
    assert len(none) == 0


def test_night_lights_windows():
    def warm_emitters(time):
        s = build_world_layers(WorldSpec(structure="village", time=time), seed=0)["structures"]
        r, g, b = s.rgb.unbind(1)
        return int(((r > 0.8) & (g > 0.6) & (b < 0.5)).sum())

    assert warm_emitters("night") > 50
    assert warm_emitters("day") == 0


def test_heldout_combinations_never_sampled_for_training():
    held = set(heldout_combinations())
    assert held
    rng = np.random.default_rng(0)
    seen = {sample_spec(rng).combination for _ in range(3000)}
    assert not seen & held
    assert all(sample_spec(rng, split="heldout").combination in held for _ in range(50))
    for name in ("biome", "time", "weather"):  # every single value still occurs in training
        assert {getattr(WorldSpec(*()), name)} and {c[("biome", "time", "weather").index(name)] for c in seen} == set(VOCABULARY[name])


def test_spec_round_trips_through_json():
    spec = WorldSpec(biome="canyon", water="river", time="dawn")
    import json

    assert WorldSpec.from_dict(json.loads(spec.to_json())) == spec
