"""Training data in memory: the parts of many worlds for the autoencoder, and the worlds' part tokens for the set model.

    parts = PartSet.from_dataset("data/", worlds=1500)        # compact splats of every part
    batch = parts.batch(parts.kind_rows(0)[:32])               # a PartBatch of 32 terrain tiles
    worlds = token_set_from_dataset("data/", model)            # every world's part tokens and captions

Both read the shards of `worldgen.procedural.dataset` (or a user's scenes cut
into parts, `worldgen.scenes`). The part tokens of a dataset, which depend on
the autoencoder's weights, and the captions' MiniLM encodings are cached in
the dataset directory, so a restarted run reads them back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from worldgen.errors import FormatError, UsageError
from worldgen.model.autoencoder import PartAutoencoder, PartBatch
from worldgen.model.set_transformer import Condition
from worldgen.procedural.dataset import PART_TENSORS, SPLAT_TENSORS, read_manifest, read_shard

if TYPE_CHECKING:
    from worldgen.model.world import WorldModel
    from worldgen.procedural.parts import WorldParts


def shard_paths(root: str | os.PathLike) -> list[Path]:
    """The complete shards of a dataset directory, in order (or the one shard file given)."""
    root = Path(root)
    if root.is_file():
        return [root]
    manifest = read_manifest(root)
    if manifest is None:
        raise FormatError(f"{root}: no manifest.json; build the dataset first (`worldgen dataset build`)")
    paths = [root / manifest["shards"][i] for i in manifest["complete"]]
    if not paths:
        raise UsageError(f"{root}: no complete shards yet")
    return paths


def iter_shards(paths: Iterable[str | os.PathLike]) -> Iterator[dict]:
    for p in paths:
        yield read_shard(p)


@dataclass
class PartSet:
    """Every part of a set of worlds, with its splats kept as the shards store them (part after part)."""

    kinds: Tensor  # [P] long
    counts: Tensor  # [P] long
    extents: Tensor  # [P, 3] half-sizes of the parts' boxes, meters
    colors: Tensor  # [P, 3] mean rgb of each part's splats
    starts: Tensor  # [P] long, first splat of each part
    splats: dict[str, Tensor]  # SPLAT_TENSORS, [N, ...] compact

    @staticmethod
    def from_shards(shards: Iterable[dict]) -> PartSet:
        kinds, counts, extents, colors, splats = [], [], [], [], {k: [] for k in SPLAT_TENSORS}
        for sh in shards:
            kinds.append(sh["part_kind"].long())
            counts.append(sh["part_count"].long())
            extents.append(sh["part_extent"].float())
            colors.append(part_colors(sh))
            for k in SPLAT_TENSORS:
                splats[k].append(sh[k])
        if not kinds:
            raise UsageError("no parts to train on")
        count = torch.cat(counts)
        starts = torch.cumsum(count, 0) - count
        return PartSet(torch.cat(kinds), count, torch.cat(extents), torch.cat(colors), starts,
                       {k: torch.cat(v) for k, v in splats.items()})  # fmt: skip

    @staticmethod
    def from_parts(parts: WorldParts) -> PartSet:
        """One world's parts (in the world frame), packed as a shard packs them."""
        from worldgen.procedural.dataset import pack_splats

        starts = torch.cumsum(parts.counts, 0) - parts.counts
        return PartSet(parts.kinds, parts.counts, parts.extents.float(), parts.mean_colors().float(), starts,
                       pack_splats(parts.local()))  # fmt: skip

    @staticmethod
    def from_dataset(root: str | os.PathLike, *, worlds: int = 0) -> PartSet:
        """The parts of the first `worlds` worlds of a dataset (0: all)."""
        paths = shard_paths(root)
        if worlds:
            shards, seen = [], 0
            for sh in iter_shards(paths):
                w = len(sh["specs"])
                if seen + w > worlds:  # the last shard only in part
                    keep = sh["part_world"] < worlds - seen
                    sh = _world_prefix(sh, keep)
                shards.append(sh)
                seen += min(w, worlds - seen)
                if seen >= worlds:
                    break
            return PartSet.from_shards(shards)
        return PartSet.from_shards(iter_shards(paths))

    def __len__(self) -> int:
        return self.kinds.shape[0]

    def kind_rows(self, kind: int) -> Tensor:  # [p] long
        return (self.kinds == kind).nonzero()[:, 0]

    def batch(self, rows: Tensor, *, max_splats: int | None = None, generator: torch.Generator | None = None) -> PartBatch:
        """The parts at `rows` as a padded `PartBatch` (float32); a part with more than `max_splats` splats
        brings a random subset of that many (`PartBatch.present`)."""
        counts = self.counts[rows]
        present = counts if max_splats is None else counts.clamp_max(max_splats)
        n = int(present.max())
        offs = torch.stack([random_rows(int(c), n, generator) for c in counts])  # [B, n]
        mask = torch.arange(n)[None] < present[:, None]
        index = (self.starts[rows][:, None] + torch.where(mask, offs, 0)).reshape(-1)
        get = lambda k: self.splats[k][index].reshape(len(rows), n, *self.splats[k].shape[1:])  # noqa: E731
        q = torch.nn.functional.normalize(get("splat_quats").float(), dim=-1)
        zero = lambda t: t * mask.view(*mask.shape, *([1] * (t.ndim - 2))).to(t.dtype)  # noqa: E731
        return PartBatch(
            kinds=self.kinds[rows],
            counts=counts,
            present=present,
            extents=self.extents[rows],
            colors=self.colors[rows],
            means=zero(get("splat_means").float()),
            log_scales=zero(get("splat_log_scales").float()),
            quats=torch.where(mask[..., None], q, torch.tensor([1.0, 0, 0, 0])),
            rgb=zero(get("splat_rgb").float() / 255),
            opacities=zero(get("splat_opacity").float() / 255),
        )


