"""The describer: breadth of phrasing, held-out splits kept apart, deterministic in the rng."""

from __future__ import annotations

import numpy as np
import pytest

from worldgen.errors import UsageError
from worldgen.procedural import WorldSpec, heldout_combinations, sample_spec
from worldgen.procedural.captions import _TABLES, captions, describe, heldout_phrasings, phrasings


def test_every_value_has_many_phrasings():
    for table in ("biome_noun", "time_tail", "water_with", "structure"):
        for value, items in _TABLES[table].items():
            assert len(items) >= 12, (table, value)
    for value in ("sunset", "night", "dawn"):  # adjectives + trailing phrases
        assert len(_TABLES["time_tail"][value]) + len(_TABLES["time_adj"][value]) >= 25


def test_heldout_phrasings_never_appear_in_training_captions():
    tables = ("time_tail", "biome_noun", "water_with", "weather_tail", "structure")
    train_vocab = [p for t in _TABLES for v in _TABLES[t] for p in phrasings(t, v)]
    held = set()
    for t in tables:
        for v in _TABLES[t]:
            h, tr = set(phrasings(t, v, split="heldout")), set(phrasings(t, v))
            assert h and not h & tr, (t, v)
            # skip phrases hidden inside a training phrase or composed of two (an adjective + a noun)
            held |= {p for p in h if not any(p in q for q in train_vocab) and not _composed(p, set(train_vocab))}
    assert len(held) > 30
    rng = np.random.default_rng(0)
    texts = [describe(sample_spec(rng), rng) for _ in range(1500)]
    leaked = [p for p in held if any(p in t for t in texts)]
    assert not leaked


def _composed(phrase: str, vocab: set[str]) -> bool:
    words = phrase.split()
    return any(" ".join(words[:i]) in vocab and " ".join(words[i:]) in vocab for i in range(1, len(words)))


def test_heldout_combination_refused_for_train():
    combo = heldout_combinations()[0]
    spec = WorldSpec(biome=combo[0], time=combo[1], weather=combo[2])
    with pytest.raises(UsageError):
        describe(spec, np.random.default_rng(0))
    assert describe(spec, np.random.default_rng(0), split="heldout")


def test_captions_vary_and_are_deterministic():
    spec = WorldSpec(biome="desert", time="night", structure="ruins")
    a = captions(spec, np.random.default_rng(5), 8)
    b = captions(spec, np.random.default_rng(5), 8)
    assert a == b and len(set(a)) == 8
    many = {describe(spec, np.random.default_rng(s)) for s in range(300)}
    assert len(many) > 200
    assert any(len(c.split()) <= 4 for c in many)  # terse prompts
    assert any(len(c.split()) >= 12 for c in many)  # rich prompts


def test_describe_said_names_what_the_text_says():
    from worldgen.procedural.captions import _VOCAB, ATTRIBUTE_TABLES, _bare, describe_said

    tables = {a: t for a, t in ATTRIBUTE_TABLES.items() if a != "biome"}
    unsaid = {a: 0 for a in tables}
    for split in ("train", "heldout"):
        side = 0 if split == "train" else 1
        rng, twin = np.random.default_rng(3), np.random.default_rng(3)
        for _ in range(600):
            spec = sample_spec(rng, split=split)
            assert spec == sample_spec(twin, split=split)
            text, said = describe_said(spec, rng, split=split)
            assert text == describe(spec, twin, split=split)  # the same prompt from the same draws
            assert "biome" in said and said <= set(tables) | {"biome"}
            for a, names in tables.items():
                if a in said:  # a said attribute has a phrasing of its value in the text
                    value = getattr(spec, a)
                    assert any(_bare(p) in text for t in names for p in _VOCAB[t][side][value]), (a, value, text)
                elif getattr(spec, a) not in ("none", "summer", "day", "clear"):
                    unsaid[a] += 1
    assert all(unsaid[a] > 0 for a in ("time", "weather", "vegetation", "season"))  # people leave things out
