"""`worldgen info` and `worldgen convert`, through the CLI entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from exporters import load, save
from tests.conftest import random_gaussians
from worldgen.cli import main


@pytest.fixture
def world(tmp_path):
    path = tmp_path / "world.ply"
    save(random_gaussians(300, sh_degree=3, seed=1), path)
    return path


def test_info_prints_count_degree_bounds_and_stats(world, capsys):
    assert main(["info", str(world)]) == 0
    out = capsys.readouterr().out
    for text in ("300", "SH degree", "bounds min", "opacity min / median / max", "largest scale"):
        assert text in out


@pytest.mark.parametrize("ext", ["ply", "splat", "spz"])
def test_convert_to_every_format_with_max_splats(world, tmp_path, ext, capsys):
    out = tmp_path / f"small.{ext}"
    assert main(["convert", str(world), str(out), "--max-splats", "120"]) == 0
    g = load(out)
    assert len(g) == 120 and g.sh_degree == (0 if ext == "splat" else 3)
    printed = capsys.readouterr()
    assert "120 of 300" in printed.out
    if ext == "splat":
        assert "note:" in printed.err and "SH degree 3" in printed.err


def test_convert_with_up_overrides(world, tmp_path):
    out = tmp_path / "z.spz"
    assert main(["convert", str(world), str(out), "--up", "z"]) == 0
    a, b = load(out, up="z"), load(world)
    assert (a.means - b.means).abs().max() < 1e-3
    assert main(["convert", str(out), str(tmp_path / "back.ply"), "--in-up", "z"]) == 0
    assert (load(tmp_path / "back.ply").means - b.means).abs().max() < 1e-3


@pytest.mark.parametrize(
    "args,message",
    [
        (["info", "{tmp}/missing.ply"], "No such file"),
        (["info", "{tmp}/empty.spz"], "empty.spz: the file is empty"),
        (["info", "{tmp}/world.obj"], "unknown extension '.obj'"),
        (["info", "{tmp}/bad.ply"], "bad.ply: not a .ply file"),
        (["convert", "{tmp}/world.ply", "{tmp}/out.xyz"], "unknown extension '.xyz'"),
        (["convert", "{tmp}/world.ply", "{tmp}/out.ply", "--max-splats", "0"], "--max-splats must be at least 1"),
        (["convert", "{tmp}/world.ply", "{tmp}/out.ply", "--up", "x"], "unknown up axis 'x'"),
        (["convert", "{tmp}/trunc.splat", "{tmp}/out.ply"], "32-byte"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(world, tmp_path, capsys, args, message):
    (tmp_path / "empty.spz").write_bytes(b"")
    (tmp_path / "world.obj").write_bytes(b"o cube\n")
    (tmp_path / "bad.ply").write_bytes(b"solid\n")
    (tmp_path / "trunc.splat").write_bytes(b"\0" * 40)
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldgen: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out.ply").exists()


def test_convert_keeps_an_existing_output_when_the_input_is_bad(world, tmp_path):
    out = tmp_path / "out.spz"
    assert main(["convert", str(world), str(out)]) == 0
    before = out.read_bytes()
    (tmp_path / "bad.ply").write_bytes(world.read_bytes()[:-100])
    assert main(["convert", str(tmp_path / "bad.ply"), str(out)]) == 2
    assert out.read_bytes() == before


def test_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "x.splat").write_bytes(b"\1" * 7)
    r = subprocess.run([sys.executable, "-m", "worldgen", "info", str(tmp_path / "x.splat")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "x.splat" in r.stderr
