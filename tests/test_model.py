"""The set model: tokens round-trip, equivariance, zero init, set-size transfer, weights files."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import random_gaussians
from worldgen.gaussians import Gaussians
from worldgen.errors import FormatError, InvalidGaussiansError, UsageError
from worldgen.model import Condition, WorldModel, get_config, load_model, save_model
from worldgen.model import tokens as tok
from worldgen.model.config import PRESETS, ModelConfig
from worldgen.model.set_transformer import InducedAttention, initialize_weights


#: the set attentions under test: full, induced, and induced with local (distance-biased) blocks
ATTENTIONS = {
    "full": {"attention": "full"},
    "isab": {"attention": "isab"},
    "local": {"attention": "isab", "local_blocks": 2},
}


def micro_config(**kw) -> ModelConfig:
    """A dim-16 model that runs in milliseconds."""
    base = dict(
        width=16, depth=2, heads=2, fourier_freqs=2, inducing=4, children=4, decoder_width=8, decoder_depth=1,
        image_size=32, patch=8, image_width=16, image_depth=1, cond_dim=12,
    )
    return ModelConfig(**{**base, **kw})


def randomize(model: torch.nn.Module, seed: int = 0, std: float = 0.3) -> torch.nn.Module:
    """Overwrite every parameter (zero-initialised heads too) so equivariance is tested on a non-trivial map."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return model


def random_condition(b: int, dim: int, *, length: int = 5, seed: int = 0, dtype=torch.float64) -> Condition:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, length - 2 :] = False  # padded words
    return Condition(
        torch.randn(b, length, dim, generator=g, dtype=dtype), mask, torch.randn(b, dim, generator=g, dtype=dtype)
    )


