"""Rectified flow: the training objective and the sampler (Euler / Heun, classifier-free guidance).

Time runs from noise at t = 0 to data at t = 1: ``x_t = (1 - t) x0 + t x1``
and the model regresses the straight-line velocity ``x1 - x0``. Noise is
drawn i.i.d. per token, so a permutation of the noise is just as likely as the
noise itself; the sampler is therefore permutation-equivariant whenever the
velocity field is (tested in float64).

Optional minibatch optimal-transport pairing (`sinkhorn_pairing`) re-assigns
the noise tokens of each set to its data tokens so that paths are shorter;
exact Hungarian matching (`_sinkhorn_pairing_reference`) is its slow twin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldgen.errors import UsageError
from worldgen.model.set_transformer import Condition

Pairing = Literal["none", "sinkhorn"]
TimeDist = Literal["uniform", "logit_normal"]
Method = Literal["euler", "heun"]


# -- training ---------------------------------------------------------------------------


def sample_t(b: int, dist: TimeDist, *, generator: torch.Generator | None = None, device=None) -> Tensor:  # [B]
    """Training flow times: uniform, or logit-normal (more weight mid-path, as in SD3)."""
    if dist == "uniform":
        return torch.rand(b, generator=generator).to(device)
    if dist == "logit_normal":
        return torch.sigmoid(torch.randn(b, generator=generator)).to(device)
    raise UsageError(f"unknown time distribution {dist!r}")


def flow_loss(
    velocity: nn.Module,  # v(x_t, t, cond, drop) -> like x_t
    x1: Tensor,  # [B, N, D] data tokens
    cond: Condition,
    *,
    cond_drop: float = 0.1,
    pairing: Pairing = "none",
    t_dist: TimeDist = "logit_normal",
    generator: torch.Generator | None = None,
) -> Tensor:  # scalar
    """Rectified-flow MSE with condition dropout (for classifier-free guidance)."""
    b = x1.shape[0]
    x0 = _noise_for(x1, pairing, generator)
    t = sample_t(b, t_dist, generator=generator, device=x1.device).to(x1.dtype)
    xt = (1.0 - t[:, None, None]) * x0 + t[:, None, None] * x1
    drop = (torch.rand(b, generator=generator) < cond_drop).to(x1.device)
    v = velocity(xt, t, cond, drop)
    return F.mse_loss(v.float(), (x1 - x0).float())


@torch.no_grad()
def prompt_gain(
    velocity: nn.Module,  # v(x_t, t, cond, drop) -> like x_t
    x1: Tensor,  # [B, N, D] data tokens
    cond: Condition,
    *,
    t_max: float = 0.3,
    pairing: Pairing = "none",
    generator: torch.Generator | None = None,
) -> tuple[float, float]:  # flow loss with the condition, and with it dropped
    """How much the model reads its condition: the flow loss with and without it on the same noise and t < `t_max`.

    Near the noise end only the condition tells one world from another, so a model that reads
    its prompt loses clearly more there when the prompt is dropped; one that has learnt the
    worlds but not the prompt loses about the same.
    """
    x0 = _noise_for(x1, pairing, generator)
    t = (t_max * torch.rand(x1.shape[0], generator=generator)).to(device=x1.device, dtype=x1.dtype)
    xt = (1.0 - t[:, None, None]) * x0 + t[:, None, None] * x1
    target = (x1 - x0).float()
    losses = []
    for dropped in (False, True):
        drop = torch.full((x1.shape[0],), dropped, device=x1.device)
        losses.append(float(F.mse_loss(velocity(xt, t, cond, drop).float(), target)))
    return losses[0], losses[1]


def _noise_for(x1: Tensor, pairing: Pairing, generator: torch.Generator | None) -> Tensor:  # like x1
    """i.i.d. noise for a batch of sets, re-assigned to the data tokens of each set by `pairing`."""
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device)
    if pairing == "sinkhorn":
        perm = sinkhorn_pairing(x0, x1)
        return torch.gather(x0, 1, perm[..., None].expand_as(x0))
    if pairing != "none":
        raise UsageError(f"unknown pairing {pairing!r}")
    return x0


# -- minibatch optimal transport inside each set ------------------------------------------


def sinkhorn_pairing(
    x0: Tensor,  # [B, N, D] noise
    x1: Tensor,  # [B, N, D] data
    *,
    eps: float = 0.05,
    iters: int = 10,
) -> Tensor:  # [B, N] long: x0[b, perm[b, i]] is paired with x1[b, i]
    """Approximate OT assignment of noise to data tokens (entropic Sinkhorn, then greedy rounding).

    Sinkhorn in its scaling form, u = 1 / (K v), v = 1 / (K^T u), on the kernel
    K = exp(-C / eps) of the squared-distance cost C (normalised by its mean; 10
    iterations reach the cost of 30 within 0.1%). Each row of C is shifted by
    its minimum first, which the scalings absorb, and K is float64, so no row
    underflows: an iteration is two matrix-vector products, not two log-sum-exps
    over N^2 entries. The soft plan u K v is then rounded to a permutation.
    """
    with torch.no_grad():
        # [B, N(data), N(noise)]; built in place: at N = 2048 each of these arrays is 32 MB per set
        cost = torch.cdist(x1.double(), x0.double()).square_()
        cost /= cost.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        cost -= cost.amin(dim=2, keepdim=True)
        kernel = cost.mul_(-1.0 / eps).exp_()  # row maxima are exactly 1
        # K^T as its own contiguous copy: a strided view makes every K^T u product ~3x slower
        kernel_t = kernel.transpose(1, 2).contiguous()
        v = torch.ones(kernel.shape[0], kernel.shape[2], 1, dtype=kernel.dtype, device=kernel.device)
        for _ in range(iters):
            u = 1.0 / (kernel @ v)  # [B, N, 1]
            v = 1.0 / (kernel_t @ u).clamp_min(1e-300)  # a noise token far from every data token keeps a finite scale
        plan = kernel.mul_(u).mul_(v.transpose(1, 2))  # u K v^T, [B, N, N], positive where K is
        return _round_plan(plan)


def _round_plan(plan: Tensor) -> Tensor:  # [B, N, N] non-negative -> [B, N]
    """Greedy rounding of a soft plan to a permutation.

    Each round, every free row asks for its best free column and each column keeps
    its strongest claimant; the next round works on the rows and columns still
    free only, so the rounds get cheaper as the assignment fills up.
    """
    b, n, _ = plan.shape
    perm = torch.empty((b, n), dtype=torch.long, device=plan.device)
    for k in range(b):
        rows = torch.arange(n, device=plan.device)
        cols = torch.arange(n, device=plan.device)
        scores = plan[k]
        while rows.numel():
            best_val, best_col = scores.max(dim=1)  # [r]
            # for each column, the strongest claim; ties go to the lowest row (stable order)
            claim = torch.full((cols.numel(),), -1.0, dtype=scores.dtype, device=plan.device)
            claim.scatter_reduce_(0, best_col, best_val, reduce="amax")
            wins = best_val >= claim[best_col]
            first = torch.full((cols.numel(),), rows.numel(), dtype=torch.long, device=plan.device)
            idx = torch.arange(rows.numel(), device=plan.device)
            first.scatter_reduce_(0, best_col[wins], idx[wins], reduce="amin")
            wins &= first[best_col] == idx
            perm[k, rows[wins]] = cols[best_col[wins]]
            keep_rows = ~wins
            keep_cols = torch.ones(cols.numel(), dtype=torch.bool, device=plan.device)
            keep_cols[best_col[wins]] = False
            rows, cols = rows[keep_rows], cols[keep_cols]
            scores = scores[keep_rows][:, keep_cols]
    return perm


def _sinkhorn_pairing_reference(x0: Tensor, x1: Tensor) -> Tensor:  # [B, N, D] x2 -> [B, N]
    """Exact OT assignment (Hungarian, scipy): the slow, obviously-correct twin of `sinkhorn_pairing`."""
    from scipy.optimize import linear_sum_assignment

    out = []
    for a, b in zip(x0, x1):
        cost = (torch.cdist(b.double(), a.double()) ** 2).cpu().numpy()
        rows, cols = linear_sum_assignment(cost)
        out.append(torch.as_tensor(cols[rows.argsort()], dtype=torch.long))
    return torch.stack(out).to(x0.device)


# -- sampling --------------------------------------------------------------------------------


def guided_velocity(
    velocity: nn.Module,
    x: Tensor,  # [B, N, D]
    t: float,
    cond: Condition,
    guidance: float,
) -> Tensor:  # [B, N, D]
    """v_uncond + guidance * (v_cond - v_uncond), both branches in one batch."""
    b = x.shape[0]
    tt = torch.full((b,), t, dtype=x.dtype, device=x.device)
    if guidance == 1.0:
        return velocity(x, tt, cond, None)
    both = Condition.cat([cond, cond])
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    v = velocity(torch.cat([x, x]), torch.cat([tt, tt]), both, drop)
    v_c, v_u = v[:b], v[b:]
    return v_u + guidance * (v_c - v_u)


def integrate(
    velocity: nn.Module,
    noise: Tensor,  # [B, N, D] at t = 0
    cond: Condition,
    *,
    steps: int,
    guidance: float,
    method: Method = "euler",
    trajectory: list[Tensor] | None = None,  # appended with x after every step
    on_step: Callable[[int], None] | None = None,  # called with the step number after each step (progress)
) -> Tensor:  # [B, N, D] at t = 1
    """Integrate the guided flow from t = 0 to 1 in `steps` uniform steps (Heun: 2 evaluations a step)."""
    if steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    if method not in ("euler", "heun"):
        raise UsageError(f"unknown sampler {method!r}; choose 'euler' or 'heun'")
    x = noise
    dt = 1.0 / steps
    with torch.no_grad():
        for i in range(steps):
            t = i * dt
            v = guided_velocity(velocity, x, t, cond, guidance)
            if method == "heun":
                x_pred = x + dt * v
                v = 0.5 * (v + guided_velocity(velocity, x_pred, t + dt, cond, guidance))
            x = x + dt * v
            if trajectory is not None:
                trajectory.append(x)
            if on_step is not None:
                on_step(i + 1)
    return x


def draw_noise(b: int, n: int, d: int, *, seed: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The sampler's starting noise, reproducible from `seed` on any device. [B, N, D]"""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, d, generator=gen, dtype=dtype).to(device)
