"""Training the world model: `TrainConfig`, named presets, and one loop.

- Objective: rectified flow on the coarse set (`model/flow.py`) plus the detail
  decoder's own flow on the children of a random subset of parents, and, when
  the data carries rendered views, the image encoder through the same loss
  (a world conditioned on one of its own views instead of its caption).
- Worlds are trained on random subsets of their coarse Gaussians
  (`subset_n`; 0 = whole worlds): a set model without positional order
  transfers across set sizes, and small sets train several times faster
  (docs/model.md measures whole-world training against it).
- Resumable: `out_dir/checkpoint.safetensors` holds the model, the AdamW
  state, the step and the data RNG; `resume=True` continues bit-for-bit.
  The final weights go to `out_dir/model.safetensors` (`load_model` reads it).
- bf16 autocast on CPU (when the CPU has bf16 units) and on CUDA.
- Multi-GPU: launched by `torchrun`, the loop joins the process group, wraps
  the model in DDP and gives each rank its own data stream; rank 0 logs and
  writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from worldgen.errors import FormatError, UsageError
from worldgen.model import tokens as tok
from worldgen.model.config import get_config
from worldgen.model.flow import Pairing, TimeDist, child_flow_loss, flow_loss, prompt_gain
from worldgen.model.set_transformer import Condition
from worldgen.model.water import water_loss
from worldgen.model.world import WorldModel, autocast_for, save_model

CHECKPOINT_FORMAT = "worldgen-checkpoint/1"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data."""

    model: str = "small"  # a ModelConfig preset
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 20000
    batch_size: int = 32  # worlds per step (per rank)
    subset_n: int = 256  # coarse Gaussians drawn per world per step (0 = all)
    lr: float = 3e-4
    warmup: int = 200
    cooldown: int = 0  # the last `cooldown` steps take the LR linearly to 0 (warmup-stable-decay)
    minutes: float = 0.0  # wall-clock budget of this invocation (0: none): it ends at the last step that fits,
    # `steps` at most, with the cool-down in its last `cooldown` steps
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    cond_drop: float = 0.1  # condition dropout for classifier-free guidance
    pairing: Pairing = "sinkhorn"  # minibatch OT between noise and data tokens of each set ("none": independent)
    t_dist: TimeDist = "logit_normal"
    decoder_parents: int = 256  # parents per step for the detail decoder's and the water head's losses (0 = off)
    group_parents: int = 1024  # groups per step for the group decoder's loss (models with a group level)
    decoder_weight: float = 1.0
    stage: Literal["joint", "decoder", "water"] = "joint"  # "decoder" / "water": train the decoders / the water
    # head alone, the rest frozen
    image_prob: float = 0.25  # chance that a world is conditioned on one of its views (needs views)
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    threads: int = 0  # torch CPU threads (0: torch's default); 1 avoids OpenMP stalls on a busy shared CPU
    out_dir: str = "runs/world"
    ckpt_every: int = 500
    log_every: int = 10
    probe_worlds: int = 8  # worlds in the fixed batch on which every checkpoint logs how much the model reads its
    # prompt (`prompt_gain`; 0 = off)
    seed: int = 0
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if min(self.steps, self.subset_n, self.group_parents, self.probe_worlds) < 0 or self.batch_size < 1 or self.lr <= 0:
            raise UsageError("steps, subset_n, group_parents and probe_worlds >= 0, batch_size >= 1 and lr > 0 are required")
        if not 0 <= self.cooldown <= self.steps:
            raise UsageError(f"cooldown must lie in [0, steps], got {self.cooldown} of {self.steps} steps")
        if not (math.isfinite(self.minutes) and self.minutes >= 0):
            raise UsageError(f"minutes must be a finite number >= 0 (0: no time budget), got {self.minutes}")
        if not 0.0 <= self.cond_drop <= 1.0 or not 0.0 <= self.image_prob <= 1.0:
            raise UsageError("cond_drop and image_prob must lie in [0, 1]")
        if self.stage not in ("joint", "decoder", "water"):
            raise UsageError(f"stage must be joint, decoder or water, got {self.stage!r}")
        if self.stage != "joint" and self.decoder_parents < 1:
            raise UsageError(f"stage {self.stage!r} needs decoder_parents >= 1")
        for name, allowed in (("t_dist", get_args(TimeDist)), ("pairing", get_args(Pairing))):  # the flow's own lists
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be {' or '.join(allowed)}, got {getattr(self, name)!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise UsageError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


#: named training presets (`train_config(name, **overrides)`)
TRAIN_PRESETS: dict[str, TrainConfig] = {
    # under a minute on a 2-core CPU: a smoke run that still learns
    "tiny": TrainConfig(model="tiny", steps=120, batch_size=8, subset_n=64, lr=2e-3, warmup=10,
                        decoder_parents=64, ckpt_every=0, log_every=10),
    "small": TrainConfig(model="small", steps=20000, batch_size=32, subset_n=256, lr=3e-4, warmup=500),
    "base": TrainConfig(model="base", steps=200000, batch_size=64, subset_n=1024, lr=1e-4, warmup=2000,
                        decoder_parents=1024),
}  # fmt: skip


def learning_rate(cfg: TrainConfig, step: int, end: int | None = None) -> float:
    """The LR of 0-based `step`: linear warm-up, constant, then a linear cool-down to 0 over the last `cooldown` steps.

    `end` is the step the run ends at (`cfg.steps` unless a time budget ends it sooner, see
    `budget_end`). Until the cool-down starts the LR does not depend on it, so a run can be
    extended by resuming with more steps; the checkpoint saved where the cool-down starts
    (`checkpoint-stable.safetensors`) is the one to extend.
    """
    end = cfg.steps if end is None else end
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup))
    if cfg.cooldown and step >= end - cfg.cooldown:
        lr *= (end - step) / (cfg.cooldown + 1)
    return lr


