"""Pure functions on Gaussians: visibility scoring and pruning."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import random_gaussians
from worldgen.errors import UsageError
from worldgen.ops import _most_visible_reference, drop_transparent, most_visible, visibility_score


@given(n=st.integers(0, 80), keep=st.integers(0, 100), seed=st.integers(0, 2**16))
def test_most_visible_matches_the_sorting_twin(n, keep, seed):
    g = random_gaussians(n, sh_degree=1, seed=seed, dtype=torch.float64)
    fast, slow = most_visible(g, keep), _most_visible_reference(g, keep)
    assert len(fast) == min(n, keep)
    assert torch.equal(fast.means, slow.means) and torch.equal(fast.shN, slow.shN)


@given(n=st.integers(1, 60), keep=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_kept_splats_outscore_dropped_ones_and_keep_their_order(n, keep, seed):
    g = random_gaussians(n, seed=seed, dtype=torch.float64)
    g = g.replace(means=torch.arange(n, dtype=torch.float64)[:, None].expand(n, 3).clone())  # means name the row
    kept = most_visible(g, keep)
    rows = kept.means[:, 0].long()
    assert torch.all(torch.diff(rows) > 0)  # original order
    dropped = torch.ones(n, dtype=torch.bool)
    dropped[rows] = False
    score = visibility_score(g)
    if dropped.any() and len(rows):
        assert score[rows].min() >= score[dropped].max()


def test_score_is_log_opacity_times_volume_and_handles_zeros():
    g = random_gaussians(3, dtype=torch.float64)
    g = g.replace(opacities=torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64), scales=torch.tensor([[1.0, 2.0, 3.0], [1, 1, 1], [1e-30, 1e-30, 1e-30]], dtype=torch.float64))
    s = visibility_score(g)
    assert torch.isclose(s[0], torch.log(torch.tensor(3.0, dtype=torch.float64)))
    assert s[1] == -torch.inf and torch.isfinite(s[2])  # 1e-90 would underflow float32 as a product
    assert most_visible(g, 1).opacities.tolist() == [0.5]


def test_edge_cases():
    g = random_gaussians(5)
    assert most_visible(g, 5) is g and most_visible(g, 9) is g and len(most_visible(g, 0)) == 0
    with pytest.raises(UsageError):
        most_visible(g, -1)
    g = g.replace(opacities=torch.tensor([0.0, 0.001, 0.5, 1.0, 0.004]))
    assert drop_transparent(g).opacities.tolist() == pytest.approx([0.5, 1.0, 0.004])
