"""The set transformer: a DiT over the unordered set of part tokens.

Each token is one part (`tokens.py`), embedded by a shared MLP from its own
values plus Fourier features of its own centre: content, not order. There is
no positional or index embedding, no sort and no per-slot query on the output
path, so permuting the input tokens permutes the output the same way (tested
in float64).

A block: adaLN (timestep + pooled condition) -> self-attention over the whole
set -> cross-attention to the condition tokens -> MLP. The modulation and the
output head are zero-initialised (adaLN-Zero, as in DiT), so an untrained
model predicts zero velocity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldgen.errors import UsageError
from worldgen.model.autoencoder import PartAutoencoder, initialize_autoencoder
from worldgen.model.config import ModelConfig


@dataclass(frozen=True)
class Condition:
    """What a world is conditioned on: text words or image patches, and their pooled summary."""

    tokens: Tensor  # [B, L, C] per-token embeddings (MiniLM words or image patches)
    mask: Tensor  # [B, L] bool, True where a token is real
    pooled: Tensor  # [B, C] normalised pooled embedding

    def __post_init__(self) -> None:
        b, l, c = self.tokens.shape
        if self.mask.shape != (b, l) or self.pooled.shape != (b, c):
            raise UsageError(
                f"condition shapes disagree: tokens {tuple(self.tokens.shape)}, mask {tuple(self.mask.shape)},"
                f" pooled {tuple(self.pooled.shape)}"
            )

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Condition:
        return Condition(self.tokens.to(device, dtype), self.mask.to(device), self.pooled.to(device, dtype))

    def index(self, idx: Tensor | slice) -> Condition:
        return Condition(self.tokens[idx], self.mask[idx], self.pooled[idx])

    def repeat(self, n: int) -> Condition:
        """Each row repeated n times (row-major: r0, r0, ..., r1, ...)."""
        return Condition(
            self.tokens.repeat_interleave(n, 0), self.mask.repeat_interleave(n, 0), self.pooled.repeat_interleave(n, 0)
        )

    @staticmethod
    def cat(parts: list[Condition]) -> Condition:
        """Stack along the batch, padding token sequences to the longest."""
        length = max(p.tokens.shape[1] for p in parts)
        toks, masks = [], []
        for p in parts:
            pad = length - p.tokens.shape[1]
            toks.append(F.pad(p.tokens, (0, 0, 0, pad)))
            masks.append(F.pad(p.mask, (0, pad), value=False))
        return Condition(torch.cat(toks), torch.cat(masks), torch.cat([p.pooled for p in parts]))

    @staticmethod
    def null(batch: int, dim: int, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Condition:
        """An empty condition: the model uses its learned null embeddings (the unconditional branch)."""
        return Condition(
            torch.zeros(batch, 1, dim, dtype=dtype, device=device),
            torch.zeros(batch, 1, dtype=torch.bool, device=device),
            torch.zeros(batch, dim, dtype=dtype, device=device),
        )


# -- embeddings ------------------------------------------------------------------------


def timestep_embedding(t: Tensor, dim: int, *, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of flow times t in [0, 1]. [B] -> [B, dim]"""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=t.dtype, device=t.device) / half)
    args = (t * 1000.0)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def fourier_features(xyz: Tensor, freqs: int) -> Tensor:
    """sin/cos of a token's own coordinates at octave frequencies. [..., 3] -> [..., 6 * freqs]"""
    scales = (2.0 ** torch.arange(freqs, dtype=xyz.dtype, device=xyz.device)) * math.pi
    args = (xyz[..., None] * scales).flatten(-2)  # [..., 3 * freqs]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:  # [B, N, D], [B, D], [B, D]
    return x * (1.0 + scale[:, None]) + shift[:, None]


# -- attention -------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention from queries to a key/value set (SDPA); no positions anywhere."""

    def __init__(self, dim: int, heads: int, *, kv_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(kv_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,  # [B, N, D] queries
        ctx: Tensor,  # [B, M, Dk] keys/values
        mask: Tensor | None = None,  # [B, M] bool, True = attend
    ) -> Tensor:  # [B, N, D]
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)  # [B, H, N, d/H]
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)  # [B, H, M, d/H] each
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def _attention_reference(
    q: Tensor,  # [B, H, N, d]
    k: Tensor,  # [B, H, M, d]
    v: Tensor,  # [B, H, M, d]
    mask: Tensor | None = None,  # [B, M] bool, True = attend
) -> Tensor:  # [B, H, N, d]
    """softmax(q k^T / sqrt(d)) v written out: the slow twin of the SDPA call in `Attention`."""
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # [B, H, N, M]
    if mask is not None:
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1) @ v


