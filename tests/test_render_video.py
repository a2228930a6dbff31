"""Image and video writers: formats, sizes, and atomic writes."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from PIL import Image

from worldgen.errors import FormatError
from worldgen.render.video import to_uint8, write_image, write_video


def frames(n: int, h: int = 18, w: int = 23) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.rand(h, w, 3, generator=g) for _ in range(n)]


def test_png_round_trip(tmp_path):
    frame = frames(1)[0]
    write_image(tmp_path / "a.png", frame)
    back = np.asarray(Image.open(tmp_path / "a.png"))
    np.testing.assert_array_equal(back, to_uint8(frame))


def test_float_frames_are_clamped():
    out = to_uint8(torch.tensor([[[-1.0, 0.5, 2.0]]]))
    assert out.tolist() == [[[0, 128, 255]]]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_has_every_frame_at_even_size(tmp_path, suffix):
    path = tmp_path / f"tour{suffix}"
    assert write_video(path, iter(frames(4)), fps=12) == 4
    reader = imageio.get_reader(path)
    first = reader.get_data(0)
    n = reader.count_frames() if suffix == ".mp4" else len(list(reader))
    assert n == 4
    assert first.shape[:2] == ((18, 24) if suffix == ".mp4" else (18, 23))  # mp4 pads odd widths by one column


def test_mp4_colours_survive_compression(tmp_path):
    flat = [torch.full((32, 32, 3), 0.0) + torch.tensor([0.8, 0.2, 0.4]) for _ in range(3)]
    write_video(tmp_path / "flat.mp4", flat, fps=10)
    got = imageio.get_reader(tmp_path / "flat.mp4").get_data(1).astype(float) / 255
    np.testing.assert_allclose(got.mean((0, 1)), [0.8, 0.2, 0.4], atol=0.03)


def test_failed_video_leaves_no_file(tmp_path):
    def broken():
        yield frames(1)[0]
        raise RuntimeError("renderer crashed")

    path = tmp_path / "tour.mp4"
    with pytest.raises(RuntimeError):
        write_video(path, broken())
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_kept_until_the_new_one_is_complete(tmp_path):
    path = tmp_path / "tour.gif"
    path.write_bytes(b"old")
    with pytest.raises(FormatError):
        write_video(path, [])  # no frames: an error, and the old file stays
    assert path.read_bytes() == b"old"


@pytest.mark.parametrize("name", ["a.bmp", "a", "a.mov"])
def test_unknown_suffixes_are_format_errors(tmp_path, name):
    with pytest.raises(FormatError):
        write_video(tmp_path / name, frames(1))
    with pytest.raises(FormatError):
        write_image(tmp_path / name, frames(1)[0])


def test_bad_frame_shape_is_a_format_error(tmp_path):
    with pytest.raises(FormatError):
        write_image(tmp_path / "a.png", torch.zeros(4, 4))
