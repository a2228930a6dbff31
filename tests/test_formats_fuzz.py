"""Fuzzing every reader: random bytes, mutations of valid files, lying headers and counts, bombs.

Nothing but FormatError may escape, nothing may hang or allocate what a header
merely claims, and whatever decodes is a valid set of splats.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from exporters.common import check_writable
from exporters.gltf import decode_gltf, encode_gltf
from exporters.ply import decode_ply, encode_ply
from exporters.sog import decode_sog, encode_sog
from exporters.splat import decode_splat, encode_splat
from exporters.spz import HEADER, HEADER_V4, TOC_ENTRY, decode_spz, encode_spz, pack_spz
from tests.conftest import random_gaussians
from worldgen.errors import FormatError

DECODERS = {"ply": decode_ply, "splat": decode_splat, "spz": decode_spz, "glb": decode_gltf, "sog": decode_sog}
_G = random_gaussians(6, sh_degree=1, seed=11)
VALID = {
    "ply": encode_ply(_G),
    "ascii_ply": None,  # filled below
    "splat": encode_splat(_G.with_sh_degree(0)),
    "spz": encode_spz(_G),
    "spz4": encode_spz(_G, version=4),
    "glb": encode_gltf(_G),
    "sog": encode_sog(_G),
}


def _ascii_ply() -> bytes:
    from plyfile import PlyData

    buf = io.BytesIO()
    ply = PlyData.read(io.BytesIO(VALID["ply"]))
    ply.text = True
    ply.write(buf)
    return buf.getvalue()


VALID["ascii_ply"] = _ascii_ply()


def decoder_of(fmt: str):
    return DECODERS[{"ascii_ply": "ply", "spz4": "spz"}.get(fmt, fmt)]


def decodes_or_format_error(fmt: str, data: bytes) -> None:
    try:
        a = decoder_of(fmt)(data, f"fuzz.{fmt}")
    except FormatError as e:
        assert "fuzz." in str(e) and "\n" not in str(e)  # one line that names the file
        return
    check_writable(a)  # anything that decodes is a valid set


@settings(max_examples=200)
@given(fmt=st.sampled_from(sorted(DECODERS)), data=st.binary(max_size=300))
def test_random_bytes(fmt, data):
    decodes_or_format_error(fmt, data)


MAGICS = [b"ply\n", b"\x1f\x8b\x08\x00", b"NGSP\x04\x00\x00\x00", b"glTF\x02\x00\x00\x00", b"PK\x03\x04"]


@settings(max_examples=150)
@given(fmt=st.sampled_from(sorted(DECODERS)), head=st.sampled_from(MAGICS), data=st.binary(max_size=200))
def test_random_bytes_behind_a_plausible_magic(fmt, head, data):
    decodes_or_format_error(fmt, head + data)


@settings(max_examples=300)
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


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_the_unmutated_files_decode(fmt):
    assert len(decoder_of(fmt)(VALID[fmt])) == 6


# -- lying headers and counts -------------------------------------------------------------------


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


@settings(max_examples=100)
@given(
    count=st.integers(0, 2**32 - 1),
    degree=st.integers(0, 6),
    streams=st.integers(0, 255),
    toc=st.integers(0, 2**32 - 1),
    entry=st.tuples(st.integers(0, 5), st.booleans(), st.integers(0, 2**64 - 1)),
)
def test_spz_v4_headers_and_tables_of_contents(count, degree, streams, toc, entry):
    data = bytearray(VALID["spz4"])
    fields = list(HEADER_V4.unpack_from(data))
    data[: HEADER_V4.size] = HEADER_V4.pack(fields[0], 4, count, degree, fields[4], fields[5], streams, toc)
    i, which, value = entry
    if 32 + 16 * (i + 1) <= len(data):
        packed, unpacked = TOC_ENTRY.unpack_from(data, 32 + 16 * i)
        data[32 + 16 * i : 32 + 16 * (i + 1)] = TOC_ENTRY.pack(value, unpacked) if which else TOC_ENTRY.pack(packed, value)
    decodes_or_format_error("spz4", bytes(data))


def glb_with(doc: dict, binary: bytes) -> bytes:
    """A .glb container (valid framing) around any JSON and binary chunk."""
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + 8 + len(binary)
    return struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary


def glb_parts(data: bytes) -> tuple[dict, bytes]:
    json_len = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20 : 20 + json_len]), data[20 + json_len + 8 :]


JSON_VALUES = st.one_of(
    st.integers(-(2**40), 2**40), st.sampled_from([None, True, "x", [], {}, 5126, 5121, 5120, "VEC3", "SCALAR", 2**63]), st.floats(allow_nan=True)
)


@settings(max_examples=200)
@given(
    target=st.sampled_from(["accessor", "bufferView", "buffer", "primitive", "node", "extension", "root"]),
    key=st.sampled_from(["count", "byteOffset", "byteLength", "byteStride", "componentType", "type", "bufferView", "normalized",
                         "sparse", "uri", "mode", "kernel", "colorSpace", "matrix", "scale", "mesh", "children", "nodes", "scene",
                         "extensionsRequired", "attributes", "extensions"]),  # fmt: skip
    value=JSON_VALUES,
    index=st.integers(0, 40),
)
def test_glb_json_that_lies(target, key, value, index):
    doc, binary = glb_parts(VALID["glb"])
    prim = doc["meshes"][0]["primitives"][0]
    objects = {
        "accessor": doc["accessors"],
        "bufferView": doc["bufferViews"],
        "buffer": doc["buffers"],
        "primitive": [prim],
        "node": doc["nodes"],
        "extension": [prim["extensions"]["KHR_gaussian_splatting"]],
        "root": [doc],
    }[target]
    objects[index % len(objects)][key] = value
    decodes_or_format_error("glb", glb_with(doc, binary))


def test_a_glb_accessor_count_past_its_buffer_is_refused_before_reading():
    doc, binary = glb_parts(VALID["glb"])
    for acc in doc["accessors"]:
        acc["count"] = 2**40
    with pytest.raises(FormatError, match="do not fit the file's binary chunk"):
        decode_gltf(glb_with(doc, binary), "liar.glb")


def sog_with(meta: dict | None = None, *, replace: dict[str, bytes] | None = None) -> bytes:
    """The valid .sog with its meta.json and some entries replaced (a well-formed zip)."""
    src = zipfile.ZipFile(io.BytesIO(VALID["sog"]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            if name == "meta.json" and meta is not None:
                data = json.dumps(meta).encode()
            out.writestr(name, (replace or {}).get(name, data))
    return buf.getvalue()


SOG_META = json.loads(zipfile.ZipFile(io.BytesIO(VALID["sog"])).read("meta.json"))


@settings(max_examples=200)
@given(
    path=st.sampled_from(["count", "version", "means", "means.mins", "means.maxs", "scales.codebook", "sh0.codebook", "shN",
                          "shN.count", "shN.bands", "shN.codebook", "shN.files", "quats.files"]),  # fmt: skip
    value=st.one_of(JSON_VALUES, st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=300)),
)
def test_sog_meta_that_lies(path, value):
    meta = json.loads(json.dumps(SOG_META))
    *parents, key = path.split(".")
    obj = meta
    for p in parents:
        obj = obj[p]
    obj[key] = value
    decodes_or_format_error("sog", sog_with(meta))


# -- bombs ---------------------------------------------------------------------------------------


def peak_mib(fn) -> float:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_a_webp_bomb_is_refused_before_it_is_decoded():
    buf = io.BytesIO()
    Image.new("RGBA", (8000, 8000), (7, 7, 7, 255)).save(buf, "WEBP", lossless=True, method=0)
    bomb = buf.getvalue()
    assert len(bomb) < 100_000  # 256 MB of pixels in a small file (below Pillow's own bomb limit)
    data = sog_with(replace={"quats.webp": bomb})

    def read():
        with pytest.raises(FormatError, match=r"quats\.webp' is 8000x8000; meta.json implies 6 to"):
            decode_sog(data, "bomb.sog")

    assert peak_mib(read) < 64


def test_a_sog_count_larger_than_the_file_can_hold_is_refused():
    with pytest.raises(FormatError, match="count 100000000 is not a splat count"):
        decode_sog(sog_with({**SOG_META, "count": 100_000_000}), "liar.sog")


def test_a_zstd_bomb_is_read_no_further_than_the_counts_imply():
    n = 6
    data = bytearray(VALID["spz4"])
    toc = [TOC_ENTRY.unpack_from(data, 32 + 16 * i) for i in range(6)]
    streams, offset = [], 32 + 16 * 6
    for packed, _ in toc:
        streams.append(bytes(data[offset : offset + packed]))
        offset += packed
    streams[5] = zstandard.ZstdCompressor(level=1).compress(bytes(1 << 30))  # 1 GiB of zeros as the SH stream
    sizes = [u for _, u in toc]
    entries = b"".join(TOC_ENTRY.pack(len(s), u) for s, u in zip(streams, sizes, strict=True))
    bomb = bytes(data[:32]) + entries + b"".join(streams)
    assert len(bomb) < 1 << 20 and sizes[5] == n * 9

    def read():
        with pytest.raises(FormatError, match="SH stream holds more bytes, the header implies 54"):
            decode_spz(bomb, "bomb.spz")

    assert peak_mib(read) < 64


def test_a_sog_entry_that_claims_more_than_its_splats_need_is_not_inflated():
    buf = io.BytesIO()
    src = zipfile.ZipFile(io.BytesIO(VALID["sog"]))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            out.writestr(name, src.read(name) if name != "sh0.webp" else bytes(256 << 20))
    data = buf.getvalue()
    assert len(data) < 1 << 20

    def read():
        with pytest.raises(FormatError, match=r"sh0\.webp' claims 268435456 bytes"):
            decode_sog(data, "bomb.sog")

    assert peak_mib(read) < 64


def test_corrupt_images_and_codebooks_in_a_well_formed_sog():
    cases = {
        "not an image": (None, {"scales.webp": b"RIFF\0\0\0\0WEBPjunk"}),
        "short codebook": ({**SOG_META, "scales": {**SOG_META["scales"], "codebook": [0.0] * 4}}, None),
        "legacy version": ({k: v for k, v in SOG_META.items() if k != "version"}, None),
    }
    messages = {"not an image": "not a readable WebP", "short codebook": "4-entry codebook", "legacy version": "legacy version 1"}
    for case, (meta, replace) in cases.items():
        with pytest.raises(FormatError, match=messages[case]):
            decode_sog(sog_with(meta, replace=replace), "x.sog")


def test_a_png_inside_a_sog_is_not_read_as_webp():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(buf, "PNG")
    with pytest.raises(FormatError, match="not a readable WebP"):
        decode_sog(sog_with(replace={"means_l.webp": buf.getvalue()}), "x.sog")