# -- tokens --------------------------------------------------------------------------------


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), far=st.booleans())
def test_tokens_round_trip(seed: int, far: bool):
    g = random_gaussians(64, seed=seed, dtype=torch.float64)
    g = g.replace(sh0=g.sh0.clamp(-1.7, 1.7))  # rgb inside [0, 1]
    if far:  # a sky dome at 150-400 m
        g = g.replace(means=torch.nn.functional.normalize(g.means, dim=1) * (150 + 250 * torch.rand(64, 1, dtype=torch.float64)))
    t = tok.gaussians_to_tokens(g)
    assert t.shape == (64, tok.TOKEN_DIM)
    assert t[:, tok.POS].norm(dim=1).max() < 2.0
    back = tok.tokens_to_gaussians(t)
    torch.testing.assert_close(back.means, g.means, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(back.scales, g.scales, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(back.opacities, g.opacities, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(back.rgb, g.rgb, rtol=1e-9, atol=1e-9)
    same_rotation = (back.quats * g.quats).sum(1).abs()
    torch.testing.assert_close(same_rotation, torch.ones_like(same_rotation))
    assert (back.quats[:, 0] >= 0).all()


def test_contraction_keeps_footprint_linear_and_sky_bounded():
    x = torch.tensor([[20.0, -10.0, 1.0], [150.0, 0.0, 0.0], [0.0, 0.0, 1e3]]) / tok.HALF_EXTENT
    y = tok.contract(x)
    torch.testing.assert_close(y[0], x[0])
    assert 1.7 < y[1].norm() < 1.8 and y[2].norm() < 2.0
    torch.testing.assert_close(tok.uncontract(y), x, rtol=1e-4, atol=1e-6)  # float32 near the shell edge


@settings(max_examples=20)
@given(seed=st.integers(0, 2**31 - 1))
def test_children_round_trip_in_parent_frame(seed: int):
    gen = torch.Generator().manual_seed(seed)
    p, c = 5, 7
    parent = {
        "means": torch.randn(p, 3, generator=gen, dtype=torch.float64) * 20,
        "quats": torch.nn.functional.normalize(torch.randn(p, 4, generator=gen, dtype=torch.float64), dim=1),
        "scales": torch.rand(p, 3, generator=gen, dtype=torch.float64) + 0.1,
        "opacities": torch.rand(p, generator=gen, dtype=torch.float64) * 0.9 + 0.05,
        "rgb": torch.rand(p, 3, generator=gen, dtype=torch.float64),
    }
    kids = {
        "means": parent["means"][:, None] + torch.randn(p, c, 3, generator=gen, dtype=torch.float64),
        "quats": torch.nn.functional.normalize(torch.randn(p, c, 4, generator=gen, dtype=torch.float64), dim=-1),
        "scales": torch.rand(p, c, 3, generator=gen, dtype=torch.float64) * 0.2 + 0.01,
        "opacities": torch.rand(p, c, generator=gen, dtype=torch.float64) * 0.9 + 0.05,
        "rgb": torch.rand(p, c, 3, generator=gen, dtype=torch.float64),
    }
    t = tok.encode_children(parent, **kids)
    back = tok.decode_children(parent, t)
    for k in ("means", "scales", "opacities", "rgb"):
        torch.testing.assert_close(back[k], kids[k], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close((back["quats"] * kids["quats"]).sum(-1).abs(), torch.ones(p, c, dtype=torch.float64))


def test_nan_tokens_raise():
    t = torch.zeros(3, tok.TOKEN_DIM)
    t[1, 2] = float("nan")
    with pytest.raises(InvalidGaussiansError):
        tok.tokens_to_gaussians(t)
    with pytest.raises(InvalidGaussiansError):
        tok.decode(torch.zeros(3, 5))


# -- the backbone ------------------------------------------------------------------------


@pytest.mark.parametrize("attention", list(ATTENTIONS))
@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 40))
def test_backbone_is_permutation_equivariant_float64(attention: str, seed: int, n: int):
    cfg = micro_config(**ATTENTIONS[attention])
    model = randomize(WorldModel(cfg), seed=seed % 1000).double()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, cfg.token_dim, generator=gen, dtype=torch.float64)
    perm = torch.randperm(n, generator=gen)
    cond = random_condition(2, cfg.cond_dim, seed=seed)
    t = torch.tensor([0.3, 0.8], dtype=torch.float64)
    drop = torch.tensor([False, True])
    v = model(x, t, cond, drop)
    v_perm = model(x[:, perm], t, cond, drop)
    assert (v_perm - v[:, perm]).abs().max() <= 1e-9
    assert v.abs().max() > 1e-3  # a non-trivial map


def test_untrained_model_predicts_zero_velocity():
    model = WorldModel(get_config("tiny"))
    cond = random_condition(2, 384, dtype=torch.float32)
    v = model(torch.randn(2, 32, tok.TOKEN_DIM), torch.rand(2), cond)
    assert torch.equal(v, torch.zeros_like(v))
    kids = model.decoder(torch.randn(3, 4, tok.CHILD_TOKEN_DIM), torch.rand(3), torch.randn(3, tok.TOKEN_DIM), torch.randn(3, 384))
    assert torch.equal(kids, torch.zeros_like(kids))


def test_inducing_points_start_apart_so_isab_reads_the_set_through_many_summaries():
    # the `small` preset's shape; c as large as the trained model's conditioning (norm ~5)
    torch.manual_seed(0)
    attn = InducedAttention(192, 6, 128)
    initialize_weights(attn)
    x = torch.randn(2, 512, 192)
    c = torch.randn(2, 192) * 5 / 192**0.5
    seen = []
    attn.norm.register_forward_hook(lambda mod, inp, out: seen.append(out))  # the summaries the set reads back
    attn(x, c)
    summary = seen[0]  # [2, 128, 192]
    cos = torch.nn.functional.cosine_similarity(summary[:, :, None], summary[:, None], dim=-1)
    off_diagonal = cos[:, ~torch.eye(128, dtype=torch.bool)]
    # points at std 0.02 under that c gave one summary repeated 128 times (cos > 0.99)
    assert off_diagonal.mean() < 0.5
    assert off_diagonal.max() < 0.9


@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_no_parameter_depends_on_set_size_and_sizes_transfer(attention: str):
    cfg = micro_config(**ATTENTIONS[attention])
    model = randomize(WorldModel(cfg))
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    other = WorldModel(dataclasses.replace(cfg, n_tokens=cfg.n_tokens * 2 + 1))
    assert shapes == {name: tuple(p.shape) for name, p in other.named_parameters()}
    for n in (64, 256):
        v = model(torch.randn(1, n, cfg.token_dim), torch.rand(1), random_condition(1, cfg.cond_dim, dtype=torch.float32))
        assert v.shape == (1, n, cfg.token_dim) and torch.isfinite(v).all()


def test_condition_changes_the_velocity_and_drop_removes_it():
    cfg = micro_config()
    model = randomize(WorldModel(cfg)).double()
    x = torch.randn(2, 10, cfg.token_dim, dtype=torch.float64)
    t = torch.full((2,), 0.5, dtype=torch.float64)
    a, b = random_condition(2, cfg.cond_dim, seed=1), random_condition(2, cfg.cond_dim, seed=2)
    assert (model(x, t, a) - model(x, t, b)).abs().max() > 1e-4
    drop = torch.ones(2, dtype=torch.bool)
    torch.testing.assert_close(model(x, t, a, drop), model(x, t, b, drop))


def test_condition_shape_mismatch_is_a_usage_error():
    with pytest.raises(UsageError):
        Condition(torch.zeros(2, 3, 8), torch.ones(2, 4, dtype=torch.bool), torch.zeros(2, 8))
    cfg = micro_config()
    with pytest.raises(UsageError):
        WorldModel(cfg)(torch.zeros(3, 4, cfg.token_dim), torch.zeros(3), random_condition(2, cfg.cond_dim, dtype=torch.float32))


# -- config and weights files ---------------------------------------------------------------


def test_presets_and_overrides():
    assert set(PRESETS) >= {"tiny", "small", "base"}
    cfg = get_config("tiny", depth=3)
    assert cfg.depth == 3 and ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(UsageError):
        get_config("huge")
    with pytest.raises(UsageError):
        get_config("tiny", nonsense=1)
    with pytest.raises(UsageError):
        ModelConfig(width=30, heads=4)


def test_group_level_config_and_adding_it_to_trained_weights():
    cfg = micro_config(n_tokens=48, group_size=4, group_width=8, group_depth=1)
    assert cfg.set_tokens == 12 and micro_config(n_tokens=48).set_tokens == 48
    with pytest.raises(UsageError, match="divisible by group_size"):
        micro_config(n_tokens=50, group_size=4)
    with pytest.raises(UsageError, match="group_size"):
        micro_config(group_size=1)
    from worldgen.model.world import with_group_level

    flat = randomize(WorldModel(micro_config(n_tokens=48)))
    grouped = with_group_level(flat, 4)
    assert grouped.cfg.group_size == 4 and grouped.groups is not None and flat.groups is None
    kept = flat.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in grouped.state_dict().items() if not k.startswith("groups."))
    assert all(float(p.abs().max()) == 0 for p in grouped.groups.head.parameters())  # a fresh, zero-velocity decoder
    assert with_group_level(grouped, 0).groups is None


