"""The training dataset: shards of coarse worlds, their children, specs, captions and rendered views.

    build_dataset("data/", DatasetConfig(count=64), workers=2)   # resumable
    ds = WorldDataset("data/")                                    # torch Dataset, one world per item

Shard `shard-00042.safetensors` holds W worlds (tensors below); its metadata
holds the specs, seeds and captions as JSON. `manifest.json` records the build
config and which shards are complete; every file is written atomically, so an
interrupted build is resumed by running it again. See docs/dataset.md.
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

FORMAT = "worldgen-procedural-shard-v1"
MANIFEST = "manifest.json"
#: tensor name -> (per-world shape after the world axis, dtype); C = coarse_n, K = children, V = views, S = view_size
TENSORS = (
    "coarse_means", "coarse_quats", "coarse_scales", "coarse_opacities", "coarse_rgb",
    "children_offsets", "children_log_scales", "children_quats", "children_rgb", "children_opacities",
    "views", "viewmats", "Ks",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetConfig:
    """What a dataset build makes; recorded in the manifest (a resumed build must match it)."""

    count: int = 64  # worlds
    shard_size: int = 8  # worlds per shard
    coarse_n: int = 2048
    children: int = 64
    views: int = 4  # rendered views per world (0: none)
    view_size: int = 128  # pixels, square
    captions: int = 8  # training captions per world
    seed: int = 0
    split: Literal["train", "heldout"] = "train"
    lod_groups: Literal["layers", "mixed"] = "layers"  # coarse clusters within one layer, or across layers

    def __post_init__(self) -> None:
        for name in ("count", "shard_size", "coarse_n", "children", "view_size", "captions"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.views < 0:
            raise UsageError(f"views must be 0 or more, got {self.views}")
        if self.split not in ("train", "heldout"):
            raise UsageError(f"split must be 'train' or 'heldout', got {self.split!r}")
        if self.lod_groups not in ("layers", "mixed"):
            raise UsageError(f"lod_groups must be 'layers' or 'mixed', got {self.lod_groups!r}")

    @classmethod
    def from_manifest(cls, config: dict) -> DatasetConfig:
        """The config a manifest records (datasets from before `lod_groups` clustered across layers)."""
        return cls(**{"lod_groups": "mixed", **config})

    @property
    def num_shards(self) -> int:
        return (self.count + self.shard_size - 1) // self.shard_size


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
    """Everything the dataset stores for world `index` (tensors without the world axis)."""
    from worldgen.gaussians import Gaussians
    from worldgen.procedural.captions import captions
    from worldgen.procedural.lod import build_lod
    from worldgen.procedural.spec import sample_spec
    from worldgen.procedural.world import build_world_layers

    seed = world_seed(config, index)
    rng = np.random.default_rng(seed)
    spec = sample_spec(rng, split=config.split)
    layers = build_world_layers(spec, seed=seed)
    world = Gaussians.cat(list(layers.values()))
    sky = torch.cat([torch.full((len(g),), name == "sky") for name, g in layers.items()])
    part = torch.cat([torch.full((len(g),), i) for i, g in enumerate(layers.values())])
    lod = build_lod(
        world, coarse_n=config.coarse_n, children=config.children, sky_mask=sky, seed=seed,
        layers=part if config.lod_groups == "layers" else None,
    )  # fmt: skip
    rec = {
        "coarse_means": lod.coarse.means,
        "coarse_quats": lod.coarse.quats,
        "coarse_scales": lod.coarse.scales,
        "coarse_opacities": lod.coarse.opacities,
        "coarse_rgb": lod.coarse.rgb,
        "children_offsets": lod.children.offsets.half(),
        "children_log_scales": lod.children.log_scales.half(),
        "children_quats": lod.children.quats.half(),
        "children_rgb": lod.children.rgb.half(),
        "children_opacities": lod.children.opacities.half(),
    }
    if config.views:
        from worldgen.render import render

        solid = torch.cat([layers[k].means for k in ("terrain", "structures", "vegetation")])
        cams = view_cameras(config.views, config.view_size, seed=seed, solid=solid)
        rec["views"] = render(world, cams).images_uint8()
        rec["viewmats"] = cams.viewmats.float()
        rec["Ks"] = cams.Ks.float()
    else:
        rec["views"] = torch.zeros(0, config.view_size, config.view_size, 3, dtype=torch.uint8)
        rec["viewmats"] = torch.zeros(0, 4, 4)
        rec["Ks"] = torch.zeros(0, 3, 3)
    rec["spec"] = spec.to_dict()
    rec["seed"] = seed
    rec["captions"] = captions(spec, rng, config.captions, split=config.split)
    return rec


def write_shard(path: str | os.PathLike, records: list[dict], config: DatasetConfig) -> None:
    """Stack world records into one safetensors shard, atomically."""
    from safetensors.torch import save_file

    tensors = {name: torch.stack([r[name] for r in records]).contiguous() for name in TENSORS}
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
    """A shard's tensors ([W, ...] each) plus "specs", "seeds", "captions" (lists, one per world) and "config"."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError) as e:
        raise FormatError(f"{path}: not a readable safetensors shard ({e})") from None
    if meta.get("format") != FORMAT:
        raise FormatError(f"{path}: not a worldgen procedural shard (format {meta.get('format')!r})")
    missing = [t for t in TENSORS if t not in tensors]
    if missing:
        raise FormatError(f"{path}: shard lacks tensors {', '.join(missing)}")
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
            same = DatasetConfig.from_manifest(manifest.get("config") or {}) == config
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

    An item is a dict: the tensors of `TENSORS` without the world axis, plus
    "spec" (dict), "seed" (int) and "captions" (list of str).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest = read_manifest(self.root)
        if manifest is None:
            raise FormatError(f"{self.root}: no {MANIFEST}; build it with `worldgen dataset build`")
        self.config = DatasetConfig.from_manifest(manifest["config"])
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
        item = {name: data[name][j] for name in TENSORS}
        item["spec"], item["seed"], item["captions"] = data["specs"][j], data["seeds"][j], data["captions"][j]
        return item


__all__ = ["DatasetConfig", "WorldDataset", "build_dataset", "make_world_record", "read_shard", "view_cameras", "write_shard"]