def budget_end(cfg: TrainConfig, step: int, end: int, done: int, elapsed: float) -> int:
    """The step a run with a time budget ends at, given `done` steps of this invocation in `elapsed` seconds.

    The steps that fit into the time left at this invocation's own pace (checkpoints and
    probes included), `cfg.steps` at most. Once the cool-down has begun the end stays where it
    is, so the LR falls evenly to zero; until then the end is never placed closer than
    `cooldown` steps, so the cool-down is never cut short by a late estimate. Past the budget
    the run ends at once, cooled down or not.
    """
    budget = 60.0 * cfg.minutes
    if elapsed >= budget:
        return step
    if cfg.cooldown and end - step <= cfg.cooldown:
        return end
    fit = step + int((budget - elapsed) * done / elapsed) if done and elapsed > 0 else end
    return max(min(cfg.steps, fit), step + cfg.cooldown)


def train_config(name: str, **overrides: Any) -> TrainConfig:
    """The training preset `name` with some fields replaced."""
    if name not in TRAIN_PRESETS:
        raise UsageError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    try:
        return dataclasses.replace(TRAIN_PRESETS[name], **overrides)
    except TypeError as e:
        raise UsageError(f"bad TrainConfig override: {e}") from None


# -- data ------------------------------------------------------------------------------------


@dataclass
class WorldSet:
    """Training worlds in memory, already in token space, with one or more conditions per world."""

    coarse: Tensor  # [W, N, token_dim]
    cond: Condition  # batch Q: the captions (MiniLM) or any condition vectors
    children: Tensor | None = None  # [W, N, C, child_dim] in each parent's frame (float16 to save memory)
    views: Tensor | None = None  # [W, V, H, W, 3] uint8 rendered views
    captions: list[str] | None = None  # [Q]
    caption_world: Tensor | None = None  # [Q] long: the world each condition describes (None: Q == W, row i -> i)
    groups: Tensor | None = None  # [W, G, token_dim] the level above the coarse set (`with_groups`)
    members: Tensor | None = None  # [W, G, K] long: the coarse rows of each group

    def __post_init__(self) -> None:
        w = self.coarse.shape[0]
        if self.coarse.ndim != 3:
            raise UsageError(f"coarse must be [W, N, D]; got {tuple(self.coarse.shape)}")
        if self.caption_world is None and self.cond.batch != w:
            raise UsageError(f"{self.cond.batch} conditions for {w} worlds and no caption_world map")
        if self.caption_world is not None and (self.caption_world.shape != (self.cond.batch,) or self.caption_world.max() >= w):
            raise UsageError("caption_world must map every condition to a world")
        if self.children is not None and self.children.shape[:2] != self.coarse.shape[:2]:
            raise UsageError("children must be [W, N, C, D] for the same worlds and parents")
        if self.views is not None and self.views.shape[0] != w:
            raise UsageError("views must hold one row per world")
        if (self.groups is None) != (self.members is None) or (
            self.groups is not None and (self.groups.shape[0] != w or self.members.shape[:2] != self.groups.shape[:2])
        ):
            raise UsageError("groups [W, G, D] and members [W, G, K] come together, for the same worlds")

    @property
    def set_tokens(self) -> Tensor:  # [W, n, token_dim]
        """What the set model learns to generate: the groups when there are any, else the coarse Gaussians."""
        return self.coarse if self.groups is None else self.groups

    def __len__(self) -> int:
        return self.cond.batch

    def world_of(self, idx: Tensor) -> Tensor:  # [B] condition rows -> [B] world rows
        return idx if self.caption_world is None else self.caption_world[idx]

    def batch(self, idx: Tensor, subset_n: int, gen: torch.Generator) -> tuple[Tensor, Condition, Tensor]:
        """Worlds of conditions `idx`, each a random subset of `subset_n` set tokens: ([B, n, D], cond, rows [B, n])."""
        tokens = self.set_tokens
        n = tokens.shape[1]
        k = n if subset_n <= 0 or subset_n >= n else subset_n
        rows = torch.stack([torch.randperm(n, generator=gen)[:k] for _ in range(len(idx))])  # [B, k]
        worlds = self.world_of(idx)
        x1 = torch.gather(tokens[worlds], 1, rows[..., None].expand(-1, -1, tokens.shape[2]))
        return x1, self.cond.index(idx), rows