def test_local_blocks_config_placement_and_adding_them_to_trained_weights():
    with pytest.raises(UsageError, match="local_blocks"):
        micro_config(local_blocks=3)  # more than depth
    with pytest.raises(UsageError, match="local_sigma"):
        micro_config(local_sigma=(0.2, 0.1))
    cfg = micro_config(depth=6, local_blocks=2, local_sigma=(0.05, 0.4))
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    model = WorldModel(cfg)
    assert model.backbone.local_after == [2, 5] and len(model.backbone.local) == 2
    sigma = model.backbone.local[0].attn.log_sigma.exp()
    torch.testing.assert_close(sigma[[0, -1]], torch.tensor([0.05, 0.4]))

    from worldgen.model.world import with_local_blocks

    flat = randomize(WorldModel(micro_config()))
    grown = with_local_blocks(flat, 2)
    kept = flat.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in grown.state_dict().items() if not k.startswith("backbone.local."))
    x, t = torch.randn(2, 12, flat.cfg.token_dim), torch.rand(2)
    cond = random_condition(2, flat.cfg.cond_dim, dtype=torch.float32)
    torch.testing.assert_close(grown(x, t, cond), flat(x, t, cond), rtol=0, atol=0)  # zero-gated: the same map
    randomize(grown.backbone.local)
    assert (grown(x, t, cond) - flat(x, t, cond)).abs().max() > 1e-3
    assert with_local_blocks(grown, 0).backbone.local_after == []


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_local_attention_matches_the_written_out_distance_bias(dtype):
    from worldgen.model.set_transformer import LocalAttention, _local_attention_reference

    attn = randomize(LocalAttention(16, 2, sigma=(0.05, 0.3)), std=0.2).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, 16, generator=gen, dtype=torch.float64)
    pos = 1.8 * torch.rand(2, 50, 3, generator=gen, dtype=torch.float64) - 0.9  # |p|^2 / sigma^2 up to ~1e3
    c = torch.randn(2, 16, generator=gen, dtype=torch.float64)
    q, k, v = attn.qkv(x).view(2, 50, 3, 2, 8).permute(2, 0, 3, 1, 4)
    sigma = (attn.log_sigma + attn.sigma_shift(c)).exp()
    want = attn.proj(_local_attention_reference(q, k, v, pos, sigma).transpose(1, 2).reshape(2, 50, 16))
    if dtype == torch.float64:
        torch.testing.assert_close(attn(x, pos, c), want, rtol=0, atol=1e-10)
    else:  # under bf16 autocast the biased logits are formed in float32: only the projections round
        with torch.autocast("cpu", torch.bfloat16):
            got = attn.float()(x.float(), pos.float(), c.float())
        assert (got.double() - want).abs().max() < 0.05 * want.abs().max()
    near = _local_attention_reference(q, k, v, pos, torch.full_like(sigma, 1e-3))
    torch.testing.assert_close(near, v)  # a tiny sigma attends to the token alone


@pytest.mark.parametrize("group_size", [0, 3])
def test_save_load_round_trip(tmp_path, group_size: int):
    cfg = micro_config(n_tokens=48, group_size=group_size)
    model = randomize(WorldModel(cfg))
    path = tmp_path / "w.safetensors"
    save_model(model, path)
    back = load_model(path)
    assert back.cfg == cfg
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(FormatError):
        load_model(bad)
    with pytest.raises(FormatError):
        load_model(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(FormatError):
        load_model(other)
    cfg = micro_config()
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(2)}, str(wrong), metadata={"format": "worldgen-model/1", "config": cfg.to_json()})
    with pytest.raises(FormatError):
        load_model(wrong)
    assert dataclasses.asdict(cfg)  # config stays a plain dataclass


