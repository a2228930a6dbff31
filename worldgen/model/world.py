"""`WorldModel`: the set transformer over part tokens, the part autoencoder and the image encoder under one config.

Public entry points the CLI calls:
- `sample(model, cond, n=..., steps=..., guidance=..., seed=...)` -> part tokens [B, n, token_dim]
- `decode_world(model, tokens)` -> `Gaussians` (each part token grows its Gaussians through the decoder)
- `encode_world(model, parts)` -> part tokens of a known world (`WorldParts`): the data, and the bound
- `save_model(model, path)` / `load_model(path)`: safetensors, the `ModelConfig` as JSON in the metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from worldgen.errors import FormatError, UsageError
from worldgen.gaussians import Gaussians
from worldgen.model import tokens as tok
from worldgen.model.autoencoder import PartAutoencoder, PartBatch
from worldgen.model.config import ModelConfig
from worldgen.model.flow import draw_noise, integrate
from worldgen.model.image import ImageEncoder
from worldgen.model.set_transformer import Condition, SetTransformer, initialize_weights
from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS
from worldgen.procedural.parts import WorldParts

FORMAT = "worldgen-model/2"
Precision = Literal["auto", "bf16", "fp32"]
#: decoder slots per batch: parts sorted by splat count are batched while the batch, padded to its largest
#: part, stays within this many slots (a part larger than it goes alone)
DECODE_SLOTS = 32768


def autocast_for(precision: Precision, device: torch.device, dtype: torch.dtype = torch.float32):
    """bf16 autocast for "bf16", or for "auto" on CUDA; float32 models only.

    On a CPU "auto" stays in float32: measured on the project's 2-core CPU, bf16
    autocast made the model's small matmuls 2-10x slower, not faster.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise UsageError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    device = torch.device(device)
    enabled = dtype == torch.float32 and (precision == "bf16" or (precision == "auto" and device.type == "cuda"))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


class WorldModel(nn.Module):
    """backbone: the velocity of the part-token flow; parts: part tokens <-> Gaussians; image: picture -> Condition.

    `z_mean` and `z_std` standardise the autoencoder's latents into token space (set from the
    training data when the set model is trained; identity before).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = SetTransformer(cfg)
        self.parts = PartAutoencoder(cfg.parts)
        self.image = ImageEncoder(cfg)
        self.register_buffer("z_mean", torch.zeros(cfg.parts.latent))
        self.register_buffer("z_std", torch.ones(cfg.parts.latent))
        initialize_weights(self)

    def forward(
        self,
        x: Tensor,  # [B, N, token_dim]
        t: Tensor,  # [B]
        cond: Condition,
        drop: Tensor | None = None,  # [B] bool
    ) -> Tensor:  # [B, N, token_dim] velocity
        return self.backbone(x, t, cond, drop)


def sample(
    model: WorldModel,
    cond: Condition,  # batch B: one world per row
    *,
    n: int | None = None,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    method: Literal["euler", "heun"] = "euler",
    precision: Precision = "auto",
    noise: Tensor | None = None,  # [B, n, token_dim]; drawn from `seed` when None
    on_step: Callable[[int], None] | None = None,  # progress: called after each step with its number
) -> Tensor:  # [B, n, token_dim] part tokens
    """Sample worlds' part tokens: the guided rectified flow from i.i.d. noise, `steps` steps."""
    n = n or model.cfg.n_tokens
    if n < 1:
        raise UsageError(f"n must be >= 1, got {n}")
    p = next(model.parameters())
    cond = cond.to(p.device, p.dtype)
    if noise is None:
        noise = draw_noise(cond.batch, n, model.cfg.token_dim, seed=seed, dtype=p.dtype, device=p.device)
    was_training = model.training
    model.eval()
    try:
        with autocast_for(precision, p.device, p.dtype):
            return integrate(model.backbone, noise, cond, steps=steps, guidance=guidance, method=method, on_step=on_step)
    finally:
        model.train(was_training)


def decode_parts(model: WorldModel, tokens: Tensor) -> WorldParts:  # [n, token_dim] -> parts (empty ones dropped)
    """One world's part tokens -> its parts, each grown by the autoencoder's decoder, in token order."""
    frames, z = tok.decode_parts(tokens)
    keep = (frames.kinds != tok.EMPTY).nonzero()[:, 0]
    kinds, counts = frames.kinds[keep], frames.counts[keep]
    z = z[keep] * model.z_std.to(z) + model.z_mean.to(z)
    fields = decode_latents(model.parts, kinds, z, counts, frames.colors[keep])
    local = Gaussians.from_rgb(fields["means"], fields["rgb"], fields["log_scales"].exp(), fields["opacities"], fields["quats"])
    return WorldParts.from_local(local, counts, kinds, frames.centers[keep].to(local.dtype),
                                 frames.extents[keep].to(local.dtype), frames.yaws[keep].to(local.dtype))  # fmt: skip


