"""The training dataset: shards of procedural worlds as parts, with specs, captions and some rendered views.

    build_dataset("data/", DatasetConfig(count=64), workers=2)   # resumable
    ds = WorldDataset("data/")                                    # torch Dataset, one world per item

Shard `shard-00042.safetensors` holds W worlds: a table of their parts (kind,
frame, splat count; `worldgen.procedural.parts`) and every part's splats in
the part's own frame, compactly (positions and log-scales float16, rotations
int8, colour and opacity uint8); one world in `views_every` also keeps
rendered views for the image encoder. The metadata holds the specs, seeds and
captions as JSON. `manifest.json` records the build config and which shards
are complete; every file is written atomically, so an interrupted build is
resumed by running it again. See docs/dataset.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from worldgen.errors import FormatError, UsageError
from worldgen.io import atomic_path, atomic_write_bytes

FORMAT = "worldgen-parts-shard-v1"
MANIFEST = "manifest.json"
#: per-part tensors ([P, ...], P over all the shard's worlds) and per-splat tensors ([N, ...], part after part)
PART_TENSORS = ("part_world", "part_kind", "part_center", "part_extent", "part_yaw", "part_count")
SPLAT_TENSORS = ("splat_means", "splat_log_scales", "splat_quats", "splat_rgb", "splat_opacity")
VIEW_TENSORS = ("view_world", "views", "viewmats", "Ks")
TENSORS = PART_TENSORS + SPLAT_TENSORS + VIEW_TENSORS


@dataclass(frozen=True)
class DatasetConfig:
    """What a dataset build makes; recorded in the manifest (a resumed build must match it)."""

    count: int = 64  # worlds
    shard_size: int = 32  # worlds per shard
    views: int = 2  # rendered views of each world that keeps views (0: none)
    view_size: int = 96  # pixels, square
    views_every: int = 4  # one world in this many keeps its views (the image encoder's data)
    captions: int = 8  # training captions per world
    seed: int = 0
    split: Literal["train", "heldout"] = "train"

    def __post_init__(self) -> None:
        for name in ("count", "shard_size", "view_size", "views_every", "captions"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.views < 0:
            raise UsageError(f"views must be 0 or more, got {self.views}")
        if self.split not in ("train", "heldout"):
            raise UsageError(f"split must be 'train' or 'heldout', got {self.split!r}")

    @property
    def num_shards(self) -> int:
        return (self.count + self.shard_size - 1) // self.shard_size

    def has_views(self, index: int) -> bool:
        """Whether world `index` keeps rendered views."""
        return self.views > 0 and index % self.views_every == 0


def world_seed(config: DatasetConfig, index: int) -> int:
    """The seed of world `index`: fixed by the dataset seed, split and index.

    Always below 2**31: seeds from 2**31 up belong to the evaluation judge's
    worlds (`worldgen.eval.judge`), which the generator must never train on.
    """
    ss = np.random.SeedSequence([config.seed, index, 0 if config.split == "train" else 1])
    return int(ss.generate_state(1, dtype=np.uint32)[0]) & 0x7FFF_FFFF


def view_cameras(
    n: int,
    size: int,
    *,
    seed: int,
    solid: Tensor | None = None,  # [M, 3] ground and objects, to keep cameras above them
    fov_deg: float = 70.0,
):
    """`n` cameras on a ring around the middle of the footprint, above whatever stands there, looking across."""
    from worldgen.render import Cameras

    rng = np.random.default_rng(seed)
    a0 = rng.uniform(0, 2 * np.pi)
    pos, tgt = [], []
    for k in range(n):
        a = a0 + 2 * np.pi * k / n
        r = rng.uniform(24, 30)
        x, y = r * np.cos(a), r * np.sin(a)
        floor = 0.0
        if solid is not None and len(solid):
            near = (solid[:, 0] - x) ** 2 + (solid[:, 1] - y) ** 2 < 9.0
            floor = float(solid[near, 2].max()) if near.any() else 0.0
        z = floor + rng.uniform(3.0, 5.0)
        pos.append([x, y, z])
        tgt.append([-8 * np.cos(a), -8 * np.sin(a), z - rng.uniform(3.5, 6.0)])
    return Cameras.look_at(pos, tgt, fov_deg=fov_deg, width=size, height=size)


def make_world_record(config: DatasetConfig, index: int) -> dict:
    """Everything the dataset stores for world `index`: its parts, their splats (compact), maybe views."""
    from worldgen.procedural.captions import captions
    from worldgen.procedural.parts import build_world_parts
    from worldgen.procedural.spec import sample_spec

    seed = world_seed(config, index)
    rng = np.random.default_rng(seed)
    spec = sample_spec(rng, split=config.split)
    parts = build_world_parts(spec, seed=seed)
    rec = {
        "part_kind": parts.kinds.int(),
        "part_center": parts.centers.float(),
        "part_extent": parts.extents.float(),
        "part_yaw": parts.yaws.float(),
        "part_count": parts.counts.int(),
        **pack_splats(parts.local()),
    }
    if config.has_views(index):
        from worldgen.render import render

        from worldgen.procedural.parts import SOLID

        solid = parts.gaussians.means[torch.isin(parts.kinds, SOLID)[parts.part_index]]  # ground, plants, buildings
        cams = view_cameras(config.views, config.view_size, seed=seed, solid=solid)
        rec["views"] = render(parts.gaussians, cams).images_uint8()
        rec["viewmats"] = cams.viewmats.float()
        rec["Ks"] = cams.Ks.float()
    rec["spec"] = spec.to_dict()
    rec["seed"] = seed
    rec["captions"] = captions(spec, rng, config.captions, split=config.split)
    return rec


def pack_splats(local) -> dict[str, Tensor]:
    """Splats in their parts' frames (`WorldParts.local`) -> the shard's compact per-splat tensors."""
    q = torch.nn.functional.normalize(local.quats.float(), dim=-1)
    q = torch.where(q[:, :1] < 0, -q, q)  # w >= 0: q and -q are the same rotation
    return {
        "splat_means": local.means.half(),
        "splat_log_scales": local.scales.clamp_min(1e-8).log().half(),
        "splat_quats": (q * 127).round().to(torch.int8),
        "splat_rgb": (local.rgb.clamp(0, 1) * 255).round().to(torch.uint8),
        "splat_opacity": (local.opacities.clamp(0, 1) * 255).round().to(torch.uint8),
    }


def unpack_splats(shard: dict) -> dict[str, Tensor]:
    """The shard's per-splat tensors -> float32 fields in their parts' frames: means, log_scales, quats, rgb, opacities."""
    return {
        "means": shard["splat_means"].float(),
        "log_scales": shard["splat_log_scales"].float(),
        "quats": torch.nn.functional.normalize(shard["splat_quats"].float(), dim=-1),
        "rgb": shard["splat_rgb"].float() / 255,
        "opacities": shard["splat_opacity"].float() / 255,
    }


def world_parts(shard: dict, world: int):
    """World `world` of a shard (its row, 0..W-1) as `WorldParts` in the world frame (float32)."""
    from worldgen.gaussians import Gaussians
    from worldgen.procedural.parts import WorldParts

    rows = (shard["part_world"] == world).nonzero()[:, 0]
    if not len(rows):
        raise UsageError(f"the shard has no world {world}")
    counts = shard["part_count"].long()
    start = torch.cumsum(counts, 0) - counts
    lo, hi = int(start[rows[0]]), int(start[rows[-1]] + counts[rows[-1]])
    f = {k: v[lo:hi] for k, v in unpack_splats({k: shard[k] for k in SPLAT_TENSORS}).items()}
    local = Gaussians.from_rgb(f["means"], f["rgb"], f["log_scales"].exp(), f["opacities"], f["quats"])
    return WorldParts.from_local(local, counts[rows], shard["part_kind"][rows].long(), shard["part_center"][rows],
                                 shard["part_extent"][rows], shard["part_yaw"][rows])  # fmt: skip


def write_shard(path: str | os.PathLike, records: list[dict], config: DatasetConfig) -> None:
    """Concatenate world records into one safetensors shard, atomically."""
    from safetensors.torch import save_file

    tensors = {name: torch.cat([r[name] for r in records]).contiguous() for name in PART_TENSORS[1:] + SPLAT_TENSORS}
    tensors["part_world"] = torch.cat([torch.full((len(r["part_kind"]),), j, dtype=torch.int32) for j, r in enumerate(records)])
    seen = [j for j, r in enumerate(records) if "views" in r]
    size = config.view_size
    tensors["view_world"] = torch.tensor(seen, dtype=torch.int32)
    tensors["views"] = torch.stack([records[j]["views"] for j in seen]) if seen else torch.zeros(0, config.views, size, size, 3, dtype=torch.uint8)
    tensors["viewmats"] = torch.stack([records[j]["viewmats"] for j in seen]) if seen else torch.zeros(0, config.views, 4, 4)
    tensors["Ks"] = torch.stack([records[j]["Ks"] for j in seen]) if seen else torch.zeros(0, config.views, 3, 3)
    metadata = {
        "format": FORMAT,
        "specs": json.dumps([r["spec"] for r in records]),
        "seeds": json.dumps([r["seed"] for r in records]),
        "captions": json.dumps([r["captions"] for r in records]),
        "config": json.dumps(dataclasses.asdict(config)),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def read_shard(path: str | os.PathLike) -> dict:
    """A shard's tensors plus "specs", "seeds", "captions" (lists, one per world) and "config"."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError) as e:
        raise FormatError(f"{path}: not a readable safetensors shard ({e})") from None
    if meta.get("format") != FORMAT:
        raise FormatError(f"{path}: not a worldgen parts shard (format {meta.get('format')!r}); rebuild the dataset")
    missing = [t for t in TENSORS if t not in tensors]
    if missing:
        raise FormatError(f"{path}: shard lacks tensors {', '.join(missing)}")
    if int(tensors["part_count"].long().sum()) != len(tensors["splat_means"]):
        raise FormatError(f"{path}: part counts do not add up to the shard's splats")
    out: dict = dict(tensors)
    for key in ("specs", "seeds", "captions", "config"):
        out[key] = json.loads(meta[key])
    return out


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def _build_shard(args: tuple[DatasetConfig, int, str]) -> int:
    config, shard, out_dir = args
    torch.set_num_threads(1)
    lo, hi = shard * config.shard_size, min((shard + 1) * config.shard_size, config.count)
    records = [make_world_record(config, i) for i in range(lo, hi)]
    write_shard(Path(out_dir) / _shard_name(shard), records, config)
    return shard


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not valid JSON ({e})") from None