def with_groups(data: WorldSet, size: int) -> WorldSet:
    """`data` with the group level above its coarse Gaussians (`lod.build_groups`, `size` members each)."""
    from worldgen.procedural.lod import build_groups

    groups, members = [], []
    for w in range(data.coarse.shape[0]):
        g, m = build_groups(tok.tokens_to_gaussians(data.coarse[w]), size, seed=w)
        groups.append(tok.gaussians_to_tokens(g))
        members.append(m)
    return dataclasses.replace(data, groups=torch.stack(groups).float(), members=torch.stack(members))


def world_set_from_shards(
    paths: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    encode: Callable[[Sequence[str]], Condition] | None = None,
    max_captions: int | None = None,
) -> WorldSet:
    """The procedural dataset (a directory with manifest.json, or shard files) as a `WorldSet`.

    Coarse Gaussians -> tokens (`tokens.encode`); the children, stored in their
    parent's frame by `worldgen.procedural.lod`, -> child tokens
    (`child_tokens_from_local`, the same frame); every caption of a world
    becomes one condition row (MiniLM unless `encode` is given); views are kept
    as uint8 for the image encoder. For a dataset directory the MiniLM encodings
    are cached in it (`CAPTION_CACHE`), so a restarted run skips re-encoding.
    """
    from worldgen.procedural.dataset import read_manifest, read_shard

    cache = None
    if isinstance(paths, (str, os.PathLike)):
        root = Path(paths)
        if root.is_dir():
            cache = root / CAPTION_CACHE
            manifest = read_manifest(root)
            if manifest is None:
                raise FormatError(f"{root}: no manifest.json; build the dataset first")
            paths = [root / manifest["shards"][i] for i in manifest["complete"]]
        else:
            paths = [root]
    if not paths:
        raise UsageError("no complete shards to train on")
    if encode is None and cache is not None:
        encode = functools.partial(_encode_batched, cache=cache)
    return _world_set_from_shard_dicts((read_shard(p) for p in paths), encode=encode, max_captions=max_captions)


def world_set_from_scenes(
    root: str | os.PathLike,
    *,
    encode: Callable[[Sequence[str]], Condition] | None = None,
    max_captions: int | None = None,
    coarse_n: int = 2048,
    children: int = 64,
    views: int = 2,
    view_size: int = 96,
    on_scene: Callable | None = None,
) -> WorldSet:
    """A directory of the user's own splat scenes with captions (`worldgen.scenes`) as a `WorldSet`.

    Each scene is fitted with `coarse_n` coarse Gaussians of `children` children each: the model's
    `n_tokens` and `children`.
    """
    from worldgen.scenes import scene_shard

    shard = scene_shard(root, coarse_n=coarse_n, children=children, views=views, view_size=view_size,
                        on_scene=on_scene)  # fmt: skip
    return _world_set_from_shard_dicts([shard], encode=encode, max_captions=max_captions)


