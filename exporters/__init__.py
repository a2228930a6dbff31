"""Gaussian-splat files: one entry point each way, dispatching on the extension.

    from exporters import save, load
    save(gaussians, "world.spz")        # .ply, .splat, .spz, .glb or .sog
    g = load("world.ply")               # -> Gaussians in the world frame (+Z up)

Each format is written in the frame its main viewers expect (.ply, .splat and
.sog: ``up="-y"``, OpenCV/COLMAP; .spz: ``up="y"``, RUB; .glb: ``up="gltf"``)
and read back into worldgen's +Z-up frame; pass ``up=`` to override (see
`exporters.frames`). Writes are atomic: an existing file is replaced only by a
complete new one. Bad input raises `worldgen.errors.FormatError` naming the
file and the problem.

`read`, `write` and `convert` are the same on numpy `SplatArrays`, and never
import torch: the file commands (`worldgen info`, `worldgen convert`) use them.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldgen.errors import FormatError, UsageError

if TYPE_CHECKING:
    from types import ModuleType

    from exporters.common import OnInvalid, SplatArrays
    from exporters.frames import Up
    from worldgen.gaussians import Gaussians

#: file extension -> format (the module under exporters)
FORMATS = {".ply": "ply", ".splat": "splat", ".spz": "spz", ".glb": "gltf", ".sog": "sog"}


def format_of(path: str | os.PathLike) -> str:
    """The format name ("ply", "splat", "spz", "gltf", "sog") of a path, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(FORMATS)
        raise FormatError(f"{path}: unknown extension {suffix or '(none)'!r}; worldgen reads and writes {known}")
    return FORMATS[suffix]


def module_of(path: str | os.PathLike) -> ModuleType:
    """The module that reads and writes the format of `path`."""
    return importlib.import_module(f"exporters.{format_of(path)}")


def default_up(path: str | os.PathLike) -> Up:
    """The frame a file of this format uses unless told otherwise."""
    return module_of(path).DEFAULT_UP


def options_of(path: str | os.PathLike) -> list[str]:
    """The format-specific keywords that `save` / `write` take for this path."""
    import inspect

    fmt = format_of(path)
    writer = getattr(module_of(path), f"save_{fmt}")
    return [p for p in inspect.signature(writer).parameters if p not in ("a", "path", "up")]


def write(a: SplatArrays, path: str | os.PathLike, *, up: Up | None = None, **options: Any) -> None:
    """Write splats given as numpy arrays (world frame) to `path`, atomically; see `save`."""
    fmt, module = format_of(path), module_of(path)
    unknown = sorted(set(options) - set(allowed := options_of(path)))
    if unknown:
        raise UsageError(f"{path}: .{Path(path).suffix.lower()[1:]} takes no option {', '.join(unknown)} (it takes: {', '.join(allowed) or 'none'})")
    getattr(module, f"save_{fmt}")(a, path, up=module.DEFAULT_UP if up is None else up, **options)


def read(path: str | os.PathLike, *, up: Up | None = None, on_invalid: OnInvalid = "error") -> SplatArrays:
    """The splats in `path` as numpy arrays in the world frame (+Z up); see `load`."""
    fmt, module = format_of(path), module_of(path)
    return getattr(module, f"load_{fmt}")(path, up=module.DEFAULT_UP if up is None else up, on_invalid=on_invalid)


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    in_up: Up | None = None,
    up: Up | None = None,
    on_invalid: OnInvalid = "error",
    max_splats: int | None = None,
    **options: Any,
) -> tuple[int, SplatArrays]:
    """Read `src` and write it as `dst` (formats from the extensions, frames as in `read` / `write`), numpy only.

    The splats are turned once, from `src`'s frame straight into `dst`'s (not
    at all when the two agree) instead of into the world frame and out again.
    max_splats: keep only the most visible (opacity x volume). Returns (the
    number of splats read, the splats written).
    """
    import numpy as np

    from exporters.common import most_visible
    from exporters.frames import check_up, file_from_world, rotate

    format_of(dst)  # an unknown output extension fails before reading anything
    src_up = default_up(src) if in_up is None else check_up(in_up)
    dst_up = default_up(dst) if up is None else check_up(up)
    a = read(src, up="z", on_invalid=on_invalid)  # the file's own values
    n = len(a)
    if max_splats is not None:
        a = most_visible(a, max_splats)
    turn = file_from_world(dst_up) @ file_from_world(src_up).T
    if not np.array_equal(turn, np.eye(3)):
        a = rotate(a, turn)
    write(a, dst, up="z", **options)
    return n, a


def save(gaussians: Gaussians, path: str | os.PathLike, *, up: Up | None = None, **options: Any) -> None:
    """Write `gaussians` to `path` in the format its extension names, atomically.

    up: the file's frame ("z", "y", "-y" or "gltf"); None picks the format's default.
    options: format-specific keywords (`normals` for .ply; `version`,
    `antialiased`, `compresslevel` for .spz; `iterations` for .sog).
    """
    from exporters.common import SplatArrays

    format_of(path)  # an unknown extension fails before any work
    write(SplatArrays.from_gaussians(gaussians), path, up=up, **options)


def load(path: str | os.PathLike, *, up: Up | None = None, on_invalid: OnInvalid = "error") -> Gaussians:
    """Read the Gaussians in `path` (format from its extension) into the world frame (+Z up).

    on_invalid: "error" (a FormatError for rows with NaN/Inf or a zero
    quaternion) or "drop" (skip those rows).
    """
    return read(path, up=up, on_invalid=on_invalid).to_gaussians()


__all__ = ["FORMATS", "convert", "default_up", "format_of", "load", "module_of", "options_of", "read", "save", "write"]