def part_colors(shard: dict) -> Tensor:  # [P, 3]
    """The mean rgb of every part of a shard (its splats are stored part after part)."""
    rgb = shard["splat_rgb"].float() / 255
    return torch.segment_reduce(rgb, "mean", lengths=shard["part_count"].long(), axis=0)


def random_rows(count: int, n: int, generator: torch.Generator | None) -> Tensor:  # -> [n] long
    """`n` row indices of a part of `count` splats: all of them in order (padded with 0) when they fit,
    else a random subset."""
    if count <= n:
        return torch.nn.functional.pad(torch.arange(count), (0, n - count))
    return torch.randperm(count, generator=generator)[:n]


def _world_prefix(shard: dict, keep: Tensor) -> dict:
    """The shard's parts (and their splats) where `keep` [P] is True: a prefix of its worlds."""
    out = dict(shard)
    counts = shard["part_count"].long()
    n_splats = int(counts[keep].sum())
    for k in PART_TENSORS:
        out[k] = shard[k][keep]
    for k in SPLAT_TENSORS:
        out[k] = shard[k][:n_splats]
    return out


# -- the set model's data ------------------------------------------------------------------


@dataclass
class TokenSet:
    """Worlds as padded sets of part tokens, with one or more conditions (captions) per world."""

    tokens: Tensor  # [W, N, token_dim] part tokens, padded with empty ones
    cond: Condition  # batch Q: the captions (MiniLM) or any condition vectors
    caption_world: Tensor  # [Q] long: the world each condition describes
    views: Tensor | None = None  # [Wv, V, S, S, 3] uint8 rendered views of some worlds
    view_world: Tensor | None = None  # [Wv] long: the world of each row of views
    captions: list[str] | None = None  # [Q]

    def __post_init__(self) -> None:
        w = self.tokens.shape[0]
        if self.tokens.ndim != 3:
            raise UsageError(f"tokens must be [W, N, D]; got {tuple(self.tokens.shape)}")
        if self.caption_world.shape != (self.cond.batch,) or (len(self.caption_world) and int(self.caption_world.max()) >= w):
            raise UsageError("caption_world must map every condition to a world")
        if (self.views is None) != (self.view_world is None) or (
            self.views is not None and self.views.shape[0] != self.view_world.shape[0]
        ):
            raise UsageError("views [Wv, ...] and view_world [Wv] come together")

    def __len__(self) -> int:
        return self.cond.batch

    @property
    def view_row(self) -> Tensor:  # [W] long, -1 where a world has no views
        row = torch.full((self.tokens.shape[0],), -1, dtype=torch.long)
        if self.view_world is not None:
            row[self.view_world] = torch.arange(len(self.view_world))
        return row


