"""The water head: its labels, laying water flat on the level, equivariance, training, decoding."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from worldgen.errors import UsageError
from worldgen.gaussians import covariance, quat_to_rotmat
from worldgen.model import Condition, WorldModel, get_config, load_model, save_model
from worldgen.model import tokens as tok
from worldgen.model.water import WATER_THICKNESS, lay_flat, settle_tokens, water_labels
from worldgen.model.world import decode_world, water_mask, with_water_head
from worldgen.procedural.terrain import WATER_LEVEL
from worldgen.train import TrainConfig, WorldSet, train

#: the tiny preset with a water head (no preset has one)
WET = {"water_width": 32}


def test_labels_are_the_water_layer_of_a_procedural_world():
    from worldgen.procedural import WorldSpec, build_world_layers
    from worldgen.procedural.lod import build_lod
    from worldgen.gaussians import Gaussians

    layers = build_world_layers(WorldSpec(biome="meadow", water="lake", vegetation="dense"), seed=3)
    world = Gaussians.cat(list(layers.values()))
    part = torch.cat([torch.full((len(g),), i) for i, g in enumerate(layers.values())])
    sky = part == list(layers).index("sky")
    lod = build_lod(world, coarse_n=512, children=8, sky_mask=sky, layers=part, seed=3)
    used = lod.assignment >= 0
    layer_of = torch.empty(512, dtype=torch.long)
    layer_of[lod.assignment[used]] = part[used]  # clusters never mix layers
    water = layer_of == list(layers).index("water")
    labels = water_labels(lod.coarse.means, lod.coarse.quats, lod.coarse.scales)
    assert water.sum() >= 5
    assert bool((labels == water).all())


def test_lay_flat_keeps_the_footprint_on_the_level():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(200, 3, generator=g, dtype=torch.float64) * 10
    quats = torch.randn(200, 4, generator=g, dtype=torch.float64)
    scales = torch.rand(200, 3, generator=g, dtype=torch.float64) * 2 + 0.01
    m, q, s = lay_flat(means, quats, scales)
    assert torch.equal(m[:, :2], means[:, :2]) and bool((m[:, 2] == WATER_LEVEL).all())
    cov, before = covariance(q, s), covariance(quats, scales)
    torch.testing.assert_close(cov[:, :2, :2], before[:, :2, :2])  # the same splat seen from above
    assert cov[:, :2, 2].abs().max() < 1e-12  # no tilt
    assert bool((cov[:, 2, 2].sqrt() <= WATER_THICKNESS + 1e-12).all())
    assert bool(water_labels(m, q, s).all())  # what a data water Gaussian looks like
    torch.testing.assert_close(torch.linalg.det(quat_to_rotmat(q)), torch.ones(200, dtype=torch.float64))


def test_settling_moves_only_the_water_tokens_and_commutes_with_permutations():
    g = torch.Generator().manual_seed(1)
    tokens = tok.clamp_to_support(torch.randn(64, tok.TOKEN_DIM, generator=g) * 0.5)
    wet = torch.rand(64, generator=g) < 0.3
    out = settle_tokens(tokens, wet)
    assert torch.equal(out[~wet], tokens[~wet])
    fields = tok.decode(out[wet])
    assert fields["means"][:, 2].abs().max() < 1e-5 and bool(water_labels(**_geometry(fields)).all())
    perm = torch.randperm(64, generator=g)
    torch.testing.assert_close(settle_tokens(tokens[perm], wet[perm]), out[perm], rtol=0, atol=0)
    assert settle_tokens(tokens, torch.zeros(64, dtype=torch.bool)) is tokens


def _geometry(fields):
    return {k: fields[k] for k in ("means", "quats", "scales")}


def test_the_water_mask_is_permutation_equivariant():
    model = WorldModel(get_config("tiny", **WET))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.water.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    x, pooled = torch.randn(128, tok.TOKEN_DIM, generator=g), torch.randn(384, generator=g) * 0.1
    wet = water_mask(model, x, pooled)
    assert 0 < int(wet.sum()) < 128  # a non-trivial mask
    perm = torch.randperm(128)
    assert torch.equal(water_mask(model, x[perm], pooled), wet[perm])


def water_worlds(worlds: int = 32, n: int = 64, *, seed: int = 0) -> WorldSet:
    """Worlds of two kinds (condition 0: dry, 1: a blue lake on the water level) and random other Gaussians."""
    g = torch.Generator().manual_seed(seed)
    wet_world = torch.arange(worlds) % 2 == 1
    means = torch.randn(worlds, n, 3, generator=g) * 8
    means[..., 2] = means[..., 2].abs() * 0.3 + 0.5  # land above the water level
    quats = torch.nn.functional.normalize(torch.randn(worlds, n, 4, generator=g), dim=-1)
    scales = torch.rand(worlds, n, 3, generator=g) + 0.2
    rgb = torch.rand(worlds, n, 3, generator=g) * 0.5 + 0.5  # pale land
    lake = wet_world[:, None] & (torch.arange(n) < n // 4)  # [W, N]
    means[..., 2] = torch.where(lake, torch.full_like(means[..., 2], WATER_LEVEL), means[..., 2])
    quats[lake] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    scales[lake] = torch.tensor([1.0, 1.0, 0.02])
    rgb[lake] = torch.tensor([0.1, 0.2, 0.5])
    coarse = tok.encode(means, quats, scales, torch.full((worlds, n), 0.9), rgb)
    word = torch.nn.functional.normalize(torch.randn(2, 384, generator=g), dim=-1)[wet_world.long()]
    cond = Condition(word[:, None], torch.ones(worlds, 1, dtype=torch.bool), word)
    return WorldSet(coarse, cond)


def test_the_water_stage_trains_the_head_alone_and_reads_water_off_the_level(tmp_path):
    data = water_worlds()
    labels = water_labels(**_geometry(tok.decode(data.coarse)))
    assert 0 < labels.float().mean() < 0.2
    start = train(TrainConfig(model="tiny", model_overrides=WET, steps=0, progress=False, out_dir=""), data).model
    assert not water_mask(start, data.coarse[1], data.cond.pooled[1]).any()  # a fresh head sees no water
    frozen = {k: v.clone() for k, v in start.state_dict().items() if not k.startswith("water.")}
    cfg = TrainConfig(model="tiny", stage="water", steps=150, batch_size=8, subset_n=16, decoder_parents=512, lr=3e-3,
                      warmup=5, progress=False, out_dir=str(tmp_path))  # fmt: skip
    result = train(cfg, data, model=start)
    assert sum(result.decoder_losses[-10:]) < 0.5 * sum(result.decoder_losses[:10])
    assert all(v == 0.0 for v in result.losses)  # no flow loss in this stage
    after = result.model.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    # tokens that missed the plane by up to a metre are still read as water, and dry worlds stay dry
    missed = data.coarse.clone()
    missed[..., 2] += (torch.rand(missed.shape[:2], generator=torch.Generator().manual_seed(5)) - 0.5) * 2 / 32
    model = load_model(tmp_path / "model.safetensors")
    wet = torch.stack([water_mask(model, missed[w], data.cond.pooled[w]) for w in range(len(missed))])
    assert (wet == labels).float().mean() > 0.95
    assert not wet[0::2].any()


def test_decoding_lays_water_parents_and_their_children_on_the_level():
    model = WorldModel(get_config("tiny", **WET)).eval()
    x = tok.clamp_to_support(torch.randn(32, tok.TOKEN_DIM, generator=torch.Generator().manual_seed(3)) * 0.3)
    pooled = torch.randn(384)
    dry = decode_world(model, x, pooled, steps=2)
    with torch.no_grad():
        model.water.net[-1].bias.fill_(10.0)  # every token reads as water
    wet = decode_world(model, x, pooled, steps=2)
    assert len(wet) == len(dry) == 32 * model.cfg.children
    assert bool((wet.means[:, 2] == WATER_LEVEL).all()) and bool((dry.means[:, 2] != WATER_LEVEL).any())
    assert bool(water_labels(wet.means, wet.quats, wet.scales).all())
    coarse = decode_world(model, x, pooled, detail=False)
    assert bool((coarse.means[:, 2].abs() < 1e-5).all())


def test_water_head_config_growth_and_round_trip(tmp_path):
    with pytest.raises(UsageError, match="water_width"):
        get_config("tiny", water_width=-1)
    bare = WorldModel(get_config("tiny"))
    assert bare.water is None and not water_mask(bare, torch.randn(5, tok.TOKEN_DIM), torch.randn(384)).any()
    grown = with_water_head(bare, 16)
    assert grown.cfg.water_width == 16 and grown.water is not None
    kept = bare.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in grown.state_dict().items() if not k.startswith("water."))
    save_model(grown, tmp_path / "m.safetensors")
    back = load_model(tmp_path / "m.safetensors")
    assert all(torch.equal(v, back.state_dict()[k]) for k, v in grown.state_dict().items())
    assert with_water_head(back, 0).water is None
    with pytest.raises(UsageError, match="water head"):
        train(TrainConfig(model="tiny", stage="water", steps=1, progress=False, out_dir=""), water_worlds(),
              model=bare)  # fmt: skip


def test_joint_training_trains_the_water_head_too():
    from worldgen.train import toy_worlds

    data, _ = toy_worlds(8, 32, children=4)
    cfg = TrainConfig(model="tiny", model_overrides=WET, steps=0, batch_size=4, subset_n=16, decoder_parents=32,
                      progress=False, precision="fp32", out_dir="")  # fmt: skip
    before = {k: v.clone() for k, v in train(cfg, data).model.water.state_dict().items()}
    after = train(dataclasses.replace(cfg, steps=3), data).model.water.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)
