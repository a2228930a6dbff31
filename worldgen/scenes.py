"""A user's own splat scenes with captions, as training worlds.

A scenes directory holds splat files (.ply, .splat, .spz) and their captions,
either in one `captions.jsonl`:

    {"scene": "garden.ply", "captions": ["a walled garden with a fountain", "..."]}

or in a text file beside each scene (`garden.txt`, one caption per line). Each
scene is read into the world frame (+Z up, metres, the exporters' frame
conversion), fitted with the same coarse-to-fine LOD as the procedural worlds
(`worldgen.procedural.lod`), and rendered from a ring of cameras for the image
encoder: the records come out shaped like a procedural shard's, so training
treats both alike. See docs/model.md, "Training on your own scenes".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from worldgen.errors import FormatError, UsageError

CAPTIONS_FILE = "captions.jsonl"
SCENE_SUFFIXES = (".ply", ".splat", ".spz")


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


def scene_record(scene: Scene, *, coarse_n: int = 2048, children: int = 64, views: int = 2, view_size: int = 96,
                 seed: int = 0) -> dict:  # fmt: skip
    """One scene as a dataset record: coarse Gaussians, children in their parents' frames, views, captions."""
    from exporters import load
    from worldgen.procedural.dataset import view_cameras
    from worldgen.procedural.lod import build_lod

    world = load(scene.path).to(dtype=torch.float32)
    if len(world) < coarse_n:
        raise UsageError(f"{scene.path}: {len(world)} splats; a training scene needs at least {coarse_n}")
    lod = build_lod(world, coarse_n=coarse_n, children=children, seed=seed)
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
        "captions": list(scene.captions),
    }
    if views:
        from worldgen.render import render

        solid = world.means[world.opacities > 0.5]
        rec["views"] = render(world, view_cameras(views, view_size, seed=seed, solid=solid)).images_uint8()
    else:
        rec["views"] = torch.zeros(0, view_size, view_size, 3, dtype=torch.uint8)
    return rec


def scene_shard(root: str | os.PathLike, *, views: int = 2, view_size: int = 96, coarse_n: int = 2048,
                children: int = 64, on_scene=None) -> dict:  # fmt: skip
    """Every scene of `root` stacked like a procedural shard (`read_shard`'s tensors and "captions")."""
    scenes = find_scenes(root)
    records = []
    for i, scene in enumerate(scenes):
        records.append(scene_record(scene, coarse_n=coarse_n, children=children, views=views, view_size=view_size, seed=i))
        if on_scene:
            on_scene(i + 1, len(scenes), scene)
    shard = {k: torch.stack([r[k] for r in records]) for k in records[0] if k != "captions"}
    shard["captions"] = [r["captions"] for r in records]
    return shard
