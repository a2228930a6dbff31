"""The acceptance figure scores only what a prompt fixes: an unsaid attribute cannot be wrong."""

from __future__ import annotations

import math

import pytest

from worldgen.eval.evaluate import WorldRecord, stated_accuracy, stated_scores

SPEC = {"biome": "desert", "water": "none", "vegetation": "none", "structure": "none", "time": "sunset", "weather": "clear"}


def _rec(kind: str, stated: list[str], **judged: str) -> WorldRecord:
    return WorldRecord("heldout_phrasing", "barren sand dunes", SPEC, 0, kind, stated, judged={**SPEC, **judged})


def test_unsaid_attributes_are_not_scored() -> None:
    stated = ["biome", "water", "vegetation", "structure"]  # the time of day is unsaid
    gen = [_rec("generated", stated, time="day"), _rec("generated", stated, time="night", water="lake")]
    acc = stated_accuracy(gen)
    assert acc["pairs"] == 8
    assert acc["time"] is None  # no prompt states it
    assert acc["water"] == 0.5 and acc["biome"] == 1.0
    assert acc["mean"] == pytest.approx(7 / 8)


def test_relative_is_generated_over_procedural() -> None:
    stated = ["biome", "time"]
    gen = [_rec("generated", stated, biome="canyon"), _rec("generated", stated)]
    ref = [_rec("procedural", stated), _rec("procedural", stated, time="dawn")]
    s = stated_scores(gen, ref)
    assert s["generated"]["mean"] == pytest.approx(0.75) and s["procedural"]["mean"] == pytest.approx(0.75)
    assert s["relative"] == pytest.approx(1.0)
    assert stated_scores(gen, [_rec("procedural", stated)])["relative"] == pytest.approx(0.75)
    assert math.isnan(stated_scores(gen, [])["relative"])