class Block(nn.Module):
    """adaLN-Zero -> set attention -> cross-attention to the condition -> MLP."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(d, cfg.heads)
        self.cross = Attention(d, cfg.heads) if cfg.cross_attention else None
        self.norm2 = nn.LayerNorm(d, eps=1e-6) if cfg.cross_attention else None
        self.norm3 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 7 * d))  # shift/scale/gate x2 + cross gate

    def forward(
        self,
        x: Tensor,  # [B, N, D]
        c: Tensor,  # [B, D] timestep + pooled condition
        ctx: Tensor,  # [B, L, D] condition tokens (projected)
        ctx_mask: Tensor,  # [B, L] bool
    ) -> Tensor:  # [B, N, D]
        sh1, sc1, g1, sh3, sc3, g3, g2 = self.ada(c).chunk(7, dim=-1)
        h = modulate(self.norm1(x), sh1, sc1)
        x = x + g1[:, None] * self.attn(h, h)
        if self.cross is not None:
            x = x + g2[:, None] * self.cross(self.norm2(x), ctx, ctx_mask)
        x = x + g3[:, None] * self.mlp(modulate(self.norm3(x), sh3, sc3))
        return x


class SetTransformer(nn.Module):
    """Velocity field v(x_t, t, condition) over a set of tokens; equivariant in the set."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        in_dim = cfg.token_dim + 6 * cfg.fourier_freqs
        self.embed = nn.Sequential(nn.Linear(in_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.t_embed = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.pooled_embed = nn.Sequential(nn.Linear(cfg.cond_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.ctx_embed = nn.Linear(cfg.cond_dim, d)
        # classifier-free guidance: a dropped condition is replaced by these learned embeddings;
        # the null token is always present as one extra key so no row ever attends to nothing
        self.null_pooled = nn.Parameter(torch.zeros(cfg.cond_dim))
        self.null_token = nn.Parameter(torch.zeros(cfg.cond_dim))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.head = nn.Linear(d, cfg.token_dim)

    def forward(
        self,
        x: Tensor,  # [B, N, token_dim] noisy tokens x_t
        t: Tensor,  # [B] flow time in [0, 1]
        cond: Condition,  # batch B
        drop: Tensor | None = None,  # [B] bool: use the null condition for these rows
    ) -> Tensor:  # [B, N, token_dim] velocity
        b = x.shape[0]
        if cond.batch != b:
            raise UsageError(f"condition batch {cond.batch} does not match token batch {b}")
        pooled, mask = cond.pooled, cond.mask
        if drop is not None:
            pooled = torch.where(drop[:, None], self.null_pooled.to(pooled.dtype).expand_as(pooled), pooled)
            mask = mask & ~drop[:, None]
        null = self.null_token.to(cond.tokens.dtype)[None, None].expand(b, 1, -1)
        ctx = self.ctx_embed(torch.cat([null, cond.tokens], dim=1))  # [B, L+1, D]
        ctx_mask = torch.cat([mask.new_ones(b, 1), mask], dim=1)  # [B, L+1]

        c = self.t_embed(timestep_embedding(t.to(x.dtype), self.cfg.width)) + self.pooled_embed(pooled)  # [B, D]
        h = self.embed(torch.cat([x, fourier_features(x[..., :3], self.cfg.fourier_freqs)], dim=-1))  # [B, N, D]
        for block in self.blocks:
            h = block(h, c, ctx, ctx_mask)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.head(modulate(self.final_norm(h), shift, scale))


def initialize_weights(module: nn.Module) -> None:
    """Every initialisation decision of the world model, in one place (DiT's recipe; the part
    autoencoder's own in `initialize_autoencoder`).

    Linear layers: Xavier-uniform weights, zero biases. adaLN modulations and
    all output heads: zero, so each block starts as the identity and an
    untrained model predicts zero velocity.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, (Block, SetTransformer)):
            ada = m.ada if isinstance(m, Block) else m.final_ada
            nn.init.zeros_(ada[-1].weight)
            nn.init.zeros_(ada[-1].bias)
        if isinstance(m, SetTransformer):
            nn.init.zeros_(m.head.weight)
            nn.init.zeros_(m.head.bias)
            nn.init.normal_(m.null_pooled, std=0.02)
            nn.init.normal_(m.null_token, std=0.02)
    for m in module.modules():
        if isinstance(m, PartAutoencoder):  # its own decisions: a fresh decoder fills the part's box
            initialize_autoencoder(m)
