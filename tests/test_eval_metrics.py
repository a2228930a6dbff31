"""Distribution metrics on constructed point sets: self vs self, independent draws, shifted copies."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from worldgen.errors import UsageError
from worldgen.eval.metrics import (
    _chamfer_reference,
    _one_nna_reference,
    chamfer,
    compare_sets,
    coverage,
    distance_matrix,
    diversity,
    mmd,
    one_nna,
    world_points,
)


def _clouds(k: int, n: int = 64, *, seed: int, shift: float = 0.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 6, generator=g, dtype=torch.float64) * 0.3 + shift for _ in range(k)]


@given(st.integers(1, 20), st.integers(1, 20), st.integers(0, 10_000))
def test_chamfer_matches_reference(n: int, m: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 6, generator=g, dtype=torch.float64)
    b = torch.randn(m, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(chamfer(a, b), _chamfer_reference(a, b), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(chamfer(a, b), chamfer(b, a), rtol=1e-12, atol=1e-12)
    assert float(chamfer(a, a)) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=30)
@given(st.integers(2, 6), st.integers(2, 6), st.integers(0, 10_000))
def test_one_nna_matches_reference(G: int, R: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    d_gr = torch.rand(G, R, generator=g)
    d_gg, d_rr = torch.rand(G, G, generator=g), torch.rand(R, R, generator=g)
    assert one_nna(d_gg, d_rr, d_gr) == pytest.approx(_one_nna_reference(d_gg, d_rr, d_gr))


def test_distance_matrix_matches_pairwise() -> None:
    xs, ys = _clouds(3, seed=7), _clouds(4, seed=8)
    d = distance_matrix(xs, ys)
    assert d.shape == (3, 4)
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            assert float(d[i, j]) == pytest.approx(float(_chamfer_reference(x, y)), rel=1e-9)
    uneven = distance_matrix([xs[0][:10]], ys)  # clouds of different sizes take the pairwise path
    assert float(uneven[0, 1]) == pytest.approx(float(chamfer(xs[0][:10], ys[1])), rel=1e-9)


def test_set_against_itself() -> None:
    xs = _clouds(8, seed=0)
    d = distance_matrix(xs, xs)
    assert mmd(d) == pytest.approx(0.0, abs=1e-12)
    assert coverage(d) == 1.0
    assert one_nna(d, d, d) == 0.0  # every world's twin lies in the other set: ties go to the other set


def test_independent_draws_of_one_distribution_score_about_half() -> None:
    gen, ref = _clouds(16, seed=1), _clouds(16, seed=2)
    out = compare_sets(gen, ref)
    assert 0.25 <= out["1nna"] <= 0.75
    assert out["coverage"] > 0.4


def test_shifted_copy_is_told_apart() -> None:
    ref = _clouds(10, seed=3)
    near, far = [x + 0.2 for x in ref], [x + 2.0 for x in ref]
    m0 = compare_sets(ref, ref)["mmd"]
    m_near, m_far = compare_sets(near, ref)["mmd"], compare_sets(far, ref)["mmd"]
    assert m0 < m_near < m_far
    assert compare_sets(far, ref)["1nna"] == 1.0


def test_coverage_counts_distinct_matches() -> None:
    d = torch.tensor([[0.0, 5.0, 5.0], [0.1, 5.0, 5.0]])  # both generated worlds match reference 0
    assert coverage(d) == pytest.approx(1 / 3)
    assert mmd(d) == pytest.approx((0.0 + 5.0 + 5.0) / 3)


def test_diversity() -> None:
    xs = _clouds(4, seed=5)
    assert diversity(distance_matrix([xs[0]] * 3, [xs[0]] * 3)) == pytest.approx(0.0, abs=1e-12)
    assert diversity(distance_matrix(xs, xs)) > 0.01
    assert diversity(torch.zeros(1, 1)) == 0.0


def test_one_nna_needs_pairs() -> None:
    with pytest.raises(UsageError):
        one_nna(torch.zeros(1, 1), torch.zeros(2, 2), torch.zeros(1, 2))


def test_world_points_skips_sky_and_is_seeded() -> None:
    from tests.conftest import random_gaussians

    g = random_gaussians(500, seed=1)
    far = g.replace(means=g.means * 0 + torch.tensor([0.0, 0.0, 500.0]))
    with pytest.raises(UsageError):
        world_points(far, 32)
    p = world_points(g, 64, seed=3)
    assert p.shape == (64, 6)
    assert torch.equal(p, world_points(g, 64, seed=3))
    assert (p[:, 3:] >= 0).all() and (p[:, 3:] <= 1).all()
