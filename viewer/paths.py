"""Which files a browser may make the server read: only those the user allowed.

The user names files (the WORLD on the command line) and folders (`--data-dir`,
default the current directory). A path typed into the page is resolved
(symlinks followed, `..` removed) and must then lie inside one of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from worldgen.errors import UsageError

#: the world formats the viewer opens and exports
WORLD_SUFFIXES = (".ply", ".splat", ".spz")


@dataclass
class PathPolicy:
    """Allowed roots for reads that a browser asks for."""

    data_dirs: list[Path] = field(default_factory=lambda: [Path.cwd()])
    files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dirs = [Path(d).resolve() for d in self.data_dirs]
        self.files = [Path(f).resolve() for f in self.files]

    def allow_file(self, path: str | os.PathLike) -> None:
        self.files.append(Path(path).resolve())

    def resolve(self, requested: str) -> Path:
        """The real path of `requested` if the user allowed it; else UsageError.

        Relative paths are taken relative to the first data dir.
        """
        text = requested.strip()
        if not text or "\x00" in text:
            raise UsageError("no file path given")
        p = Path(os.path.expanduser(text))
        if not p.is_absolute():
            base = self.data_dirs[0] if self.data_dirs else Path.cwd()
            p = base / p
        real = p.resolve()
        if real.suffix.lower() not in WORLD_SUFFIXES:
            raise UsageError(f"{requested!r}: the viewer opens {', '.join(WORLD_SUFFIXES)} files only")
        if real in self.files or any(real.is_relative_to(d) for d in self.data_dirs):
            if not real.is_file():
                raise UsageError(f"{requested!r}: no such file")
            return real
        raise UsageError(f"{requested!r} is outside the folders this viewer may read (see --data-dir)")

    def describe(self) -> str:
        return ", ".join(str(d) for d in self.data_dirs) or "(none)"


def safe_suffix(filename: str) -> str:
    """The world suffix of an uploaded file's name, checked; the name itself is never used as a path."""
    suffix = Path(filename.replace("\\", "/")).suffix.lower()
    if suffix not in WORLD_SUFFIXES:
        raise UsageError(f"{filename!r}: upload a {', '.join(WORLD_SUFFIXES)} file")
    return suffix
