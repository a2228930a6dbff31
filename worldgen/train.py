"""Training the world model: `TrainConfig`, named presets, and one loop for its two stages.

- Stage "parts": the part autoencoder alone (`model/autoencoder.py`), on the parts
  of many worlds (`data.PartSet`). Each step draws one kind (kinds with few parts
  more often than their share) and as many of its parts as fit `part_splats`;
  the encoder reads a random subset of each part's splats, the decoder grows a
  random subset of its slots, and the set distance compares them with as many
  true splats.
- Stage "set": the set transformer (and the image encoder) on whole worlds' part
  tokens (`data.TokenSet`), by rectified flow with Sinkhorn pairing, condition
  dropout for guidance, and, where a world kept rendered views, one of its views
  instead of its caption with `image_prob`. The autoencoder stays as it is.
- Resumable: `out_dir/checkpoint.safetensors` holds the model, the AdamW state,
  the step and the data RNG; `resume=True` continues bit-for-bit. The final
  weights go to `out_dir/model.safetensors` in float16 (`load_model` reads it).
- A wall-clock budget (`minutes`) ends a run at the last step that fits, with the
  cool-down in its last steps.
- Multi-GPU: launched by `torchrun`, the loop joins the process group, wraps
  the objective in DDP and gives each rank its own data stream; rank 0 logs and
  writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from worldgen.data import PartSet, TokenSet
from worldgen.errors import FormatError, UsageError
from worldgen.model.autoencoder import part_loss, render_loss
from worldgen.model.config import get_config
from worldgen.model.flow import Pairing, TimeDist, flow_loss, prompt_gain
from worldgen.model.set_transformer import Condition
from worldgen.model.world import WorldModel, autocast_for, save_model

CHECKPOINT_FORMAT = "worldgen-checkpoint/2"
Stage = Literal["parts", "set"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data."""

    stage: Stage = "set"
    model: str = "small"  # a ModelConfig preset
    model_overrides: dict[str, Any] = field(default_factory=dict)
    steps: int = 20000
    lr: float = 3e-4
    warmup: int = 200
    cooldown: int = 0  # the last `cooldown` steps take the LR linearly to 0 (warmup-stable-decay)
    minutes: float = 0.0  # wall-clock budget of this invocation (0: none): it ends at the last step that fits,
    # `steps` at most, with the cool-down in its last `cooldown` steps
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    # -- stage "parts" --
    part_splats: int = 16384  # decoded slots per step (parts of one kind, each at most `part_slots` of them)
    part_slots: int = 256  # slots decoded per part per step (a random subset of a larger part's)
    kind_temper: float = 0.5  # kinds are drawn with probability proportional to (their number of parts) ** this
    render_every: int = 0  # every N-th step adds `render_loss`, the look of the decoded parts (0: never)
    render_weight: float = 2.0
    # -- stage "set" --
    batch_size: int = 16  # worlds per step (per rank)
    cond_drop: float = 0.1  # condition dropout for classifier-free guidance
    pairing: Pairing = "sinkhorn"  # minibatch OT between noise and data tokens of each set ("none": independent)
    t_dist: TimeDist = "logit_normal"
    image_prob: float = 0.25  # chance that a world with views is conditioned on one of them instead of a caption
    probe_worlds: int = 8  # worlds in the fixed batch on which every checkpoint logs how much the model reads its
    # prompt (`prompt_gain`; 0 = off)
    # -- both --
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    threads: int = 0  # torch CPU threads (0: torch's default); 1 avoids OpenMP stalls on a busy shared CPU
    out_dir: str = "runs/world"
    ckpt_every: int = 500
    log_every: int = 10
    seed: int = 0
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.stage not in get_args(Stage):
            raise UsageError(f"stage must be parts or set, got {self.stage!r}")
        if min(self.steps, self.probe_worlds) < 0 or self.batch_size < 1 or self.lr <= 0:
            raise UsageError("steps and probe_worlds >= 0, batch_size >= 1 and lr > 0 are required")
        if self.part_splats < 1 or self.part_slots < 1 or self.kind_temper < 0 or self.render_every < 0:
            raise UsageError("part_splats and part_slots must be positive, kind_temper and render_every >= 0")
        if not 0 <= self.cooldown <= self.steps:
            raise UsageError(f"cooldown must lie in [0, steps], got {self.cooldown} of {self.steps} steps")
        if not (math.isfinite(self.minutes) and self.minutes >= 0):
            raise UsageError(f"minutes must be a finite number >= 0 (0: no time budget), got {self.minutes}")
        if not 0.0 <= self.cond_drop <= 1.0 or not 0.0 <= self.image_prob <= 1.0:
            raise UsageError("cond_drop and image_prob must lie in [0, 1]")
        for name, allowed in (("t_dist", get_args(TimeDist)), ("pairing", get_args(Pairing))):  # the flow's own lists
            if getattr(self, name) not in allowed:
                raise UsageError(f"{name} must be {' or '.join(allowed)}, got {getattr(self, name)!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise UsageError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


#: named training presets (`train_config(name, **overrides)`)
TRAIN_PRESETS: dict[str, TrainConfig] = {
    # seconds on a 2-core CPU: smoke runs that still learn
    "tiny-parts": TrainConfig(stage="parts", model="tiny", steps=60, lr=3e-3, warmup=10, part_splats=2048, part_slots=64,
                              ckpt_every=0, log_every=10),
    "tiny": TrainConfig(model="tiny", steps=60, batch_size=8, lr=2e-3, warmup=10, ckpt_every=0, log_every=10),
    # the CPU product model
    "small-parts": TrainConfig(stage="parts", model="small", steps=20000, lr=1e-3, warmup=200, render_every=4),
    "small": TrainConfig(model="small", steps=20000, batch_size=16, lr=3e-4, warmup=500),
    # a GPU
    "base-parts": TrainConfig(stage="parts", model="base", steps=200000, lr=5e-4, warmup=2000, part_splats=65536),
    "base": TrainConfig(model="base", steps=200000, batch_size=64, lr=1e-4, warmup=2000),
}  # fmt: skip


def train_config(name: str, **overrides: Any) -> TrainConfig:
    """The training preset `name` with some fields replaced."""
    if name not in TRAIN_PRESETS:
        raise UsageError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    try:
        return dataclasses.replace(TRAIN_PRESETS[name], **overrides)
    except TypeError as e:
        raise UsageError(f"bad TrainConfig override: {e}") from None


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


# -- the objectives -----------------------------------------------------------------------------


class _Objective(nn.Module):
    """A stage's whole loss as one module, so DDP sees every trained parameter in one forward."""

    def __init__(self, model: WorldModel, stage: Stage) -> None:
        super().__init__()
        self.model, self.stage = model, stage

    def forward(
        self, batch: dict[str, Any], *, cfg: TrainConfig, gen: torch.Generator, render: bool = False
    ) -> tuple[Tensor, dict[str, float]]:
        if self.stage == "parts":
            return self._parts(batch, cfg=cfg, gen=gen, render=render)
        return self._set(batch, cfg=cfg, gen=gen)

    def _parts(
        self, batch: dict[str, Any], *, cfg: TrainConfig, gen: torch.Generator, render: bool
    ) -> tuple[Tensor, dict[str, float]]:
        ae, parts = self.model.parts, batch["parts"]
        mu, logvar = ae.encode(batch["encoder"])
        z = mu + torch.randn(mu.shape, generator=gen).to(mu) * (0.5 * logvar).exp()
        decoded = ae.decode_slots(parts.kinds, z, parts.counts, parts.colors, batch["slots"])
        loss, terms = part_loss(decoded, parts, mu, logvar)
        if render:
            look = render_loss(decoded, parts, generator=gen)
            loss, terms = loss + cfg.render_weight * look, {**terms, "render": float(look.detach())}
        return loss, terms

    def _set(self, batch: dict[str, Any], *, cfg: TrainConfig, gen: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        cond, images, use = batch["cond"], batch["images"], batch["use_image"]
        if images is not None and bool(use.any()):
            pic = self.model.image(images)  # Condition for the rows that use a view
            both = Condition.cat([cond, pic.to(dtype=cond.tokens.dtype)])  # padded to one length
            text = both.index(slice(0, cond.batch))
            tokens, mask, pooled = text.tokens.clone(), text.mask.clone(), text.pooled.clone()
            rows = use.nonzero()[:, 0]
            tokens[rows], mask[rows], pooled[rows] = both.tokens[cond.batch :], both.mask[cond.batch :], both.pooled[cond.batch :]
            cond = Condition(tokens, mask, pooled)
        loss = flow_loss(self.model, batch["x1"], cond, cond_drop=cfg.cond_drop, pairing=cfg.pairing, t_dist=cfg.t_dist,
                         generator=gen)  # fmt: skip
        return loss, {"flow": float(loss.detach())}


def _parts_batch(data: PartSet, cfg: TrainConfig, gen: torch.Generator, probs: Tensor, encoder_splats: int) -> dict[str, Any]:
    """One kind's parts: what the encoder reads, which slots the decoder grows, the true splats to match them."""
    kind = int(torch.multinomial(probs, 1, generator=gen))
    rows = data.kind_rows(kind)
    typical = int(data.counts[rows].float().median().clamp(1, cfg.part_slots))
    b = max(1, cfg.part_splats // typical)
    pick = rows[torch.randint(len(rows), (b,), generator=gen)]
    parts = data.batch(pick, max_splats=cfg.part_slots, generator=gen)
    slots = torch.stack([_random_slots(int(c), parts.means.shape[1], gen) for c in parts.counts])
    return {"parts": parts, "encoder": data.batch(pick, max_splats=encoder_splats, generator=gen), "slots": slots}


def _random_slots(count: int, n: int, gen: torch.Generator) -> Tensor:  # [n] long, each < count
    """The decoder slots a part of `count` splats grows this step: all (padded with 0), or a random subset of `n`."""
    if count <= n:
        return torch.nn.functional.pad(torch.arange(count), (0, n - count))
    return torch.randperm(count, generator=gen)[:n]


def kind_probabilities(data: PartSet, temper: float) -> Tensor:  # [kinds]
    """How often each kind is drawn: proportional to its number of parts to the power `temper` (0: uniform)."""
    counts = torch.bincount(data.kinds, minlength=int(data.kinds.max()) + 1).double()
    p = torch.where(counts > 0, counts.pow(temper), 0.0)
    return (p / p.sum()).float()


def _set_batch(data: TokenSet, cfg: TrainConfig, gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    cidx = torch.randint(len(data), (cfg.batch_size,), generator=gen)
    worlds = data.caption_world[cidx]
    images = use = None
    if data.views is not None and cfg.image_prob > 0:
        row = data.view_row[worlds]  # -1: the world kept no views
        use = (torch.rand(cfg.batch_size, generator=gen) < cfg.image_prob) & (row >= 0)
        view = torch.randint(data.views.shape[1], (cfg.batch_size,), generator=gen)
        images = data.views[row[use], view[use]].to(device) if bool(use.any()) else None
        use = use.to(device)
    return {"x1": data.tokens[worlds].to(device), "cond": data.cond.index(cidx).to(device, torch.float32), "images": images,
            "use_image": use}  # fmt: skip


# -- the loop ---------------------------------------------------------------------------------


@dataclass
class TrainResult:
    model: WorldModel
    losses: list[float]  # the stage's main loss per step (this run's steps only)
    rate: float  # worlds per second (stage "set") or decoded slots per second (stage "parts")
    step: int  # the global step reached
    prompt_gains: list[tuple[int, float, float]] = field(default_factory=list)  # (step, flow loss at t < 0.3 with the
    # prompt, without it) on a fixed batch, at every checkpoint and at the end


def train(
    cfg: TrainConfig,
    data: PartSet | TokenSet,
    *,
    model: WorldModel | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train (or resume training) one stage of a world model on `data`; returns the model and its loss curve."""
    rank, world, local = _distributed_setup()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device is None:
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    out = Path(cfg.out_dir)
    ckpt_path = out / "checkpoint.safetensors"
    if isinstance(data, PartSet) != (cfg.stage == "parts"):
        raise UsageError(f"stage {cfg.stage!r} trains on {'a PartSet' if cfg.stage == 'parts' else 'a TokenSet'}")

    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # the same initial weights on every rank and every run
            model = WorldModel(get_config(cfg.model, **cfg.model_overrides))
    model = model.to(device).train()
    if cfg.stage == "set":
        if data.cond.tokens.shape[-1] != model.cfg.cond_dim:
            raise UsageError(f"data conditions are {data.cond.tokens.shape[-1]}-d, the model takes {model.cfg.cond_dim}")
        if data.tokens.shape[-1] != model.cfg.token_dim:
            raise UsageError(f"data tokens are {data.tokens.shape[-1]}-d, the model's are {model.cfg.token_dim}")
    trained = [model.parts] if cfg.stage == "parts" else [model.backbone, model.image]
    model.requires_grad_(False)
    for part in trained:
        part.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed * 1000003 + rank)
    step = 0
    if cfg.resume and ckpt_path.exists():
        step = load_checkpoint(ckpt_path, model, opt, gen, stage=cfg.stage)

    objective: nn.Module = _Objective(model, cfg.stage)
    if world > 1:
        objective = nn.parallel.DistributedDataParallel(
            objective, device_ids=[local] if device.type == "cuda" else None, find_unused_parameters=True
        )
    autocast = autocast_for(cfg.precision, device)
    probs = kind_probabilities(data, cfg.kind_temper) if cfg.stage == "parts" else None
    losses: list[float] = []
    rate = 0.0
    progress = _Progress(cfg, start=step) if (cfg.progress and rank == 0) else None
    probe = _PromptProbe(cfg, data, device) if (rank == 0 and cfg.probe_worlds and cfg.stage == "set") else None
    gains: list[tuple[int, float, float]] = []
    end, first, started = cfg.steps, step, _clock()  # `end` moves only under a time budget (`budget_end`)
    try:
        while step < end:
            t0 = time.perf_counter()
            if rank == 0 and cfg.out_dir and cfg.cooldown and step == end - cfg.cooldown:
                save_checkpoint(out / "checkpoint-stable.safetensors", model, opt, gen, step, cfg)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step, end)
            if cfg.stage == "parts":
                batch = _parts_batch(data, cfg, gen, probs, model.cfg.parts.encoder_splats)
                batch = {k: v.to(device) for k, v in batch.items()}
                done = int(batch["parts"].present.sum())
            else:
                batch = _set_batch(data, cfg, gen, device)
                done = cfg.batch_size
            render = cfg.stage == "parts" and cfg.render_every > 0 and (step + 1) % cfg.render_every == 0
            with autocast:
                loss, terms = objective(batch, cfg=cfg, gen=gen, render=render)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged at step {step} (loss {value})")
            losses.append(value)
            dt = time.perf_counter() - t0
            rate = 0.9 * rate + 0.1 * (done * world / dt) if rate else done * world / dt
            if rank == 0 and cfg.ckpt_every and step % cfg.ckpt_every == 0:
                save_checkpoint(ckpt_path, model, opt, gen, step, cfg)
                if probe is not None and step < end:
                    gains.append(probe(model, step, autocast))
            if cfg.minutes:
                end = _agreed(budget_end(cfg, step, end, step - first, _clock() - started), world, device)
            if progress is not None:
                progress.update(step, value, terms, rate, total=end)
    finally:
        if progress is not None:
            progress.close()
    if probe is not None:
        gains.append(probe(model, step, autocast))
    if rank == 0 and cfg.out_dir:
        save_checkpoint(ckpt_path, model, opt, gen, step, cfg)
        save_model(model, out / "model.safetensors", extra={"train_config": cfg.to_json(), "step": str(step)},
                   dtype=torch.float16)  # fmt: skip
    return TrainResult(model.eval(), losses, rate, step, gains)


class _PromptProbe:
    """`prompt_gain` on one batch fixed for the whole run (worlds, captions, noise and t), logged at checkpoints.

    A model can fit the worlds and still hardly read its prompt (the flow loss alone does not
    tell); the gap between the two losses shows it early, without sampling or judging.
    """

    def __init__(self, cfg: TrainConfig, data: TokenSet, device: torch.device) -> None:
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # apart from the training batches
        idx = torch.randint(len(data), (cfg.probe_worlds,), generator=gen)
        self.x1, self.cond = data.tokens[data.caption_world[idx]].to(device), data.cond.index(idx).to(device, torch.float32)
        self.pairing, self.seed, self.log = cfg.pairing, cfg.seed + 2, cfg.progress

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
    path: str | os.PathLike, model: WorldModel, opt: torch.optim.Optimizer, gen: torch.Generator, *, stage: Stage
) -> int:
    """Restore `save_checkpoint`'s state into model, optimizer and generator; returns the step."""
    from safetensors.torch import load_file

    from worldgen.model.config import ModelConfig
    from worldgen.model.world import read_metadata

    meta = read_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"{path} is not a worldgen training checkpoint of this version")
    if ModelConfig.from_json(meta["model_config"]) != model.cfg:
        raise UsageError(f"{path} was trained with another model config; use a fresh out_dir or resume=False")
    saved = json.loads(meta.get("train_config", "{}")).get("stage")
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


def checkpoint_model(path: str | os.PathLike) -> WorldModel:
    """The model held by a training checkpoint (to look at a run that is still going)."""
    from safetensors.torch import load_file

    from worldgen.model.config import ModelConfig
    from worldgen.model.world import read_metadata

    meta = read_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(f"{path} is not a worldgen training checkpoint of this version")
    model = WorldModel(ModelConfig.from_json(meta["model_config"]))
    state = {k[6:]: v for k, v in load_file(str(path)).items() if k.startswith("model.")}
    model.load_state_dict(state, strict=True)
    return model.eval()


class _Progress:
    """Step, loss (and its terms), rate: a rich bar on a terminal, else a log line now and then."""

    def __init__(self, cfg: TrainConfig, *, start: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.every = max(1, cfg.log_every)
        console = Console(stderr=True)
        self.live = console.is_terminal
        self.log_every = self.every * 10  # plain log lines (a file, CI) come less often than bar updates
        self.unit = "slots/s" if cfg.stage == "parts" else "worlds/s"
        self.recent: list[float] = []
        self.bar = Progress(
            TextColumn(f"[bold]train {cfg.stage}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.1f} " + self.unit),
            TimeRemainingColumn(), transient=False, console=console, disable=not self.live,
        )  # fmt: skip
        self.task = self.bar.add_task("train", total=cfg.steps, completed=start, loss=float("nan"), rate=0.0)
        self.bar.start()

    def update(self, step: int, loss: float, terms: dict[str, float], rate: float, *, total: int) -> None:
        """`total`: the step the run ends at (a time budget can end it before cfg.steps)."""
        self.recent = (self.recent + [loss])[-self.log_every :]
        mean = sum(self.recent) / len(self.recent)
        if self.live and (step % self.every == 0 or step == total):
            self.bar.update(self.task, completed=step, total=total, loss=mean, rate=rate)
        elif not self.live and (step % self.log_every == 0 or step == total):
            parts = "  ".join(f"{k} {v:.4f}" for k, v in terms.items())
            speed = f"{rate:.0f}" if rate > 100 else f"{rate:.2f}"
            print(f"train step {step}/{total}  loss {mean:.4f} (last {len(self.recent)})  {parts}  {speed} {self.unit}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        self.bar.stop()
