"""The four prompt sets: deterministic, in the right splits, free paraphrases outside the captioner's words."""

from __future__ import annotations

import pytest

from worldgen.errors import UsageError
from worldgen.eval.prompts import (
    FREE_PARAPHRASES,
    FUNCTION_WORDS,
    JUDGED,
    PROMPT_SETS,
    captioner_vocabulary,
    prompt_set,
    prompt_sets,
    stated_attributes,
    words,
)
from worldgen.procedural.spec import BIOMES, HELDOUT_COMBINATIONS, WorldSpec


def test_free_paraphrases_use_no_captioner_words() -> None:
    vocab = captioner_vocabulary()
    assert len(vocab) > 300  # the tables were read
    assert len(FREE_PARAPHRASES) >= 30
    for text, spec, said in FREE_PARAPHRASES:
        assert set(said.split()) <= set(JUDGED) - {"biome"}, said
        shared = (words(text) - FUNCTION_WORDS) & vocab
        assert not shared, f"{text!r} uses captioner words {shared}"
        assert isinstance(spec, WorldSpec)


def test_free_paraphrases_cover_every_biome_and_are_distinct() -> None:
    assert {s.biome for _, s, _ in FREE_PARAPHRASES} == set(BIOMES)
    assert len({t for t, _, _ in FREE_PARAPHRASES}) == len(FREE_PARAPHRASES)


def test_sets_are_deterministic_and_split_right() -> None:
    a = prompt_sets(n=5)
    assert a == prompt_sets(n=5)
    assert [c.set for c in a] == [s for s in PROMPT_SETS for _ in range(5)]
    for c in a:
        if c.set == "free":  # hand-written: any combination
            continue
        held = c.spec.combination in HELDOUT_COMBINATIONS
        assert held == (c.set == "heldout_combination"), c
    assert prompt_set("train_phrasing", 4, seed=1) != prompt_set("train_phrasing", 4, seed=0)


def test_heldout_phrasings_differ_from_training_ones() -> None:
    train = {c.prompt for c in prompt_set("train_phrasing", 30)}
    held = {c.prompt for c in prompt_set("heldout_phrasing", 30)}
    assert not train & held


def test_bad_set_and_count() -> None:
    with pytest.raises(UsageError):
        prompt_set("nope")
    with pytest.raises(UsageError):
        prompt_set("free", 0)
    assert len(prompt_set("free", 1000)) == len(FREE_PARAPHRASES)


def test_stated_attributes_are_what_the_prompt_fixes() -> None:
    spec = WorldSpec("desert", "none", "none", "none", "sunset", "clear", "summer")
    # "barren sand dunes": the time (sunset) is unsaid, so it is not scored; the absent water and structure are
    assert stated_attributes(spec, frozenset({"biome", "vegetation"})) == ("biome", "water", "vegetation", "structure")
    lake = WorldSpec("meadow", "lake", "sparse", "cabin", "day", "fog", "summer")
    assert stated_attributes(lake, frozenset({"biome"})) == ("biome",)  # an unmentioned lake is not asked for
    assert stated_attributes(lake, frozenset(JUDGED)) == JUDGED


def test_every_case_knows_what_it_states() -> None:
    for c in prompt_sets(n=16):
        assert c.stated[0] == "biome" and set(c.stated) <= set(JUDGED)
        assert set(c.said) - {"season"} <= set(c.stated)
    free = {c.prompt: c for c in prompt_set("free", 1000)}
    assert free["ochre gulch with hoodoos at lunchtime"].stated == ("biome", "water", "structure", "time")
    # the generated sets leave some attributes unsaid, as people do
    heldout = prompt_set("heldout_phrasing", 16)
    assert sum(len(c.stated) for c in heldout) < len(JUDGED) * len(heldout)
