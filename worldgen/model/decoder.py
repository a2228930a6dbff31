"""The detail decoder: each coarse Gaussian grows `children` full-detail Gaussians.

One small network with shared weights runs on every coarse Gaussian
independently (plus a mean-pool over its own children, DeepSets-style), so the
decoder is permutation-equivariant in the parents and in the children. It is a
flow of its own: child tokens (in the parent's local frame, `tokens.py`) start
as i.i.d. noise and follow a velocity conditioned on the parent token, the
flow time and the world's pooled condition. No per-child slot query: two
children differ only by their noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldgen.model.config import ModelConfig
from worldgen.model.set_transformer import fourier_features, modulate, timestep_embedding


class _Layer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.pool = nn.Linear(width, width)  # reads the mean of the parent's children
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(approximate="tanh"), nn.Linear(2 * width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, h: Tensor, c: Tensor) -> Tensor:  # [P, C, W], [P, W] -> [P, C, W]
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        u = modulate(self.norm(h), shift, scale)
        u = u + self.pool(u.mean(dim=1, keepdim=True))
        return h + gate[:, None] * self.mlp(u)


class DetailDecoder(nn.Module):
    """Velocity of child tokens given their parent: v(x_t [P, C, child_dim], t, parent, pooled)."""

    def __init__(self, cfg: ModelConfig, *, children: int | None = None, width: int | None = None,
                 depth: int | None = None) -> None:  # fmt: skip
        """The detail decoder of `cfg`; `children`, `width` and `depth` replace its numbers (the group decoder)."""
        super().__init__()
        self.cfg = cfg
        self.children_n = children or cfg.children
        self.width = w = width or cfg.decoder_width
        self.freqs = max(cfg.fourier_freqs, 1)
        self.embed = nn.Linear(cfg.child_dim + 6 * self.freqs, w)
        self.parent_embed = nn.Sequential(nn.Linear(cfg.token_dim + 6 * self.freqs, w), nn.SiLU(), nn.Linear(w, w))
        self.t_embed = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.pooled_embed = nn.Linear(cfg.cond_dim, w)
        self.layers = nn.ModuleList([_Layer(w) for _ in range(depth or cfg.decoder_depth)])
        self.final_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(w, cfg.child_dim)

    def zero_init_head(self) -> None:
        """Called by `initialize_weights`: zero velocity and identity layers at the start."""
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        for layer in self.layers:
            nn.init.zeros_(layer.ada[-1].weight)
            nn.init.zeros_(layer.ada[-1].bias)

    def forward(
        self,
        x: Tensor,  # [P, C, child_dim] noisy child tokens
        t: Tensor,  # [P] flow time
        parent: Tensor,  # [P, token_dim] coarse tokens
        pooled: Tensor,  # [P, cond_dim] the world's pooled condition
    ) -> Tensor:  # [P, C, child_dim]
        pf = torch.cat([parent, fourier_features(parent[..., :3], self.freqs)], dim=-1)
        c = self.parent_embed(pf) + self.t_embed(timestep_embedding(t.to(x.dtype), self.width))
        c = c + self.pooled_embed(pooled)
        h = self.embed(torch.cat([x, fourier_features(x[..., :3], self.freqs)], dim=-1))
        for layer in self.layers:
            h = layer(h, c)
        return self.head(F.silu(self.final_norm(h)))


def decode_children_tokens(
    decoder: DetailDecoder,
    parents: Tensor,  # [P, token_dim]
    pooled: Tensor,  # [P, cond_dim] or [cond_dim]
    *,
    children: int | None = None,
    steps: int = 4,
    seed: int = 0,
    noise: Tensor | None = None,  # [P, C, child_dim]; drawn from `seed` when None
    chunk: int = 4096,
) -> Tensor:  # [P, C, child_dim]
    """Euler-integrate the child flow from noise for every parent, `chunk` parents at a time."""
    p = parents.shape[0]
    c = children or decoder.children_n
    if noise is None:
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(p, c, decoder.cfg.child_dim, generator=gen, dtype=parents.dtype).to(parents.device)
    if pooled.ndim == 1:
        pooled = pooled[None].expand(p, -1)
    out = []
    with torch.no_grad():
        for s in range(0, p, chunk):
            x, par, pool = noise[s : s + chunk], parents[s : s + chunk], pooled[s : s + chunk]
            for i in range(steps):
                t = torch.full((x.shape[0],), i / steps, dtype=x.dtype, device=x.device)
                x = x + decoder(x, t, par, pool) / steps
            out.append(x)
    return torch.cat(out) if out else noise
