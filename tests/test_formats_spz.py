"""Niantic .spz: quantisation tolerances, the per-splat slow twin, versions 1-4, bad input."""

from __future__ import annotations

import gzip
import math
import struct
import zlib

import numpy as np
import pytest
import torch
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from exporters import load, save
from exporters.common import SplatArrays
from exporters.spz import (
    HEADER,
    HEADER_V4,
    MAGIC,
    TOC_ENTRY,
    LossyReadWarning,
    _pack_spz_reference,
    _unpack_spz_reference,
    column_sizes,
    decode_spz,
    encode_spz,
    gunzip_payload,
    pack_spz,
    point_size,
    read_v4_columns,
    unpack_spz,
)
from tests.conftest import random_gaussians
from worldgen.errors import FormatError

# Quantisation of a round trip (exporters/spz.py docstring), for values inside the encodable ranges.
POS_TOL = 2.0**-13 + 1e-6  # 12 fractional bits, float32 means
ALPHA_TOL = 0.5 / 255 + 1e-7
SH0_TOL = 0.5 / (0.15 * 255) + 1e-6
LOG_SCALE_TOL = 1 / 32 + 1e-6
QUAT_TOL = 4e-3
SH1_TOL, SH_REST_TOL = 4.5 / 128 + 1e-6, 8.5 / 128 + 1e-6


def encodable(g):
    return g.replace(sh0=g.sh0.clamp(-3.2, 3.2), shN=g.shN.clamp(-0.95, 0.95))


def quat_error(a, b):
    return torch.minimum((a - b).abs().amax(dim=1), (a + b).abs().amax(dim=1)).max()


def assert_within_spz_tolerance(back, g, *, pos_tol=POS_TOL, quat_tol=QUAT_TOL):
    g = g.to(dtype=torch.float32)
    assert len(back) == len(g) and back.sh_degree == g.sh_degree
    assert (back.means - g.means).abs().max() <= pos_tol
    assert (back.opacities - g.opacities).abs().max() <= ALPHA_TOL
    assert (back.sh0 - g.sh0).abs().max() <= SH0_TOL
    assert (back.scales.log() - g.scales.log()).abs().max() <= LOG_SCALE_TOL
    assert quat_error(back.quats, g.quats) <= quat_tol
    if g.sh_degree:
        assert (back.shN[:, :3] - g.shN[:, :3]).abs().max() <= SH1_TOL
    if g.sh_degree > 1:
        assert (back.shN[:, 3:] - g.shN[:, 3:]).abs().max() <= SH_REST_TOL


