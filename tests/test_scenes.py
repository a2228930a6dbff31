"""Training on a user's own splat scenes: discovery, captions, records, and `worldgen train SCENES`."""

from __future__ import annotations

import json

import pytest
import torch

import exporters
from tests.conftest import random_gaussians
from worldgen.cli import main
from worldgen.errors import FormatError, UsageError
from worldgen.data import PartSet, token_set_from_shards
from worldgen.model import load_model
from worldgen.model.config import get_config
from worldgen.model.world import WorldModel, read_metadata, save_model
from worldgen.procedural.parts import KIND_INDEX
from worldgen.scenes import cut_into_parts, find_scenes, is_scenes_dir, scene_record, scenes_shard


def _scenes(root, n=2, splats=600):
    root.mkdir(parents=True, exist_ok=True)
    for i, ext in zip(range(n), [".ply", ".splat", ".spz"]):
        exporters.save(random_gaussians(splats, seed=i), root / f"scene{i}{ext}")
    return root


def _fake_encode(captions):
    from worldgen.model.set_transformer import Condition

    g = torch.Generator().manual_seed(len(captions))
    return Condition(torch.randn(len(captions), 2, 384, generator=g), torch.ones(len(captions), 2, dtype=torch.bool),
                     torch.randn(len(captions), 384, generator=g))  # fmt: skip


def test_sidecar_captions_and_jsonl_index(tmp_path):
    root = _scenes(tmp_path / "a")
    (root / "scene0.txt").write_text("a red hill\n\n  a crimson mound  \n")
    (root / "scene1.txt").write_text("a blue lake\n")
    scenes = find_scenes(root)
    assert [s.path.name for s in scenes] == ["scene0.ply", "scene1.splat"]
    assert scenes[0].captions == ("a red hill", "a crimson mound") and scenes[1].captions == ("a blue lake",)
    assert is_scenes_dir(root)

    (root / "captions.jsonl").write_text(json.dumps({"scene": "scene1.splat", "captions": ["x", " "]}) + "\n\n"
                                         + json.dumps({"scene": "scene0.ply", "caption": "y"}) + "\n")  # fmt: skip
    assert [(s.path.name, s.captions) for s in find_scenes(root)] == [("scene1.splat", ("x",)), ("scene0.ply", ("y",))]


@pytest.mark.parametrize(
    "setup, error, message",
    [
        (lambda r: None, UsageError, "no caption"),
        (lambda r: (r / "captions.jsonl").write_text('{"scene": "nope.ply", "captions": ["x"]}\n'), FormatError, "not found"),
        (lambda r: (r / "captions.jsonl").write_text("[1, 2]\n"), FormatError, "captions.jsonl:1"),
    ],
)
def test_bad_scene_directories_are_named(tmp_path, setup, error, message):
    root = _scenes(tmp_path / "b", n=1)
    setup(root)
    with pytest.raises(error, match=message):
        find_scenes(root)


def test_empty_directory_has_no_scenes(tmp_path):
    with pytest.raises(UsageError, match="no scenes"):
        find_scenes(tmp_path)
    assert not is_scenes_dir(tmp_path)


def test_a_scene_is_cut_into_generic_parts_and_renders_views(tmp_path):
    root = _scenes(tmp_path / "c", n=1, splats=3000)
    (root / "scene0.txt").write_text("a red hill\n")
    rec = scene_record(find_scenes(root)[0], n_tokens=384, views=2, view_size=24)
    assert len(rec["part_kind"]) == 4 and (rec["part_kind"] == KIND_INDEX["generic"]).all()  # 3000 -> 4 pieces <= 1024
    assert int(rec["part_count"].sum()) == 3000 and rec["part_count"].max() <= 1024
    assert rec["splat_means"].float().abs().max() <= 1.0  # each splat in its own piece's box
    assert rec["views"].shape == (2, 24, 24, 3) and rec["views"].dtype == torch.uint8
    assert rec["captions"] == ["a red hill"]
    few = scene_record(find_scenes(root)[0], n_tokens=2, views=0)  # pieces grow so the parts fit the tokens
    assert len(few["part_kind"]) <= 2


def test_cutting_keeps_every_splat_once_in_compact_pieces():
    g = random_gaussians(5000, seed=3)
    pieces = cut_into_parts(g, max_splats=700)
    rows = torch.cat(pieces)
    assert torch.equal(rows.sort().values, torch.arange(5000)) and max(len(p) for p in pieces) <= 700
    spread = sum(float(g.means[p].std(0).mean()) for p in pieces) / len(pieces)
    assert spread < 0.75 * float(g.means.std(0).mean())  # pieces are local (a random sample would spread as wide)


