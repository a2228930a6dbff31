"""PlayCanvas .sog: the zip and image layout splat-transform reads, round-trip precision, the quantisers, bad input."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from exporters import load, save
from exporters.common import SplatArrays
from exporters.frames import to_file_frame
from exporters.sog import codebook, decode_sog, encode_sog, grid, morton_order, nearest_code, palette_size, sh_palette
from tests.conftest import random_gaussians
from worldgen.errors import FormatError

NAMES = ["means_l.webp", "means_u.webp", "quats.webp", "scales.webp", "sh0.webp", "shN_labels.webp", "shN_centroids.webp", "meta.json"]


def arrays(g) -> SplatArrays:
    return SplatArrays.from_gaussians(g)


def in_file_order(a: SplatArrays, up: str = "-y") -> SplatArrays:
    """`a` in the order a .sog stores it: Morton order of the file-frame positions."""
    return a.take(morton_order(to_file_frame(a, up).means))


def quat_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(np.abs(a - b).max(axis=1), np.abs(a + b).max(axis=1)).max())


def assert_within_sog_precision(back: SplatArrays, a: SplatArrays, *, up: str = "z") -> None:
    """Every row of docs/formats.md's .sog column, in the file frame (up="z" keeps world = file)."""
    assert len(back) == len(a) and back.sh_degree == a.sh_degree
    m = a.means.astype(np.float64)
    logpos = np.sign(m) * np.log1p(np.abs(m))
    step = (logpos.max(axis=0) - logpos.min(axis=0)) / 65535
    bound = (1 + np.abs(m)) * np.expm1(step / 2) * (1 + 1e-6) + 1e-6  # half a 16-bit step in log space
    assert (np.abs(back.means - m) <= bound).all()
    assert quat_error(back.quats, a.quats) <= 6e-3
    log_s = np.log(a.scales.astype(np.float64))
    assert np.abs(np.log(back.scales) - log_s).max() <= np.ptp(log_s) / 254 + 1e-5
    assert np.abs(back.sh0 - a.sh0).max() <= np.ptp(a.sh0) / 254 + 1e-5
    assert np.abs(back.opacities - a.opacities).max() <= 0.5 / 255 + 1e-6


@settings(max_examples=30)
@given(n=st.integers(1, 80), degree=st.sampled_from([0, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_round_trip_within_the_stated_precision(n, degree, seed):
    a = arrays(random_gaussians(n, sh_degree=degree, seed=seed))
    back = decode_sog(encode_sog(a, up="z"), up="z")
    ref = in_file_order(a, "z")
    assert_within_sog_precision(back, ref)
    if degree:  # at most palette-size splats: every SH vector is its own palette entry, only the codebook rounds
        assert np.abs(back.shN - ref.shN).max() <= np.ptp(ref.shN) / 254 + 1e-5


def test_default_frame_round_trip(tmp_path):
    g = random_gaussians(300, sh_degree=1, seed=1)
    save(g, tmp_path / "w.sog")
    back = load(tmp_path / "w.sog")
    ref = in_file_order(arrays(g))
    torch.testing.assert_close(back.means, torch.from_numpy(ref.means), atol=0.01, rtol=0)
    assert (tmp_path / "w.sog").read_bytes() == encode_sog(g)  # deterministic: the same world, the same file


def test_layout_zip_entries_meta_and_image_sizes():
    n = 1000
    data = encode_sog(random_gaussians(n, sh_degree=2, seed=2))
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.namelist() == NAMES
    assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())  # splat-transform's zips store
    meta = json.loads(z.read("meta.json"))
    assert meta["version"] == 2 and meta["count"] == n
    assert meta["means"]["files"] == ["means_l.webp", "means_u.webp"] and len(meta["means"]["mins"]) == 3
    for key in ("scales", "sh0"):
        book = meta[key]["codebook"]
        assert len(book) == 256 and book == sorted(book)
    assert meta["shN"]["bands"] == 2 and meta["shN"]["count"] == palette_size(n) == 256
    assert meta["shN"]["files"] == ["shN_centroids.webp", "shN_labels.webp"] and len(meta["shN"]["codebook"]) == 256
    width, height = grid(n)
    assert (width, height) == (32, 32)  # ceil(sqrt(1000) / 4) * 4, ceil(1000 / 32 / 4) * 4
    for name in NAMES[:-2]:
        webp = z.read(name)
        assert webp[:4] == b"RIFF" and webp[8:16] == b"WEBPVP8L"  # lossless WebP
        assert Image.open(io.BytesIO(webp)).size == (width, height)
    assert Image.open(io.BytesIO(z.read("shN_centroids.webp"))).size == (64 * 8, math.ceil(256 / 64))


def test_quats_alpha_tags_the_largest_component():
    g = random_gaussians(4).replace(quats=torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, -1.0, 0], [0.1, 0.2, 0.3, 0.9]]))
    g = g.replace(quats=torch.nn.functional.normalize(g.quats, dim=1), means=torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]]))
    z = zipfile.ZipFile(io.BytesIO(encode_sog(g, up="z")))
    quats = np.asarray(Image.open(io.BytesIO(z.read("quats.webp"))).convert("RGBA")).reshape(-1, 4)[:4]
    order = morton_order(g.means.numpy())
    assert quats[np.argsort(order), 3].tolist() == [252, 253, 254, 255]  # w, x, y, z
    assert quats[np.argsort(order)[0], :3].tolist() == [128, 128, 128]  # the others zero: 255 * 0.5, rounded


