"""Parity of the torch rasterizer with gsplat's CUDA rasterizer (runs only where CUDA exists)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import random_gaussians
from worldgen.gaussians import Gaussians
from worldgen.render import Cameras, orbit_path, render

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat's rasterizer needs CUDA"),
]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def world(n: int, seed: int) -> Gaussians:
    """Ground-like and blob-like splats with view-dependent colour, float32 as gsplat wants."""
    g = random_gaussians(n, sh_degree=3, seed=seed)
    means = g.means * torch.tensor([2.0, 2.0, 0.3])
    return g.replace(means=means, scales=g.scales * 0.6, shN=g.shN * 0.5)


SCENES = [
    ("random-sh3", lambda: world(20_000, 0), (320, 240)),
    ("random-sh3-odd-size", lambda: world(5_000, 1), (173, 91)),
    ("sh0-dense", lambda: world(50_000, 2).with_sh_degree(0), (256, 256)),
]


@pytest.mark.parametrize("name,make,size", SCENES, ids=[s[0] for s in SCENES])
def test_torch_backend_matches_gsplat(name, make, size):
    g = make().to("cuda")
    width, height = size
    cams = orbit_path(g.means, 3, width=width, height=height, fov_deg=55)
    cams = Cameras(cams.viewmats.cuda(), cams.Ks.cuda(), width, height)
    bg = torch.tensor([0.2, 0.3, 0.4], device="cuda")
    with torch.no_grad():
        ref = render(g, cams, backend="gsplat", background=bg, mode="rgb+depth")
        got = render(g, cams, backend="torch", background=bg, mode="rgb+depth")
    assert float(ref.alphas.mean()) > 0.05  # the scene is in view
    for c in range(len(cams)):
        assert psnr(got.colors[c], ref.colors[c]) >= 40.0, f"view {c}: PSNR {psnr(got.colors[c], ref.colors[c]):.1f} dB"
        assert psnr(got.alphas[c], ref.alphas[c]) >= 40.0
        assert float((got.alphas[c] - ref.alphas[c]).abs().mean()) < 1e-3
    near = ref.alphas > 0.5
    rel = ((got.depths - ref.depths).abs() / ref.depths.clamp_min(1e-3))[near]
    assert float(rel.median()) < 1e-3


def test_gradients_agree_with_gsplat():
    g = world(2_000, 3).to("cuda")
    cams = orbit_path(g.means, 1, width=96, height=64)
    cams = Cameras(cams.viewmats.cuda(), cams.Ks.cuda(), 96, 64)
    grads = {}
    for backend in ("gsplat", "torch"):
        leaves = {f: getattr(g, f).clone().requires_grad_(True) for f in ("means", "scales", "opacities", "sh0")}
        out = render(g.replace(**leaves), cams, backend=backend)
        weights = torch.linspace(0, 1, out.colors.numel(), device="cuda").reshape(out.colors.shape)
        ((out.colors * weights).sum() + out.alphas.sum()).backward()
        grads[backend] = {f: leaf.grad for f, leaf in leaves.items()}
    for f in grads["torch"]:
        a, b = grads["torch"][f], grads["gsplat"][f]
        cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)
        assert float(cos) > 0.99, f"{f}: cosine similarity {float(cos):.4f}"


def test_auto_picks_gsplat_on_cuda():
    g = world(1_000, 4).to("cuda")
    cams = orbit_path(g.means, 1, width=64, height=64)
    cams = Cameras(cams.viewmats.cuda(), cams.Ks.cuda(), 64, 64)
    with torch.no_grad():
        auto = render(g, cams)
        ref = render(g, cams, backend="gsplat")
    torch.testing.assert_close(auto.colors, ref.colors)