@torch.no_grad()
def decode_latents(
    ae: PartAutoencoder,
    kinds: Tensor,  # [P] long
    z: Tensor,  # [P, latent]
    counts: Tensor,  # [P] long
    colors: Tensor,  # [P, 3] mean rgb
) -> dict[str, Tensor]:  # fields of sum(counts) Gaussians, part after part, in the parts' frames
    """The decoder on P parts, in chunks of similar splat count; each part's result is its own (no batch effects)."""
    p = next(ae.parameters())
    chunks: list[tuple[Tensor, dict[str, Tensor]]] = []
    for rows in _slot_chunks(counts, DECODE_SLOTS):
        out = ae.decode(kinds[rows].to(p.device), z[rows].to(p), counts[rows].to(p.device), colors[rows].to(p))
        chunks.append((rows, out))
    names = ("means", "log_scales", "quats", "rgb", "opacities")
    per_part: list[dict[str, Tensor] | None] = [None] * len(counts)
    for rows, out in chunks:
        for j, r in enumerate(rows.tolist()):
            c = int(counts[r])
            per_part[r] = {k: out[k][j, :c] for k in names}
    empty = {k: z.new_zeros((0, 4 if k == "quats" else 3) if k != "opacities" else (0,)) for k in names}
    return {k: torch.cat([part[k] for part in per_part]).to(z.dtype) if per_part else empty[k] for k in names}


def _slot_chunks(counts: Tensor, slots: int) -> list[Tensor]:  # [P] long -> row indices of each batch
    """Rows in ascending splat count, cut into batches of at most `slots` padded slots (at least one part each)."""
    order = torch.argsort(counts, stable=True).tolist()
    sizes = counts.tolist()
    chunks, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or (i - start + 1) * sizes[order[i]] > slots:
            chunks.append(torch.tensor(order[start:i], dtype=torch.long))
            start = i
    return chunks


def decode_world(model: WorldModel, tokens: Tensor) -> Gaussians:  # [n, token_dim] -> Gaussians
    """One world's part tokens -> Gaussians (every part's splats, in token order)."""
    return decode_parts(model, tokens).gaussians


@torch.no_grad()
def encode_world(model: WorldModel, parts: WorldParts) -> Tensor:  # -> [P, token_dim]
    """A known world's part tokens (standardised latents, no padding): the autoencoder's view of its parts,
    read as the dataset's parts are (`worldgen.data.encode_latents`)."""
    from worldgen.data import PartSet, encode_latents

    mu = encode_latents(model.parts, PartSet.from_parts(parts)).to(model.z_mean)
    z = (mu - model.z_mean) / model.z_std
    frames = tok.PartFrames(parts.kinds, parts.centers, parts.extents, parts.yaws,
                            parts.counts.clamp_max(tok.MAX_COUNT), parts.mean_colors())  # fmt: skip
    return tok.encode_parts(frames, z.to(parts.centers.dtype))


def with_tokens(model: WorldModel, n_tokens: int) -> WorldModel:
    """`model` generating `n_tokens` part tokens a world (no parameter depends on it; the weights are kept)."""
    import dataclasses

    if n_tokens == model.cfg.n_tokens:
        return model
    cfg = dataclasses.replace(model.cfg, n_tokens=n_tokens)  # replace() checks it
    for m in model.modules():
        if getattr(m, "cfg", None) is model.cfg:
            m.cfg = cfg
    return model


def pad_tokens(tokens: Tensor, n: int) -> Tensor:  # [P, D] -> [n, D]
    """A world's part tokens padded with empty ones to `n` (UsageError when it has more parts)."""
    if tokens.shape[0] > n:
        raise UsageError(f"a world of {tokens.shape[0]} parts does not fit the model's {n} tokens (ModelConfig.n_tokens)")
    pad = tok.padding_token(tokens.shape[-1] - tok.token_dim(0), dtype=tokens.dtype, device=tokens.device)
    return torch.cat([tokens, pad.expand(n - tokens.shape[0], -1)])


def batch_of(parts: WorldParts, rows: Tensor) -> PartBatch:
    """`parts`' parts at `rows` as an autoencoder batch (in their own frames)."""
    from worldgen.data import PartSet

    return PartSet.from_parts(parts).batch(rows)


# -- weights files ---------------------------------------------------------------------------


def save_model(
    model: WorldModel, path: str | os.PathLike, *, extra: dict[str, str] | None = None, dtype: torch.dtype | None = None
) -> None:
    """Write the weights as .safetensors (atomically) with the config JSON in the metadata.

    dtype: store floating tensors as this (float16 halves a file to hand out; `load_model` reads
    them back into float32).
    """
    from safetensors.torch import save_file

    from worldgen.io import atomic_path

    cast = lambda v: v.to(dtype) if dtype is not None and v.is_floating_point() else v  # noqa: E731
    state = {k: cast(v.detach()).contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "config": model.cfg.to_json(), **(extra or {})}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file (FormatError if it is not one)."""
    from safetensors import safe_open

    if not os.path.exists(path):
        raise FormatError(f"no such weights file: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise FormatError(f"{path} is not a readable .safetensors file: {e}") from None


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> WorldModel:
    """Rebuild a `WorldModel` from `save_model`'s file (FormatError for a wrong or corrupt file)."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("format") != FORMAT or "config" not in meta:
        raise FormatError(f"{path} holds no worldgen model of this version (metadata format {meta.get('format')!r})")
    try:
        cfg = ModelConfig.from_json(meta["config"])
    except (UsageError, json.JSONDecodeError, TypeError) as e:
        raise FormatError(f"{path}: bad model config: {e}") from None
    model = WorldModel(cfg)
    try:
        state = load_file(str(path), device="cpu")
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError) as e:
        raise FormatError(f"{path}: weights do not match the config: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()
