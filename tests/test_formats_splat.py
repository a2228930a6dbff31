"""antimatter15 .splat: quantisation tolerances, gsplat agreement, the struct slow twin, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from exporters import load, save
from exporters.splat import (
    RECORD,
    LossyExportWarning,
    _decode_splat_reference,
    _encode_splat_reference,
    decode_splat,
    encode_splat,
)
from tests.conftest import random_gaussians
from worldgen.errors import FormatError
from worldgen.sh import C0

# .splat quantisation (module docstring): colours and opacity truncated to 1/255, quaternion to 1/128.
RGB_TOL = 1 / 255 + 1e-6
QUAT_TOL = 2.5 / 128  # 1/128 per component before renormalising, a little more after


def in_range(g):
    """Colours inside [0, 1] so that .splat's clipping does not apply."""
    return g.replace(sh0=g.sh0.clamp(-0.5 / C0 + 1e-3, 0.5 / C0 - 1e-3))


def sort_like(a, b):
    """Rows of b in the order of a's means (both are permutations of the same set)."""
    ia = np.lexsort(a.means.numpy().T)
    ib = np.lexsort(b.means.numpy().T)
    return a[torch.as_tensor(ia)], b[torch.as_tensor(ib)]


def same_sign(q):
    return q * torch.where(q[:, :1] < 0, -1.0, 1.0)


def assert_within_splat_tolerance(back, g):
    back, g = sort_like(back, g)
    assert torch.equal(back.means, g.means.float()) and torch.equal(back.scales, g.scales.float())
    assert (back.rgb - g.rgb).abs().max() <= RGB_TOL
    assert (back.opacities - g.opacities).abs().max() <= RGB_TOL
    assert (same_sign(back.quats) - same_sign(g.quats)).abs().max() <= QUAT_TOL


@given(n=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_round_trip_within_quantisation(n, seed):
    g = in_range(random_gaussians(n, seed=seed, dtype=torch.float64))
    back = decode_splat(encode_splat(g, up="z"), up="z").to_gaussians()
    assert_within_splat_tolerance(back, g.to(dtype=torch.float32))


def test_default_frame_round_trip(tmp_path):
    g = in_range(random_gaussians(100, seed=1))
    save(g, tmp_path / "w.splat")
    back = load(tmp_path / "w.splat")
    back, g = sort_like(back, g)
    torch.testing.assert_close(back.means, g.means, atol=1e-5, rtol=0)
    assert (back.rgb - g.rgb).abs().max() <= RGB_TOL


def test_written_in_reference_converter_order():
    g = random_gaussians(200, seed=2)
    back = decode_splat(encode_splat(g, up="z"), up="z").to_gaussians()
    # the reference converter: descending exp(s0 + s1 + s2) * sigmoid(opacity)
    order = np.argsort(-(g.scales.prod(dim=1) * g.opacities).numpy(), kind="stable")
    assert torch.equal(back.means, g.means[torch.as_tensor(order)])


def test_sh_bands_are_dropped_with_a_warning():
    g = random_gaussians(10, sh_degree=2)
    with pytest.warns(LossyExportWarning, match="SH degree 2"):
        data = encode_splat(g)
    assert len(data) == 10 * 32 and decode_splat(data).to_gaussians().sh_degree == 0


def test_fast_paths_match_the_struct_slow_twin():
    g = random_gaussians(80, seed=3)
    for up in ("z", "-y"):
        data = encode_splat(g, up=up)
        assert data == _encode_splat_reference(g, up=up)
        fast, slow = decode_splat(data, up=up).to_gaussians(), _decode_splat_reference(data, up=up).to_gaussians()
        for f in ("means", "quats", "scales", "opacities", "sh0"):
            torch.testing.assert_close(getattr(fast, f), getattr(slow, f), atol=1e-6, rtol=0)


def test_agrees_with_gsplat_export_splats():
    from gsplat import export_splats

    g = random_gaussians(128, seed=4)
    raw = dict(means=g.means, scales=torch.log(g.scales), quats=g.quats, opacities=torch.logit(g.opacities), sh0=g.sh0, shN=g.shN)
    theirs = decode_splat(export_splats(**raw, format="splat"), up="z").to_gaussians()
    ours = decode_splat(encode_splat(g, up="z"), up="z").to_gaussians()
    theirs, ours = sort_like(theirs, ours)  # gsplat sorts by Morton code, we by visibility
    torch.testing.assert_close(theirs.means, ours.means, atol=0, rtol=0)
    torch.testing.assert_close(theirs.scales, ours.scales, atol=1e-6, rtol=1e-6)  # exp(log(s)) in float32
    # same truncation rule; gsplat computes in float32, we in float64, so one step of 1/255 at most, rarely
    assert (theirs.rgb - ours.rgb).abs().max() <= RGB_TOL
    assert (theirs.opacities - ours.opacities).abs().max() <= RGB_TOL
    assert (theirs.quats - ours.quats).abs().max() <= 1.5 / 128


@pytest.mark.parametrize(
    "data,message",
    [(b"", "empty"), (b"\0" * 33, "whole number of 32-byte"), (b"\0" * 31, "truncated")],
)
def test_bad_files(data, message):
    with pytest.raises(FormatError, match=message):
        decode_splat(data, "x.splat").to_gaussians()


def test_nan_and_zero_quaternion_records():
    rec = np.frombuffer(encode_splat(random_gaussians(4), up="z"), dtype=RECORD).copy()
    rec["position"][1, 0] = np.nan
    rec["rot"][2] = 128  # decodes to a zero quaternion
    with pytest.raises(FormatError, match=r"x\.splat: 1 rows with NaN/Inf means \(first at row 1\).*zero quaternion"):
        decode_splat(rec.tobytes(), "x.splat").to_gaussians()
    assert len(decode_splat(rec.tobytes(), on_invalid="drop").to_gaussians()) == 2