def _world_set_from_shard_dicts(shards, *, encode, max_captions) -> WorldSet:
    coarse, kids, views, captions, owner = [], [], [], [], []
    for sh in shards:
        coarse.append(tok.encode(sh["coarse_means"], sh["coarse_quats"], sh["coarse_scales"], sh["coarse_opacities"],
                                 sh["coarse_rgb"]).float())  # fmt: skip
        kids.append(tok.child_tokens_from_local(
            sh["children_offsets"].float(), sh["children_log_scales"].float(), sh["children_quats"].float(),
            sh["children_rgb"].float(), sh["children_opacities"].float(),
            sh["coarse_rgb"].float(), sh["coarse_opacities"].float()).half())  # fmt: skip
        views.append(sh["views"])
        base = sum(c.shape[0] for c in coarse[:-1])
        for j, caps in enumerate(sh["captions"]):
            caps = caps[:max_captions] if max_captions else caps
            captions += caps
            owner += [base + j] * len(caps)
    all_views = torch.cat(views)
    cond = (encode or _encode_batched)(captions)
    return WorldSet(torch.cat(coarse), cond, torch.cat(kids), all_views if all_views.shape[1] else None, captions,
                    torch.tensor(owner, dtype=torch.long))  # fmt: skip


#: file in a dataset directory holding its captions' MiniLM encodings (rebuilt when the captions change)
CAPTION_CACHE = "captions-minilm.safetensors"


def _encode_batched(captions: Sequence[str], batch: int = 128, *, cache: Path | None = None) -> Condition:
    """MiniLM encodings of `captions`, read from `cache` when it holds exactly these captions, else written there."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    from worldgen.io import atomic_path
    from worldgen.model.text import MAX_TOKENS, encode_text

    key = hashlib.sha256(json.dumps([MAX_TOKENS, *captions]).encode()).hexdigest()
    if cache is not None and cache.is_file():
        try:
            with safe_open(str(cache), framework="pt") as f:
                if (f.metadata() or {}).get("captions_sha256") == key:
                    return Condition(f.get_tensor("tokens"), f.get_tensor("mask"), f.get_tensor("pooled"))
        except (SafetensorError, OSError, KeyError, ValueError):  # a damaged cache is rebuilt, never trusted
            pass
    cond = Condition.cat([encode_text(list(captions[i : i + batch])) for i in range(0, len(captions), batch)])
    if cache is not None:
        tensors = {"tokens": cond.tokens.contiguous(), "mask": cond.mask.contiguous(), "pooled": cond.pooled.contiguous()}
        try:
            with atomic_path(cache) as tmp:
                save_file(tensors, str(tmp), metadata={"captions_sha256": key})
        except OSError as e:  # a read-only dataset trains all the same, it just re-encodes next time
            print(f"note: caption encodings not cached ({e.strerror or e})", file=sys.stderr)
    return cond


def world_set_from_fields(
    coarse: dict[str, Tensor],  # means [W, N, 3], quats [W, N, 4], scales [W, N, 3], opacities [W, N], rgb [W, N, 3]
    captions: Sequence[str],
    *,
    children: dict[str, Tensor] | None = None,  # the same fields, [W, N, C, ...], in the world frame
    views: Tensor | None = None,  # [W, V, H, W, 3] uint8
    encode: Callable[[Sequence[str]], Condition] | None = None,
) -> WorldSet:
    """Physical Gaussians and captions -> a `WorldSet` (captions through MiniLM unless `encode` is given)."""
    if len(captions) != coarse["means"].shape[0]:
        raise UsageError(f"{len(captions)} captions for {coarse['means'].shape[0]} worlds")
    x = tok.encode(coarse["means"], coarse["quats"], coarse["scales"], coarse["opacities"], coarse["rgb"])
    kids = None
    if children is not None:
        w, n = x.shape[:2]
        flat = {k: v.reshape(w * n, *v.shape[2:]) for k, v in children.items()}
        parent = {k: v.reshape(w * n, *v.shape[2:]) for k, v in coarse.items()}
        kids = tok.encode_children(parent, flat["means"], flat["quats"], flat["scales"], flat["opacities"], flat["rgb"])
        kids = kids.reshape(w, n, *kids.shape[1:])
    if encode is None:
        from worldgen.model.text import encode_caption

        encode = lambda caps: Condition.cat([encode_caption(c) for c in caps])  # noqa: E731
    return WorldSet(x.float(), encode(list(captions)), kids.half() if kids is not None else None, views, list(captions))


def toy_worlds(
    worlds: int = 64,
    n: int = 128,
    *,
    classes: int = 4,
    cond_dim: int = 384,
    children: int = 0,
    seed: int = 0,
) -> tuple[WorldSet, Tensor]:
    """A synthetic data set whose layout depends on the condition: for tests, examples and benchmarks.

    World of class k: a flat ground disc of its class colour plus a cluster of
    "trees" at a class-dependent spot; the condition is a fixed random vector
    per class (3 "word" tokens and a pooled vector). Returns (set, labels [W]).
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(worlds) % classes
    palette = torch.rand(classes, 3, generator=g)
    spots = (torch.rand(classes, 2, generator=g) - 0.5) * 40.0
    word = torch.nn.functional.normalize(torch.randn(classes, 3, cond_dim, generator=g), dim=-1)
    means = torch.zeros(worlds, n, 3)
    rgb = torch.zeros(worlds, n, 3)
    tree = torch.rand(worlds, n, generator=g) < 0.3  # [W, N]
    ground = (torch.rand(worlds, n, 2, generator=g) - 0.5) * 60.0
    cluster = spots[labels][:, None] + torch.randn(worlds, n, 2, generator=g) * 3.0
    means[..., :2] = torch.where(tree[..., None], cluster, ground)
    means[..., 2] = torch.where(tree, 2.0 + torch.rand(worlds, n, generator=g) * 6.0, torch.zeros(worlds, n))
    rgb[:] = palette[labels][:, None]
    rgb = torch.where(tree[..., None], torch.tensor([0.1, 0.5, 0.1]), rgb)
    quats = torch.nn.functional.normalize(torch.randn(worlds, n, 4, generator=g), dim=-1)
    scales = torch.where(tree[..., None], torch.full((worlds, n, 3), 1.0), torch.tensor([1.5, 1.5, 0.1]))
    opac = torch.full((worlds, n), 0.9)
    coarse = {"means": means, "quats": quats, "scales": scales, "opacities": opac, "rgb": rgb}
    kids = None
    if children:
        off = torch.randn(worlds, n, children, 3, generator=g) * scales[:, :, None]
        kids = {
            "means": means[:, :, None] + off,
            "quats": quats[:, :, None].expand(-1, -1, children, -1),
            "scales": scales[:, :, None].expand(-1, -1, children, -1) * 0.3,
            "opacities": opac[:, :, None].expand(-1, -1, children),
            "rgb": (rgb[:, :, None] + 0.05 * torch.randn(worlds, n, children, 3, generator=g)).clamp(0, 1),
        }
    tokens = word[labels]  # [W, 3, C]
    cond = Condition(tokens, torch.ones(worlds, 3, dtype=torch.bool), torch.nn.functional.normalize(tokens.mean(1), dim=-1))
    ws = world_set_from_fields(coarse, [f"class {int(k)}" for k in labels], children=kids, encode=lambda _: cond)
    return ws, labels


