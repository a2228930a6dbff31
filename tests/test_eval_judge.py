"""The render judge: seed ranges apart from the generator's, class balance, the network, weights, and its accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from worldgen.errors import FormatError, UsageError
from worldgen.eval import judge as J


def test_judge_seed_ranges_are_apart_and_buildable() -> None:
    lo_t, hi_t = J.judge_seed("train", 0), J.judge_seed("train", J.MAX_JUDGE_WORLDS - 1)
    lo_h, hi_h = J.judge_seed("heldout", 0), J.judge_seed("heldout", J.MAX_JUDGE_WORLDS - 1)
    assert J.GENERATOR_SEED_LIMIT <= lo_t <= hi_t < lo_h <= hi_h < 2**32  # the builder takes seeds below 2**32
    for bad in (-1, J.MAX_JUDGE_WORLDS):
        with pytest.raises(UsageError):
            J.judge_seed("train", bad)
    with pytest.raises(UsageError):
        J.judge_seed("test", 0)


@given(st.integers(0, 2**32 - 1), st.integers(0, 10**9), st.sampled_from(["train", "heldout"]))
def test_generator_seeds_stay_below_the_judges(seed: int, index: int, split: str) -> None:
    from worldgen.procedural.dataset import DatasetConfig, world_seed

    assert world_seed(DatasetConfig(seed=seed, split=split), index) < J.GENERATOR_SEED_LIMIT


def test_judge_specs_are_balanced() -> None:
    vocab = J.vocabulary()
    specs = [J.judge_spec(J.judge_seed("train", i)) for i in range(900)]
    for a in ("biome", "vegetation", "structure", "time", "weather"):
        counts = {v: sum(getattr(s, a) == v for s in specs) for v in vocab[a]}
        expected = len(specs) / len(vocab[a])
        assert all(0.6 * expected < c < 1.5 * expected for c in counts.values()), (a, counts)
    assert all(s.water == "ocean" for s in specs if s.biome == "beach")
    assert all(s.water != "none" for s in specs if s.structure == "lighthouse")


def test_judge_shapes_and_predictions() -> None:
    torch.manual_seed(0)
    judge = J.Judge(J.JudgeConfig(width=4)).eval()
    views = torch.randint(0, 256, (3, len(J._VIEWS), 32, 32, 3), dtype=torch.uint8)
    logits = judge(views)
    vocab = J.vocabulary()
    assert {a: tuple(v.shape) for a, v in logits.items()} == {a: (3, len(vocab[a])) for a in J.ATTRIBUTES}
    pred = judge.predict(views)
    assert len(pred) == 3 and all(p[a] in vocab[a] for p in pred for a in J.ATTRIBUTES)
    assert judge.predict_indices(views[:0]).shape == (0, len(J.ATTRIBUTES))


def test_save_load_round_trip_and_errors(tmp_path) -> None:
    torch.manual_seed(1)
    judge = J.Judge(J.JudgeConfig(width=4)).eval()
    path = tmp_path / "j.safetensors"
    J.save_judge(judge, path, metadata={"heldout_accuracy": {"mean": 0.5}})
    back = J.load_judge(path)
    views = torch.randint(0, 256, (2, len(J._VIEWS), 32, 32, 3), dtype=torch.uint8)
    for a in J.ATTRIBUTES:
        torch.testing.assert_close(back(views)[a], judge(views)[a])
    assert J.judge_metadata(path)["heldout_accuracy"] == {"mean": 0.5}
    with pytest.raises(UsageError):
        J.load_judge(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(FormatError):
        J.load_judge(bad)


def test_training_learns_a_visible_attribute() -> None:
    # synthetic views whose brightness encodes the time of day: a tiny judge must learn it
    rng = np.random.default_rng(0)
    n = 96
    labels = np.stack([rng.integers(0, len(v), n) for v in J.vocabulary().values()], 1)
    level = np.array([220, 150, 30, 90])[labels[:, J.ATTRIBUTES.index("time")]]
    views = np.clip(level[:, None, None, None, None] + rng.normal(0, 10, (n, 4, 16, 16, 3)), 0, 255).astype(np.uint8)
    cfg = J.JudgeTrainConfig(epochs=12, batch=16, lr=1e-2)
    judge, history = J.train_judge(views, labels, val_views=views, val_labels=labels, config=cfg, judge_config=J.JudgeConfig(width=4, size=16), log=lambda m: None)
    assert history["loss"][-1] < history["loss"][0]
    assert history["val"][-1]["time"] > 0.9


def _heldout_accuracy(n: int) -> dict[str, float]:
    from worldgen.procedural.world import build_world

    judge = J.load_judge()
    views, labels = [], []
    for i in range(n):
        seed = J.judge_seed("heldout", i)
        spec = J.judge_spec(seed)
        views.append(J.judge_views(build_world(spec, seed=seed)))
        labels.append(J.labels_of(spec))
    return J.accuracy(judge.predict_indices(torch.stack(views)), np.stack(labels))


@pytest.fixture(scope="module")
def heldout_accuracy() -> dict[str, float]:
    return _heldout_accuracy(24)


def test_committed_judge_reproduces_its_ceiling(heldout_accuracy) -> None:
    """The shipped weights on held-out procedural worlds (seeds no training world uses) score what they recorded."""
    meta = J.judge_metadata()
    assert meta["seed_ranges"]["heldout"][0] == J.JUDGE_HELDOUT_SEED0
    assert meta["seed_ranges"]["train"][1] <= J.JUDGE_HELDOUT_SEED0
    recorded = meta["heldout_accuracy"]
    # 24 of the recorded held-out worlds: the estimate may wander a little from the 120-world figure
    assert heldout_accuracy["mean"] >= recorded["mean"] - 0.1, (heldout_accuracy, recorded)
    for a in ("time", "weather"):  # the attributes the judge reads reliably
        assert heldout_accuracy[a] >= 0.9, heldout_accuracy
    chance = np.mean([1 / len(v) for v in J.vocabulary().values()])
    assert heldout_accuracy["mean"] > chance + 0.3


#: the issue's acceptance figure for the judge's mean held-out accuracy
JUDGE_TARGET = 0.9


def test_committed_judge_meets_the_target(heldout_accuracy) -> None:
    """90.8% on the 240 held-out worlds of its training run (docs/eval.md); 93% on these 24."""
    assert heldout_accuracy["mean"] >= JUDGE_TARGET, heldout_accuracy


def test_uncovered_share_sees_a_hole_in_the_ground() -> None:
    from worldgen.procedural.spec import WorldSpec
    from worldgen.procedural.world import build_world

    world = build_world(WorldSpec(biome="meadow"), seed=0)
    rendered = J.render_judge_views(world)
    full = J.uncovered_share(rendered)
    hole = (world.means[:, :2].abs() < 12.0).all(-1) & (world.means[:, 2] < 20.0)  # ground and all on it, mid-map
    holed = J.uncovered_share(J.render_judge_views(world[~hole]))
    assert full < 0.02, full  # a procedural world covers its views
    assert holed > full + 0.03, (full, holed)
    assert torch.equal(rendered.images_uint8(), J.judge_views(world))
