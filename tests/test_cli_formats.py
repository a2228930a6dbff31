"""`worldgen info` and `worldgen convert`, through the CLI entry point."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
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


EXTS = ["ply", "splat", "spz", "glb", "sog"]


@pytest.mark.parametrize("ext", EXTS)
def test_info_reads_every_format(world, tmp_path, ext, capsys):
    other = tmp_path / f"w.{ext}"
    assert main(["convert", str(world), str(other)]) == 0
    capsys.readouterr()
    assert main(["info", str(other)]) == 0
    out = capsys.readouterr().out
    assert "300" in out and "bounds min" in out and f"({ {'glb': 'gltf'}.get(ext, ext) }," in out


@pytest.mark.parametrize("src_ext", EXTS)
@pytest.mark.parametrize("ext", EXTS)
def test_convert_between_every_pair_with_max_splats(world, tmp_path, src_ext, ext, capsys):
    src = tmp_path / f"src.{src_ext}"
    assert main(["convert", str(world), str(src)]) == 0
    out = tmp_path / f"small.{ext}"
    assert main(["convert", str(src), str(out), "--max-splats", "120"]) == 0
    g = load(out)
    assert len(g) == 120 and g.sh_degree == (0 if "splat" in (ext, src_ext) else 3)
    printed = capsys.readouterr()
    assert "120 of 300" in printed.out
    if ext == "splat" and src_ext != "splat":
        assert "note:" in printed.err and "SH degree 3" in printed.err


def test_convert_spz_version(world, tmp_path):
    for version, magic in (("4", b"NGSP"), ("3", b"\x1f\x8b")):
        out = tmp_path / f"v{version}.spz"
        assert main(["convert", str(world), str(out), "--spz-version", version]) == 0
        assert out.read_bytes()[:4].startswith(magic) and len(load(out)) == 300
    assert (tmp_path / "v3.spz").read_bytes()[:2] == b"\x1f\x8b"


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
        (["convert", "{tmp}/world.ply", "{tmp}/out.ply", "--spz-version", "4"], "--spz-version applies to .spz output"),
        (["convert", "{tmp}/world.ply", "{tmp}/out.spz", "--spz-version", "2"], "--spz-version must be 3 or 4"),
        (["convert", "{tmp}/bad.glb", "{tmp}/out.ply"], "bad.glb: not a .glb file (no 'glTF' magic) (a .gltf JSON file?"),
        (["convert", "{tmp}/bad.sog", "{tmp}/out.ply"], "bad.sog: not a .sog file: not a readable zip archive"),
        (["convert", "{tmp}/zip64.sog", "{tmp}/out.ply"], "zip64.sog: not a .sog file: not a readable zip archive (zip file version 6.4)"),
        (["convert", "{tmp}/shrunk.sog", "{tmp}/out.ply"], "shrunk.sog: the .sog entry 'meta.json' cannot be read (That compression method is not supported)"),
        (["convert", "{tmp}/bad4.spz", "{tmp}/out.ply"], "bad4.spz: truncated .spz"),
        (["info", "{tmp}/mesh.glb"], "mesh.glb: the .glb holds no KHR_gaussian_splatting primitive"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(world, tmp_path, capsys, args, message):
    (tmp_path / "empty.spz").write_bytes(b"")
    (tmp_path / "world.obj").write_bytes(b"o cube\n")
    (tmp_path / "bad.ply").write_bytes(b"solid\n")
    (tmp_path / "trunc.splat").write_bytes(b"\0" * 40)
    (tmp_path / "bad.glb").write_bytes(b'{"asset": {"version": "2.0"}}')
    (tmp_path / "bad.sog").write_bytes(b"PK\x03\x04" + b"\0" * 60)
    (tmp_path / "bad4.spz").write_bytes(b"NGSP\x04\0\0\0" + b"\0" * 10)
    (tmp_path / "zip64.sog").write_bytes(patched_zip(world, version=64))
    (tmp_path / "shrunk.sog").write_bytes(patched_zip(world, method=1))
    (tmp_path / "mesh.glb").write_bytes(mesh_glb())
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


def patched_zip(world, *, version: int | None = None, method: int | None = None) -> bytes:
    """The world as a .sog whose central directory asks for a newer zip version or an unsupported compression method."""
    from exporters.sog import encode_sog

    data = bytearray(encode_sog(load(world)))
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        if version is not None:
            data[at + 6 : at + 8] = version.to_bytes(2, "little")
        if method is not None:
            data[at + 10 : at + 12] = method.to_bytes(2, "little")
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


def test_numpy_arithmetic_warnings_are_not_printed_as_notes(world, tmp_path, capsys):
    data = world.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    names = [line.split()[-1] for line in data[:end].decode().splitlines() if line.startswith("property")]
    rows = np.frombuffer(data[end:], dtype="<f4").reshape(300, len(names)).copy()
    rows[:, names.index("scale_0")] = -200.0  # exp underflows to 0; .spz clamps log(0) to its smallest code
    tiny = tmp_path / "tiny.ply"
    tiny.write_bytes(data[:end] + rows.tobytes())
    assert main(["convert", str(tiny), str(tmp_path / "out.spz")]) == 0
    assert capsys.readouterr().err == ""
    assert load(tmp_path / "out.spz").scales[:, 0].max() == pytest.approx(math.exp(-10), rel=1e-6)


def mesh_glb() -> bytes:
    """A .glb of one triangle and no splats."""
    import json
    import struct

    doc = {"asset": {"version": "2.0"}, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}], "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
           "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]}],
           "bufferViews": [{"buffer": 0, "byteLength": 36}], "buffers": [{"byteLength": 36}]}  # fmt: skip
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    binary = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", 36, 0x004E4942) + binary


@pytest.mark.parametrize("ext", EXTS)
def test_a_bad_file_of_every_format_writes_nothing(world, tmp_path, capsys, ext):
    good = tmp_path / f"good.{ext}"
    assert main(["convert", str(world), str(good)]) == 0
    bad = tmp_path / f"bad.{ext}"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2 - 5])  # cut mid-record too
    capsys.readouterr()
    for out in ("out.ply", "out.sog", "out.glb"):
        assert main(["convert", str(bad), str(tmp_path / out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"worldgen: error: {bad}") and err.count("\n") == 1
        assert not (tmp_path / out).exists()


def test_the_file_commands_do_not_import_torch(world, tmp_path):
    script = (
        "import sys\n"
        "from worldgen.cli import main\n"
        f"assert main(['info', {str(world)!r}]) == 0\n"
        f"assert main(['convert', {str(world)!r}, {str(tmp_path / 'o.sog')!r}, '--max-splats', '10']) == 0\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "x.splat").write_bytes(b"\1" * 7)
    r = subprocess.run([sys.executable, "-m", "worldgen", "info", str(tmp_path / "x.splat")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "x.splat" in r.stderr


def test_info_quantiles_are_numpys():
    import numpy as np
    from hypothesis import given
    from hypothesis import strategies as st

    from worldgen.commands.formats import quantiles

    @given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200))
    def check(values):
        qs = [0.0, 0.25, 0.5, 0.99, 1.0]
        np.testing.assert_allclose(quantiles(np.array(values), qs), np.quantile(values, qs), rtol=1e-12, atol=1e-9)

    check()
