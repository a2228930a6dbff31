"""Dataset shards: the build writes what the model reads, resumes after interruption, rejects bad input."""

from __future__ import annotations

import json

import pytest
import torch

from worldgen.errors import FormatError, UsageError
from worldgen.procedural.dataset import DatasetConfig, WorldDataset, build_dataset, read_shard

TINY = DatasetConfig(count=3, shard_size=2, views=1, view_size=16, views_every=2, captions=3, seed=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    build_dataset(out, TINY, workers=1)
    return out


def test_shards_hold_what_the_model_needs(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["complete"] == [0, 1]
    s = read_shard(built / "shard-00000.safetensors")
    p, n = len(s["part_kind"]), len(s["splat_means"])
    assert 2 * 150 < p < 2 * 400 and n > 2 * 100_000  # two worlds of whole parts, every splat kept
    assert s["part_center"].shape == (p, 3) and s["part_count"].sum() == n and set(s["part_world"].tolist()) == {0, 1}
    assert s["splat_means"].dtype == torch.float16 and s["splat_quats"].dtype == torch.int8
    assert s["splat_means"].float().abs().max() <= 1.0  # positions in each part's own box
    assert s["views"].shape == (1, 1, 16, 16, 3) and s["views"].dtype == torch.uint8  # world 0 of 2 keeps its views
    assert s["view_world"].tolist() == [0] and s["viewmats"].shape == (1, 1, 4, 4) and s["Ks"].shape == (1, 1, 3, 3)
    assert len(s["specs"]) == 2 and len(s["captions"][0]) == 3
    assert all(isinstance(c, str) and c for c in s["captions"][0])
    assert float(s["views"].float().std()) > 1.0  # a real picture, not a blank
    ds = WorldDataset(built)
    assert len(ds) == 3
    item = ds[2]
    assert item["views"] is not None and ds[1]["views"] is None
    assert set(item["spec"]) >= {"biome", "time", "weather"}


def test_a_stored_world_is_its_procedural_world(built):
    from worldgen.procedural import WorldSpec
    from worldgen.procedural.parts import build_world_parts

    item = WorldDataset(built)[1]
    stored, true = item["parts"], build_world_parts(WorldSpec(**item["spec"]), seed=item["seed"])
    assert torch.equal(stored.kinds, true.kinds) and torch.equal(stored.counts, true.counts)
    g, t = stored.gaussians, true.gaussians
    reach = true.extents[true.part_index].amax(-1, keepdim=True)  # float16 positions: relative to each part's box
    assert ((g.means - t.means).abs() / reach).max() < 1e-3
    assert (g.rgb - t.rgb).abs().max() <= 0.5 / 255 + 1e-6 and (g.opacities - t.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert ((g.scales - t.scales).abs() / t.scales).max() < 2e-3


def test_build_is_deterministic_and_resumes(built, tmp_path):
    out = tmp_path / "ds"
    build_dataset(out, TINY, workers=1)
    (out / "shard-00001.safetensors").unlink()  # as if interrupted
    rebuilt = build_dataset(out, TINY, workers=1)
    assert rebuilt == [1]
    again = build_dataset(out, TINY, workers=1)
    assert again == []
    a, b = read_shard(built / "shard-00001.safetensors"), read_shard(out / "shard-00001.safetensors")
    assert torch.equal(a["splat_means"], b["splat_means"]) and a["captions"] == b["captions"]


def test_other_config_in_same_directory_is_refused(built):
    with pytest.raises(UsageError, match="another config"):
        build_dataset(built, DatasetConfig(count=5, shard_size=2, views=0), workers=1)


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
            "--views", "0", "--no-progress"]  # fmt: skip
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


def test_a_dataset_of_the_cluster_format_is_refused(built, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["format"] = "worldgen-procedural-shard-v1"  # 2048 clusters a world, before parts
    manifest["config"] = {**manifest["config"], "coarse_n": 2048, "children": 64}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match="another format"):
        WorldDataset(out)
    with pytest.raises(UsageError, match="another config"):
        build_dataset(out, TINY, workers=1)