def test_morton_order_walks_a_grid_in_z_order():
    cube = np.array([[x, y, z] for z in (0, 1) for y in (0, 1) for x in (0, 1)], dtype=np.float32)
    shuffled = cube[[5, 2, 7, 0, 3, 6, 1, 4]]
    assert shuffled[morton_order(shuffled)].tolist() == cube.tolist()  # x fastest, then y, then z
    assert morton_order(np.zeros((3, 3))).tolist() == [0, 1, 2]  # all at one point: kept in order


@given(values=st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=2000))
def test_every_value_is_within_range_over_254_of_its_codebook_entry(values):
    v = np.array(values)
    book = codebook(v)
    assert len(book) == 256 and (np.diff(book) >= 0).all()
    err = np.abs(book[nearest_code(v, book)] - v)
    assert err.max() <= np.ptp(v) / 254 * (1 + 1e-9) + 1e-12


def test_sh_palette_is_exact_for_few_distinct_vectors_and_nearest_within_its_group():
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(40, 45)).astype(np.float32)
    rows = distinct[rng.integers(0, 40, 5000)]
    palette, labels = sh_palette(rows, 256)
    assert palette.shape == (256, 45) and np.abs(palette[labels] - rows).max() < 1e-5
    few, labels = sh_palette(rows[:100], 256)  # no more rows than entries: each row its own entry
    assert np.array_equal(few[labels], rows[:100])
    noisy = rng.normal(size=(3000, 9)).astype(np.float32)
    palette, labels = sh_palette(noisy, 64)
    err = ((palette[labels] - noisy) ** 2).sum(axis=1)
    assert err.mean() < ((noisy - noisy.mean(axis=0)) ** 2).sum(axis=1).mean() * 0.8  # it does quantise
    group = labels // 8  # every row's entry is the nearest of its group's 8
    d = ((palette.reshape(8, 8, 9)[group] - noisy[:, None]) ** 2).sum(axis=2)
    assert np.array_equal(labels % 8, d.argmin(axis=1))


def test_palette_sizes():
    assert [palette_size(n) for n in (10, 300, 5000, 100_000, 10**6, 10**7)] == [10, 256, 256, 2048, 16384, 65536]
    g = random_gaussians(600, sh_degree=1)
    meta = json.loads(zipfile.ZipFile(io.BytesIO(encode_sog(g, palette=64))).read("meta.json"))
    assert meta["shN"]["count"] == 64
    with pytest.raises(FormatError, match="1 to 65536 entries"):
        encode_sog(g, palette=70000)


def sog_with(data: bytes, *, meta: dict | None = None, drop: str | None = None, replace: dict[str, bytes] | None = None) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for name in src.namelist():
            if name == drop:
                continue
            body = json.dumps(meta).encode() if name == "meta.json" and meta is not None else src.read(name)
            out.writestr(name, (replace or {}).get(name, body))
    return buf.getvalue()


def test_bad_files():
    good = encode_sog(random_gaussians(50, sh_degree=1))
    meta = json.loads(zipfile.ZipFile(io.BytesIO(good)).read("meta.json"))
    small = io.BytesIO()
    Image.new("RGBA", (4, 4)).save(small, "WEBP", lossless=True)
    cases = [
        (b"", "empty"),
        (b"ply\n", "not a readable zip archive"),
        (sog_with(good, drop="meta.json"), "has no 'meta.json'"),
        (sog_with(good, drop="quats.webp"), "has no 'quats.webp'"),
        (sog_with(good, meta={**meta, "version": 3}), "version 3; worldgen reads version 2"),
        (sog_with(good, meta={**meta, "count": 100}), r"means_l\.webp' is 8x8; meta.json implies 100"),
        (sog_with(good, meta={**meta, "count": 0}), "count 0"),
        (sog_with(good, meta={**meta, "means": {**meta["means"], "mins": [0, 0]}}), "means.mins is not a list of 3 numbers"),
        (sog_with(good, meta={**meta, "shN": {**meta["shN"], "bands": 4}}), "bands 4"),
        (sog_with(good, replace={"shN_centroids.webp": small.getvalue()}), "shN_centroids.webp' is 4x4"),
        (sog_with(good, replace={"meta.json": b"{not json"}), "not valid JSON"),
    ]
    for data, message in cases:
        with pytest.raises(FormatError, match=message):
            decode_sog(data, "x.sog")


def test_labels_past_the_palette_have_no_higher_sh_as_in_splat_transform():
    g = random_gaussians(20, sh_degree=1, seed=3)
    data = encode_sog(g, up="z")
    meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("meta.json"))
    fewer = sog_with(data, meta={**meta, "shN": {**meta["shN"], "count": 10}})
    back, full = decode_sog(fewer, up="z"), decode_sog(data, up="z")
    labels = np.asarray(Image.open(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read("shN_labels.webp"))).convert("RGBA")).reshape(-1, 4)[:20].astype(int)
    past = labels[:, 0] + 256 * labels[:, 1] >= 10
    assert past.any() and (back.shN[past] == 0).all() and np.array_equal(back.shN[~past], full.shN[~past])
