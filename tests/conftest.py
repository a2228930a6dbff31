"""Shared fixtures and hypothesis settings for the worldgen tests."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests use tiny inputs: a second thread gains nothing, and on a busy machine OpenMP's barrier costs 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_gaussians(n: int, *, sh_degree: int = 0, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Random valid Gaussians: unit quaternions, positive scales, opacities in (0, 1)."""
    from worldgen.gaussians import Gaussians
    from worldgen.sh import REST_COEFFS

    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=g, dtype=dtype) * 10,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=dtype), dim=1),
        scales=torch.rand(n, 3, generator=g, dtype=dtype) * 0.5 + 0.01,
        opacities=torch.rand(n, generator=g, dtype=dtype) * 0.98 + 0.01,
        sh0=torch.randn(n, 1, 3, generator=g, dtype=dtype),
        shN=torch.randn(n, REST_COEFFS[sh_degree], 3, generator=g, dtype=dtype) * 0.3,
    )


@pytest.fixture
def gaussians():
    return random_gaussians(200, sh_degree=3)
