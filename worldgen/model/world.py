"""`WorldModel`: the set transformer, the detail decoder and the image encoder under one config.

Public entry points the CLI calls:
- `sample(model, cond, n=..., steps=..., guidance=..., seed=...)` -> set tokens [B, n, 14]: coarse
  Gaussians, or their groups when the model has a group level (`cfg.group_size`)
- `decode_world(model, set_tokens, pooled, ...)` -> full-detail `Gaussians`
- `save_model(model, path)` / `load_model(path)`: safetensors, the `ModelConfig` as JSON in the metadata.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from worldgen.errors import FormatError, UsageError
from worldgen.gaussians import Gaussians
from worldgen.model import tokens as tok
from worldgen.model.config import ModelConfig
from worldgen.model.decoder import DetailDecoder, decode_children_tokens
from worldgen.model.flow import draw_noise, integrate
from worldgen.model.image import ImageEncoder
from worldgen.model.set_transformer import Condition, SetTransformer, initialize_weights
from worldgen.model.water import WaterHead, lay_flat, settle_tokens
from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS

FORMAT = "worldgen-model/1"
Precision = Literal["auto", "bf16", "fp32"]
GROUP_SEED_OFFSET = 1_000_003  # the group decoder's noise stream is not the detail decoder's


def autocast_for(precision: Precision, device: torch.device, dtype: torch.dtype = torch.float32):
    """bf16 autocast for "bf16", or for "auto" on CUDA / on a CPU with bf16 units; float32 models only."""
    if precision not in ("auto", "bf16", "fp32"):
        raise UsageError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    device = torch.device(device)
    has_bf16 = device.type == "cuda" or (device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    enabled = dtype == torch.float32 and (precision == "bf16" or (precision == "auto" and has_bf16))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


class WorldModel(nn.Module):
    """backbone: set velocity; groups: group -> coarse Gaussians (optional); decoder: per-Gaussian detail;
    water: which coarse Gaussians are water (optional); image: picture -> Condition."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = SetTransformer(cfg)
        self.decoder = DetailDecoder(cfg)
        self.groups = (
            DetailDecoder(cfg, children=cfg.group_size, width=cfg.group_width, depth=cfg.group_depth)
            if cfg.group_size
            else None
        )
        self.water = WaterHead(cfg.token_dim, cfg.cond_dim, cfg.water_width) if cfg.water_width else None
        self.image = ImageEncoder(cfg)
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
) -> Tensor:  # [B, n, token_dim] set tokens (coarse Gaussians, or groups)
    """Sample worlds' set tokens: the guided rectified flow from i.i.d. noise, `steps` steps.

    `precision="auto"` evaluates the velocity under bf16 autocast where the
    hardware has bf16 units (a float32 model only; the state stays float32).
    """
    n = n or model.cfg.set_tokens
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


def _expand(
    decoder: DetailDecoder, parents: Tensor, pooled: Tensor, *, steps: int, seed: int, precision: Precision
) -> dict[str, Tensor]:  # physical fields, each [P * C, ...]
    """Every parent token grows `decoder`'s children (in the world frame, scales inside the support)."""
    p = next(decoder.parameters())
    parents = parents.to(p.device, p.dtype)
    with autocast_for(precision, p.device, p.dtype):
        child = decode_children_tokens(decoder, parents, pooled.to(parents), steps=steps, seed=seed)
    f = tok.decode_children(tok.decode(parents), child.to(parents.dtype))
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in f.items()}
    flat["scales"] = flat["scales"].clamp(*tok.SAMPLE_SCALE_RANGE)
    return flat


def expand_groups(
    model: WorldModel, groups: Tensor, pooled: Tensor, *, steps: int = 8, seed: int = 0, precision: Precision = "auto"
) -> Tensor:  # [G * group_size, token_dim]
    """Group tokens [G, token_dim] -> the coarse tokens of their members (the group decoder's flow)."""
    if model.groups is None:
        raise UsageError("this model has no group level (cfg.group_size is 0)")
    f = _expand(model.groups, tok.clamp_to_support(groups), pooled, steps=steps, seed=seed, precision=precision)
    return tok.encode(f["means"], f["quats"], f["scales"], f["opacities"], f["rgb"])