def test_a_zero_child_token_copies_its_parent():
    """Children are residuals on the parent: the decoder's zero output is the parent's colour and opacity."""
    parent = tok.decode(tok.encode(torch.randn(3, 3) * 10, torch.nn.functional.normalize(torch.randn(3, 4), dim=1),
                                   torch.rand(3, 3) + 0.1, torch.rand(3) * 0.9 + 0.05, torch.rand(3, 3)))  # fmt: skip
    kids = tok.decode_children(parent, torch.zeros(3, 5, tok.CHILD_TOKEN_DIM))
    torch.testing.assert_close(kids["rgb"], parent["rgb"][:, None].expand(3, 5, 3))
    torch.testing.assert_close(kids["opacities"], parent["opacities"][:, None].expand(3, 5))
    torch.testing.assert_close(kids["means"], parent["means"][:, None].expand(3, 5, 3))


def test_child_frame_agrees_with_the_dataset_lod():
    lod = pytest.importorskip("worldgen.procedural.lod")
    parents = random_gaussians(6, seed=3, dtype=torch.float64)
    members = random_gaussians(6 * 5, seed=4, dtype=torch.float64)
    members = members.replace(sh0=members.sh0.clamp(-1.7, 1.7))
    ch = lod.to_children_local(parents, members, 5)
    from_lod = tok.child_tokens_from_local(ch.offsets, ch.log_scales, ch.quats, ch.rgb, ch.opacities,
                                           parents.rgb, parents.opacities)  # fmt: skip
    parent = {"means": parents.means, "quats": parents.quats, "scales": parents.scales,
              "opacities": parents.opacities, "rgb": parents.rgb}  # fmt: skip
    m = lambda x: x.reshape(6, 5, *x.shape[1:])  # noqa: E731
    mine = tok.encode_children(parent, m(members.means), m(members.quats), m(members.scales), m(members.opacities), m(members.rgb))
    torch.testing.assert_close(mine, from_lod, rtol=1e-9, atol=1e-9)
    back = lod.from_children_local(parents, lod.Children(**tok.child_local_from_tokens(mine, parents.rgb, parents.opacities)))
    torch.testing.assert_close(back.means, members.means, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("masked", [False, True])
def test_sdpa_matches_the_reference_attention_forward_and_backward(masked: bool):
    import torch.nn.functional as F

    from worldgen.model.set_transformer import _attention_reference

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 8, generator=gen, dtype=torch.float64, requires_grad=True) for n in (5, 7, 7))
    mask = torch.rand(2, 7, generator=gen) > 0.4 if masked else None
    if mask is not None:
        mask[:, 0] = True  # the model always keeps one key (its null token)
    fast = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None, None, :])
    slow = _attention_reference(q, k, v, mask)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    g_fast = torch.autograd.grad(fast.square().sum(), (q, k, v))
    g_slow = torch.autograd.grad(slow.square().sum(), (q, k, v))
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_samples_are_pulled_inside_the_data_support():
    gen = torch.Generator().manual_seed(0)
    means = torch.cat([torch.randn(64, 3, generator=gen) * 20, torch.tensor([[0.0, 150.0, 60.0]])])  # ground + sky
    g = Gaussians.from_rgb(means, torch.rand(65, 3, generator=gen), torch.rand(65, 3, generator=gen) * 5 + 0.01,
                           torch.rand(65, generator=gen), torch.nn.functional.normalize(torch.randn(65, 4, generator=gen), dim=1))  # fmt: skip
    t = tok.gaussians_to_tokens(g)
    torch.testing.assert_close(tok.clamp_to_support(t), t, rtol=0, atol=0)  # data are left exactly alone
    wild = t.clone()
    wild[0, tok.POS] = torch.tensor([1.999, 0.0, 0.0])  # 32 km away
    wild[1, tok.SCALE] = 9.0  # a 10 km splat
    wild[2, tok.SCALE] = -20.0
    f = tok.decode(tok.clamp_to_support(wild))
    assert f["means"][0].norm() == pytest.approx(tok.SAMPLE_MAX_DISTANCE, rel=1e-5)
    assert f["scales"][1].max() == pytest.approx(tok.SAMPLE_SCALE_RANGE[1], rel=1e-5)
    assert f["scales"][2].min() == pytest.approx(tok.SAMPLE_SCALE_RANGE[0], rel=1e-5)
    torch.testing.assert_close(f["means"][3:], g.means[3:], rtol=1e-5, atol=1e-4)