def _write_manifest(out_dir: Path, config: DatasetConfig, complete: set[int]) -> None:
    manifest = {
        "format": FORMAT,
        "config": dataclasses.asdict(config),
        "num_shards": config.num_shards,
        "complete": sorted(complete),
        "shards": [_shard_name(i) for i in range(config.num_shards)],
    }
    atomic_write_bytes(out_dir / MANIFEST, json.dumps(manifest, indent=2).encode())


def build_dataset(
    out_dir: str | os.PathLike,
    config: DatasetConfig,
    *,
    workers: int = 1,
    on_shard: Callable[[int, int], None] | None = None,  # (done, total) after each shard
) -> list[int]:
    """Build every shard that is not complete yet (in `workers` processes); returns the shards built."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}")
    manifest = read_manifest(out)
    complete: set[int] = set()
    if manifest is not None:
        try:
            same = DatasetConfig(**(manifest.get("config") or {})) == config
        except (TypeError, UsageError):
            same = False
        if not same:
            raise UsageError(f"{out} holds a dataset built with another config ({manifest.get('config')}); use a new directory")
        complete = {i for i in manifest.get("complete", []) if (out / _shard_name(i)).exists()}
    _write_manifest(out, config, complete)
    todo = [i for i in range(config.num_shards) if i not in complete]
    total = config.num_shards
    if on_shard:
        on_shard(len(complete), total)
    jobs = [(config, i, str(out)) for i in todo]
    if workers == 1 or len(todo) <= 1:
        results = map(_build_shard, jobs)
        pool = None
    else:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, len(todo)))
        results = pool.imap_unordered(_build_shard, jobs)
    try:
        for shard in results:
            complete.add(shard)
            _write_manifest(out, config, complete)
            if on_shard:
                on_shard(len(complete), total)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return todo


class WorldDataset(torch.utils.data.Dataset):
    """The complete shards of a dataset directory, one world per item.

    An item is a dict: "parts" (`WorldParts` in the world frame), "views" ([V, S, S, 3] uint8, or None),
    "spec" (dict), "seed" (int) and "captions" (list of str).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest = read_manifest(self.root)
        if manifest is None:
            raise FormatError(f"{self.root}: no {MANIFEST}; build it with `worldgen dataset build`")
        if manifest.get("format") != FORMAT:
            raise FormatError(f"{self.root}: a dataset of another format ({manifest.get('format')!r}); rebuild it")
        self.config = DatasetConfig(**manifest["config"])
        self.shards = [i for i in manifest["complete"] if (self.root / _shard_name(i)).exists()]
        self._index = []
        for s in self.shards:
            lo, hi = s * self.config.shard_size, min((s + 1) * self.config.shard_size, self.config.count)
            self._index += [(s, j) for j in range(hi - lo)]
        self._cache: tuple[int, dict] | None = None

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        shard, j = self._index[i]
        if self._cache is None or self._cache[0] != shard:
            self._cache = (shard, read_shard(self.root / _shard_name(shard)))
        data = self._cache[1]
        seen = (data["view_world"] == j).nonzero()[:, 0]
        return {
            "parts": world_parts(data, j),
            "views": data["views"][int(seen[0])] if len(seen) else None,
            "spec": data["specs"][j],
            "seed": data["seeds"][j],
            "captions": data["captions"][j],
        }


__all__ = [
    "DatasetConfig", "WorldDataset", "build_dataset", "make_world_record", "pack_splats", "read_shard", "unpack_splats",
    "view_cameras", "world_parts", "write_shard",
]  # fmt: skip