def test_too_small_a_scene_is_refused(tmp_path):
    root = _scenes(tmp_path / "d", n=1, splats=10)
    (root / "scene0.txt").write_text("tiny\n")
    with pytest.raises(UsageError, match="at least 16"):
        scene_record(find_scenes(root)[0], views=0)


def test_scenes_become_parts_and_tokens_with_every_caption_on_its_scene(tmp_path):
    root = _scenes(tmp_path / "e")
    (root / "scene0.txt").write_text("a\nb\nc\n")
    (root / "scene1.txt").write_text("d\n")
    shard = scenes_shard(root, views=1, view_size=16)
    parts = PartSet.from_shards([shard])
    assert len(parts) == 2 and int(parts.counts.sum()) == 1200
    model = WorldModel(get_config("tiny"))
    data = token_set_from_shards([shard], model, encode=_fake_encode)
    assert data.tokens.shape == (2, model.cfg.n_tokens, model.cfg.token_dim)
    assert data.captions == ["a", "b", "c", "d"] and data.caption_world.tolist() == [0, 0, 0, 1]
    assert data.views.shape == (2, 1, 16, 16, 3) and data.view_world.tolist() == [0, 1]


def _captioned_scenes_and_init(tmp_path):
    """Two captioned scenes, and tiny weights at tmp_path/init.safetensors (returned as a state dict)."""
    cfg = get_config("tiny")
    root = _scenes(tmp_path / "f", splats=1500)
    (root / "scene0.txt").write_text("a red hill\n")
    (root / "scene1.txt").write_text("a blue lake\n")
    torch.manual_seed(0)
    save_model(WorldModel(cfg), tmp_path / "init.safetensors")
    return root, load_model(tmp_path / "init.safetensors").state_dict()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to the float16 rounding of a run's model.safetensors (a training step moves weights further)."""
    return torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4)


def test_worldgen_train_on_scenes_tunes_the_autoencoder_then_the_set_model(tmp_path, capsys):
    root, start = _captioned_scenes_and_init(tmp_path)
    init = str(tmp_path / "init.safetensors")
    code = main(["train", str(root), "--stage", "parts", "--out", str(tmp_path / "parts"), "--preset", "tiny",
                 "--steps", "2", "--init", init, "--threads", "1"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "scene 2/2: scene1.splat" in err and "4 parts, 3,000 splats" in err
    parts = load_model(tmp_path / "parts" / "model.safetensors").state_dict()
    moved = {k for k, v in start.items() if not _same(v, parts[k])}
    assert moved and all(k.startswith("parts.") for k in moved)  # the autoencoder alone
    assert json.loads(read_metadata(tmp_path / "parts" / "model.safetensors")["train_config"])["stage"] == "parts"

    code = main(["train", str(root), "--out", str(tmp_path / "set"), "--preset", "tiny", "--steps", "2",
                 "--batch-size", "2", "--init", str(tmp_path / "parts" / "model.safetensors"), "--threads", "1"])  # fmt: skip
    assert code == 0
    assert "2 worlds, 2 captions" in capsys.readouterr().err
    tuned = load_model(tmp_path / "set" / "model.safetensors").state_dict()
    moved = {k for k, v in parts.items() if not _same(v, tuned[k])}
    assert any(k.startswith("backbone.") for k in moved)
    assert not any(k.startswith("parts.") for k in moved)  # the set stage keeps the autoencoder
    assert {"z_mean", "z_std"} <= moved  # ... and sets the latents' statistics from the scenes


def test_worldgen_train_set_stage_needs_an_autoencoder(tmp_path, capsys):
    root, _ = _captioned_scenes_and_init(tmp_path)
    assert main(["train", str(root), "--out", str(tmp_path / "run"), "--preset", "tiny", "--steps", "1"]) == 2
    assert "needs a trained autoencoder" in capsys.readouterr().err
    assert main(["train", str(root), "--out", str(tmp_path / "r2"), "--stage", "backbone"]) == 2
    assert "stage must be parts or set" in capsys.readouterr().err


def test_worldgen_train_refuses_a_file(tmp_path, capsys):
    (tmp_path / "x.ply").write_bytes(b"")
    assert main(["train", str(tmp_path / "x.ply"), "--out", str(tmp_path / "run")]) == 2
    assert "not a directory" in capsys.readouterr().err