# -- the loop ------------------------------------------------------------------------------


class _Objective(nn.Module):
    """The whole training loss as one module, so DDP sees every parameter in one forward."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        x1: Tensor,  # [B, n, D]
        cond: Condition,
        images: Tensor | None,  # [B, H, W, 3] uint8, or None
        use_image: Tensor | None,  # [B] bool
        kids: Tensor | None,  # [P, C, child_dim]
        parents: Tensor | None,  # [P, D]
        parent_world: Tensor | None,  # [P] row of the batch each parent came from
        members: Tensor | None,  # [G, K, child_dim] coarse Gaussians in their group's frame
        groups: Tensor | None,  # [G, D]
        group_world: Tensor | None,  # [G]
        cfg: TrainConfig,
        gen: torch.Generator,
    ) -> tuple[Tensor, Tensor, Tensor]:  # total, flow, per-Gaussian heads (detail + group decoders, water)
        decoders = (kids, parents, parent_world, members, groups, group_world)
        if cfg.stage == "water":
            loss_water = self._water_loss(cond, parents, parent_world, gen=gen)
            return loss_water, x1.new_zeros(()), loss_water
        if cfg.stage == "decoder":
            loss_dec = self._decoder_loss(cond, *decoders, gen=gen)
            return loss_dec, x1.new_zeros(()), loss_dec
        if images is not None and use_image is not None and bool(use_image.any()):
            img = self.model.image(images[use_image])  # Condition for the rows that use a view
            both = Condition.cat([cond, img.to(dtype=cond.tokens.dtype)])  # padded to one length
            text, pic = both.index(slice(0, cond.batch)), both.index(slice(cond.batch, None))
            tokens, mask, pooled = text.tokens.clone(), text.mask.clone(), text.pooled.clone()
            tokens[use_image], mask[use_image], pooled[use_image] = pic.tokens, pic.mask, pic.pooled
            cond = Condition(tokens, mask, pooled)
        loss_flow = flow_loss(self.model, x1, cond, cond_drop=cfg.cond_drop, pairing=cfg.pairing, t_dist=cfg.t_dist,
                              generator=gen)  # fmt: skip
        loss_dec = self._decoder_loss(cond, *decoders, gen=gen)  # a world drawn with a view: the view's pooled vector
        loss_water = self._water_loss(cond, parents, parent_world, gen=gen)
        return loss_flow + cfg.decoder_weight * loss_dec + loss_water, loss_flow, loss_dec + loss_water

    def _decoder_loss(self, cond, kids, parents, parent_world, members, groups, group_world, *, gen) -> Tensor:
        """The detail decoder's flow loss, plus the group decoder's where the batch has groups."""
        loss = cond.pooled.new_zeros((), dtype=torch.float32)
        if kids is not None:
            loss = child_flow_loss(self.model.decoder, kids, parents, cond.pooled[parent_world], generator=gen)
        if members is not None:
            loss = loss + child_flow_loss(self.model.groups, members, groups, cond.pooled[group_world], generator=gen)
        return loss

    def _water_loss(self, cond, parents, parent_world, *, gen) -> Tensor:
        """The water head's loss on the batch's coarse Gaussians (zero for a model without one)."""
        if self.model.water is None or parents is None:
            return cond.pooled.new_zeros((), dtype=torch.float32)
        return water_loss(self.model.water, parents, cond.pooled[parent_world], generator=gen)


@dataclass
class TrainResult:
    model: WorldModel
    losses: list[float]  # flow loss per step (this run's steps only)
    decoder_losses: list[float]  # the detail decoder's loss, plus the group decoder's and the water head's where
    # the model has them
    samples_per_s: float  # worlds per second (parents per second in the decoder and water stages)
    step: int  # the global step reached
    prompt_gains: list[tuple[int, float, float]] = field(default_factory=list)  # (step, flow loss at t < 0.3 with the
    # prompt, without it) on a fixed batch, at every checkpoint and at the end


def train(
    cfg: TrainConfig,
    data: WorldSet,
    *,
    model: WorldModel | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train (or resume training) a world model on `data`; returns the model and its loss curve."""
    rank, world, local = _distributed_setup()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device is None:
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    out = Path(cfg.out_dir)
    ckpt_path = out / "checkpoint.safetensors"

    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
            model = WorldModel(get_config(cfg.model, **cfg.model_overrides))
    model = model.to(device).train()
    if data.cond.tokens.shape[-1] != model.cfg.cond_dim:
        raise UsageError(f"data conditions are {data.cond.tokens.shape[-1]}-d, the model takes {model.cfg.cond_dim}")
    size = model.cfg.group_size
    if size and (data.members is None or data.members.shape[-1] != size):
        data = with_groups(data, size)
    elif not size and data.groups is not None:
        data = dataclasses.replace(data, groups=None, members=None)
    model.requires_grad_(True)
    if cfg.stage == "water" and model.water is None:
        raise UsageError("stage 'water' needs a model with a water head (ModelConfig.water_width > 0)")
    if cfg.stage != "joint":  # the set model and image encoder stay as they are
        model.requires_grad_(False)
        trained = [model.water] if cfg.stage == "water" else [model.decoder, model.groups]
        for part in trained:
            if part is not None:
                part.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed * 1000003 + rank)
    step = 0
    if cfg.resume and ckpt_path.exists():
        step = load_checkpoint(ckpt_path, model, opt, gen, stage=cfg.stage)

    objective: nn.Module = _Objective(model)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(
            objective, device_ids=[local] if device.type == "cuda" else None, find_unused_parameters=True
        )
    autocast = autocast_for(cfg.precision, device)
    losses: list[float] = []
    dec_losses: list[float] = []
    rate = 0.0
    progress = _Progress(cfg, start=step) if (cfg.progress and rank == 0) else None
    probe = _PromptProbe(cfg, data, device) if (rank == 0 and cfg.probe_worlds and cfg.stage == "joint") else None
    gains: list[tuple[int, float, float]] = []
    end, first, started = cfg.steps, step, _clock()  # `end` moves only under a time budget (`budget_end`)
    try:
        while step < end:
            t0 = time.perf_counter()
            if rank == 0 and cfg.out_dir and cfg.cooldown and step == end - cfg.cooldown:
                save_checkpoint(out / "checkpoint-stable.safetensors", model, opt, gen, step, cfg)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step, end)
            batch = _next_batch(data, cfg, gen, model.cfg.children, device)
            with autocast:
                loss, lf, ld = objective(*batch, cfg=cfg, gen=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            lf, ld = float(lf.detach()), float(ld.detach())
            if not math.isfinite(lf) or not math.isfinite(ld):
                raise FloatingPointError(f"training diverged at step {step} (loss {lf}, decoder {ld})")
            losses.append(lf)
            dec_losses.append(ld)
            dt = time.perf_counter() - t0
            done = (cfg.decoder_parents if cfg.stage != "joint" else cfg.batch_size) * world  # parents or worlds
            rate = 0.9 * rate + 0.1 * (done / dt) if rate else done / dt
            if rank == 0 and cfg.ckpt_every and step % cfg.ckpt_every == 0:
                save_checkpoint(ckpt_path, model, opt, gen, step, cfg)
                if probe is not None and step < end:
                    gains.append(probe(model, step, autocast))
            if cfg.minutes:
                end = _agreed(budget_end(cfg, step, end, step - first, _clock() - started), world, device)
            if progress is not None:
                progress.update(step, lf, ld, rate, total=end)
    finally:
        if progress is not None:
            progress.close()
    if probe is not None:
        gains.append(probe(model, step, autocast))
    if rank == 0 and cfg.out_dir:
        save_checkpoint(ckpt_path, model, opt, gen, step, cfg)
        save_model(model, out / "model.safetensors", extra={"train_config": cfg.to_json(), "step": str(step)})
    return TrainResult(model.eval(), losses, dec_losses, rate, step, gains)


class _PromptProbe:
    """`prompt_gain` on one batch fixed for the whole run (worlds, captions, noise and t), logged at checkpoints.

    A model can fit the worlds and still hardly read its prompt (the flow loss alone does not
    tell); the gap between the two losses shows it early, without sampling or judging.
    """

    def __init__(self, cfg: TrainConfig, data: WorldSet, device: torch.device) -> None:
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # apart from the training batches
        idx = torch.randint(len(data), (cfg.probe_worlds,), generator=gen)
        x1, cond, _ = data.batch(idx, cfg.subset_n, gen)
        self.x1, self.cond, self.pairing, self.seed = x1.to(device), cond.to(device), cfg.pairing, cfg.seed + 2
        self.log = cfg.progress

    def __call__(self, model: WorldModel, step: int, autocast) -> tuple[int, float, float]:
        gen = torch.Generator().manual_seed(self.seed)  # the same noise and t every time
        model.eval()
        with autocast:
            cond, uncond = prompt_gain(model, self.x1, self.cond, pairing=self.pairing, generator=gen)
        model.train()
        if self.log:
            print(f"probe step {step}  flow loss at t < 0.3: {cond:.4f} with the prompt, {uncond:.4f} without "
                  f"({100 * (uncond / cond - 1):+.0f}%)", file=sys.stderr, flush=True)  # fmt: skip
        return step, cond, uncond


def _next_batch(data: WorldSet, cfg: TrainConfig, gen: torch.Generator, children: int, device: torch.device):
    cidx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
    x1, cond, rows = data.batch(cidx, cfg.subset_n, gen)
    idx = data.world_of(cidx)
    images = use_image = None
    if data.views is not None and cfg.image_prob > 0 and cfg.stage == "joint":
        use_image = torch.rand(cfg.batch_size, generator=gen) < cfg.image_prob
        view = torch.randint(data.views.shape[1], (cfg.batch_size,), generator=gen)
        images = data.views[idx, view].to(device)
        use_image = use_image.to(device)
    b, k = rows.shape
    members = groups = group_world = None
    if data.groups is not None and cfg.group_parents > 0:
        pick = torch.randint(b * k, (cfg.group_parents,), generator=gen)
        group_world = pick // k
        gw, gr = idx[group_world], rows.reshape(-1)[pick]
        groups = data.groups[gw, gr]  # [G, D]
        coarse = tok.decode(data.coarse[gw[:, None], data.members[gw, gr]])  # fields [G, K, ...]
        members = tok.encode_children(tok.decode(groups), coarse["means"], coarse["quats"], coarse["scales"],
                                      coarse["opacities"], coarse["rgb"])  # fmt: skip
        groups, members, group_world = groups.to(device), members.to(device), group_world.to(device)
    kids = parents = parent_world = None
    if cfg.decoder_parents > 0 and (data.children is not None or cfg.stage == "water"):
        pick = torch.randint(b * k, (cfg.decoder_parents,), generator=gen)
        parent_world = pick // k
        parent_row = rows.reshape(-1)[pick]
        owner = idx[parent_world]  # the data world of each parent
        if data.members is not None:  # rows are groups: any member of the group is a parent
            slot = torch.randint(data.members.shape[-1], (cfg.decoder_parents,), generator=gen)
            parent_row = data.members[owner, parent_row, slot]
        parents = data.coarse[owner, parent_row].to(device)
        parent_world = parent_world.to(device)
        if data.children is not None and cfg.stage != "water":
            kids = data.children[owner, parent_row]  # [P, C_data, D]
            if kids.shape[1] > children:  # train on a random subset of each parent's children
                sub = torch.randperm(kids.shape[1], generator=gen)[:children]
                kids = kids[:, sub]
            kids = kids.to(device=device, dtype=torch.float32)
    return x1.to(device), cond.to(device), images, use_image, kids, parents, parent_world, members, groups, group_world


#: the clock a time budget is read from (tests replace it)
_clock = time.monotonic


def _agreed(end: int, world: int, device: torch.device) -> int:
    """Under DDP every rank ends at the earliest rank's end step, so none waits in a collective alone."""
    if world <= 1:
        return end
    import torch.distributed as dist

    t = torch.tensor([end], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def _distributed_setup() -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size(), local


# -- checkpoints ------------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike, model: WorldModel, opt: torch.optim.Optimizer, gen: torch.Generator, step: int, cfg: TrainConfig
) -> None:
    """Model, AdamW moments, step and data RNG in one .safetensors file (written atomically)."""
    from safetensors.torch import save_file

    from worldgen.io import atomic_path

    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for i, st in opt_state["state"].items():
        for k, v in st.items():
            tensors[f"optim.{i}.{k}"] = v.detach().contiguous().cpu().reshape(v.shape)
    tensors["rng"] = gen.get_state()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "step": str(step),
        "model_config": model.cfg.to_json(),
        "train_config": cfg.to_json(),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_checkpoint(
    path: str | os.PathLike, model: WorldModel, opt: torch.optim.Optimizer, gen: torch.Generator, *, stage: str = "joint"
) -> int:
    """Restore `save_checkpoint`'s state into model, optimizer and generator; returns the step."""
    from safetensors.torch import load_file

    from worldgen.model.config import ModelConfig
    from worldgen.model.world import read_metadata

    meta = read_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"{path} is not a worldgen training checkpoint")
    if ModelConfig.from_json(meta["model_config"]) != model.cfg:
        raise UsageError(f"{path} was trained with another model config; use a fresh out_dir or resume=False")
    saved = json.loads(meta.get("train_config", "{}")).get("stage", "joint")
    if saved != stage:  # the optimizer holds other parameters
        raise UsageError(f"{path} is a checkpoint of training stage {saved!r}, not {stage!r}; use a fresh out_dir")
    tensors = load_file(str(path))
    device = next(model.parameters()).device
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state["state"].setdefault(int(i), {})[name] = v.to(device) if name != "step" else v
    opt.load_state_dict(state)
    gen.set_state(tensors["rng"])
    return int(meta["step"])


