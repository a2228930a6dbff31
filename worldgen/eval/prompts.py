"""The four prompt sets of the evaluation, each prompt with the spec it was written from.

- "train_phrasing": training specs said with the captioner's training phrasings;
- "heldout_phrasing": training specs said with the phrasings training never sees;
- "heldout_combination": (biome, time, weather) triples training never sees
  (the captioner says these with held-out phrasings only);
- "free": paraphrases written by hand with words the captioner never uses.

    cases = prompt_set("free", n=10)       # [PromptCase(set, prompt, spec), ...]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from worldgen.errors import UsageError
from worldgen.procedural.spec import WorldSpec

PromptSet = Literal["train_phrasing", "heldout_phrasing", "heldout_combination", "free"]
PROMPT_SETS: tuple[str, ...] = ("train_phrasing", "heldout_phrasing", "heldout_combination", "free")

#: seeds of the specs each generated set draws (fixed, so every run scores the same prompts)
_SET_SEEDS = {"train_phrasing": 9101, "heldout_phrasing": 9102, "heldout_combination": 9103}


@dataclass(frozen=True)
class PromptCase:
    set: str
    prompt: str
    spec: WorldSpec


def _s(biome, water="none", vegetation="sparse", structure="none", time="day", weather="clear", season="summer"):
    return WorldSpec(biome, water, vegetation, structure, time, weather, season)


#: written by hand; no word of them (beyond `FUNCTION_WORDS`) occurs in the captioner's phrase tables
FREE_PARAPHRASES: tuple[tuple[str, WorldSpec], ...] = (
    ("maple and elm thicket at lunchtime, unclouded", _s("temperate_forest", vegetation="dense")),
    ("hardwood thicket beside a millpond, amber horizon", _s("temperate_forest", "lake", "dense", time="sunset")),
    ("elm stand with a bothy, drenching monsoon", _s("temperate_forest", vegetation="dense", structure="cabin", weather="rain")),
    ("larch and hemlock expanse, whiteout and sleet", _s("pine_forest", vegetation="dense", weather="snow")),
    ("hemlock expanse with rapids and a croft", _s("pine_forest", "river", "dense", "cabin")),
    ("cedar slopes cloaked in brume after bedtime", _s("pine_forest", vegetation="dense", time="night", weather="fog")),
    ("scorching Kalahari gravel, bald and devoid of growth", _s("desert", vegetation="none")),
    ("Mojave expanse with an oasis reservoir at lunchtime", _s("desert", "lake", "sparse")),
    ("Gobi expanse with crumbled masonry and rubble, cerulean heavens", _s("desert", structure="ruins")),
    ("Kalahari expanse with a pueblo of adobe dwellings, amber horizon", _s("desert", structure="village", time="sunset")),
    ("permafrost expanse under a crescent, nocturnal", _s("tundra", vegetation="none", time="night")),
    ("glacier expanse with an iceberg-strewn seafront, breakfast time", _s("tundra", "ocean", "none", time="dawn")),
    ("permafrost expanse beside a reservoir, whiteout", _s("tundra", "lake", "none", weather="snow")),
    ("clover paddock with a chateau and ramparts", _s("meadow", structure="castle")),
    ("buttercup hayfield with scant hedgerows, deluge", _s("meadow", vegetation="sparse", weather="rain")),
    ("clover hayfield by a millpond, amber horizon", _s("meadow", "lake", time="sunset")),
    ("buttercup paddocks with a croft and rapids", _s("meadow", "river", structure="cabin")),
    ("coconut reef strand with surf and a pharos", _s("beach", "ocean", structure="lighthouse")),
    ("coconut reef strand with surf, nocturnal", _s("beach", "ocean", time="night")),
    ("seashell strand with surf and tides, cloudburst", _s("beach", "ocean", weather="rain")),
    ("Himalayan heights with towering crags, unclouded", _s("mountains", vegetation="sparse")),
    ("Himalayan heights with a chateau and battlements, whiteout", _s("mountains", structure="castle", weather="snow")),
    ("towering crags above a reservoir, before breakfast", _s("mountains", "lake", time="dawn")),
    ("ochre gulch with hoodoos at lunchtime", _s("canyon", vegetation="none")),
    ("ochre chasm with rapids and derelict masonry", _s("canyon", "river", "none", "ruins")),
    ("hoodoo gulch under a crescent, nocturnal", _s("canyon", vegetation="none", time="night")),
    ("Louisiana mudflats with cattails and peat, smog", _s("swamp", vegetation="sparse", weather="fog")),
    ("peat mudflats with cattails and a shanty, amber horizon", _s("swamp", vegetation="sparse", structure="cabin", time="sunset")),
    ("cattail mudflats choked with thickets, deluge", _s("swamp", vegetation="dense", weather="rain")),
    ("Louisiana mudflats with a borough of dwellings", _s("swamp", structure="village")),
)

#: words free paraphrases may share with the captioner (grammar, not content)
FUNCTION_WORDS = frozenset(
    "a an the of with and in on at by under to no as some few it its is are after before above beside".split()
)


def words(text: str) -> set[str]:
    """Lower-case words of a text (letters only; hyphenated and possessive parts split)."""
    return set(re.findall(r"[a-z]+", text.lower()))


def captioner_vocabulary() -> set[str]:
    """Every word in the captioner's phrase tables and wrappers, training and held-out alike."""
    from worldgen.procedural import captions

    out: set[str] = set()
    for train, heldout in captions._VOCAB.values():
        for table in (train, heldout):
            for phrases in table.values():
                for p in phrases:
                    out |= words(p)
    for w in captions.WRAPPERS:
        out |= words(w)
    return out


def prompt_set(name: str, n: int = 10, *, seed: int = 0) -> list[PromptCase]:
    """`n` prompts of set `name` with their specs (deterministic in `seed`)."""
    from worldgen.procedural.captions import describe
    from worldgen.procedural.spec import sample_spec

    if name not in PROMPT_SETS:
        raise UsageError(f"unknown prompt set {name!r}; choose one of: {', '.join(PROMPT_SETS)}")
    if n < 1:
        raise UsageError(f"the number of prompts must be at least 1, got {n}")
    if name == "free":
        pick = np.random.default_rng([seed, 9104]).permutation(len(FREE_PARAPHRASES))[:n]
        return [PromptCase(name, FREE_PARAPHRASES[i][0], FREE_PARAPHRASES[i][1]) for i in sorted(pick)]
    rng = np.random.default_rng([seed, _SET_SEEDS[name]])
    out = []
    for _ in range(n):
        if name == "heldout_combination":
            spec = sample_spec(rng, split="heldout")
            text = describe(spec, rng, split="heldout")
        else:
            spec = sample_spec(rng, split="train")
            text = describe(spec, rng, split="train" if name == "train_phrasing" else "heldout")
        out.append(PromptCase(name, text, spec))
    return out


def prompt_sets(names: list[str] | tuple[str, ...] = PROMPT_SETS, n: int = 10, *, seed: int = 0) -> list[PromptCase]:
    return [c for name in names for c in prompt_set(name, n, seed=seed)]


__all__ = [
    "FREE_PARAPHRASES", "FUNCTION_WORDS", "PROMPT_SETS", "PromptCase", "captioner_vocabulary", "prompt_set",
    "prompt_sets", "words",
]  # fmt: skip