def token_set_from_dataset(
    root: str | os.PathLike,
    model: WorldModel,
    *,
    worlds: int = 0,
    max_captions: int | None = None,
    encode: Callable[[Sequence[str]], Condition] | None = None,
    log: Callable[[str], None] | None = None,
) -> TokenSet:
    """A dataset's worlds (the first `worlds`, 0: all) as part tokens of `model`'s autoencoder, with their captions.

    Each shard's part latents are cached in the dataset's `latents/` folder (keyed by the
    autoencoder's weights), its captions' MiniLM encodings in `captions/` (keyed by the captions),
    so a dataset that grows is encoded only where it is new.
    """
    root = Path(root)
    paths = shard_paths(root)
    key = autoencoder_key(model)
    cached = root.is_dir()
    shards = (
        ShardSource(read_shard(p), p.parent / "latents" / f"{p.stem}-{key}.safetensors" if cached else None,
                    p.parent / "captions" / p.stem if cached else None)  # fmt: skip
        for p in paths
    )
    return token_set_from_shards(shards, model, worlds=worlds, max_captions=max_captions, encode=encode, log=log,
                                 total=len(paths))  # fmt: skip


@dataclass(frozen=True)
class ShardSource:
    """A shard and where its part latents and caption encodings are cached (None: nowhere)."""

    shard: dict
    latents: Path | None = None  # a .safetensors file
    captions: Path | None = None  # a file stem; the captions' hash completes the name


def token_set_from_shards(
    shards: Iterable[dict | ShardSource],
    model: WorldModel,
    *,
    worlds: int = 0,
    max_captions: int | None = None,
    encode: Callable[[Sequence[str]], Condition] | None = None,
    log: Callable[[str], None] | None = None,
    total: int | None = None,
) -> TokenSet:
    """Shards as part tokens of `model`'s autoencoder, with their captions (MiniLM unless `encode` is given).

    When `model.z_mean` and `z_std` are still the identity they are set from these latents, so a
    set model trained on them samples standardised latents.
    """
    raw, frames, conds, captions, owner, views, view_world = [], [], [], [], [], [], []
    seen = 0
    for i, item in enumerate(shards):
        src = item if isinstance(item, ShardSource) else ShardSource(item)
        sh = src.shard
        mu = _shard_latents(sh, model, src.latents)
        colors = part_colors(sh)
        take = len(sh["specs"]) if not worlds else min(len(sh["specs"]), worlds - seen)
        shard_caps = []
        for j in range(take):
            rows = (sh["part_world"] == j).nonzero()[:, 0]
            raw.append(mu[rows])
            frames.append({k: sh[k][rows] for k in ("part_kind", "part_center", "part_extent", "part_yaw", "part_count")}
                          | {"part_color": colors[rows]})  # fmt: skip
            caps = sh["captions"][j][:max_captions] if max_captions else sh["captions"][j]
            shard_caps += caps
            owner += [seen + j] * len(caps)
        conds.append(encode(shard_caps) if encode is not None else encode_captions(shard_caps, cache=src.captions))
        captions += shard_caps
        keep = sh["view_world"] < take
        views.append(sh["views"][keep])
        view_world.append(sh["view_world"][keep].long() + seen)
        seen += take
        if log is not None:
            log(f"  shard {i + 1}/{total or '?'}: {seen} worlds")
        if worlds and seen >= worlds:
            break
    if not raw:
        raise UsageError("no worlds to train on")
    _standardise(model, torch.cat(raw))
    tokens = torch.stack([world_tokens(model, f, z) for f, z in zip(frames, raw)])
    all_views = torch.cat(views)
    has_views = all_views.shape[0] > 0 and all_views.shape[1] > 0
    return TokenSet(tokens, Condition.cat(conds), torch.tensor(owner, dtype=torch.long), all_views if has_views else None,
                    torch.cat(view_world) if has_views else None, captions)  # fmt: skip


def world_tokens(model: WorldModel, frames: dict[str, Tensor], mu: Tensor) -> Tensor:  # -> [n_tokens, token_dim]
    """One world's part tokens from its part table and raw latents, padded with empty ones to `model.cfg.n_tokens`."""
    from worldgen.model import tokens as tok
    from worldgen.model.world import pad_tokens

    f = tok.PartFrames(frames["part_kind"].long(), frames["part_center"].float(), frames["part_extent"].float(),
                       frames["part_yaw"].float(), frames["part_count"].long().clamp_max(tok.MAX_COUNT),
                       frames["part_color"].float())  # fmt: skip
    z = (mu - model.z_mean) / model.z_std
    return pad_tokens(tok.encode_parts(f, z), model.cfg.n_tokens)


