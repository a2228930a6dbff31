"""The torch rasterizer against its slow twin, forward and backward, and its behaviour at the edges."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import random_gaussians
from worldgen.errors import InvalidGaussiansError, UsageError
from worldgen.gaussians import FIELDS, Gaussians
from worldgen.render import Cameras, RasterConfig, render
from worldgen.render.rasterize import ALPHA_MAX, _render_reference

BG = torch.tensor([0.1, 0.2, 0.3])


def scene(n: int = 40, *, seed: int = 0, sh_degree: int = 3, dtype=torch.float64) -> Gaussians:
    """Random Gaussians packed in front of `camera()`, large enough to overlap."""
    g = random_gaussians(n, sh_degree=sh_degree, seed=seed, dtype=dtype)
    return g.replace(means=g.means * 0.3, scales=g.scales * 2)


def camera(width: int = 37, height: int = 21, *, dtype=torch.float64) -> Cameras:
    return Cameras.look_at([0.0, -12.0, 3.0], [0.0, 0.0, 0.0], fov_deg=60, width=width, height=height, dtype=dtype)


def reference(g: Gaussians, cams: Cameras, **kw):
    return _render_reference(g, cams.viewmats[0], cams.Ks[0], cams.width, cams.height, background=BG, **kw)


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_forward_matches_reference_float64(sh_degree, seed):
    g, cams = scene(seed=seed, sh_degree=sh_degree), camera()
    out = render(g, cams, background=BG, mode="rgb+depth")
    colors, alphas, depths = reference(g, cams)
    assert 0.05 < float(alphas.mean()) < 0.999  # the scene covers part of the image, not all or nothing
    torch.testing.assert_close(out.colors[0], colors, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.alphas[0], alphas, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.depths[0], depths, atol=1e-8, rtol=0)


def test_forward_matches_reference_float32():
    g, cams = scene(dtype=torch.float32), camera(dtype=torch.float32)
    out = render(g, cams, background=BG, mode="rgb+depth")
    colors, alphas, depths = reference(g.to(dtype=torch.float64), camera())
    torch.testing.assert_close(out.colors[0].double(), colors, atol=2e-4, rtol=0)
    torch.testing.assert_close(out.alphas[0].double(), alphas, atol=2e-4, rtol=0)
    torch.testing.assert_close(out.depths[0].double(), depths, atol=2e-3, rtol=1e-4)


def test_saturated_pixels_stop_like_the_reference():
    # many nearly opaque layers: every pixel reaches the transmittance floor and stops early
    n = 60
    g = Gaussians.from_rgb(
        means=torch.stack([torch.zeros(n), torch.linspace(-3, 3, n), torch.zeros(n)], 1).double(),
        rgb=torch.rand(n, 3, generator=torch.Generator().manual_seed(3)).double(),
        scales=torch.full((n, 3), 20.0, dtype=torch.float64),
        opacities=torch.full((n,), 0.95, dtype=torch.float64),
    )
    cams = camera()
    out = render(g, cams, background=BG)
    colors, alphas, _ = reference(g, cams)
    assert float(alphas.min()) > 1 - 1e-3
    torch.testing.assert_close(out.colors[0], colors, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.alphas[0], alphas, atol=1e-10, rtol=0)


def test_alpha_is_capped():
    g = Gaussians.from_rgb(
        torch.zeros(1, 3), torch.ones(1, 3), torch.full((1, 3), 30.0), torch.ones(1)
    )  # one fully opaque Gaussian filling the view
    out = render(g, Cameras.look_at([0, -10, 0], [0, 0, 0], width=16, height=16))
    assert float(out.alphas.max()) == pytest.approx(ALPHA_MAX, abs=1e-6)


@pytest.mark.parametrize("field", FIELDS)
def test_backward_matches_reference(field):
    g, cams = scene(n=30, sh_degree=2), camera(width=29, height=19)
    weights = torch.linspace(-1, 1, cams.width * cams.height * 3, dtype=torch.float64).reshape(cams.height, cams.width, 3)

    def grad_of(fn):
        leaf = getattr(g, field).clone().requires_grad_(True)
        colors, alphas, depths = fn(g.replace(**{field: leaf}))
        loss = (colors * weights).sum() + (alphas**2).sum() + 0.01 * depths.sum()
        loss.backward()
        return leaf.grad

    def fast(gg):
        out = render(gg, cams, background=BG, mode="rgb+depth")
        return out.colors[0], out.alphas[0], out.depths[0]

    got, want = grad_of(fast), grad_of(lambda gg: reference(gg, cams))
    assert float(want.abs().max()) > 0  # the loss depends on this field
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize(
    "config",
    [RasterConfig(chunk_elements=1, first_slab=1, max_slab=3), RasterConfig(tile_size=16), RasterConfig(tile_size=5)],
)
def test_tiles_chunks_and_slabs_do_not_change_the_image(config):
    g, cams = scene(n=120, seed=4), camera(width=70, height=45)
    a = render(g, cams, background=BG)
    b = render(g, cams, background=BG, config=config)
    torch.testing.assert_close(a.colors, b.colors, atol=1e-12, rtol=0)
    torch.testing.assert_close(a.alphas, b.alphas, atol=1e-12, rtol=0)


@settings(max_examples=12)
@given(
    seed=st.integers(0, 10_000),
    position=st.tuples(st.floats(-15, 15), st.floats(-15, 15), st.floats(-15, 15)),
    fov=st.floats(20, 120),
    size=st.tuples(st.integers(1, 24), st.integers(1, 24)),
)
def test_fast_path_equals_reference_for_any_camera(seed, position, fov, size):
    if math.dist(position, (0.0, 0.0, 0.0)) < 0.5:
        return
    g = scene(n=12, seed=seed, sh_degree=seed % 4)
    cams = Cameras.look_at(position, [0.0, 0.0, 0.0], fov_deg=fov, width=size[0], height=size[1], dtype=torch.float64)
    out = render(g, cams, background=BG, mode="rgb+depth")
    colors, alphas, depths = reference(g, cams)
    torch.testing.assert_close(out.colors[0], colors, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.alphas[0], alphas, atol=1e-9, rtol=0)
    torch.testing.assert_close(out.depths[0], depths, atol=1e-7, rtol=0)


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000))
def test_input_order_does_not_matter(seed):
    g, cams = scene(n=25, seed=seed % 7), camera(width=20, height=12)
    perm = torch.randperm(len(g), generator=torch.Generator().manual_seed(seed))
    a, b = render(g, cams), render(g[perm], cams)
    torch.testing.assert_close(a.colors, b.colors, atol=1e-9, rtol=0)


@settings(max_examples=15)
@given(angle=st.floats(-math.pi, math.pi), shift=st.lists(st.floats(-20, 20), min_size=3, max_size=3))
def test_moving_world_and_camera_together_changes_nothing(angle, shift):
    g, cams = scene(n=25, seed=2, sh_degree=2), camera(width=20, height=12)
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    t = torch.tensor(shift, dtype=torch.float64)
    moved = g.transform(rot, t)
    motion = torch.eye(4, dtype=torch.float64)
    motion[:3, :3], motion[:3, 3] = rot, t
    cams_moved = Cameras(cams.viewmats @ torch.linalg.inv(motion), cams.Ks, cams.width, cams.height)
    a, b = render(g, cams), render(moved, cams_moved)
    torch.testing.assert_close(a.colors, b.colors, atol=1e-6, rtol=0)


@settings(max_examples=20)
@given(seed=st.integers(0, 1000), w=st.integers(1, 40), h=st.integers(1, 40))
def test_outputs_are_in_range(seed, w, h):
    out = render(scene(n=15, seed=seed), camera(w, h), background=BG, mode="rgb+depth")
    assert out.colors.shape == (1, h, w, 3) and out.alphas.shape == (1, h, w, 1)
    assert float(out.alphas.min()) >= 0 and float(out.alphas.max()) <= 1
    assert float(out.colors.min()) >= 0
    assert float(out.depths.min()) >= 0
    assert torch.isfinite(out.expected_depths).all()


def test_empty_world_renders_the_background():
    out = render(Gaussians.empty(), camera(dtype=torch.float32), background=[0.2, 0.4, 0.6], mode="rgb+depth")
    assert out.colors.shape == (1, 21, 37, 3)
    torch.testing.assert_close(out.colors[0, 5, 5], torch.tensor([0.2, 0.4, 0.6]))
    assert float(out.alphas.abs().max()) == 0.0 and float(out.depths.abs().max()) == 0.0


def test_camera_facing_away_sees_nothing():
    g = scene(dtype=torch.float32)
    away = Cameras.look_at([0.0, -12.0, 3.0], [0.0, -30.0, 3.0], width=16, height=16)
    out = render(g, away, background=BG)
    assert float(out.alphas.max()) == 0.0
    torch.testing.assert_close(out.colors[0, 0, 0], BG)


def test_gaussians_behind_the_far_plane_are_culled():
    g, cams = scene(dtype=torch.float32), camera(dtype=torch.float32)
    assert float(render(g, cams, config=RasterConfig(far_plane=1.0)).alphas.max()) == 0.0


def test_other_size_rescales_the_intrinsics():
    g, cams = scene(), camera(width=40, height=20)
    small = render(g, cams, 20, 10)
    assert small.colors.shape == (1, 10, 20, 3)
    same_fov = render(g, camera(width=20, height=10))  # the same field of view built at the smaller size
    torch.testing.assert_close(small.colors, same_fov.colors, atol=1e-12, rtol=0)
    assert float(small.alphas.max()) > 0


def test_several_cameras_render_each_view():
    g = scene()
    two = Cameras.look_at([[0.0, -12.0, 3.0], [12.0, 0.0, 3.0]], [0.0, 0.0, 0.0], width=20, height=12, dtype=torch.float64)
    out = render(g, two)
    torch.testing.assert_close(out.colors[1:], render(g, two[1]).colors)
    assert not torch.allclose(out.colors[0], out.colors[1])


@pytest.mark.parametrize("size", [(0, 10), (10, 0), (-5, 10), (100_000, 10)])
def test_absurd_image_sizes_are_usage_errors(size):
    with pytest.raises(UsageError):
        render(scene(), camera(), *size)


def test_bad_arguments_are_typed_errors():
    g, cams = scene(), camera()
    with pytest.raises(UsageError):
        render(g, cams, backend="vulkan")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        render(g, cams, mode="depth")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        render(g, cams, background=[1.0, 0.0])
    with pytest.raises(InvalidGaussiansError):
        render("world.ply", cams)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(UsageError):
            render(g, cams, backend="gsplat")


def test_auto_backend_renders_cpu_tensors_with_torch():
    g = scene(dtype=torch.float32)
    a = render(g, camera(dtype=torch.float32), backend="auto")
    b = render(g, camera(dtype=torch.float32), backend="torch")
    torch.testing.assert_close(a.colors, b.colors)
