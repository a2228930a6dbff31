"""Gaussian-splat files: one entry point each way, dispatching on the extension.

    from exporters import save, load
    save(gaussians, "world.spz")        # .ply, .splat or .spz
    g = load("world.ply")               # -> Gaussians in the world frame (+Z up)

Each format is written in the frame its main viewers expect (.ply and .splat:
``up="-y"``, OpenCV/COLMAP; .spz: ``up="y"``, RUB) and read back into
worldgen's +Z-up frame; pass ``up=`` to override (see `exporters.frames`).
Writes are atomic: an existing file is replaced only by a complete new one.
Bad input raises `worldgen.errors.FormatError` naming the file and the problem.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldgen.errors import FormatError, UsageError

if TYPE_CHECKING:
    from exporters.common import OnInvalid
    from exporters.frames import Up
    from worldgen.gaussians import Gaussians

#: file extension -> module under exporters
FORMATS = {".ply": "ply", ".splat": "splat", ".spz": "spz"}


def format_of(path: str | os.PathLike) -> str:
    """The format name ("ply", "splat", "spz") of a path, from its extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(FORMATS)
        raise FormatError(f"{path}: unknown extension {suffix or '(none)'!r}; worldgen reads and writes {known}")
    return FORMATS[suffix]


def default_up(path: str | os.PathLike) -> Up:
    """The up axis a file of this format uses unless told otherwise."""
    import importlib

    return importlib.import_module(f"exporters.{format_of(path)}").DEFAULT_UP


def save(gaussians: Gaussians, path: str | os.PathLike, *, up: Up | None = None, **options: Any) -> None:
    """Write `gaussians` to `path` in the format its extension names, atomically.

    up: the file's up axis ("z", "y" or "-y"); None picks the format's default.
    options: format-specific keywords (`normals` for .ply; `version`,
    `antialiased` for .spz).
    """
    import importlib

    fmt = format_of(path)
    module = importlib.import_module(f"exporters.{fmt}")
    writer = getattr(module, f"save_{fmt}")
    allowed = [p for p in inspect.signature(writer).parameters if p not in ("g", "path", "up")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"{path}: .{fmt} takes no option {', '.join(unknown)} (it takes: {', '.join(allowed) or 'none'})")
    writer(gaussians, path, up=module.DEFAULT_UP if up is None else up, **options)


def load(path: str | os.PathLike, *, up: Up | None = None, on_invalid: OnInvalid = "error") -> Gaussians:
    """Read the Gaussians in `path` (format from its extension) into the world frame (+Z up).

    on_invalid: "error" (a FormatError for rows with NaN/Inf or a zero
    quaternion) or "drop" (skip those rows).
    """
    import importlib

    fmt = format_of(path)
    module = importlib.import_module(f"exporters.{fmt}")
    return getattr(module, f"load_{fmt}")(path, up=module.DEFAULT_UP if up is None else up, on_invalid=on_invalid)


__all__ = ["FORMATS", "default_up", "format_of", "load", "save"]
