"""worldgen.mesh: the collider's ground and solids on procedural worlds, the triangle budget, sky and weather,
the preview's colours, the .glb's frame and validity, and `worldgen mesh` on bad input."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch
import trimesh
from hypothesis import given
from hypothesis import strategies as st

from tests._node_tools import gltf_errors, validate_gltf
from worldgen import mesh as wm
from worldgen.errors import InvalidGaussiansError, UsageError
from worldgen.gaussians import Gaussians, rotmat_to_quat
from worldgen.procedural.spec import WorldSpec

FOOTPRINT = 32.0  # half the 64 m footprint

# -- helpers ---------------------------------------------------------------------------------


def terrain_of(spec: WorldSpec, seed: int):
    """The `Terrain` that `build_world_layers(spec, seed=seed)` builds, made the same way (its rng's first draws)."""
    from worldgen.procedural.sky import lighting
    from worldgen.procedural.terrain import Terrain

    rng = np.random.default_rng([seed, 0x5EED])
    lighting(spec, rng)
    return Terrain(spec, seed, rng)


def hits_under(mesh: trimesh.Trimesh, xy: np.ndarray, *, chunk: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every crossing of the vertical line through each point with the mesh: (heights [k], normal z [k]) per point."""
    tri = mesh.vertices[mesh.faces]  # [F, 3, 3]
    normal_z = mesh.face_normals[:, 2]
    lo, hi = tri[:, :, :2].min(1), tri[:, :, :2].max(1)
    out = []
    for start in range(0, len(xy), chunk):
        p = xy[start : start + chunk]
        near = ((p[:, None] >= lo[None]) & (p[:, None] <= hi[None])).all(2)
        pi, fi = np.nonzero(near)
        a, b, c = tri[fi, 0], tri[fi, 1], tri[fi, 2]
        e1, e2, q = b[:, :2] - a[:, :2], c[:, :2] - a[:, :2], p[pi] - a[:, :2]
        det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
        ok = np.abs(det) > 1e-12
        det = np.where(ok, det, 1.0)
        u = (q[:, 0] * e2[:, 1] - e2[:, 0] * q[:, 1]) / det
        v = (e1[:, 0] * q[:, 1] - q[:, 0] * e1[:, 1]) / det
        inside = ok & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9)
        z = a[:, 2] + u * (b[:, 2] - a[:, 2]) + v * (c[:, 2] - a[:, 2])
        for k in range(len(p)):
            mine = inside & (pi == k)
            out.append((z[mine], normal_z[fi[mine]]))
    return out


def walkable_height(mesh: trimesh.Trimesh, xy: np.ndarray) -> np.ndarray:
    """The lowest upward-facing surface of the mesh above each point (the ground a solid stands on). [n, 2] -> [n]"""
    return np.array([z[nz > 0].min() if (nz > 0).any() else np.nan for z, nz in hits_under(mesh, xy)])


def flat_splats(centres: np.ndarray, normals: np.ndarray, size: float, rgb) -> Gaussians:
    """Opaque flat splats (std `size` in their plane, 1 cm across it) facing `normals`. [n, 3], [n, 3]"""
    z = torch.tensor(normals, dtype=torch.float64)
    z = z / z.norm(dim=1, keepdim=True)
    helper = torch.where(z[:, 2:3].abs() < 0.9, torch.tensor([0.0, 0, 1]).double(), torch.tensor([1.0, 0, 0]).double())
    x = torch.nn.functional.normalize(torch.cross(helper, z, dim=1), dim=1)
    rot = torch.stack([x, torch.cross(z, x, dim=1), z], dim=2)  # columns: local x, y, z
    n = len(centres)
    return Gaussians.from_rgb(
        torch.tensor(centres, dtype=torch.float32),
        torch.tensor(rgb, dtype=torch.float32).expand(n, 3).clone(),
        torch.tensor([size, size, 0.01], dtype=torch.float32).expand(n, 3).clone(),
        torch.full((n,), 0.95),
        rotmat_to_quat(rot).float(),
    )


def slope_and_box_world() -> tuple[Gaussians, dict]:
    """A green ground sloping 10% along x over 24 m, with a red closed box (4 x 3 x 3 m, walls and a roof) on it."""
    g = np.arange(-12, 12, 0.25) + 0.125
    x, y = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    ground = np.stack([x, y, 0.1 * x], 1)
    tilt = np.tile([-0.1, 0.0, 1.0], (len(x), 1))
    parts = [flat_splats(ground, tilt, 0.2, (0.2, 0.7, 0.2))]
    box = {"centre": (2.0, -1.0), "size": (4.0, 3.0, 3.0)}
    (cx, cy), (lx, ly, h) = box["centre"], box["size"]
    base = 0.1 * (cx - lx / 2)  # the lowest ground under the box; its walls go a little deeper
    step = 0.12
    for sign in (1, -1):
        for axis in (0, 1):
            along, across = (ly, lx) if axis == 0 else (lx, ly)
            u, w = np.meshgrid(np.arange(-along / 2, along / 2 + 1e-6, step), np.arange(base - 0.2, base + h, step), indexing="ij")
            pts = np.zeros((u.size, 3))
            pts[:, axis] = (cx, cy)[axis] + sign * across / 2
            pts[:, 1 - axis] = (cx, cy)[1 - axis] + u.ravel()
            pts[:, 2] = w.ravel()
            normal = np.zeros(3)
            normal[axis] = sign
            parts.append(flat_splats(pts, np.tile(normal, (len(pts), 1)), 0.1, (0.8, 0.1, 0.1)))
    u, v = np.meshgrid(np.arange(-lx / 2, lx / 2 + 1e-6, step), np.arange(-ly / 2, ly / 2 + 1e-6, step), indexing="ij")
    roof = np.stack([cx + u.ravel(), cy + v.ravel(), np.full(u.size, base + h)], 1)
    parts.append(flat_splats(roof, np.tile([0.0, 0, 1], (len(roof), 1)), 0.1, (0.8, 0.1, 0.1)))
    return Gaussians.cat(parts), box


def glb_json(data: bytes) -> dict:
    """The JSON chunk of a binary glTF."""
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20 : 20 + length])


# -- the ground's compositing against its slow twin ----------------------------------------


@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 300))
def test_median_depth_matches_its_reference(seed, nodes, pairs):
    rng = np.random.default_rng(seed)
    node = rng.integers(0, nodes, pairs)
    alpha = rng.uniform(0, 1, pairs) ** rng.uniform(0.3, 3)
    depth = rng.normal(0, 3, pairs)
    fast = wm._median_depth(node, alpha, depth)
    slow = wm._median_depth_reference(node, alpha, depth)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


# -- a synthetic world: exact answers ----------------------------------------------------------


@pytest.fixture(scope="module")
def slope_box():
    g, box = slope_and_box_world()
    return g, box, wm.preview(g, max_triangles=20_000)


def test_the_ground_of_a_slope_is_the_slope(slope_box):
    _, box, mesh = slope_box
    rng = np.random.default_rng(0)
    xy = rng.uniform(-10, 10, (300, 2))
    (cx, cy), (lx, ly, _) = box["centre"], box["size"]
    xy = xy[(np.abs(xy[:, 0] - cx) > lx / 2 + 0.5) | (np.abs(xy[:, 1] - cy) > ly / 2 + 0.5)]
    np.testing.assert_allclose(walkable_height(mesh, xy), 0.1 * xy[:, 0], atol=0.05)


def test_a_closed_box_on_the_ground_is_one_closed_solid_rooted_in_it(slope_box):
    _, box, mesh = slope_box
    (cx, cy), (lx, ly, h) = box["centre"], box["size"]
    solids = [c for c in mesh.split(only_watertight=False) if c.is_watertight]
    assert len(solids) == 1, f"{len(solids)} closed solids for one box"
    lo, hi = solids[0].bounds
    np.testing.assert_allclose(hi[:2] - lo[:2], (lx, ly), atol=0.6)
    np.testing.assert_allclose((lo[:2] + hi[:2]) / 2, (cx, cy), atol=0.3)
    assert hi[2] == pytest.approx(0.1 * (cx - lx / 2) + h, abs=0.4)  # its roof
    assert lo[2] < 0.1 * (cx + lx / 2) - 0.1  # rooted below the ground on its high side too
    assert solids[0].volume == pytest.approx(lx * ly * h, rel=0.3)  # filled, not a hollow shell


def test_the_preview_takes_the_colours_of_the_splats_near_it(slope_box):
    _, box, mesh = slope_box
    rgb = mesh.visual.vertex_colors[:, :3].astype(float) / 255
    (cx, cy), (lx, ly, h) = box["centre"], box["size"]
    v = mesh.vertices
    on_box = (np.abs(v[:, 0] - cx) < lx / 2 + 0.3) & (np.abs(v[:, 1] - cy) < ly / 2 + 0.3) & (v[:, 2] > 0.1 * v[:, 0] + 0.5)
    far = np.hypot(v[:, 0] - cx, v[:, 1] - cy) > 5
    assert on_box.sum() > 8 and far.sum() > 100
    np.testing.assert_allclose(np.median(rgb[on_box], 0), (0.8, 0.1, 0.1), atol=0.05)
    np.testing.assert_allclose(np.median(rgb[far], 0), (0.2, 0.7, 0.2), atol=0.05)


def test_the_glb_is_y_up_and_valid(slope_box, tmp_path):
    _, _, mesh = slope_box
    path = tmp_path / "box.glb"
    wm.save_glb(mesh, path)
    data = path.read_bytes()
    doc = glb_json(data)
    position = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    lo, hi = mesh.bounds
    # the splat .glb's frame (exporters.frames, "gltf"): glTF x is our -x, y our z, z our y
    np.testing.assert_allclose(position["max"], (-lo[0], hi[2], hi[1]), atol=1e-4)
    np.testing.assert_allclose(position["min"], (-hi[0], lo[2], lo[1]), atol=1e-4)
    assert "COLOR_0" in doc["meshes"][0]["primitives"][0]["attributes"]
    back = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
    assert len(back.faces) == len(mesh.faces)
    assert gltf_errors(validate_gltf(path)) == []


def test_bad_input_is_a_typed_error():
    with pytest.raises(InvalidGaussiansError):
        wm.collider(Gaussians.empty())
    g, _ = slope_and_box_world()
    with pytest.raises(UsageError):
        wm.collider(g, max_triangles=10)
    with pytest.raises(UsageError):
        wm.build(g, "wireframe")  # type: ignore[arg-type]
    with pytest.raises(InvalidGaussiansError):
        wm.collider(g.replace(opacities=g.opacities * 2))


# -- procedural worlds ---------------------------------------------------------------------------

WORLDS = {
    "mountains": WorldSpec(biome="mountains", vegetation="sparse"),
    "canyon": WorldSpec(biome="canyon", vegetation="sparse"),
    "village": WorldSpec(biome="meadow", structure="village", vegetation="sparse"),
    "castle": WorldSpec(biome="temperate_forest", structure="castle", vegetation="sparse"),
    "forest_rain": WorldSpec(biome="temperate_forest", vegetation="dense", weather="rain", structure="cabin"),
}
_cache: dict[str, tuple] = {}


def procedural(name: str, seed: int = 0):
    """(world layers, terrain, collider) of a named procedural world, built once per test session."""
    if name not in _cache:
        from worldgen.procedural.world import build_world_layers

        spec = WORLDS[name]
        layers = build_world_layers(spec, seed=seed)
        terrain = terrain_of(spec, seed)
        detail = layers["terrain"].means.double().numpy()
        detail = detail[(np.abs(detail[:, :2]) < 36).all(1)]
        error = np.abs(terrain.height(detail[:, 0], detail[:, 1]) - detail[:, 2]).max()
        assert error < 1e-3, f"terrain_of no longer rebuilds the terrain of build_world_layers (off by {error:.2f} m)"
        _cache[name] = (layers, terrain, wm.collider(Gaussians.cat(list(layers.values()))))
    return _cache[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(WORLDS))
def test_the_collider_follows_the_terrain_and_keeps_its_budget(name):
    _, terrain, mesh = procedural(name)
    assert len(mesh.faces) <= 200_000
    xy = np.random.default_rng(1).uniform(-FOOTPRINT, FOOTPRINT, (1000, 2))
    error = np.abs(walkable_height(mesh, xy) - terrain.height(xy[:, 0], xy[:, 1]))
    within = np.mean(error <= 0.25)  # a point with no ground under it (NaN) counts as a miss
    assert within >= 0.95, f"{name}: the ground is within 0.25 m of the terrain at {within:.1%} of 1000 points"


@pytest.mark.slow
def test_each_house_of_a_village_is_a_closed_solid():
    from worldgen.procedural.world import build_world_splats

    layers, _, mesh = procedural("village")
    splats, _ = build_world_splats(WORLDS["village"], seed=0)
    a = splats["structures"].arrays()
    kinds = np.array(splats["structures"].kinds)
    houses = [a["means"][a["part"] == p] for p in np.flatnonzero(kinds == "house")]
    assert len(houses) >= 4
    solids = [c for c in mesh.split(only_watertight=False) if c.is_watertight and c.volume > 1.0]
    for k, house in enumerate(houses):
        centre = house[:, :2].mean(0)
        around = [c for c in solids if (c.bounds[0, :2] <= centre).all() and (centre <= c.bounds[1, :2]).all()]
        assert around, f"house {k} at {centre.round(1)} stands in no closed solid"
        solid = max(around, key=lambda c: c.volume)
        assert solid.bounds[1, 2] >= house[:, 2].max() - 0.5, f"house {k}: its solid stops below the roof"
        crossings = len(hits_under(solid, centre[None])[0][0])
        assert crossings == 2, f"house {k}: the line through its middle crosses its solid {crossings} times (hollow?)"


@pytest.mark.slow
@pytest.mark.parametrize("weather", ["rain", "snow", "fog"])
def test_sky_and_weather_make_no_triangles(weather):
    """A world of ground, sky and weather only: the collider is the ground and nothing else."""
    from worldgen.procedural.world import build_world_layers

    spec = WorldSpec(biome="meadow", vegetation="none", weather=weather)
    layers = build_world_layers(spec, seed=3)
    assert len(layers["weather"]) > 0 and len(layers["sky"]) > 0
    mesh = wm.collider(Gaussians.cat(list(layers.values())))
    terrain = terrain_of(spec, 3)
    above = mesh.vertices[:, 2] - terrain.height(mesh.vertices[:, 0], mesh.vertices[:, 1])
    assert np.abs(above).max() < 0.3, f"a vertex {above.max():.2f} m above the ground under {weather}"
    assert np.abs(mesh.vertices[:, :2]).max() < 45, "a triangle out under the sky dome"
    assert all(not c.is_watertight for c in mesh.split(only_watertight=False)), "a solid made of sky or weather"


@pytest.mark.slow
def test_a_world_under_rain_has_nothing_above_its_trees():
    layers, _, mesh = procedural("forest_rain")
    scene = torch.cat([layers[k].means for k in ("terrain", "structures", "vegetation")]).numpy()
    scene = scene[(np.abs(scene[:, :2]) < 40).all(1)]
    assert mesh.vertices[:, 2].max() <= scene[:, 2].max() + 0.5


@pytest.mark.slow
def test_a_smaller_budget_is_kept():
    layers, _, _ = procedural("village")
    mesh = wm.collider(Gaussians.cat(list(layers.values())), max_triangles=20_000)
    assert 15_000 <= len(mesh.faces) <= 20_000


@pytest.mark.slow
def test_the_collider_and_preview_glb_pass_the_gltf_validator(tmp_path):
    layers, _, mesh = procedural("castle")
    g = Gaussians.cat(list(layers.values()))
    for kind, m in (("collider", mesh), ("preview", wm.preview(g, max_triangles=50_000))):
        path = tmp_path / f"castle.{kind}.glb"
        wm.save_glb(m, path)
        assert gltf_errors(validate_gltf(path)) == [], kind


# -- the command ---------------------------------------------------------------------------------


def test_cli_writes_a_mesh(tmp_path, capsys):
    import exporters
    from worldgen import cli

    g, _ = slope_and_box_world()
    exporters.save(g, tmp_path / "w.ply")
    out = tmp_path / "w.glb"
    assert cli.main(["mesh", str(tmp_path / "w.ply"), "-o", str(out), "--kind", "preview", "--max-triangles", "5000"]) == 0
    assert "preview" in capsys.readouterr().out
    mesh = trimesh.load(out, force="mesh")
    assert 0 < len(mesh.faces) <= 5000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.glb", "w.ply"]  # no temporary file left behind


@pytest.mark.parametrize(
    "args",
    [
        ["missing.ply", "-o", "out.glb"],
        ["w.ply", "-o", "out.obj"],
        ["w.ply", "-o", "out.glb", "--kind", "wireframe"],
        ["w.ply", "-o", "out.glb", "--max-triangles", "5"],
        ["w.ply", "-o", "out.glb", "--voxel", "0"],
        ["broken.ply", "-o", "out.glb"],
        ["w.txt", "-o", "out.glb"],
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(args, tmp_path, capsys, monkeypatch):
    import exporters
    from worldgen import cli

    monkeypatch.chdir(tmp_path)
    g, _ = slope_and_box_world()
    exporters.save(g, tmp_path / "w.ply")
    (tmp_path / "broken.ply").write_bytes((tmp_path / "w.ply").read_bytes()[:2000])
    (tmp_path / "w.txt").write_text("not a world")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.main(["mesh", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("worldgen: error:") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
