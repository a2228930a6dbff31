"""Fuzzing the three readers: random bytes and mutations of valid files.

Nothing but FormatError may escape, nothing may hang, and whatever decodes
is a valid `Gaussians`.
"""

from __future__ import annotations

import gzip
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.ply import decode_ply, encode_ply
from exporters.splat import decode_splat, encode_splat
from exporters.spz import HEADER, decode_spz, encode_spz, pack_spz
from tests.conftest import random_gaussians
from worldgen.errors import FormatError

DECODERS = {"ply": decode_ply, "splat": decode_splat, "spz": decode_spz}
_G = random_gaussians(6, sh_degree=1, seed=11)
VALID = {
    "ply": encode_ply(_G),
    "ascii_ply": None,  # filled below
    "splat": encode_splat(_G.with_sh_degree(0)),
    "spz": encode_spz(_G),
}


def _ascii_ply() -> bytes:
    import io

    from plyfile import PlyData

    buf = io.BytesIO()
    ply = PlyData.read(io.BytesIO(VALID["ply"]))
    ply.text = True
    ply.write(buf)
    return buf.getvalue()


VALID["ascii_ply"] = _ascii_ply()


def decodes_or_format_error(fmt: str, data: bytes) -> None:
    decoder = DECODERS["ply" if fmt == "ascii_ply" else fmt]
    try:
        g = decoder(data, f"fuzz.{fmt}")
    except FormatError as e:
        assert "fuzz." in str(e)  # the message names the file
        return
    g.validate()  # anything that decodes is a valid set


@settings(max_examples=150)
@given(fmt=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
def test_random_bytes(fmt, data):
    decodes_or_format_error(fmt, data)


@settings(max_examples=100)
@given(fmt=st.sampled_from(sorted(DECODERS)), head=st.sampled_from([b"ply\n", b"\x1f\x8b\x08\x00", b"NGSP"]), data=st.binary(max_size=200))
def test_random_bytes_behind_a_plausible_magic(fmt, head, data):
    decodes_or_format_error(fmt, head + data)


@settings(max_examples=150)
@given(fmt=st.sampled_from(sorted(VALID)), data=st.data())
def test_truncations_and_byte_flips_of_valid_files(fmt, data):
    blob = bytearray(VALID[fmt])
    if data.draw(st.booleans(), label="truncate"):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="cut")]
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if blob:
            i = data.draw(st.integers(0, len(blob) - 1), label="at")
            blob[i] = data.draw(st.integers(0, 255), label="byte")
    decodes_or_format_error(fmt, bytes(blob))


@settings(max_examples=60)
@given(fmt=st.sampled_from(["ply", "ascii_ply"]), count=st.integers(0, 2**62))
def test_ply_header_counts(fmt, count):
    blob = re.sub(rb"element vertex \d+", b"element vertex %d" % count, VALID[fmt])
    decodes_or_format_error(fmt, blob)


@settings(max_examples=100)
@given(
    count=st.integers(0, 2**32 - 1),
    version=st.integers(0, 6),
    degree=st.integers(0, 255),
    bits=st.integers(0, 255),
    flags=st.integers(0, 255),
    flip=st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
)
def test_spz_headers_and_payloads(count, version, degree, bits, flags, flip):
    raw = bytearray(pack_spz(_G))
    raw[: HEADER.size] = struct.pack("<IIIBBBB", 0x5053474E, version, count, degree, bits, flags, 0)
    at, byte = flip
    raw[HEADER.size + at % (len(raw) - HEADER.size)] = byte
    decodes_or_format_error("spz", gzip.compress(bytes(raw), mtime=0))


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_the_unmutated_files_decode(fmt):
    decoder = DECODERS["ply" if fmt == "ascii_ply" else fmt]
    assert len(decoder(VALID[fmt])) == 6
