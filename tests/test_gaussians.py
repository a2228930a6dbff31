"""The Gaussians type: validation, sanitising, indexing and geometry."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import random_gaussians
from worldgen.errors import InvalidGaussiansError
from worldgen.gaussians import Gaussians, quat_multiply, quat_to_rotmat, rotmat_to_quat
from worldgen.sh import C0, eval_sh

seeds = st.integers(0, 2**31 - 1)


def random_rotation(seed: int, dtype=torch.float64) -> torch.Tensor:
    q = torch.nn.functional.normalize(torch.randn(4, generator=torch.Generator().manual_seed(seed), dtype=dtype), dim=0)
    return quat_to_rotmat(q)


def test_shapes_are_checked():
    g = random_gaussians(5)
    with pytest.raises(InvalidGaussiansError, match=r"quats must have shape \[5, 4\]"):
        g.replace(quats=g.quats[:, :3])
    with pytest.raises(InvalidGaussiansError, match="shN"):
        g.replace(shN=torch.zeros(5, 4, 3))
    with pytest.raises(InvalidGaussiansError, match="all fields must agree"):
        g.replace(opacities=g.opacities.double())


def test_validate_names_the_problem():
    g = random_gaussians(10)
    assert g.validate() is g
    bad = g.means.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InvalidGaussiansError, match=r"1 of 10 .*means are NaN.*row 3"):
        g.replace(means=bad).validate()
    with pytest.raises(InvalidGaussiansError, match="not unit length"):
        g.replace(quats=g.quats * 2).validate()
    with pytest.raises(InvalidGaussiansError, match="opacities are outside"):
        g.replace(opacities=g.opacities + 1).validate()


def test_sanitize_drops_and_counts():
    g = random_gaussians(20)
    means, quats, op = g.means.clone(), g.quats.clone(), g.opacities.clone()
    means[2, 0] = float("inf")
    quats[5] = 0.0
    op[7] = 1.5  # finite: clamped, not dropped
    clean, dropped = g.replace(means=means, quats=quats, opacities=op).sanitize()
    assert dropped == 2
    assert len(clean) == 18
    clean.validate()
    assert float(clean.opacities.max()) <= 1.0


def test_rgb_and_from_rgb_round_trip():
    rgb = torch.rand(50, 3)
    g = Gaussians.from_rgb(torch.zeros(50, 3), rgb, torch.ones(50, 3), torch.ones(50))
    torch.testing.assert_close(g.rgb, rgb)
    torch.testing.assert_close(g.sh0[:, 0] * C0 + 0.5, rgb)
    assert g.sh_degree == 0 and (g.quats[:, 0] == 1).all()


def test_indexing_and_cat():
    g = random_gaussians(30, sh_degree=1)
    mask = g.opacities > 0.5
    sub = g[mask]
    assert len(sub) == int(mask.sum())
    torch.testing.assert_close(sub.means, g.means[mask])
    assert len(g[3:7]) == 4 and len(g[0]) == 1 and len(g[torch.tensor([1, 1, 2])]) == 3
    both = Gaussians.cat([g, random_gaussians(4, sh_degree=3)])
    assert len(both) == 34 and both.sh_degree == 3
    assert (both.shN[:30, 3:] == 0).all()
    with pytest.raises(InvalidGaussiansError, match="boolean mask"):
        g[torch.ones(3, dtype=torch.bool)]
    assert len(Gaussians.empty()) == 0


@given(seeds)
def test_covariances_are_symmetric_psd_with_scale_eigenvalues(seed):
    g = random_gaussians(16, seed=seed, dtype=torch.float64)
    cov = g.covariances()
    torch.testing.assert_close(cov, cov.transpose(-1, -2))
    eig = torch.linalg.eigvalsh(cov)
    torch.testing.assert_close(eig, (g.scales**2).sort(dim=1).values, rtol=1e-9, atol=1e-12)


@given(seeds)
def test_quaternion_helpers_agree(seed):
    rot = random_rotation(seed)
    q = rotmat_to_quat(rot)
    assert abs(float(q.norm()) - 1) < 1e-12
    torch.testing.assert_close(quat_to_rotmat(q), rot, rtol=0, atol=1e-12)
    rot2 = random_rotation(seed + 1)
    prod = quat_multiply(rotmat_to_quat(rot), rotmat_to_quat(rot2))
    torch.testing.assert_close(quat_to_rotmat(prod), rot @ rot2, rtol=0, atol=1e-12)


@given(seeds, st.integers(0, 3))
def test_rigid_transform_moves_covariances_and_view_dependent_colour(seed, degree):
    g = random_gaussians(12, sh_degree=degree, seed=seed, dtype=torch.float64)
    rot = random_rotation(seed + 7)
    t = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    h = g.transform(rot, t)
    torch.testing.assert_close(h.means, g.means @ rot.T + t)
    torch.testing.assert_close(h.covariances(), rot @ g.covariances() @ rot.T, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(h.quats.norm(dim=1), torch.ones(12, dtype=torch.float64))
    dirs = torch.nn.functional.normalize(torch.randn(12, 3, dtype=torch.float64), dim=1)
    before = eval_sh(g.colors, dirs)
    after = eval_sh(h.colors, dirs @ rot.T)  # the same ray, rotated with the world
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)


def test_transform_rejects_reflections():
    g = random_gaussians(3)
    with pytest.raises(InvalidGaussiansError, match="proper rotation"):
        g.transform(torch.diag(torch.tensor([1.0, 1.0, -1.0])))


@given(st.floats(0.01, 100))
def test_uniform_scaling(factor):
    g = random_gaussians(8, dtype=torch.float64)
    h = g.scaled(factor)
    torch.testing.assert_close(h.covariances(), g.covariances() * factor**2)
    torch.testing.assert_close(h.means, g.means * factor)
    with pytest.raises(InvalidGaussiansError):
        g.scaled(-1.0)
    with pytest.raises(InvalidGaussiansError):
        g.scaled(math.inf)


def test_with_sh_degree_pads_and_truncates():
    g = random_gaussians(4, sh_degree=1)
    assert g.with_sh_degree(3).shN.shape == (4, 15, 3)
    torch.testing.assert_close(g.with_sh_degree(3).with_sh_degree(1).shN, g.shN)
    assert g.with_sh_degree(0).shN.shape == (4, 0, 3)


def test_empty_set_validates_and_sanitizes():
    empty = Gaussians.empty(sh_degree=2)
    assert empty.invalid_rows().shape == (0,)
    clean, dropped = empty.sanitize()
    assert len(clean) == 0 and dropped == 0
    assert empty.validate() is empty
