"""The four prompt sets of the evaluation, each prompt with the spec it was written from.

- "train_phrasing": training specs said with the captioner's training phrasings;
- "heldout_phrasing": training specs said with the phrasings training never sees;
- "heldout_combination": (biome, time, weather) triples training never sees
  (the captioner says these with held-out phrasings only);
- "free": paraphrases written by hand with words the captioner never uses.

    cases = prompt_set("free", n=10)       # [PromptCase(set, prompt, spec, said), ...]
    cases[0].stated                         # the attributes the prompt fixes: what the judge scores
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


#: the attributes the judge reads (the order of `worldgen.eval.judge.ATTRIBUTES`)
JUDGED = ("biome", "water", "vegetation", "structure", "time", "weather")


@dataclass(frozen=True)
class PromptCase:
    set: str
    prompt: str
    spec: WorldSpec
    said: frozenset[str] = frozenset(JUDGED)  # the attributes the prompt's words say

    @property
    def stated(self) -> tuple[str, ...]:
        return stated_attributes(self.spec, self.said)


def stated_attributes(spec: WorldSpec, said: frozenset[str] | set[str]) -> tuple[str, ...]:
    """The judged attributes a prompt fixes: those its words say, and the absence of water or of a
    structure it does not mention (a prompt that names no lake asks for none).

    An attribute left unsaid (no time of day, say) has no right answer for a generator that only
    reads the prompt; the procedural reference is built from the hidden spec and always has it.
    """
    implied = {a for a in ("water", "structure") if getattr(spec, a) == "none"}
    return tuple(a for a in JUDGED if a in said or a in implied or a == "biome")


def _s(biome, water="none", vegetation="sparse", structure="none", time="day", weather="clear", season="summer"):
    return WorldSpec(biome, water, vegetation, structure, time, weather, season)


#: written by hand; no word of them (beyond `FUNCTION_WORDS`) occurs in the captioner's phrase tables.
#: Each: (prompt, spec, the attributes besides the biome that its words say)
FREE_PARAPHRASES: tuple[tuple[str, WorldSpec, str], ...] = (
    ("maple and elm thicket at lunchtime, unclouded", _s("temperate_forest", vegetation="dense"), "vegetation time weather"),
    ("hardwood thicket beside a millpond, amber horizon", _s("temperate_forest", "lake", "dense", time="sunset"), "water vegetation time"),
    ("elm stand with a bothy, drenching monsoon", _s("temperate_forest", vegetation="dense", structure="cabin", weather="rain"), "structure weather"),
    ("larch and hemlock expanse, whiteout and sleet", _s("pine_forest", vegetation="dense", weather="snow"), "weather"),
    ("hemlock expanse with rapids and a croft", _s("pine_forest", "river", "dense", "cabin"), "water structure"),
    ("cedar slopes cloaked in brume after bedtime", _s("pine_forest", vegetation="dense", time="night", weather="fog"), "time weather"),
    ("scorching Kalahari gravel, bald and devoid of growth", _s("desert", vegetation="none"), "vegetation"),
    ("Mojave expanse with an oasis reservoir at lunchtime", _s("desert", "lake", "sparse"), "water time"),
    ("Gobi expanse with crumbled masonry and rubble, cerulean heavens", _s("desert", structure="ruins"), "structure time weather"),
    ("Kalahari expanse with a pueblo of adobe dwellings, amber horizon", _s("desert", structure="village", time="sunset"), "structure time"),
    ("permafrost expanse under a crescent, nocturnal", _s("tundra", vegetation="none", time="night"), "time"),
    ("glacier expanse with an iceberg-strewn seafront, breakfast time", _s("tundra", "ocean", "none", time="dawn"), "water time"),
    ("permafrost expanse beside a reservoir, whiteout", _s("tundra", "lake", "none", weather="snow"), "water weather"),
    ("clover paddock with a chateau and ramparts", _s("meadow", structure="castle"), "structure"),
    ("buttercup hayfield with scant hedgerows, deluge", _s("meadow", vegetation="sparse", weather="rain"), "vegetation weather"),
    ("clover hayfield by a millpond, amber horizon", _s("meadow", "lake", time="sunset"), "water time"),
    ("buttercup paddocks with a croft and rapids", _s("meadow", "river", structure="cabin"), "water structure"),
    ("coconut reef strand with surf and a pharos", _s("beach", "ocean", structure="lighthouse"), "water structure"),
    ("coconut reef strand with surf, nocturnal", _s("beach", "ocean", time="night"), "water time"),
    ("seashell strand with surf and tides, cloudburst", _s("beach", "ocean", weather="rain"), "water weather"),
    ("Himalayan heights with towering crags, unclouded", _s("mountains", vegetation="sparse"), "weather"),
    ("Himalayan heights with a chateau and battlements, whiteout", _s("mountains", structure="castle", weather="snow"), "structure weather"),
    ("towering crags above a reservoir, before breakfast", _s("mountains", "lake", time="dawn"), "water time"),
    ("ochre gulch with hoodoos at lunchtime", _s("canyon", vegetation="none"), "time"),
    ("ochre chasm with rapids and derelict masonry", _s("canyon", "river", "none", "ruins"), "water structure"),
    ("hoodoo gulch under a crescent, nocturnal", _s("canyon", vegetation="none", time="night"), "time"),
    ("Louisiana mudflats with cattails and peat, smog", _s("swamp", vegetation="sparse", weather="fog"), "weather"),
    ("peat mudflats with cattails and a shanty, amber horizon", _s("swamp", vegetation="sparse", structure="cabin", time="sunset"), "structure time"),
    ("cattail mudflats choked with thickets, deluge", _s("swamp", vegetation="dense", weather="rain"), "vegetation weather"),
    ("Louisiana mudflats with a borough of dwellings", _s("swamp", structure="village"), "structure"),
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
    from worldgen.procedural.captions import describe_said
    from worldgen.procedural.spec import sample_spec

    if name not in PROMPT_SETS:
        raise UsageError(f"unknown prompt set {name!r}; choose one of: {', '.join(PROMPT_SETS)}")
    if n < 1:
        raise UsageError(f"the number of prompts must be at least 1, got {n}")
    if name == "free":
        pick = np.random.default_rng([seed, 9104]).permutation(len(FREE_PARAPHRASES))[:n]
        return [
            PromptCase(name, text, spec, frozenset(said.split()) | {"biome"})
            for text, spec, said in (FREE_PARAPHRASES[i] for i in sorted(pick))
        ]
    rng = np.random.default_rng([seed, _SET_SEEDS[name]])
    out = []
    for _ in range(n):
        if name == "heldout_combination":
            spec = sample_spec(rng, split="heldout")
            text, said = describe_said(spec, rng, split="heldout")
        else:
            spec = sample_spec(rng, split="train")
            text, said = describe_said(spec, rng, split="train" if name == "train_phrasing" else "heldout")
        out.append(PromptCase(name, text, spec, said))
    return out


def prompt_sets(names: list[str] | tuple[str, ...] = PROMPT_SETS, n: int = 10, *, seed: int = 0) -> list[PromptCase]:
    return [c for name in names for c in prompt_set(name, n, seed=seed)]


__all__ = [
    "FREE_PARAPHRASES", "FUNCTION_WORDS", "JUDGED", "PROMPT_SETS", "PromptCase", "captioner_vocabulary", "prompt_set",
    "prompt_sets", "stated_attributes", "words",
]  # fmt: skip
