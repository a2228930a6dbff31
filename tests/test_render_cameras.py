"""Cameras: look-at, intrinsics from a vertical FOV, and the camera paths over world-like scenes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from worldgen.errors import UsageError
from worldgen.render import Cameras, camera_path, flyover_path, intrinsics_from_fov, look_at, orbit_path, scene_bounds, walk_path

coord = st.floats(-50, 50, allow_nan=False)
point = st.tuples(coord, coord, coord)


def project(cams: Cameras, x: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates and depth of world point x in camera 0. [3]"""
    xc = cams.viewmats[0, :3, :3] @ x + cams.viewmats[0, :3, 3]
    uv = cams.Ks[0] @ xc
    return torch.stack([uv[0] / uv[2], uv[1] / uv[2], xc[2]])


@given(position=point, target=point)
@example(position=(0.0, 0.0, 10.0), target=(0.0, -1e-05, 0.0))  # just off straight down: the fallback's side
def test_look_at_centres_the_target_and_keeps_z_up(position, target):
    pos, tgt = torch.tensor(position, dtype=torch.float64), torch.tensor(target, dtype=torch.float64)
    if (tgt - pos).norm() < 1e-3:
        return
    cams = Cameras.look_at(pos, tgt, fov_deg=50, width=64, height=48, dtype=torch.float64)
    rot = cams.viewmats[0, :3, :3]
    torch.testing.assert_close(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-9, rtol=0)
    assert float(torch.linalg.det(rot)) == pytest.approx(1.0, abs=1e-9)
    u, v, depth = project(cams, tgt)
    assert float(u) == pytest.approx(32.0, abs=1e-6) and float(v) == pytest.approx(24.0, abs=1e-6)
    assert float(depth) == pytest.approx(float((tgt - pos).norm()), rel=1e-9)
    torch.testing.assert_close(cams.positions[0], pos, atol=1e-9, rtol=0)
    # the image's "down" (camera +y) never points up in the world
    assert float(rot[1] @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)) <= 1e-9


def test_up_is_up_in_the_image():
    cams = Cameras.look_at([0, -10, 0], [0, 0, 0], width=64, height=64, dtype=torch.float64)
    above = project(cams, torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    right = project(cams, torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64))
    assert float(above[1]) < 32  # higher in the world: smaller row
    assert float(right[0]) > 32  # +x is to the right when looking along +y


def test_looking_straight_down_is_well_defined():
    cams = Cameras.look_at([0, 0, 30], [0, 0, 0], dtype=torch.float64)
    assert torch.isfinite(cams.viewmats).all()
    assert float(project(cams, torch.zeros(3, dtype=torch.float64))[2]) == pytest.approx(30)


def test_intrinsics_from_vertical_fov():
    K = intrinsics_from_fov(90.0, 200, 100)
    assert float(K[1, 1]) == pytest.approx(50.0) and float(K[0, 0]) == pytest.approx(50.0)
    assert (float(K[0, 2]), float(K[1, 2])) == (100.0, 50.0)


@pytest.mark.parametrize("fov", [0.0, 180.0, -10.0, float("nan")])
def test_bad_fov_is_a_usage_error(fov):
    with pytest.raises(UsageError):
        intrinsics_from_fov(fov, 10, 10)


def test_coincident_position_and_target_is_a_usage_error():
    with pytest.raises(UsageError):
        look_at(torch.zeros(1, 3), torch.zeros(1, 3))


def world_like(n_ground: int = 4000, n_sky: int = 1000, *, ground_z: float = 0.0) -> torch.Tensor:
    """Means of a 64 m footprint whose ground rises along x, and a sky dome at 200 m. [N, 3]"""
    g = torch.Generator().manual_seed(0)
    xy = (torch.rand(n_ground, 2, generator=g) - 0.5) * 64
    ground = torch.cat([xy, ground_z + 0.1 * xy[:, :1]], 1)
    d = torch.nn.functional.normalize(torch.randn(n_sky, 3, generator=g), dim=1)
    d[:, 2] = d[:, 2].abs()
    return torch.cat([ground, 200 * d])


def test_scene_bounds_ignore_the_sky():
    b = scene_bounds(world_like())
    assert 28 < b.half_extent < 34
    assert abs(b.center[0]) < 2 and abs(b.center[1]) < 2
    assert -4 < b.ground_z < 0 and b.top_z < 4


def test_scene_bounds_of_an_empty_world_is_a_usage_error():
    with pytest.raises(UsageError):
        scene_bounds(torch.zeros(0, 3))


def test_orbit_circles_the_world_looking_at_it():
    means = world_like()
    cams = orbit_path(means, 8, width=32, height=24)
    assert len(cams) == 8
    pos = cams.positions
    radius = (pos[:, :2] - pos[:, :2].mean(0)).norm(dim=1)
    assert float(pos[:, :2].mean(0).norm()) < 2  # centred on the footprint
    assert float(radius.std()) < 1e-3 and float(radius.mean()) > 32  # outside the footprint, at constant distance
    assert bool((pos[:, 2] > 5).all())
    for i in range(8):  # the footprint centre is in the middle third of every frame
        u, v, depth = project(cams[i], torch.zeros(3, dtype=cams.viewmats.dtype))
        assert 32 / 3 < float(u) < 64 / 3 and 0 < float(v) < 24 and float(depth) > 0


def test_walk_stays_at_eye_height_above_the_local_ground():
    means = world_like()
    cams = walk_path(means, 12, eye_height=1.7)
    pos = cams.positions
    ground_under = 0.1 * pos[:, 0]  # the test world's ground z = 0.1 x
    torch.testing.assert_close(pos[:, 2] - ground_under, torch.full((12,), 1.7), atol=0.6, rtol=0)
    assert float(pos[:, :2].norm(dim=1).max()) < 32  # inside the footprint


def test_flyover_crosses_the_footprint_from_above():
    cams = flyover_path(world_like(), 10)
    pos = cams.positions
    assert float(pos[0, 0]) < -25 and float(pos[-1, 0]) > 25
    assert bool((pos[:, 2] > 10).all())
    forward = cams.viewmats[:, 2, :3]  # camera +z in world coordinates
    assert bool((forward[:, 2] < 0).all()) and bool((forward[:, 0] > 0).all())  # ahead and down


def test_camera_path_by_name_and_bad_names():
    means = world_like()
    assert len(camera_path("orbit", means, 3)) == 3
    with pytest.raises(UsageError):
        camera_path("spiral", means, 3)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        orbit_path(means, 0)


def test_paths_work_for_a_tiny_scene_far_from_the_origin():
    means = torch.randn(50, 3, generator=torch.Generator().manual_seed(1)) + torch.tensor([500.0, 0.0, 0.0])
    for kind in ("orbit", "walk", "flyover"):
        cams = camera_path(kind, means, 4)
        assert torch.isfinite(cams.viewmats).all()
        assert float((cams.positions[:, 0] - 500).abs().max()) < 20


def test_cameras_validate_their_shapes():
    with pytest.raises(UsageError):
        Cameras(torch.eye(4)[None], torch.eye(3)[None].expand(2, 3, 3), 8, 8)
    with pytest.raises(UsageError):
        Cameras(torch.eye(4)[None], torch.eye(3)[None], 0, 8)
    with pytest.raises(UsageError):
        Cameras(torch.full((1, 4, 4), math.nan), torch.eye(3)[None], 8, 8)
