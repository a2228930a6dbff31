"""`worldgen render`: stills and videos from a world file, and one clear line for every mistake."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

from worldgen.cli import main
from worldgen.gaussians import Gaussians

exporters = pytest.importorskip("exporters")


def tiny_world() -> Gaussians:
    """A 6 m patch of ground with three coloured blobs on it."""
    g = torch.Generator().manual_seed(0)
    ground = torch.cat([(torch.rand(400, 2, generator=g) - 0.5) * 6, torch.zeros(400, 1)], 1)
    blobs = torch.tensor([[-1.0, 0.0, 0.6], [1.0, 0.5, 0.5], [0.0, -1.2, 0.4]]).repeat_interleave(50, 0)
    blobs = blobs + 0.2 * torch.randn(150, 3, generator=g)
    rgb = torch.cat([torch.tensor([0.3, 0.6, 0.3]).expand(400, 3), torch.rand(150, 3, generator=g)])
    scales = torch.cat([torch.tensor([0.25, 0.25, 0.02]).expand(400, 3), torch.full((150, 3), 0.12)])
    return Gaussians.from_rgb(torch.cat([ground, blobs]), rgb, scales, torch.full((550,), 0.9))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "world.ply"
    exporters.save(tiny_world(), path)
    return path


def test_png_matches_the_api(world, tmp_path, capsys):
    out = tmp_path / "view.png"
    args = ["render", str(world), "-o", str(out), "--camera", "0,-8,3", "--look-at", "0,0,0.3", "--fov", "50"]
    assert main(args + ["--width", "48", "--height", "32"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (32, 48, 3)

    from worldgen.render import Cameras, render

    g = exporters.load(world)
    cams = Cameras.look_at([0, -8, 3], [0, 0, 0.3], fov_deg=50, width=48, height=32)
    want = render(g, cams).images_uint8()[0].numpy()
    assert np.abs(image.astype(int) - want.astype(int)).max() <= 1
    assert image.std() > 5  # not a blank image
    assert "view.png" in capsys.readouterr().out


def test_default_camera_frames_the_world(world, tmp_path):
    out = tmp_path / "auto.png"
    assert main(["render", str(world), "-o", str(out), "--width", "40", "--height", "24"]) == 0
    image = np.asarray(Image.open(out)).astype(float)
    assert (image.sum(-1) > 30).mean() > 0.3  # the world fills a good part of the frame


@pytest.mark.parametrize("path,suffix", [("orbit", ".mp4"), ("walk", ".gif"), ("flyover", ".mp4")])
def test_video_along_a_path(world, tmp_path, path, suffix):
    out = tmp_path / f"tour{suffix}"
    args = ["render", str(world), "--path", path, "--frames", "3", "-o", str(out), "--width", "32", "--height", "18"]
    assert main(args) == 0
    reader = imageio.get_reader(out)
    n = reader.count_frames() if suffix == ".mp4" else len(list(reader))
    assert n == 3
    assert reader.get_data(0).shape[:2] == (18, 32)


def test_camera_that_sees_nothing_writes_the_background(world, tmp_path, capsys):
    out = tmp_path / "sky.png"
    args = ["render", str(world), "-o", str(out), "--camera", "0,0,50", "--look-at", "0,0,100"]
    assert main(args + ["--width", "16", "--height", "16", "--background", "0.2,0.4,0.6"]) == 0
    image = np.asarray(Image.open(out))
    assert (image == np.array([51, 102, 153], dtype=np.uint8)).all()
    assert "no splat is in view" in capsys.readouterr().err


def test_empty_world_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty.ply"
    exporters.save(Gaussians.empty(), empty)
    out = tmp_path / "x.png"
    assert main(["render", str(empty), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldgen: error:") and "no splats" in err and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--width", "0"], "width"),
        (["--height", "100000"], "height"),
        (["--camera", "1,2"], "--camera"),
        (["--look-at", "a,b,c"], "--look-at"),
        (["--fov", "190"], "fov"),
        (["--path", "orbit"], "--path"),  # a path needs a video file
        (["--background", "2,0,0"], "--background"),
        (["--backend", "metal"], "--backend"),
        (["--camera", "0,0,1", "--look-at", "0,0,1"], "coincide"),
    ],
)
def test_bad_options_are_one_line_errors(world, tmp_path, capsys, extra, message):
    out = tmp_path / "x.png"
    assert main(["render", str(world), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldgen: error:") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_bad_files_are_one_line_errors(world, tmp_path, capsys):
    assert main(["render", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "x.png")]) == 2
    assert main(["render", str(world), "-o", str(tmp_path / "x.bmp")]) == 2
    broken = tmp_path / "broken.ply"
    broken.write_bytes(world.read_bytes()[:300])
    assert main(["render", str(broken), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("worldgen: error:") for line in err)
    assert list(tmp_path.glob("x.*")) == []