def autoencoder_key(model: WorldModel) -> str:
    """A short hash of the autoencoder's weights: the part latents of a dataset depend on nothing else."""
    h = hashlib.sha256(model.parts.cfg.to_json().encode())
    for name, t in sorted(model.parts.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def _shard_latents(shard: dict, model: WorldModel, cache: Path | None) -> Tensor:  # [P, latent] raw (not standardised)
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    from worldgen.io import atomic_path

    if cache is not None and cache.is_file():
        try:
            with safe_open(str(cache), framework="pt") as f:
                mu = f.get_tensor("mu")
            if mu.shape[0] == len(shard["part_kind"]):
                return mu
        except (SafetensorError, OSError, KeyError):  # a damaged cache is rebuilt, never trusted
            pass
    mu = encode_latents(model.parts, PartSet.from_shards([shard]))
    if cache is not None:
        try:
            with atomic_path(cache) as tmp:
                save_file({"mu": mu.contiguous()}, str(tmp))
        except OSError as e:  # a read-only dataset trains all the same, it just re-encodes next time
            print(f"note: part latents not cached ({e.strerror or e})", file=sys.stderr)
    return mu


@torch.no_grad()
def encode_latents(ae: PartAutoencoder, parts: PartSet, *, chunk: int = 64) -> Tensor:  # -> [P, latent] raw
    """The encoder's mean latent of every part, each read through a random subset of at most
    `ae.cfg.encoder_splats` of its splats (as in training; the same subsets every time)."""
    p = next(ae.parameters())
    gen = torch.Generator().manual_seed(0)
    order = torch.argsort(parts.counts, stable=True)  # chunks of similar splat count: little padding
    was = ae.training
    ae.eval()
    mu = torch.cat([ae.encode(parts.batch(rows, max_splats=ae.cfg.encoder_splats, generator=gen).to(p.device))[0].cpu()
                    for rows in order.split(chunk)]).float()  # fmt: skip
    ae.train(was)
    return mu[torch.argsort(order)]


def _standardise(model: WorldModel, mu: Tensor) -> None:
    """Set the model's latent statistics from the data, unless they were set before (a resumed or tuned model)."""
    if bool((model.z_mean == 0).all()) and bool((model.z_std == 1).all()):
        model.z_mean.copy_(mu.mean(0))
        model.z_std.copy_(mu.std(0).clamp_min(1e-4))


# -- toy data (tests, examples, benchmarks) -----------------------------------------------------------


def toy_part_set(parts: int = 64, *, splats: int = 48, seed: int = 0) -> PartSet:
    """Synthetic parts of three kinds whose look depends on the kind: flat tiles (terrain), tall columns of
    leaves (tree), hollow boxes (house), each of its own colour with a little noise."""
    from worldgen.gaussians import Gaussians
    from worldgen.procedural.parts import assemble_parts

    g = torch.Generator().manual_seed(seed)
    kinds = ["terrain", "tree", "house"]
    colour = {"terrain": (0.3, 0.6, 0.2), "tree": (0.1, 0.4, 0.1), "house": (0.8, 0.3, 0.2)}
    pieces, names = [], []
    for i in range(parts):
        kind = kinds[i % 3]
        u = torch.rand(splats, 3, generator=g) * 2 - 1
        if kind == "terrain":
            u[:, 2] = 0.2 * torch.sin(3 * u[:, 0] + float(torch.rand(1, generator=g)) * 6)
        elif kind == "tree":
            u[:, :2] *= 0.3 + 0.7 * (1 - (u[:, 2:3] + 1) / 2)
        else:
            side = torch.randint(3, (splats,), generator=g)
            u[torch.arange(splats), side] = torch.sign(u[torch.arange(splats), side])
        size = torch.rand(3, generator=g) * 4 + 1
        rgb = (torch.tensor(colour[kind]) + 0.05 * torch.randn(splats, 3, generator=g)).clamp(0, 1)
        quats = torch.nn.functional.normalize(torch.randn(splats, 4, generator=g), dim=1)
        pieces.append(Gaussians.from_rgb(u * size + torch.randn(3, generator=g) * 10, rgb, torch.full((splats, 3), 0.2),
                                         torch.full((splats,), 0.9), quats))  # fmt: skip
        names.append(kind)
    return PartSet.from_parts(assemble_parts(pieces, names, [0.0] * parts))


def toy_token_set(
    worlds: int = 64, n: int = 24, *, latent: int = 8, classes: int = 4, cond_dim: int = 384, seed: int = 0
) -> tuple[TokenSet, Tensor]:
    """Synthetic worlds whose parts depend on the condition: for tests, examples and benchmarks.

    A world of class k holds a class-dependent number of parts of kind k (a tile, a tree, a house or a
    cloud) around a class-dependent spot, padded with empty tokens to `n`; the condition is a fixed random
    vector per class (3 "word" tokens and a pooled vector). Returns (set, labels [W]).
    """
    from worldgen.model import tokens as tok
    from worldgen.procedural.parts import KIND_INDEX

    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(worlds) % classes
    kind_of = torch.tensor([KIND_INDEX[k] for k in ("terrain", "tree", "house", "cloud")])[labels % 4]
    spots = (torch.rand(classes, 3, generator=g) - 0.5) * torch.tensor([40.0, 40.0, 4.0])
    word = torch.nn.functional.normalize(torch.randn(classes, 3, cond_dim, generator=g), dim=-1)
    rows = []
    for w in range(worlds):
        k = int(labels[w])
        p = n // 2 + k * (n // (2 * classes))  # more parts for higher classes, never more than n
        kinds = torch.full((n,), tok.EMPTY, dtype=torch.long)
        kinds[:p] = kind_of[w]
        frames = tok.PartFrames(kinds, spots[k] + torch.randn(n, 3, generator=g) * 3.0, torch.full((n, 3), 2.0),
                                torch.zeros(n), torch.full((n,), 64 * (k + 1)), torch.rand(3, generator=g).expand(n, 3))  # fmt: skip
        z = torch.randn(n, latent, generator=g) * 0.3 + (k - classes / 2) * 0.5
        rows.append(tok.encode_parts(frames, z))
    tokens = word[labels]  # [W, 3, C]
    cond = Condition(tokens, torch.ones(worlds, 3, dtype=torch.bool), torch.nn.functional.normalize(tokens.mean(1), dim=-1))
    return TokenSet(torch.stack(rows), cond, torch.arange(worlds), captions=[f"class {int(k)}" for k in labels]), labels


# -- captions ----------------------------------------------------------------------------------

def encode_captions(captions: Sequence[str], batch: int = 128, *, cache: Path | None = None) -> Condition:
    """MiniLM encodings of `captions` (tokens in float16), read from the cache file `cache`-<hash of the
    captions>.safetensors when there is one, else written there."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    from worldgen.io import atomic_path
    from worldgen.model.text import MAX_TOKENS, encode_text

    key = hashlib.sha256(json.dumps([MAX_TOKENS, *captions]).encode()).hexdigest()
    if cache is not None:
        cache = cache.with_name(f"{cache.name}-{key[:16]}.safetensors")
    if cache is not None and cache.is_file():
        try:
            with safe_open(str(cache), framework="pt") as f:
                if (f.metadata() or {}).get("captions_sha256") == key:
                    return Condition(f.get_tensor("tokens"), f.get_tensor("mask"), f.get_tensor("pooled"))
        except (SafetensorError, OSError, KeyError, ValueError):  # a damaged cache is rebuilt, never trusted
            pass
    parts = []
    for i in range(0, len(captions), batch):
        c = encode_text(list(captions[i : i + batch]))
        parts.append(Condition(c.tokens.half(), c.mask, c.pooled))
    cond = Condition.cat(parts)
    if cache is not None:
        tensors = {"tokens": cond.tokens.contiguous(), "mask": cond.mask.contiguous(), "pooled": cond.pooled.contiguous()}
        try:
            with atomic_path(cache) as tmp:
                save_file(tensors, str(tmp), metadata={"captions_sha256": key})
        except OSError as e:  # a read-only dataset trains all the same, it just re-encodes next time
            print(f"note: caption encodings not cached ({e.strerror or e})", file=sys.stderr)
    return cond


__all__ = [
    "PartSet", "ShardSource", "TokenSet", "encode_captions", "iter_shards", "shard_paths", "token_set_from_dataset",
    "token_set_from_shards", "toy_part_set", "toy_token_set",
]  # fmt: skip
