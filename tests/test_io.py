"""Atomic writes: complete files or none, with the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from worldgen.io import atomic_open, atomic_path, atomic_write_bytes


def test_atomic_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "world.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write(b"half")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world.bin"]  # no temporary left behind
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


def test_atomic_path_keeps_suffix_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "view.png"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == target.parent
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png"


def test_new_files_get_the_umask_mode_and_old_files_keep_theirs(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    fresh = tmp_path / "fresh.ply"
    atomic_write_bytes(fresh, b"x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~mask
    kept = tmp_path / "kept.ply"
    kept.write_bytes(b"x")
    kept.chmod(0o640)
    atomic_write_bytes(kept, b"y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
