"""The procedural world engine: specs, builders, level of detail, captions and the training dataset.

`build_world(WorldSpec(biome="desert", time="sunset"), seed=0)` gives a full-detail
world as `Gaussians`; `describe(spec, rng)` says it in words; `build_lod` fits the
coarse set the model generates.
"""

from worldgen.procedural.spec import (
    BIOMES,
    SEASONS,
    STRUCTURES,
    TIMES,
    VEGETATIONS,
    VOCABULARY,
    WATERS,
    WEATHERS,
    WorldSpec,
    heldout_combinations,
    sample_spec,
)
from worldgen.procedural.world import build_world, build_world_layers

__all__ = [
    "BIOMES", "SEASONS", "STRUCTURES", "TIMES", "VEGETATIONS", "VOCABULARY", "WATERS", "WEATHERS", "WorldSpec",
    "build_world", "build_world_layers", "heldout_combinations", "sample_spec",
]  # fmt: skip
