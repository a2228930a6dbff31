"""Dataset shards: the build writes what the model reads, resumes after interruption, rejects bad input."""

from __future__ import annotations

import json

import pytest
import torch

from worldgen.errors import FormatError, UsageError
from worldgen.procedural.dataset import DatasetConfig, WorldDataset, build_dataset, read_shard

TINY = DatasetConfig(count=3, shard_size=2, coarse_n=64, children=8, views=1, view_size=16, captions=3, seed=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    build_dataset(out, TINY, workers=1)
    return out


def test_shards_hold_what_the_model_needs(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["complete"] == [0, 1]
    s = read_shard(built / "shard-00000.safetensors")
    assert s["coarse_means"].shape == (2, 64, 3)
    assert s["coarse_quats"].shape == (2, 64, 4)
    assert s["children_offsets"].shape == (2, 64, 8, 3)
    assert s["children_offsets"].dtype == torch.float16
    assert s["views"].shape == (2, 1, 16, 16, 3) and s["views"].dtype == torch.uint8
    assert s["viewmats"].shape == (2, 1, 4, 4) and s["Ks"].shape == (2, 1, 3, 3)
    assert len(s["specs"]) == 2 and len(s["captions"][0]) == 3
    assert all(isinstance(c, str) and c for c in s["captions"][0])
    assert float(s["views"].float().std()) > 1.0  # a real picture, not a blank
    ds = WorldDataset(built)
    assert len(ds) == 3
    item = ds[2]
    assert item["coarse_rgb"].shape == (64, 3) and set(item["spec"]) >= {"biome", "time", "weather"}


def test_build_is_deterministic_and_resumes(built, tmp_path):
    out = tmp_path / "ds"
    build_dataset(out, TINY, workers=1)
    (out / "shard-00001.safetensors").unlink()  # as if interrupted
    rebuilt = build_dataset(out, TINY, workers=1)
    assert rebuilt == [1]
    again = build_dataset(out, TINY, workers=1)
    assert again == []
    a, b = read_shard(built / "shard-00001.safetensors"), read_shard(out / "shard-00001.safetensors")
    assert torch.equal(a["coarse_means"], b["coarse_means"]) and a["captions"] == b["captions"]


def test_other_config_in_same_directory_is_refused(built):
    with pytest.raises(UsageError, match="another config"):
        build_dataset(built, DatasetConfig(count=5, shard_size=2, coarse_n=64, children=8, views=0), workers=1)


def test_bad_shard_is_a_format_error(tmp_path):
    bad = tmp_path / "shard-00000.safetensors"
    bad.write_bytes(b"not a shard")
    with pytest.raises(FormatError):
        read_shard(bad)


def test_bad_config_is_a_usage_error():
    with pytest.raises(UsageError):
        DatasetConfig(count=0)


def test_cli_builds_with_workers(tmp_path):
    from worldgen.cli import main

    out = tmp_path / "cli"
    args = ["dataset", "build", "-o", str(out), "--count", "2", "--shard-size", "1", "--workers", "2",
            "--coarse-n", "32", "--children", "4", "--views", "0", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((out / "manifest.json").read_text())["complete"] == [0, 1]


def test_cli_procedural_writes_a_world_and_rejects_bad_input(tmp_path, capsys):
    from worldgen.cli import main

    out = tmp_path / "w.ply"
    assert main(["procedural", "--biome", "desert", "--time", "sunset", "--seed", "2", "-o", str(out)]) == 0
    assert out.stat().st_size > 100_000 * 56
    assert main(["procedural", "--biome", "moon", "-o", str(tmp_path / "x.ply")]) == 2
    assert "unknown biome" in capsys.readouterr().err
    assert not (tmp_path / "x.ply").exists()


def test_layer_groups_are_recorded_and_old_manifests_read_as_mixed(built, tmp_path):
    assert WorldDataset(built).config.lod_groups == "layers"
    out = tmp_path / "old"
    out.mkdir()
    manifest = json.loads((built / "manifest.json").read_text())
    del manifest["config"]["lod_groups"]  # as written before the option existed
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert WorldDataset(out).config.lod_groups == "mixed"
    with pytest.raises(UsageError, match="another config"):
        build_dataset(out, TINY, workers=1)  # a layered build must not resume a mixed one
    with pytest.raises(UsageError, match="lod_groups"):
        DatasetConfig(lod_groups="by-colour")