@given(n=st.integers(1, 50), degree=st.sampled_from([0, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_round_trip_within_quantisation(n, degree, seed):
    g = encodable(random_gaussians(n, sh_degree=degree, seed=seed, dtype=torch.float64))
    assert_within_spz_tolerance(decode_spz(encode_spz(g, up="z"), up="z").to_gaussians(), g)


def test_default_rub_frame_round_trip(tmp_path):
    g = encodable(random_gaussians(100, sh_degree=3, seed=1))
    save(g, tmp_path / "w.spz")
    back = load(tmp_path / "w.spz")
    # the frame change rotates SH bands, which mixes their quantisation errors: allow a little more
    assert (back.means - g.means).abs().max() <= POS_TOL
    assert quat_error(back.quats, g.quats) <= QUAT_TOL
    assert (back.shN - g.shN).abs().max() <= 2 * SH_REST_TOL


def test_rub_axes():
    up = random_gaussians(1).replace(means=torch.tensor([[0.0, 0.0, 1.0]]))
    fwd = up.replace(means=torch.tensor([[0.0, 1.0, 0.0]]))
    assert unpack_spz(pack_spz(up), up="z").to_gaussians().means.tolist() == [[0.0, 1.0, 0.0]]  # world up -> +y
    assert unpack_spz(pack_spz(fwd), up="z").to_gaussians().means.tolist() == [[0.0, 0.0, -1.0]]  # world forward -> -z


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_fast_paths_match_the_per_splat_slow_twin(degree):
    g = random_gaussians(60, sh_degree=degree, seed=degree)
    payload = pack_spz(g)
    assert payload == _pack_spz_reference(g)
    fast, slow = unpack_spz(payload).to_gaussians(), _unpack_spz_reference(payload).to_gaussians()
    for f in ("means", "quats", "scales", "opacities", "sh0", "shN"):
        torch.testing.assert_close(getattr(fast, f), getattr(slow, f), atol=1e-6, rtol=1e-6, msg=f)


def test_compression_levels_give_the_same_payload():
    g = random_gaussians(30, sh_degree=3)
    fast, small = encode_spz(g, compresslevel=1), encode_spz(g, compresslevel=9)
    assert gzip.decompress(fast) == gzip.decompress(small) == pack_spz(g)
    with pytest.raises(FormatError, match="compresslevel"):
        encode_spz(g, compresslevel=13)


def test_header_layout_is_version_3_gzip():
    g = random_gaussians(7, sh_degree=2)
    data = encode_spz(g, antialiased=True)
    assert data[:2] == b"\x1f\x8b"
    raw = gzip.decompress(data)
    assert HEADER.unpack_from(raw) == (MAGIC, 3, 7, 2, 12, 1, 0)
    assert len(raw) == 16 + 7 * point_size(3, 2) == 16 + 7 * (9 + 1 + 3 + 3 + 4 + 24)


def test_smallest_three_known_values():
    # identity: w = 1 is the largest (index 3 in x y z w order), the others zero
    g = random_gaussians(1).replace(quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    raw = pack_spz(g, up="z")
    rot = raw[16 + 9 + 1 + 3 + 3 :][:4]
    assert struct.unpack("<I", rot)[0] == 3 << 30
    # 90 degrees about x: (w, x) = (c, c): x (index 0) wins the tie, w stored as 511 at the last slot
    c = math.sqrt(0.5)
    g = g.replace(quats=torch.tensor([[c, c, 0.0, 0.0]]))
    comp = struct.unpack("<I", pack_spz(g, up="z")[16 + 16 : 20 + 16])[0]
    assert comp >> 30 == 0 and comp & 0x3FF == 511 and (comp >> 10) & 0x3FF == 0


@pytest.mark.parametrize("version", [1, 2])
def test_reads_older_versions(version):
    g = encodable(random_gaussians(40, sh_degree=1, seed=5))
    back = decode_spz(encode_spz(g, version=version, up="z"), up="z").to_gaussians()
    pos_tol = 1e-2 * g.means.abs().max() if version == 1 else POS_TOL  # float16 positions
    # v1/v2 store x y z to 1/127.5 and derive w: near w = 0 that costs up to sqrt(2 * 3/255) ~ 0.12
    assert_within_spz_tolerance(back, g, pos_tol=pos_tol, quat_tol=0.12)


def test_large_worlds_lower_the_fractional_bits():
    g = random_gaussians(20, seed=6)
    g = g.replace(means=g.means * 600)  # beyond +-2048 m
    raw = pack_spz(g, up="z")
    bits = HEADER.unpack_from(raw)[4]
    assert bits < 12 and g.means.abs().max() * 2**bits < 2**23
    assert (unpack_spz(raw, up="z").to_gaussians().means - g.means).abs().max() <= 2.0 ** -(bits + 1) + 1e-3
    with pytest.raises(FormatError, match="24-bit"):
        pack_spz(g.replace(means=g.means * 1e6))


def gz(raw: bytes) -> bytes:
    return gzip.compress(raw, mtime=0)


def header(n=1, version=3, degree=0, flags=0, magic=MAGIC) -> bytes:
    return HEADER.pack(magic, version, n, degree, 12, flags, 0)


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"ply\nformat", "not a .spz"),
        (b"NGSP\x04\0\0\0", "shorter than the 32-byte version-4 header"),
        (gz(b"\1\2\3"), "inside the 16-byte header"),
        (gz(header(magic=0x12345678)), "wrong magic number 0x12345678"),
        (gz(header(version=7)), "version 7"),
        (gz(header(version=4)), "versions 1-3 are gzip"),
        (gz(header(degree=4)), "SH degree 4"),
        (gz(header(flags=2)), "extensions"),
        (gz(header(n=10) + b"\0" * 20), "promises 10 points"),
        (gz(header(n=1) + b"\0" * 40), "holds more"),
        (gz(header(n=4_000_000_000)), "more than the"),
        (gz(header(n=2) + b"\0" * 40)[:-12], "does not end|truncated"),
        (b"\x1f\x8b" + b"\xff" * 30, "corrupt"),
    ],
)
def test_bad_files(data, message):
    with pytest.raises(FormatError, match=message):
        decode_spz(data, "x.spz").to_gaussians()


def test_a_gzip_bomb_is_read_no_further_than_the_header_allows():
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    bomb = c.compress(header(n=1)) + b"".join(c.compress(zeros) for _ in range(64)) + c.flush()  # 64 MB of zeros
    assert len(bomb) < 1 << 20
    with pytest.raises(FormatError, match="holds more"):
        gunzip_payload(bomb, "bomb.spz")


def test_zero_quaternions_cannot_occur_and_nan_positions_cannot_either():
    # smallest-three always decodes to a unit quaternion; fixed-point positions are always finite
    raw = bytearray(pack_spz(random_gaussians(3)))
    raw[16 + 27 + 3 + 9 + 9 : 16 + 27 + 3 + 9 + 12] = b"\xff" * 3
    g = unpack_spz(bytes(raw)).to_gaussians()
    assert torch.isfinite(g.means).all() and torch.allclose(g.quats.norm(dim=1), torch.ones(3), atol=1e-5)


# -- version 4: plain header, table of contents, zstd streams ---------------------------------

def v4_file(columns: list[bytes], *, n: int, degree: int, flags: int = 0, toc: list[tuple[int, int]] | None = None, level: int = 3) -> bytes:
    """A version-4 file built by hand from raw columns (empty columns get no stream, as the reference writer)."""
    streams = [zstandard.ZstdCompressor(level=level).compress(c) for c in columns if c]
    toc = toc or [(len(s), len(c)) for s, c in zip(streams, [c for c in columns if c], strict=True)]
    head = HEADER_V4.pack(MAGIC, 4, n, degree, 12, flags, len(toc), HEADER_V4.size)
    return head + b"".join(TOC_ENTRY.pack(*e) for e in toc) + b"".join(streams)


@given(n=st.integers(1, 40), degree=st.sampled_from([0, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_version_4_round_trip_is_version_3_quantisation(n, degree, seed):
    g = encodable(random_gaussians(n, sh_degree=degree, seed=seed, dtype=torch.float64))
    v4 = encode_spz(g, up="z", version=4)
    assert_within_spz_tolerance(decode_spz(v4, up="z").to_gaussians(), g)
    # the same quantised columns as version 3, in another container
    v3 = decode_spz(encode_spz(g, up="z"), up="z")
    for f in ("means", "quats", "scales", "opacities", "sh0", "shN"):
        np.testing.assert_array_equal(getattr(decode_spz(v4, up="z"), f), getattr(v3, f), err_msg=f)


def test_version_4_layout_header_toc_and_streams():
    g = random_gaussians(9, sh_degree=2)
    data = encode_spz(g, version=4, antialiased=True)
    magic, version, n, degree, bits, flags, streams, toc = HEADER_V4.unpack_from(data)
    assert (data[:4], magic, version, n, degree, bits, flags, streams, toc) == (b"NGSP", MAGIC, 4, 9, 2, 12, 1, 6, 32)
    assert data[16:20] == struct.pack("<I", 32) and data[20:32] == bytes(12)  # tocByteOffset, 12 reserved zero bytes
    entries = [TOC_ENTRY.unpack_from(data, 32 + 16 * i) for i in range(6)]
    assert [u for _, u in entries] == column_sizes(4, 9, 2) == [9 * 9, 9, 27, 27, 36, 9 * 8 * 3]
    offset = 32 + 16 * 6
    raw = gzip.decompress(encode_spz(g, antialiased=True))[16:]  # the version 3 columns
    for packed, unpacked in entries:
        frame = data[offset : offset + packed]
        assert zstandard.frame_content_size(frame) == unpacked  # readers such as fzstd need the size in the frame
        assert zstandard.ZstdDecompressor().decompress(frame) == raw[:unpacked]
        raw, offset = raw[unpacked:], offset + packed
    assert offset == len(data) and raw == b""


def test_version_4_at_sh_degree_0_has_five_streams():
    data = encode_spz(random_gaussians(3), version=4)
    assert HEADER_V4.unpack_from(data)[6] == 5
    assert len(decode_spz(data)) == 3


def test_sh_degree_4_is_read_as_degree_3_with_a_warning():
    n = 5
    g = encodable(random_gaussians(n, sh_degree=3, seed=2))
    columns = [bytes(c) for c in _columns_of(g)]
    band4 = np.full((n, 9, 3), 200, dtype=np.uint8)  # degree-4 coefficients, appended per splat
    sh = np.concatenate([np.frombuffer(columns[5], np.uint8).reshape(n, 15, 3), band4], axis=1)
    data = v4_file(columns[:5] + [sh.tobytes()], n=n, degree=4)
    with pytest.warns(LossyReadWarning, match="SH degree 4 read as degree 3"):
        back = decode_spz(data, "deg4.spz", up="z")
    assert back.sh_degree == 3
    np.testing.assert_array_equal(back.shN, decode_spz(encode_spz(g, up="z"), up="z").shN)


def _columns_of(g) -> list[bytes]:
    from exporters.spz import _columns

    return _columns(SplatArrays.from_gaussians(g), 4)[1]


def v4_of(n=2, **kw) -> bytes:
    return v4_file(_columns_of(random_gaussians(n)), n=n, degree=0, **kw)


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """`data` with one header field overwritten."""
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :]


@pytest.mark.parametrize(
    "data,message",
    [
        (v4_of()[:31], "shorter than the 32-byte"),
        (v4_of()[:40], "table of contents at byte 32 lies outside"),
        (v4_of()[:-3], "truncated .spz: the rotations stream runs past|rotations stream holds"),
        (v4_of() + b"\0", "1 bytes after the last .spz stream"),
        (v4_of(flags=2), "extensions"),
        (patched(v4_of(), 12, "B", 5), "SH degree 5"),
        (patched(v4_of(), 4, "<I", 5), "version 5 without gzip"),
        (patched(v4_of(), 8, "<I", 4_000_000_000), "claims 4000000000 points"),
        (patched(v4_of(), 8, "<I", 3), "positions stream claims 18 bytes; 3 points need 27"),
        (patched(v4_of(), 15, "B", 6), "names 6 streams; 2 points of SH degree 0 need 5"),
        (patched(v4_of(), 16, "<I", 40), "bytes between its header and table of contents"),
    ],
)
def test_bad_version_4_files(data, message):
    with pytest.raises(FormatError, match=message):
        decode_spz(data, "x.spz")


def test_a_zstd_stream_that_lies_about_its_size_is_stopped_at_the_size_the_header_implies():
    n = 4
    columns = _columns_of(random_gaussians(n))
    bomb = bytes(64 << 20)  # 64 MB of zeros as the "alphas" stream, which should hold 4 bytes
    data = v4_file([columns[0], bomb, *columns[2:]], n=n, degree=0, toc=None)
    entries = [TOC_ENTRY.unpack_from(data, 32 + 16 * i) for i in range(5)]
    assert len(data) < 1 << 16 and entries[1][1] == len(bomb)
    with pytest.raises(FormatError, match="alphas stream claims 67108864 bytes; 4 points need 4"):
        decode_spz(data, "bomb.spz")
    # a table of contents that tells the truth about the sizes, over a stream that inflates further
    honest = [(packed, size) for (packed, _), size in zip(entries, [s for s in column_sizes(4, n, 0) if s], strict=True)]
    data = v4_file([columns[0], bomb, *columns[2:]], n=n, degree=0, toc=honest)
    with pytest.raises(FormatError, match="alphas stream holds more bytes, the header implies 4"):
        decode_spz(data, "bomb.spz")


def test_read_v4_columns_returns_the_raw_columns():
    g = random_gaussians(6, sh_degree=1)
    (version, n, degree, bits, flags), columns = read_v4_columns(encode_spz(g, version=4), "x.spz")
    assert (version, n, degree, bits, flags) == (4, 6, 1, 12, 0)
    assert [len(c) for c in columns] == column_sizes(4, 6, 1)


def test_version_4_writer_levels():
    g = random_gaussians(50, sh_degree=1)
    fast, small = encode_spz(g, version=4, compresslevel=1), encode_spz(g, version=4, compresslevel=19)
    for f in ("means", "shN"):
        np.testing.assert_array_equal(getattr(decode_spz(fast), f), getattr(decode_spz(small), f))
    with pytest.raises(FormatError, match="zstd compresslevel must be 1-22"):
        encode_spz(g, version=4, compresslevel=0)
