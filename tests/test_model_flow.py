"""Rectified flow: sampler equivariance in float64 (with guidance), OT pairing, the prompt probe, end to end."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_model import micro_config, random_condition, randomize
from worldgen.errors import UsageError
from worldgen.model import WorldModel, decode_world, sample
from worldgen.model import tokens as tok
from worldgen.model.flow import (
    _round_plan,
    _sinkhorn_pairing_reference,
    flow_loss,
    integrate,
    prompt_gain,
    sinkhorn_pairing,
)


@pytest.mark.parametrize("method", ["euler", "heun"])
@settings(max_examples=6)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 30), guidance=st.floats(1.0, 5.0))
def test_sampler_permutes_with_the_noise_at_every_step(method: str, seed: int, n: int, guidance: float):
    cfg = micro_config()
    model = randomize(WorldModel(cfg), seed=seed % 997, std=0.2).double().eval()
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(2, n, cfg.token_dim, generator=gen, dtype=torch.float64)
    perm = torch.randperm(n, generator=gen)
    cond = random_condition(2, cfg.cond_dim, seed=seed)
    traj_a: list[torch.Tensor] = []
    traj_b: list[torch.Tensor] = []
    out_a = integrate(model.backbone, noise, cond, steps=4, guidance=guidance, method=method, trajectory=traj_a)
    out_b = integrate(model.backbone, noise[:, perm], cond, steps=4, guidance=guidance, method=method, trajectory=traj_b)
    assert len(traj_a) == 4
    for xa, xb in zip(traj_a, traj_b):
        assert (xb - xa[:, perm]).abs().max() <= 1e-9
    assert (out_b - out_a[:, perm]).abs().max() <= 1e-9
    assert (out_a - noise).abs().max() > 1e-3  # the flow moved the points


def test_sample_is_reproducible_and_seed_dependent():
    cfg = micro_config()
    model = randomize(WorldModel(cfg), std=0.1)
    cond = random_condition(1, cfg.cond_dim, dtype=torch.float32)
    a = sample(model, cond, n=20, steps=3, guidance=2.0, seed=7)
    b = sample(model, cond, n=20, steps=3, guidance=2.0, seed=7)
    c = sample(model, cond, n=20, steps=3, guidance=2.0, seed=8)
    assert a.shape == (1, 20, cfg.token_dim)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(UsageError):
        sample(model, cond, n=20, steps=0)
    with pytest.raises(UsageError):
        sample(model, cond, n=20, steps=2, method="rk4")


def test_sinkhorn_pairing_is_a_permutation_close_to_optimal():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 48, 5, generator=gen)
    x1 = torch.randn(3, 48, 5, generator=gen) * 0.5 + 1.0
    perm = sinkhorn_pairing(x0, x1)
    ref = _sinkhorn_pairing_reference(x0, x1)
    assert torch.equal(perm.sort(dim=1).values, torch.arange(48).expand(3, 48))

    def cost(p):
        return ((torch.gather(x0, 1, p[..., None].expand_as(x0)) - x1) ** 2).sum(-1).mean()

    identity = torch.arange(48).expand(3, 48)
    assert cost(ref) <= cost(perm) + 1e-6  # the exact twin is optimal
    assert cost(perm) <= 1.15 * cost(ref)  # the fast path comes close
    assert cost(perm) < 0.8 * cost(identity)  # and beats random pairing


def test_sinkhorn_pairing_survives_an_outlier():
    # one noise token lies ~64 mean costs from every data token: its whole kernel column underflows
    # (exp(-C / eps) < 1e-308), and the pairing must still be a near-optimal permutation
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 128, 3, generator=gen)
    x0[0, 0] += 60.0
    x1 = torch.randn(1, 128, 3, generator=gen)
    perm = sinkhorn_pairing(x0, x1)
    assert torch.equal(perm.sort(dim=1).values, torch.arange(128)[None])

    def cost(p):
        return ((torch.gather(x0, 1, p[..., None].expand_as(x0)) - x1) ** 2).sum(-1).mean()

    assert cost(perm) <= 1.15 * cost(_sinkhorn_pairing_reference(x0, x1))


def test_round_plan_is_exact_on_permutations_and_total_on_zeros():
    gen = torch.Generator().manual_seed(2)
    target = torch.randperm(30, generator=gen)
    plan = torch.zeros(2, 30, 30, dtype=torch.float64)
    plan[0, torch.arange(30), target] = 1.0  # a permutation matrix is its own rounding
    perm = _round_plan(plan)  # the all-zero plan (everything underflowed) still yields a permutation
    assert torch.equal(perm[0], target)
    assert torch.equal(perm[1].sort().values, torch.arange(30))


def test_flow_loss_has_gradients_and_pairing_shortens_targets():
    cfg = micro_config()
    model = WorldModel(cfg)
    x1 = torch.randn(2, 16, cfg.token_dim) * 0.3 + 0.5
    cond = random_condition(2, cfg.cond_dim, dtype=torch.float32)
    loss = flow_loss(model, x1, cond, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.head.weight.grad.abs().sum() > 0
    # an untrained model predicts 0, so the loss is the mean squared path length: pairing shortens it
    with torch.no_grad():
        plain = flow_loss(model, x1, cond, generator=torch.Generator().manual_seed(1))
        paired = flow_loss(model, x1, cond, pairing="sinkhorn", generator=torch.Generator().manual_seed(1))
    assert paired < plain


def test_prompt_gain_is_zero_for_a_model_blind_to_its_prompt_and_not_for_one_that_reads_it():
    cfg = micro_config()
    x1 = torch.randn(3, 16, cfg.token_dim)
    cond = random_condition(3, cfg.cond_dim, dtype=torch.float32)

    def blind(xt, t, c, drop):  # the straight-line velocity's guess from x_t alone
        return xt * 0.5

    def reads(xt, t, c, drop):  # knows the world where it sees the prompt, guesses 0 where it is dropped
        out = x1 - xt  # (1 - t)(x1 - x0): the target, short by t < 0.3
        return torch.where(drop[:, None, None], torch.zeros_like(out), out)

    def gain(velocity, seed: int) -> tuple[float, float]:
        return prompt_gain(velocity, x1, cond, generator=torch.Generator().manual_seed(seed))

    with_prompt, without = gain(blind, 0)
    assert with_prompt == without > 0
    with_prompt, without = gain(reads, 0)
    assert with_prompt < 0.2 * without
    assert gain(reads, 0) == gain(reads, 0) != gain(reads, 1)  # the noise and t come from the generator
    untrained = gain(WorldModel(cfg), 0)  # a zero-initialised head predicts 0 with the prompt or without
    assert untrained[0] == untrained[1]


def test_bf16_sampling_stays_close_to_fp32():
    cfg = micro_config()
    model = randomize(WorldModel(cfg), std=0.1)
    cond = random_condition(1, cfg.cond_dim, dtype=torch.float32)
    a = sample(model, cond, n=32, steps=4, guidance=2.0, seed=1, precision="fp32")
    b = sample(model, cond, n=32, steps=4, guidance=2.0, seed=1, precision="bf16")
    assert b.dtype == torch.float32
    assert (a - b).abs().max() < 0.05 * a.abs().max()
    with pytest.raises(UsageError):
        sample(model, cond, n=32, steps=4, precision="fp8")


def test_public_sample_is_equivariant_in_float64():
    cfg = micro_config()
    model = randomize(WorldModel(cfg), seed=5, std=0.2).double()
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(1, 24, cfg.token_dim, generator=gen, dtype=torch.float64)
    perm = torch.randperm(24, generator=gen)
    cond = random_condition(1, cfg.cond_dim, seed=5)
    a = sample(model, cond, steps=5, guidance=2.5, method="heun", noise=noise)
    b = sample(model, cond, steps=5, guidance=2.5, method="heun", noise=noise[:, perm])
    assert a.dtype == torch.float64 and (b - a[:, perm]).abs().max() <= 1e-9


def test_permuted_noise_gives_permuted_parts_and_permuted_blocks_of_gaussians():
    """End to end in float64: the set model's tokens and the decoded world permute with the noise."""
    cfg = micro_config()
    model = randomize(WorldModel(cfg), seed=11, std=0.2).double()
    gen = torch.Generator().manual_seed(11)
    noise = torch.randn(1, 16, cfg.token_dim, generator=gen, dtype=torch.float64)
    perm = torch.randperm(16, generator=gen)
    cond = random_condition(1, cfg.cond_dim, seed=11)
    a = sample(model, cond, steps=3, guidance=2.0, noise=noise)[0]
    b = sample(model, cond, steps=3, guidance=2.0, noise=noise[:, perm])[0]
    assert (b - a[perm]).abs().max() <= 1e-9
    frames, _ = tok.decode_parts(a)
    real = frames.kinds != tok.EMPTY
    assert real.sum() >= 2  # a non-trivial world
    wa, wb = decode_world(model, a), decode_world(model, b)
    counts = frames.counts[real]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.cumsum(real.long(), 0) - 1
    order = rank[perm][real[perm]]
    rows = torch.cat([torch.arange(int(starts[i]), int(starts[i] + counts[i])) for i in order])
    assert len(wb) == len(wa) and (wb.means - wa.means[rows]).abs().max() <= 1e-9
    assert (wb.scales - wa.scales[rows]).abs().max() <= 1e-9 and (wb.opacities - wa.opacities[rows]).abs().max() <= 1e-9