class _Progress:
    """Step, flow loss, the per-Gaussian heads' loss and rate: a rich bar on a terminal, else a log line now and then."""

    def __init__(self, cfg: TrainConfig, *, start: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.every = max(1, cfg.log_every)
        console = Console(stderr=True)
        self.live = console.is_terminal
        self.log_every = self.every * 10  # plain log lines (a file, CI) come less often than bar updates
        self.decoder_only = cfg.stage != "joint"  # no flow loss to show
        self.head = "water" if cfg.stage == "water" else "dec"
        self.fields = ("" if self.decoder_only else "loss {task.fields[loss]:.4f}  ") + self.head + " {task.fields[dec]:.4f}"
        self.unit = "parents/s" if self.decoder_only else "samples/s"
        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn(self.fields + "  {task.fields[rate]:.1f} " + self.unit),
            TimeRemainingColumn(), transient=False, console=console, disable=not self.live,
        )  # fmt: skip
        self.task = self.bar.add_task("train", total=cfg.steps, completed=start, loss=float("nan"), dec=float("nan"), rate=0.0)
        self.bar.start()

    def update(self, step: int, loss: float, dec: float, rate: float, *, total: int) -> None:
        """`total`: the step the run ends at (a time budget can end it before cfg.steps)."""
        if self.live and (step % self.every == 0 or step == total):
            self.bar.update(self.task, completed=step, total=total, loss=loss, dec=dec, rate=rate)
        elif not self.live and (step % self.log_every == 0 or step == total):
            losses = f"{self.head} {dec:.4f}" if self.decoder_only else f"loss {loss:.4f}  dec {dec:.4f}"
            print(f"train step {step}/{total}  {losses}  {rate:.1f} {self.unit}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.stop()
