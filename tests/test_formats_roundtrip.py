"""Every format to every format and back: count, positions, colours, opacities and scales stay within
the sum of each format's stated precision (docs/formats.md, "How close a round trip comes back")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.common import C0, SplatArrays
from exporters.gltf import decode_gltf, encode_gltf
from exporters.ply import decode_ply, encode_ply
from exporters.sog import decode_sog, encode_sog
from exporters.splat import decode_splat, encode_splat
from exporters.spz import decode_spz, encode_spz
from tests.conftest import random_gaussians

CODECS = {
    "ply": (encode_ply, decode_ply),
    "splat": (encode_splat, decode_splat),
    "spz": (encode_spz, decode_spz),
    "spz4": (lambda a: encode_spz(a, version=4), decode_spz),
    "glb": (encode_gltf, decode_gltf),
    "sog": (encode_sog, decode_sog),
}


def precision(fmt: str, a: SplatArrays) -> dict[str, float]:
    """The documented largest error of one write and read of `a`, per quantity (colour in rgb)."""
    m = np.abs(a.means.astype(np.float64))
    if fmt in ("ply", "glb"):  # float32: the default frame turn and the logit / log cost float32 rounding
        return {"pos": 1e-6 * (1 + m.max()), "rgb": 1e-6, "opacity": 1e-6, "log_scale": 1e-6}
    if fmt == "splat":  # 8-bit colour and opacity, truncated
        return {"pos": 1e-6 * (1 + m.max()), "rgb": 1 / 255 + 1e-6, "opacity": 1 / 255 + 1e-6, "log_scale": 1e-6}
    if fmt in ("spz", "spz4"):  # 12 fractional bits, 8-bit alpha and colour (0.15 scale), log scale in 1/16
        return {"pos": 2.0**-13 + 1e-6, "rgb": C0 * 0.5 / (0.15 * 255) + 1e-6, "opacity": 0.5 / 255 + 1e-6, "log_scale": 1 / 32 + 1e-6}
    # .sog: 16 bits of log position per axis over its range, codebooks of range / 254, 8-bit opacity
    logpos = np.log1p(m) * np.sign(a.means)
    step = (logpos.max(axis=0) - logpos.min(axis=0)) / 65535
    sh0, log_s = a.sh0.astype(np.float64), np.log(a.scales.astype(np.float64))
    return {
        "pos": float(((1 + m) * np.expm1(step / 2)).max()) * (1 + 1e-6) + 1e-6,
        "rgb": C0 * np.ptp(sh0) / 254 + 1e-6,
        "opacity": 0.5 / 255 + 1e-6,
        "log_scale": np.ptp(log_s) / 254 + 1e-6,
    }


def match_rows(back: SplatArrays, ref: SplatArrays) -> SplatArrays:
    """`ref`'s rows in `back`'s order (.splat sorts by visibility, .sog by Morton code): nearest position, one to one."""
    nearest = ((back.means[:, None].astype(np.float64) - ref.means[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert sorted(nearest.tolist()) == list(range(len(ref)))
    return ref.take(nearest)


def world(n: int, seed: int) -> SplatArrays:
    """Random splats inside every format's range: colours in (0, 1) for .splat, log scales in .spz's [-10, 5.9]."""
    g = random_gaussians(n, sh_degree=1, seed=seed)
    return SplatArrays.from_gaussians(g.replace(sh0=g.sh0.clamp(-1.7, 1.7), shN=g.shN.clamp(-0.9, 0.9)))


@pytest.mark.filterwarnings("ignore::exporters.splat.LossyExportWarning")  # .splat drops the SH bands, which no row checks
@settings(max_examples=80)
@given(a=st.sampled_from(sorted(CODECS)), b=st.sampled_from(sorted(CODECS)), n=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_every_format_to_every_format_and_back(a, b, n, seed):
    original = world(n, seed)
    stages, current = [original], original
    for fmt in (a, b, a):
        encode, decode = CODECS[fmt]
        current = decode(encode(current))
        stages.append(current)
    assert len(current) == n
    budget = {"pos": 0.0, "rgb": 0.0, "opacity": 0.0, "log_scale": 0.0}
    for fmt, before in zip((a, b, a), stages[:-1], strict=True):
        for k, v in precision(fmt, before).items():
            budget[k] = budget[k] + v
    ref = match_rows(current, original)
    assert np.abs(current.means - ref.means).max() <= budget["pos"]
    rgb = lambda x: 0.5 + C0 * x.sh0.astype(np.float64)  # noqa: E731
    assert np.abs(rgb(current) - rgb(ref)).max() <= budget["rgb"]
    assert np.abs(current.opacities - ref.opacities).max() <= budget["opacity"]
    assert np.abs(np.log(current.scales) - np.log(ref.scales)).max() <= budget["log_scale"]

