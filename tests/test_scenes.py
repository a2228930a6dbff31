"""Training on a user's own splat scenes: discovery, captions, records, and `worldgen train SCENES`."""

from __future__ import annotations

import json

import pytest
import torch

import exporters
from tests.conftest import random_gaussians
from worldgen.cli import main
from worldgen.errors import FormatError, UsageError
from worldgen.model import load_model
from worldgen.model import tokens as tok
from worldgen.model.config import get_config
from worldgen.model.world import WorldModel, read_metadata, save_model
from worldgen.scenes import find_scenes, is_scenes_dir, scene_record
from worldgen.train import world_set_from_scenes


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


def test_scene_record_fits_the_lod_and_renders_views(tmp_path):
    root = _scenes(tmp_path / "c", n=1)
    (root / "scene0.txt").write_text("a red hill\n")
    rec = scene_record(find_scenes(root)[0], coarse_n=32, children=8, views=2, view_size=24)
    assert rec["coarse_means"].shape == (32, 3) and rec["children_offsets"].shape == (32, 8, 3)
    assert rec["views"].shape == (2, 24, 24, 3) and rec["views"].dtype == torch.uint8
    assert rec["captions"] == ["a red hill"]
    # the coarse set is a moment fit of the scene: total opacity mass sits where the splats are
    world = exporters.load(root / "scene0.ply")
    assert torch.allclose(rec["coarse_means"].mean(0), world.means.mean(0), atol=1.5)


def test_too_small_a_scene_is_refused(tmp_path):
    root = _scenes(tmp_path / "d", n=1, splats=20)
    (root / "scene0.txt").write_text("tiny\n")
    with pytest.raises(UsageError, match="at least 32"):
        scene_record(find_scenes(root)[0], coarse_n=32, children=4, views=0)


def test_world_set_from_scenes_maps_every_caption_to_its_scene(tmp_path):
    root = _scenes(tmp_path / "e")
    (root / "scene0.txt").write_text("a\nb\nc\n")
    (root / "scene1.txt").write_text("d\n")
    data = world_set_from_scenes(root, coarse_n=16, children=4, views=1, view_size=16, encode=_fake_encode)
    assert data.coarse.shape == (2, 16, tok.TOKEN_DIM) and data.children.shape == (2, 16, 4, tok.CHILD_TOKEN_DIM)
    assert data.captions == ["a", "b", "c", "d"] and data.caption_world.tolist() == [0, 0, 0, 1]
    assert data.views.shape == (2, 1, 16, 16, 3)


