"""The probes separate each attribute on procedural worlds (other attributes fixed), on every seed pair."""

from __future__ import annotations

import pytest
import torch

from worldgen.eval.evaluate import PROBE_FACTS
from worldgen.eval.probes import PROBES, probe_world
from worldgen.procedural import WorldSpec, build_world

BASE = WorldSpec(biome="meadow", water="none", vegetation="sparse", structure="none", time="day", weather="clear")
SEEDS = (1, 2)


_CACHE: dict[tuple, dict[str, float]] = {}


def probe(seed: int, **changes: str) -> dict[str, float]:
    """Probes of BASE with `changes` at `seed` (each world is built once per test session)."""
    key = (seed, tuple(sorted(changes.items())))
    if key not in _CACHE:
        _CACHE[key] = probe_world(build_world(BASE.replace(**changes), seed=seed))
    return _CACHE[key]


def _each_seed_greater(key: str, high: dict, low: dict, margin: float = 0.0) -> None:
    for s in SEEDS:
        a, b = probe(s, **high)[key], probe(s, **low)[key]
        assert a > b + margin, f"{key}: {high} gave {a}, {low} gave {b} (seed {s})"


def test_probe_keys_and_ranges() -> None:
    p = probe(1)
    assert set(p) == set(PROBES)
    for k in ("snow_share", "sand_share", "grass_share", "rock_share", "water_share", "sky_luminance"):
        assert 0.0 <= p[k] <= 1.0


@pytest.mark.parametrize(
    "key,high,lows",
    [
        ("snow_share", "tundra", ("desert", "meadow")),
        ("sand_share", "desert", ("tundra", "meadow")),
        ("grass_share", "meadow", ("tundra", "desert")),
        ("rock_share", "mountains", ("meadow", "desert")),
    ],
)
def test_ground_shares_separate_biomes(key: str, high: str, lows: tuple[str, ...]) -> None:
    for low in lows:
        _each_seed_greater(key, {"biome": high}, {"biome": low}, margin=0.05)


@pytest.mark.parametrize("water", ["lake", "river", "ocean"])
def test_water_share_separates_water(water: str) -> None:
    _each_seed_greater("water_share", {"water": water}, {"water": "none"}, margin=0.05)


def test_tall_clusters_separate_vegetation() -> None:
    _each_seed_greater("tall_clusters", {"vegetation": "sparse"}, {"vegetation": "none"}, margin=2)
    _each_seed_greater("tall_clusters", {"vegetation": "dense"}, {"vegetation": "sparse"}, margin=4)


@pytest.mark.parametrize("structure", ["cabin", "village", "castle", "ruins", "lighthouse"])
def test_structure_cells_separate_structures(structure: str) -> None:
    water = "lake" if structure == "lighthouse" else "none"
    _each_seed_greater("structure_cells", {"structure": structure, "water": water}, {"water": water}, margin=2)


def test_sky_separates_times() -> None:
    order = ("day", "dawn", "sunset", "night")
    for hi, lo in zip(order, order[1:]):
        _each_seed_greater("sky_luminance", {"time": hi}, {"time": lo})
    _each_seed_greater("sky_warmth", {"time": "sunset"}, {"time": "dawn"}, margin=0.05)
    _each_seed_greater("sky_warmth", {"time": "dawn"}, {"time": "day"}, margin=0.05)


def test_weather_probes_separate_weather() -> None:
    for w in ("rain", "snow"):
        _each_seed_greater("precipitation", {"weather": w}, {"weather": "clear"}, margin=0.3)
        _each_seed_greater("precipitation", {"weather": w}, {"weather": "fog"}, margin=0.3)
    _each_seed_greater("fog_volume", {"weather": "fog"}, {"weather": "clear"}, margin=0.1)
    _each_seed_greater("fog_volume", {"weather": "fog"}, {"weather": "rain"}, margin=0.1)


#: worlds the facts test checks (all built by the tests above, so free when run after them)
FACT_WORLDS = (
    {}, {"water": "lake"}, {"water": "river"}, {"water": "ocean"}, {"vegetation": "none"}, {"vegetation": "dense"},
    {"structure": "cabin"}, {"structure": "castle"}, {"structure": "village"}, {"structure": "ruins"},
    {"time": "night"}, {"time": "sunset"}, {"weather": "rain"}, {"weather": "snow"}, {"weather": "fog"},
    {"biome": "tundra"}, {"biome": "desert"}, {"biome": "mountains"},
)  # fmt: skip


def test_probe_facts_agree_with_specs() -> None:
    """The yes/no facts the report reads off the probes hold on procedural worlds."""
    for changes in FACT_WORLDS:
        spec = BASE.replace(**changes).to_dict()
        for seed in SEEDS:
            p = probe(seed, **changes)
            for name, (probe_says, spec_says) in PROBE_FACTS.items():
                assert probe_says(p) == spec_says(spec), f"{name} on {changes} seed {seed}: {p}"
