"""`worldgen eval` and `worldgen judge train` from the command line: errors in one line, a small full run."""

from __future__ import annotations

import json

import pytest
import torch

from worldgen.cli import main
from worldgen.eval.judge import Judge, JudgeConfig, save_judge


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("judge") / "judge.safetensors"
    save_judge(Judge(JudgeConfig(width=4)), path, metadata={"heldout_accuracy": {"mean": 0.5}})
    return path


def test_bad_model_weights_are_one_line_error(tmp_path, capsys) -> None:
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"not a model")
    assert main(["eval", "--weights", str(w), "--prompts", "free", "--per-set", "1", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("worldgen: error:") and "Traceback" not in err[0]
    assert not (tmp_path / "r" / "report.md").exists()
    assert main(["eval", "--weights", str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "r")]) == 2


def test_without_the_model_module(tmp_path, monkeypatch, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "worldgen.pipeline", None)  # as before the model existed
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"x")
    assert main(["eval", "--weights", str(w), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the model is not available yet" in err[0]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--prompts", "nope"], "unknown prompt set"),
        (["--seeds", "1"], "at least 2"),
        (["--per-set", "0"], "at least 1"),
        (["--steps", "0"], "steps must be >= 1"),
        (["--guidance", "-1"], "guidance must be >= 0"),
        (["--judge", "/nonexistent/judge.safetensors"], "No such file"),
    ],
)
def test_bad_options(tmp_path, capsys, args, needle) -> None:
    assert main(["eval", "-o", str(tmp_path / "r"), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_corrupt_judge_weights(tmp_path, capsys) -> None:
    bad = tmp_path / "judge.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    assert main(["eval", "--judge", str(bad), "--prompts", "free", "--per-set", "1", "-o", str(tmp_path / "r")]) == 2
    assert "not a judge weights file" in capsys.readouterr().err


def test_judge_train_rejects_other_formats(tmp_path, capsys) -> None:
    assert main(["judge", "train", "-o", str(tmp_path / "judge.pt")]) == 2
    assert ".safetensors" in capsys.readouterr().err


def test_small_run_writes_the_report(tmp_path, tiny_judge, capsys) -> None:
    out = tmp_path / "report"
    args = ["eval", "--prompts", "free", "--prompts", "heldout_combination", "--per-set", "1", "--judge", str(tiny_judge)]
    assert main([*args, "-o", str(out)]) == 0
    assert "report ->" in capsys.readouterr().out
    data = json.loads((out / "report.json").read_text())
    assert data["baseline"] is True and "procedural baseline" in data["generator"]
    assert set(data["sets"]) == {"free", "heldout_combination"}
    s = data["sets"]["free"]
    assert set(s["judge_accuracy"]) >= {"biome", "water", "vegetation", "structure", "time", "weather", "mean"}
    assert set(s["judge_accuracy_procedural"]) == set(s["judge_accuracy"])
    if s["judge_accuracy_procedural"]["mean"] > 0:
        assert s["judge_relative"] == pytest.approx(s["judge_accuracy"]["mean"] / s["judge_accuracy_procedural"]["mean"])
    st = s["judge_stated"]
    assert 0 < st["generated"]["pairs"] <= 2 * 6 and st["generated"]["pairs"] == st["procedural"]["pairs"]
    if st["procedural"]["mean"] > 0:
        assert st["relative"] == pytest.approx(st["generated"]["mean"] / st["procedural"]["mean"])
    assert all(w["judged"] is not None for w in data["worlds"])  # procedural references are judged too
    assert all(w["stated"][0] == "biome" for w in data["worlds"])
    assert 0 <= s["distribution"]["1nna"] <= 1 and s["distribution"]["mmd"] >= 0
    assert s["diversity"]["procedural"] > 0
    # the baseline *is* procedural: its probe facts agree exactly as often as the reference worlds' do
    for fact in s["probe_agreement"].values():
        assert 0 <= fact["generated"] <= 1
    assert all(w["probes"]["uncovered"] < 0.05 for w in data["worlds"])  # procedural worlds cover their views
    assert data["speed"]["seconds_per_world"] > 0 and data["speed"]["device"]
    assert len(data["worlds"]) == 2 * 4  # two prompts, two generated and two procedural worlds each
    md = (out / "report.md").read_text()
    assert "| uncovered |" in md
    assert "procedural baseline" in md and "1-NNA" in md and "*relative*" in md and "Stated attributes" in md and "contact_sheet.png" in md
    from PIL import Image

    with Image.open(out / "contact_sheet.png") as im:
        assert im.size[0] > 256 and im.size[1] > 128


def test_the_bound_rebuilds_procedural_worlds_through_the_autoencoder(tmp_path, tiny_judge, capsys) -> None:
    from worldgen.eval.evaluate import autoencoder_generator
    from worldgen.eval.prompts import prompt_sets
    from worldgen.model import WorldModel, get_config, save_model
    from worldgen.procedural import build_world

    weights = tmp_path / "tiny.safetensors"
    save_model(WorldModel(get_config("tiny")), weights)
    cases = prompt_sets(("free",), 1)
    world = autoencoder_generator(cases, weights)(cases[0].prompt, 0)
    truth = build_world(cases[0].spec, seed=0)
    assert len(world) == len(truth)  # every true part grows as many Gaussians as it had ...
    assert (world.rgb.mean(0) - truth.rgb.mean(0)).abs().max() < 0.02  # ... in its own mean colour (a fresh decoder)
    out = tmp_path / "bound"
    args = ["eval", "--bound", "--weights", str(weights), "--prompts", "free", "--per-set", "1", "--judge", str(tiny_judge)]
    assert main([*args, "-o", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["baseline"] is False and data["generator"].startswith("autoencoder bound")
    assert main(["eval", "--bound", "--prompts", "free", "-o", str(tmp_path / "none")]) == 2
    assert "give --weights" in capsys.readouterr().err
