"""A user's own splat scenes with captions, as training worlds.

A scenes directory holds splat files (.ply, .splat, .spz, .glb, .sog) and their captions,
either in one `captions.jsonl`:

    {"scene": "garden.ply", "captions": ["a walled garden with a fountain", "..."]}

or in a text file beside each scene (`garden.txt`, one caption per line). Each
scene is read into the world frame (+Z up, metres, the exporters' frame
conversion) and, as it comes without parts, cut into parts of kind "generic"
by spatial clustering (median splits of the longest side until a piece is
small enough), then rendered from a ring of cameras for the image encoder:
the records come out shaped like a procedural shard's, so training treats both
alike. See docs/model.md, "Training on your own scenes".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from worldgen.errors import FormatError, UsageError

CAPTIONS_FILE = "captions.jsonl"
SCENE_SUFFIXES = (".ply", ".splat", ".spz", ".glb", ".sog")  # what `exporters.load` reads


@dataclass(frozen=True)
class Scene:
    path: Path
    captions: tuple[str, ...]


def is_scenes_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a directory of splat scenes rather than a built dataset."""
    root = Path(path)
    return root.is_dir() and not (root / "manifest.json").exists() and (
        (root / CAPTIONS_FILE).exists() or any(p.suffix.lower() in SCENE_SUFFIXES for p in root.iterdir())
    )


def find_scenes(root: str | os.PathLike) -> list[Scene]:
    """The scenes of `root` with their captions, sorted by file name; every scene needs at least one caption."""
    root = Path(root)
    index = root / CAPTIONS_FILE
    scenes: list[Scene] = []
    if index.exists():
        for lineno, line in enumerate(index.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                name, caps = row["scene"], row.get("captions", [row.get("caption")])
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise FormatError(f'{index}:{lineno}: expected {{"scene": FILE, "captions": [TEXT, ...]}}') from None
            caps = tuple(c.strip() for c in caps if isinstance(c, str) and c.strip())
            scenes.append(Scene(root / name, caps))
    else:
        for path in sorted(p for p in root.iterdir() if p.suffix.lower() in SCENE_SUFFIXES):
            side = path.with_suffix(".txt")
            caps = tuple(s.strip() for s in side.read_text(encoding="utf-8").splitlines() if s.strip()) if side.exists() else ()
            scenes.append(Scene(path, caps))
    if not scenes:
        raise UsageError(f"{root}: no scenes (.ply, .splat or .spz files with captions) to train on")
    for s in scenes:
        if not s.path.is_file():
            raise FormatError(f"{s.path}: listed in {index.name} but not found")
        if not s.captions:
            raise UsageError(f"{s.path}: no caption (add {s.path.with_suffix('.txt').name} or a {CAPTIONS_FILE} row)")
    return scenes


def cut_into_parts(world, *, max_splats: int) -> list[Tensor]:  # Gaussians [N] -> row indices of each part
    """Spatial clusters of a scene: halve the longest side of a piece's box at its median until it holds at most
    `max_splats` splats. Deterministic; every splat lands in exactly one piece."""
    pieces, todo = [], [torch.arange(len(world))]
    means = world.means.double()
    while todo:
        rows = todo.pop()
        if len(rows) <= max_splats:
            pieces.append(rows)
            continue
        pts = means[rows]
        axis = int((pts.amax(0) - pts.amin(0)).argmax())
        order = torch.argsort(pts[:, axis], stable=True)
        half = len(rows) // 2
        todo += [rows[order[half:]], rows[order[:half]]]
    return pieces


def scene_record(scene: Scene, *, n_tokens: int = 384, views: int = 2, view_size: int = 96, seed: int = 0) -> dict:
    """One scene as a dataset record: its generic parts and their splats (as `make_world_record` stores them),
    views and captions. Pieces are at most 1024 splats, larger where that would make more than `n_tokens` parts."""
    import math

    from exporters import load
    from worldgen.procedural.dataset import pack_splats, view_cameras
    from worldgen.procedural.parts import assemble_parts

    world = load(scene.path).to(dtype=torch.float32)
    if len(world) < 16:
        raise UsageError(f"{scene.path}: {len(world)} splats; a training scene needs at least 16")
    size = max(1024, math.ceil(len(world) / (0.8 * n_tokens)))
    pieces = [world[rows] for rows in cut_into_parts(world, max_splats=size)]
    parts = assemble_parts(pieces, ["generic"] * len(pieces), [0.0] * len(pieces))
    rec = {
        "part_kind": parts.kinds.int(),
        "part_center": parts.centers.float(),
        "part_extent": parts.extents.float(),
        "part_yaw": parts.yaws.float(),
        "part_count": parts.counts.int(),
        **pack_splats(parts.local()),
        "captions": list(scene.captions),
    }
    if views:
        from worldgen.render import render

        solid = world.means[world.opacities > 0.5]
        cams = view_cameras(views, view_size, seed=seed, solid=solid)
        rec["views"] = render(world, cams).images_uint8()
    return rec


def scenes_shard(root: str | os.PathLike, *, n_tokens: int = 384, views: int = 2, view_size: int = 96, on_scene=None) -> dict:
    """Every scene of `root` concatenated like a procedural shard (`read_shard`'s tensors, "specs", "captions")."""
    from worldgen.procedural.dataset import PART_TENSORS, SPLAT_TENSORS

    scenes = find_scenes(root)
    records = []
    for i, scene in enumerate(scenes):
        records.append(scene_record(scene, n_tokens=n_tokens, views=views, view_size=view_size, seed=i))
        if on_scene:
            on_scene(i + 1, len(scenes), scene)
    shard = {k: torch.cat([r[k] for r in records]) for k in PART_TENSORS[1:] + SPLAT_TENSORS}
    shard["part_world"] = torch.cat([torch.full((len(r["part_kind"]),), j, dtype=torch.int32) for j, r in enumerate(records)])
    seen = [j for j, r in enumerate(records) if "views" in r]
    shard["view_world"] = torch.tensor(seen, dtype=torch.int32)
    shard["views"] = torch.stack([records[j]["views"] for j in seen]) if seen else torch.zeros(0, 0, view_size, view_size, 3, dtype=torch.uint8)
    shard["captions"] = [r["captions"] for r in records]
    shard["specs"] = [{} for _ in records]
    return shard