def decode_world(
    model: WorldModel,
    tokens: Tensor,  # [n, token_dim] one world's set tokens (coarse Gaussians, or groups)
    pooled: Tensor,  # [cond_dim] its pooled condition
    *,
    detail: bool = True,
    steps: int = 4,
    seed: int = 0,
    precision: Precision = "auto",
) -> Gaussians:
    """Set tokens -> Gaussians: groups (if the model has them) become coarse Gaussians, and with
    `detail` every coarse Gaussian becomes `cfg.children` children.

    Tokens are first pulled inside the data's support (`tokens.clamp_to_support`) and
    children's scales stay inside `tokens.SAMPLE_SCALE_RANGE`. Where the model has a water head,
    the coarse Gaussians it reads as water, and their children, lie flat on the water level
    (`worldgen.model.water`).
    """
    if model.groups is not None:
        tokens = expand_groups(model, tokens, pooled, seed=seed + GROUP_SEED_OFFSET, precision=precision)
    coarse = tok.clamp_to_support(tokens)
    wet = water_mask(model, coarse, pooled)
    coarse = settle_tokens(coarse, wet)
    if not detail:
        return tok.tokens_to_gaussians(coarse)
    f = _expand(model.decoder, coarse, pooled, steps=steps, seed=seed, precision=precision)
    if wet.any():
        kids = wet.to(f["means"].device).repeat_interleave(model.cfg.children)
        f["means"][kids], f["quats"][kids], f["scales"][kids] = lay_flat(f["means"][kids], f["quats"][kids],
                                                                       f["scales"][kids])  # fmt: skip
    return Gaussians.from_rgb(f["means"], f["rgb"], f["scales"], f["opacities"], f["quats"])


def water_mask(model: WorldModel, coarse: Tensor, pooled: Tensor) -> Tensor:  # [n, D], [C] -> [n] bool
    """Which coarse tokens the model's water head reads as water (none without a head)."""
    if model.water is None:
        return torch.zeros(coarse.shape[:-1], dtype=torch.bool, device=coarse.device)
    with torch.no_grad():
        p = next(model.water.parameters())
        return model.water(coarse.to(p), pooled.to(p)) > 0.0  # P(water) > 0.5


def with_group_level(model: WorldModel, size: int) -> WorldModel:
    """`model` with a group level of `size` (0: none): every other weight is kept, a new group decoder starts fresh."""
    if size == model.cfg.group_size:
        return model
    return _regrown(model, dataclasses.replace(model.cfg, group_size=size), fresh="groups.")  # replace() checks size


def with_local_blocks(model: WorldModel, n: int) -> WorldModel:
    """`model` with `n` local-attention blocks: every other weight is kept, the local blocks start fresh.

    Fresh blocks are zero-gated (adaLN-Zero), so the grown model computes exactly
    what `model` did until training moves them.
    """
    if n == model.cfg.local_blocks:
        return model
    return _regrown(model, dataclasses.replace(model.cfg, local_blocks=n), fresh="backbone.local.")


def with_water_head(model: WorldModel, width: int) -> WorldModel:
    """`model` with a water head of `width` (0: none): every other weight is kept, a new head starts fresh."""
    if width == model.cfg.water_width:
        return model
    return _regrown(model, dataclasses.replace(model.cfg, water_width=width), fresh="water.")


def _regrown(model: WorldModel, cfg: ModelConfig, *, fresh: str) -> WorldModel:
    """A `cfg` model holding `model`'s weights, except those under `fresh`, which start from initialisation."""
    out = WorldModel(cfg).to(next(model.parameters()).device)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith(fresh)}
    missing, unexpected = out.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith(fresh) for k in missing):
        raise UsageError(f"weights do not fit the grown model: missing {missing}, unexpected {unexpected}")
    return out.train(model.training)


# -- weights files ---------------------------------------------------------------------------


def save_model(model: WorldModel, path: str | os.PathLike, *, extra: dict[str, str] | None = None) -> None:
    """Write the weights as .safetensors (atomically) with the config JSON in the metadata."""
    from safetensors.torch import save_file

    from worldgen.io import atomic_path

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
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
        raise FormatError(f"{path} holds no worldgen model (metadata format {meta.get('format')!r})")
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
