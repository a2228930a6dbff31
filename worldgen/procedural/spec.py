"""`WorldSpec`: what a procedural world is made of, and how specs are sampled.

A spec is a handful of categorical attributes (biome, water, vegetation,
structure, time of day, weather, season). Sampling keeps a fixed set of
(biome, time, weather) combinations out of training: `heldout_combinations()`
lists them for evaluation, and `sample_spec(rng, split="train")` never
returns one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from worldgen.errors import UsageError

Biome = Literal[
    "temperate_forest", "pine_forest", "desert", "tundra", "meadow", "beach", "mountains", "canyon", "swamp"
]
Water = Literal["none", "lake", "river", "ocean"]
Vegetation = Literal["none", "sparse", "dense"]
Structure = Literal["none", "cabin", "village", "castle", "ruins", "lighthouse"]
TimeOfDay = Literal["day", "sunset", "night", "dawn"]
Weather = Literal["clear", "fog", "snow", "rain"]
Season = Literal["summer", "autumn", "spring"]

BIOMES: tuple[str, ...] = get_args(Biome)
WATERS: tuple[str, ...] = get_args(Water)
VEGETATIONS: tuple[str, ...] = get_args(Vegetation)
STRUCTURES: tuple[str, ...] = get_args(Structure)
TIMES: tuple[str, ...] = get_args(TimeOfDay)
WEATHERS: tuple[str, ...] = get_args(Weather)
SEASONS: tuple[str, ...] = get_args(Season)

#: attribute name -> allowed values, in field order
VOCABULARY: dict[str, tuple[str, ...]] = {
    "biome": BIOMES,
    "water": WATERS,
    "vegetation": VEGETATIONS,
    "structure": STRUCTURES,
    "time": TIMES,
    "weather": WEATHERS,
    "season": SEASONS,
}

#: biomes where the season changes what a world looks like (leaf colour, blossom)
SEASONAL_BIOMES = frozenset({"temperate_forest", "meadow", "swamp"})

# Sampling weights that keep worlds plausible: (biome -> weights over WATERS / WEATHERS / STRUCTURES).
_WATER_WEIGHTS = {
    "beach": (0.0, 0.1, 0.0, 0.9),
    "desert": (0.6, 0.25, 0.15, 0.0),
    "canyon": (0.5, 0.1, 0.4, 0.0),
    "swamp": (0.1, 0.5, 0.4, 0.0),
    "tundra": (0.45, 0.3, 0.15, 0.1),
}
_WEATHER_WEIGHTS = {
    "desert": (0.75, 0.2, 0.0, 0.05),
    "canyon": (0.75, 0.15, 0.0, 0.1),
    "beach": (0.65, 0.15, 0.0, 0.2),
    "swamp": (0.4, 0.4, 0.0, 0.2),
    "tundra": (0.4, 0.2, 0.4, 0.0),
    "mountains": (0.4, 0.2, 0.3, 0.1),
    "pine_forest": (0.4, 0.2, 0.25, 0.15),
}
_DEFAULT_WATER = (0.4, 0.25, 0.25, 0.1)
_DEFAULT_WEATHER = (0.55, 0.15, 0.1, 0.2)
_STRUCTURE_WEIGHTS = (0.35, 0.15, 0.15, 0.12, 0.13, 0.10)


@dataclass(frozen=True)
class WorldSpec:
    """The attributes of one procedural world; every field is one of `VOCABULARY[field]`."""

    biome: Biome = "meadow"
    water: Water = "none"
    vegetation: Vegetation = "sparse"
    structure: Structure = "none"
    time: TimeOfDay = "day"
    weather: Weather = "clear"
    season: Season = "summer"

    def __post_init__(self) -> None:
        for name, allowed in VOCABULARY.items():
            value = getattr(self, name)
            if value not in allowed:
                raise UsageError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")

    @property
    def combination(self) -> tuple[str, str, str]:
        """The (biome, time, weather) triple that decides the held-out split."""
        return (self.biome, self.time, self.weather)

    @property
    def is_heldout(self) -> bool:
        return self.combination in HELDOUT_COMBINATIONS

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> WorldSpec:
        unknown = set(d) - set(VOCABULARY)
        if unknown:
            raise UsageError(f"unknown world attribute(s): {', '.join(sorted(unknown))}")
        return cls(**{k: str(v) for k, v in d.items()})

    def replace(self, **changes: str) -> WorldSpec:
        return dataclasses.replace(self, **changes)


def _stable_fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by `parts` (same on every machine and Python run)."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def _heldout_combinations() -> frozenset[tuple[str, str, str]]:
    # About 8% of all (biome, time, weather) triples, chosen by a stable hash; every single
    # value still occurs in training because each value appears in 16+ triples.
    triples = itertools.product(BIOMES, TIMES, WEATHERS)
    return frozenset(t for t in triples if _stable_fraction("heldout-combination", *t) < 0.08)


HELDOUT_COMBINATIONS: frozenset[tuple[str, str, str]] = _heldout_combinations()


def heldout_combinations() -> list[tuple[str, str, str]]:
    """The (biome, time, weather) triples that training never sees, sorted."""
    return sorted(HELDOUT_COMBINATIONS)


def sample_spec(rng: np.random.Generator, *, split: Literal["train", "heldout"] = "train") -> WorldSpec:
    """A plausible random spec; "train" never yields a held-out combination, "heldout" only those."""
    if split not in ("train", "heldout"):
        raise UsageError(f"split must be 'train' or 'heldout', got {split!r}")
    if split == "heldout":
        combos = heldout_combinations()
        biome, time, weather = combos[int(rng.integers(len(combos)))]
    else:
        while True:
            biome = str(rng.choice(BIOMES))
            time = str(rng.choice(TIMES, p=(0.4, 0.22, 0.22, 0.16)))
            weather = str(rng.choice(WEATHERS, p=_WEATHER_WEIGHTS.get(biome, _DEFAULT_WEATHER)))
            if (biome, time, weather) not in HELDOUT_COMBINATIONS:
                break
    water = str(rng.choice(WATERS, p=_WATER_WEIGHTS.get(biome, _DEFAULT_WATER)))
    if biome in ("temperate_forest", "pine_forest"):
        vegetation = str(rng.choice(VEGETATIONS, p=(0.0, 0.3, 0.7)))
    elif biome in ("desert", "tundra", "canyon"):
        vegetation = str(rng.choice(VEGETATIONS, p=(0.45, 0.45, 0.1)))
    else:
        vegetation = str(rng.choice(VEGETATIONS, p=(0.15, 0.5, 0.35)))
    structure = str(rng.choice(STRUCTURES, p=_STRUCTURE_WEIGHTS))
    if structure == "lighthouse" and water == "none":
        structure = "cabin"
    season = str(rng.choice(SEASONS, p=(0.4, 0.35, 0.25))) if biome in SEASONAL_BIOMES else "summer"
    return WorldSpec(biome, water, vegetation, structure, time, weather, season)  # type: ignore[arg-type]


__all__ = [
    "BIOMES", "HELDOUT_COMBINATIONS", "SEASONAL_BIOMES", "SEASONS", "STRUCTURES", "TIMES", "VEGETATIONS",
    "VOCABULARY", "WATERS", "WEATHERS", "WorldSpec", "heldout_combinations", "sample_spec",
]  # fmt: skip