def test_worldgen_train_on_scenes_fine_tunes_given_weights(tmp_path, capsys):
    cfg = get_config("tiny")
    root = _scenes(tmp_path / "f", splats=cfg.n_tokens * 2)
    (root / "scene0.txt").write_text("a red hill\n")
    (root / "scene1.txt").write_text("a blue lake\n")
    torch.manual_seed(0)
    fresh = WorldModel(cfg)  # what `train` would start from without --init (seed 0)
    start = WorldModel(cfg)
    start.load_state_dict(fresh.state_dict())
    with torch.no_grad():
        for p in start.parameters():
            p.add_(0.1 * torch.randn_like(p))
    save_model(start, tmp_path / "init.safetensors")
    out = tmp_path / "run"
    code = main(["train", str(root), "--out", str(out), "--preset", "tiny", "--steps", "2", "--batch-size", "2",
                 "--init", str(tmp_path / "init.safetensors"), "--threads", "1"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "scene 2/2: scene1.splat" in err and "2 worlds, 2 captions" in err
    tuned = load_model(out / "model.safetensors").state_dict()

    def farthest(a):
        return max(float((tuned[k] - v).abs().max()) for k, v in a.state_dict().items())

    assert 0 < farthest(start) < 0.05 < farthest(fresh)  # two small steps away from the given weights
    assert json.loads(read_metadata(out / "model.safetensors")["train_config"])["subset_n"] == 64  # the preset's

    code = main(["train", str(root), "--out", str(tmp_path / "whole"), "--preset", "tiny", "--steps", "1",
                 "--batch-size", "2", "--subset-n", "0", "--t-dist", "uniform", "--threads", "1"])  # fmt: skip
    assert code == 0  # 0: every coarse Gaussian of each world, every step
    recorded = json.loads(read_metadata(tmp_path / "whole" / "model.safetensors")["train_config"])
    assert (recorded["subset_n"], recorded["t_dist"]) == (0, "uniform")
    assert json.loads(read_metadata(out / "model.safetensors")["train_config"])["t_dist"] == "logit_normal"  # the preset's

    code = main(["train", str(root), "--out", str(tmp_path / "local"), "--preset", "tiny", "--steps", "1",
                 "--batch-size", "2", "--init", str(tmp_path / "init.safetensors"), "--local-blocks", "1",
                 "--threads", "1"])  # fmt: skip
    assert code == 0
    grown = load_model(tmp_path / "local" / "model.safetensors")
    assert grown.cfg.local_blocks == 1 and len(grown.backbone.local) == 1
    assert float((grown.backbone.embed[0].weight - start.backbone.embed[0].weight).abs().max()) < 0.05


def _captioned_scenes_and_init(tmp_path):
    """Two captioned scenes for the tiny preset, and fresh tiny weights at tmp_path/init.safetensors (their state)."""
    cfg = get_config("tiny")
    root = _scenes(tmp_path / "f", splats=cfg.n_tokens * 2)
    (root / "scene0.txt").write_text("a red hill\n")
    (root / "scene1.txt").write_text("a blue lake\n")
    torch.manual_seed(0)
    save_model(WorldModel(cfg), tmp_path / "init.safetensors")
    return root, load_model(tmp_path / "init.safetensors").state_dict()


def test_worldgen_train_decoder_stage_keeps_the_set_model(tmp_path, capsys):
    root, start = _captioned_scenes_and_init(tmp_path)
    out = tmp_path / "run"
    code = main(["train", str(root), "--out", str(out), "--preset", "tiny", "--steps", "2", "--batch-size", "2",
                 "--stage", "decoder", "--decoder-parents", "16", "--init", str(tmp_path / "init.safetensors"),
                 "--threads", "1"])  # fmt: skip
    assert code == 0
    assert "step 2: decoder loss" in capsys.readouterr().out
    tuned = load_model(out / "model.safetensors").state_dict()
    moved = {k for k, v in start.items() if not torch.equal(v, tuned[k])}
    assert moved and all(k.startswith("decoder.") for k in moved)
    assert main(["train", str(root), "--out", str(tmp_path / "r2"), "--stage", "backbone"]) == 2
    assert "stage must be joint, decoder or water" in capsys.readouterr().err


def test_worldgen_train_refuses_a_file(tmp_path, capsys):
    (tmp_path / "x.ply").write_bytes(b"")
    assert main(["train", str(tmp_path / "x.ply"), "--out", str(tmp_path / "run")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_worldgen_train_water_stage_grows_and_trains_only_a_water_head(tmp_path, capsys):
    root, start = _captioned_scenes_and_init(tmp_path)
    out = tmp_path / "run"
    code = main(["train", str(root), "--out", str(out), "--preset", "tiny", "--steps", "2", "--batch-size", "2",
                 "--stage", "water", "--water-width", "16", "--decoder-parents", "64",
                 "--init", str(tmp_path / "init.safetensors"), "--threads", "1"])  # fmt: skip
    assert code == 0
    assert "step 2: water loss" in capsys.readouterr().out
    tuned = load_model(out / "model.safetensors")
    assert tuned.cfg.water_width == 16
    assert all(torch.equal(v, tuned.state_dict()[k]) for k, v in start.items())  # everything else as it was
    assert main(["train", str(root), "--out", str(tmp_path / "bare"), "--preset", "tiny", "--steps", "1",
                 "--stage", "water", "--init", str(tmp_path / "init.safetensors"), "--threads", "1"]) == 2  # no head
