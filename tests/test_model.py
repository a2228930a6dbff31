"""The world model: part tokens round-trip, equivariance, zero init, set-size transfer, the autoencoder, weights files."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldgen.errors import FormatError, UsageError
from worldgen.gaussians import Gaussians
from worldgen.model import Condition, WorldModel, get_config, load_model, save_model
from worldgen.model import tokens as tok
from worldgen.model.autoencoder import AutoencoderConfig, PartAutoencoder, halton, part_loss, render_loss
from worldgen.model.config import PRESETS, ModelConfig
from worldgen.model.world import batch_of, decode_parts, encode_world
from worldgen.procedural.parts import KINDS, assemble_parts


def micro_config(**kw) -> ModelConfig:
    """A dim-16 model that runs in milliseconds."""
    base = dict(
        width=16, depth=2, heads=2, fourier_freqs=2, n_tokens=24, cond_dim=12, image_size=32, patch=8, image_width=16,
        image_depth=1, parts=AutoencoderConfig(latent=4, width=16, encoder_depth=1, queries=2, decoder_depth=1,
                                               fourier_freqs=2, encoder_splats=16),
    )  # fmt: skip
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


def random_frames(p: int, seed: int, *, empty: bool = False) -> tok.PartFrames:
    g = torch.Generator().manual_seed(seed)
    kinds = torch.randint(len(KINDS) + (1 if empty else 0), (p,), generator=g)
    return tok.PartFrames(
        kinds=kinds,
        centers=(torch.rand(p, 3, generator=g, dtype=torch.float64) - 0.5) * 360,
        extents=torch.rand(p, 3, generator=g, dtype=torch.float64) * 30 + 0.05,
        yaws=(torch.rand(p, generator=g, dtype=torch.float64) - 0.5) * 2 * math.pi * 0.999,
        counts=torch.randint(1, tok.MAX_COUNT + 1, (p,), generator=g),
        colors=torch.rand(p, 3, generator=g, dtype=torch.float64),
    )


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), p=st.integers(1, 40))
def test_part_tokens_round_trip(seed: int, p: int):
    f = random_frames(p, seed)
    z = torch.randn(p, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    t = tok.encode_parts(f, z)
    assert t.shape == (p, tok.token_dim(6))
    back, z2 = tok.decode_parts(t)
    assert torch.equal(back.kinds, f.kinds) and torch.equal(back.counts, f.counts)
    torch.testing.assert_close(back.centers, f.centers, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(back.extents, f.extents, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(back.yaws, f.yaws, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(back.colors, f.colors, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(z2, z)


def test_empty_parts_are_the_padding_token_and_decode_as_empty():
    f = random_frames(30, 1, empty=True)
    assert (f.kinds == tok.EMPTY).any()
    t = tok.encode_parts(f, torch.randn(30, 5, dtype=torch.float64))
    pad = tok.padding_token(5, dtype=torch.float64)
    assert torch.equal(t[f.kinds == tok.EMPTY], pad.expand(int((f.kinds == tok.EMPTY).sum()), -1))
    assert torch.equal(tok.decode_parts(pad[None])[0].kinds, torch.tensor([tok.EMPTY]))
    with pytest.raises(UsageError):
        tok.decode_parts(torch.zeros(3, 5))


def test_token_scales_keep_the_footprint_fine_and_the_sky_bounded():
    f = tok.PartFrames(torch.zeros(2, dtype=torch.long), torch.tensor([[4.0, 0, 0], [0, 0, 180.0]]),
                       torch.ones(2, 3), torch.zeros(2), torch.tensor([1, tok.MAX_COUNT]), torch.rand(2, 3))  # fmt: skip
    t = tok.encode_parts(f, torch.zeros(2, 1))
    assert 0.24 < float(t[0, 0]) < 0.25  # 4 m: nearly linear, a quarter of a unit
    assert float(t[1, 2]) < 3.2  # the dome at 180 m stays within the noise's range
    assert t[:, 8].abs().max() < 2.3  # counts 1 .. MAX_COUNT


# -- the backbone ------------------------------------------------------------------------


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 40))
def test_backbone_is_permutation_equivariant_float64(seed: int, n: int):
    cfg = micro_config()
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
    v = model(torch.randn(2, 32, model.cfg.token_dim), torch.rand(2), cond)
    assert torch.equal(v, torch.zeros_like(v))


def test_no_parameter_depends_on_set_size_and_sizes_transfer():
    cfg = micro_config()
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


def test_save_load_round_trip(tmp_path):
    cfg = micro_config(n_tokens=48)
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
    save_file({"x": torch.zeros(2)}, str(wrong), metadata={"format": "worldgen-model/2", "config": cfg.to_json()})
    with pytest.raises(FormatError):
        load_model(wrong)
    old = tmp_path / "old.safetensors"  # the cluster model's weights, before parts
    save_file({"x": torch.zeros(2)}, str(old), metadata={"format": "worldgen-model/1", "config": "{}"})
    with pytest.raises(FormatError, match="of this version"):
        load_model(old)
    with pytest.raises(FormatError):
        load_model(wrong)
    assert dataclasses.asdict(cfg)  # config stays a plain dataclass


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




# -- the part autoencoder -----------------------------------------------------------------------


def toy_parts(seed: int = 0, dtype=torch.float64):
    """Three small parts of different kinds and sizes, turned and placed anywhere."""
    g = torch.Generator().manual_seed(seed)
    pieces = []
    for n in (7, 12, 5):
        pieces.append(Gaussians.from_rgb(
            torch.randn(n, 3, generator=g, dtype=dtype) * 3 + torch.randn(3, generator=g, dtype=dtype) * 20,
            torch.rand(n, 3, generator=g, dtype=dtype), torch.rand(n, 3, generator=g, dtype=dtype) * 0.3 + 0.01,
            torch.rand(n, generator=g, dtype=dtype), torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=dtype), dim=1)))  # fmt: skip
    return assemble_parts(pieces, ["tree", "house", "cloud"], [0.0, 1.2, -0.4])


def test_halton_template_is_nested_and_even():
    h = halton(512)
    assert torch.equal(halton(100), h[:100])  # the first n of any longer template: a part of n splats
    assert h.min() >= -1 and h.max() <= 1
    for n in (64, 512):
        octant = ((h[:n] > 0).long() * torch.tensor([1, 2, 4])).sum(1)
        counts = torch.bincount(octant, minlength=8)
        assert counts.min() >= n / 8 - 2 and counts.max() <= n / 8 + 2  # evenly spread at every prefix


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_encoder_reads_a_part_whatever_the_order_of_its_splats(seed: int):
    ae = randomize(PartAutoencoder(micro_config().parts), seed=seed % 97, std=0.3).double()
    parts = toy_parts(seed)
    b = batch_of(parts, torch.arange(3)).to(dtype=torch.float64)
    n = b.means.shape[1]
    gen = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.cat([torch.randperm(int(c), generator=gen), torch.arange(int(c), n)]) for c in b.present])

    def shuffle(t: torch.Tensor) -> torch.Tensor:  # each part's real splats in another order, padding kept last
        return torch.gather(t, 1, order.view(*order.shape, *([1] * (t.ndim - 2))).expand_as(t))

    shuffled = dataclasses.replace(b, **{f: shuffle(getattr(b, f)) for f in ("means", "log_scales", "quats", "rgb", "opacities")})
    mu_a, lv_a = ae.encode(b)
    mu_b, lv_b = ae.encode(shuffled)
    assert (mu_a - mu_b).abs().max() <= 1e-9 and (lv_a - lv_b).abs().max() <= 1e-9
    assert mu_a.abs().max() > 1e-3


def test_a_fresh_decoder_fills_each_part_box_with_small_gaussians_of_its_colour():
    ae = PartAutoencoder(micro_config().parts)
    colors = torch.tensor([[0.2, 0.5, 0.9], [0.7, 0.3, 0.1]])
    out = ae.decode(torch.tensor([0, 4]), torch.randn(2, 4), torch.tensor([50, 20]), colors)
    assert out["means"].shape == (2, 50, 3)
    torch.testing.assert_close(out["means"][0], halton(50))  # the template itself
    torch.testing.assert_close(out["rgb"], colors[:, None].expand(2, 50, 3))
    grey = torch.full((1, 3), 0.5)
    slots = ae.decode_slots(torch.tensor([0]), torch.zeros(1, 4), torch.tensor([50]), grey, torch.tensor([[3, 17, 42]]))
    full = ae.decode(torch.tensor([0]), torch.zeros(1, 4), torch.tensor([50]), grey)
    torch.testing.assert_close(slots["means"][0], full["means"][0, [3, 17, 42]])  # a slot is the same alone


def test_part_loss_is_zero_for_a_perfect_decode_and_grows_with_error():
    parts = toy_parts(1, dtype=torch.float32)
    b = batch_of(parts, torch.arange(3))
    true = {"means": b.means, "log_scales": b.log_scales, "quats": b.quats, "rgb": b.rgb, "opacities": b.opacities}
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    loss, terms = part_loss(true, b, mu, logvar)
    assert float(loss) < 1e-5 and terms["chamfer"] < 1e-9
    off = dict(true, means=true["means"] + 0.2, rgb=(true["rgb"] + 0.3).clamp(0, 1))
    loss2, terms2 = part_loss(off, b, mu, logvar)
    assert terms2["chamfer"] > 0.05 and terms2["rgb"] > 0.1 and float(loss2) > float(loss) + 0.1
    assert float(render_loss(true, b)) < 1e-6 and float(render_loss(off, b)) > 1e-3


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_decoded_world_permutes_in_whole_blocks_with_its_tokens(seed: int):
    model = randomize(WorldModel(micro_config()), seed=seed % 89, std=0.3).double()
    g = torch.Generator().manual_seed(seed)
    f = random_frames(9, seed, empty=True)
    f = dataclasses.replace(f, counts=torch.randint(1, 30, (9,), generator=g))
    tokens = tok.encode_parts(f, torch.randn(9, 4, generator=g, dtype=torch.float64))
    perm = torch.randperm(9, generator=g)
    a, b = decode_parts(model, tokens), decode_parts(model, tokens[perm])
    real = f.kinds != tok.EMPTY
    assert len(a) == int(real.sum()) and torch.equal(a.counts, f.counts[real])
    # the same parts, in the permuted order: block i of b is block perm[i] of a
    starts = torch.cumsum(a.counts, 0) - a.counts
    rank = torch.cumsum(real.long(), 0) - 1  # token -> its part among the real ones
    order = rank[perm][real[perm]]
    rows = torch.cat([torch.arange(int(starts[i]), int(starts[i] + a.counts[i])) for i in order])
    assert (b.gaussians.means - a.gaussians.means[rows]).abs().max() <= 1e-9
    assert (b.gaussians.sh0 - a.gaussians.sh0[rows]).abs().max() <= 1e-9


def test_encode_world_gives_each_part_its_frame_and_a_latent():
    model = WorldModel(micro_config())
    parts = toy_parts(2, dtype=torch.float32)
    t = encode_world(model, parts)
    frames, z = tok.decode_parts(t)
    assert torch.equal(frames.kinds, parts.kinds) and torch.equal(frames.counts, parts.counts)
    torch.testing.assert_close(frames.colors, parts.mean_colors(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(frames.centers, parts.centers, rtol=1e-5, atol=1e-4)
    assert z.shape == (3, 4)
    world = decode_parts(model, t)
    assert len(world.gaussians) == len(parts.gaussians)  # every part grows as many Gaussians as it had
    torch.testing.assert_close(world.mean_colors(), parts.mean_colors(), rtol=1e-5, atol=1e-5)  # a fresh decoder


def test_decode_batches_stay_within_the_slot_budget():
    from worldgen.model.world import _slot_chunks

    counts = torch.tensor([9000, 40, 300, 40, 8000, 1200, 5] * 20)
    chunks = _slot_chunks(counts, 4096)
    rows = torch.cat(chunks)
    assert torch.equal(rows.sort().values, torch.arange(len(counts)))  # every part once
    for c in chunks:
        assert len(c) == 1 or len(c) * int(counts[c].max()) <= 4096  # padded to its largest part
    assert len(_slot_chunks(torch.tensor([], dtype=torch.long), 4096)) == 0
