"""Vegetation: trees (oak, birch, pine, palm, willow, cactus), bushes, rocks, grass and flowers.

Each tree is a trunk of elongated splats and a canopy of many small,
anisotropic, randomly turned leaf splats in clumps; leaf colour follows the
season (autumn reds and golds, spring blossom) and snow settles on top.
"""

from __future__ import annotations

import numpy as np

from worldgen.procedural.primitives import F32, Splats, jitter_color, quat_from_z_to, random_quats
from worldgen.procedural.terrain import Terrain

FOOTPRINT = 31.0  # vegetation lies within [-FOOTPRINT, FOOTPRINT]^2

# biome -> (species with weights), bushes per tree, grass blades (sparse, dense)
SPECIES = {
    "temperate_forest": ({"oak": 0.65, "birch": 0.35}, 0.5, (5000, 9000)),
    "pine_forest": ({"pine": 0.9, "birch": 0.1}, 0.3, (2500, 4000)),
    "desert": ({"cactus": 0.7, "shrub": 0.3}, 0.8, (0, 0)),
    "tundra": ({"pine": 0.6, "rock": 0.4}, 0.4, (0, 0)),
    "meadow": ({"oak": 0.7, "birch": 0.3}, 1.2, (9000, 18000)),
    "beach": ({"palm": 1.0}, 0.6, (1500, 3000)),
    "mountains": ({"pine": 0.75, "rock": 0.25}, 0.4, (2500, 5000)),
    "canyon": ({"shrub": 0.6, "cactus": 0.4}, 0.6, (0, 0)),
    "swamp": ({"willow": 0.8, "oak": 0.2}, 0.7, (3000, 6000)),
}
TREE_COUNTS = {"none": 0, "sparse": 12, "dense": 60}

LEAF = {
    "summer": [(0.2, 0.4, 0.11), (0.26, 0.47, 0.14), (0.17, 0.35, 0.1)],
    "autumn": [(0.86, 0.42, 0.08), (0.74, 0.17, 0.07), (0.9, 0.7, 0.14), (0.62, 0.32, 0.1)],
    "spring": [(0.42, 0.66, 0.2), (0.36, 0.6, 0.18), (0.96, 0.72, 0.8), (0.97, 0.95, 0.93)],
}
PINE = (0.1, 0.24, 0.12)
BARK = (0.3, 0.22, 0.15)
SNOW = np.array((0.94, 0.95, 0.98), F32)


def build_vegetation(terrain: Terrain, rng: np.random.Generator, *, clearings: list[tuple[float, float, float]]) -> Splats:
    """Trees, bushes, rocks, grass and flowers for `terrain.spec` (none when vegetation is "none").

    clearings: (x, y, radius) discs where nothing tall grows (around structures).
    """
    spec = terrain.spec
    out = Splats()
    if spec.vegetation == "none":
        return out
    species, bushes_per_tree, grass = SPECIES[spec.biome]
    n_trees = TREE_COUNTS[spec.vegetation]
    if spec.biome in ("meadow", "desert", "canyon", "tundra", "beach"):
        n_trees = n_trees // 2 + 2
    sites = _place(terrain, rng, n_trees, min_dist=3.0 if spec.vegetation == "dense" else 6.0, clearings=clearings)
    names, weights = list(species), np.array(list(species.values()))
    snowy = spec.weather == "snow" or spec.biome == "tundra"
    for x, y in sites:
        kind = str(rng.choice(names, p=weights / weights.sum()))
        base = np.array([x, y, terrain.height(np.array([x]), np.array([y]))[0] - 0.1], F32)
        out.begin(PART_KIND[kind])
        _TREES[kind](out, base, rng, spec.season, snowy)
    bush_sites = _place(terrain, rng, int(len(sites) * bushes_per_tree) + 2, min_dist=1.5, clearings=clearings)
    for x, y in bush_sites:
        base = np.array([x, y, terrain.height(np.array([x]), np.array([y]))[0]], F32)
        if spec.biome in ("desert", "canyon"):
            out.begin("bush")
            _shrub(out, base, rng, spec.season, snowy)
        elif spec.biome in ("tundra", "mountains"):
            out.begin("rock")
            _rock(out, base, rng, spec.season, snowy)
        else:
            out.begin("bush")
            _bush(out, base, rng, spec.season, snowy)
    n_grass = grass[0 if spec.vegetation == "sparse" else 1]
    if n_grass and not snowy:
        out.begin("terrain")  # grass belongs to the ground's tiles
        _grass(out, terrain, rng, n_grass, clearings)
    if spec.biome == "swamp":
        out.begin("water")  # lily pads, to the water's tiles
        _lily_pads(out, terrain, rng)
    return out


def _place(terrain: Terrain, rng, n: int, *, min_dist: float, clearings) -> list[tuple[float, float]]:
    if n <= 0:
        return []
    cand = rng.uniform(-FOOTPRINT, FOOTPRINT, size=(n * 6, 2))
    ok = terrain.is_dry(cand[:, 0], cand[:, 1], margin=0.4)
    normals = terrain.normals(cand[:, 0], cand[:, 1])
    ok &= normals[:, 2] > 0.8
    for cx, cy, r in clearings:
        ok &= np.hypot(cand[:, 0] - cx, cand[:, 1] - cy) > r
    chosen: list[tuple[float, float]] = []
    for x, y in cand[ok]:
        if all((x - a) ** 2 + (y - b) ** 2 > min_dist**2 for a, b in chosen):
            chosen.append((float(x), float(y)))
            if len(chosen) == n:
                break
    return chosen


def _leaf_colors(rng, season: str, n: int, *, palette=None) -> np.ndarray:
    palette = palette or LEAF[season]
    if season == "spring" and palette is LEAF["spring"]:
        pick = 2 + int(rng.integers(2)) if rng.uniform() < 0.35 else int(rng.integers(2))
    else:
        pick = int(rng.integers(len(palette)))
    base = np.asarray(palette[pick], F32)
    cols = jitter_color(rng, base, n, 0.07)
    if season == "autumn":  # mix in a neighbouring hue per leaf
        other = np.asarray(palette[int(rng.integers(len(palette)))], F32)
        mix = rng.uniform(0, 0.5, (n, 1))
        cols = cols * (1 - mix) + other * mix
    return cols


def _canopy(
    out: Splats, center: np.ndarray, radii: np.ndarray, n: int, colors: np.ndarray, rng, snowy: bool, *, clumps: int = 5,
    leaf: tuple[float, float, float] = (0.26, 0.15, 0.035), droop: float = 0.0,
) -> None:
    """A canopy of `n` leaf splats in `clumps` ellipsoidal clumps around `center`."""
    cc = center + rng.normal(size=(clumps, 3)) * radii * 0.45
    idx = rng.integers(clumps, size=n)
    local = rng.normal(size=(n, 3))
    local /= np.linalg.norm(local, axis=1, keepdims=True)
    local *= rng.uniform(0.55, 1.0, (n, 1)) ** 0.5
    pts = cc[idx] + local * radii * 0.62
    if droop:
        pts[:, 2] -= droop * rng.uniform(0, 1, n) ** 2
    rel = (pts - center) / radii
    normals = rel / np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-6)
    shade = (0.62 + 0.38 * np.clip(0.5 + 0.5 * normals[:, 2:3], 0, 1)) * (0.8 + 0.2 * np.linalg.norm(rel, axis=1, keepdims=True).clip(0, 1))
    cols = colors * shade
    if snowy:
        s = np.clip((normals[:, 2:3] - 0.2) * 1.6, 0, 1) * 0.85
        cols = cols * (1 - s) + SNOW * s
    scales = np.asarray(leaf, F32) * rng.uniform(0.7, 1.3, (n, 1))
    if droop:
        scales = scales[:, [1, 2, 0]] * np.array([1, 1, 2.2], F32)  # hanging strands: long in z
        quats = quat_from_z_to(np.tile([[0, 0, 1.0]], (n, 1)) + rng.normal(0, 0.15, (n, 3)))
    else:
        quats = random_quats(rng, n)
    out.add(pts.astype(F32), scales, quats, cols, opacity=rng.uniform(0.85, 1.0, n), normals=normals)


def _trunk(out: Splats, base: np.ndarray, height: float, radius: float, color, rng, *, lean: np.ndarray | None = None) -> np.ndarray:
    """A trunk of vertical splats around a (leaning) axis; returns the top point. [3]"""
    n_up = max(3, int(height / 0.2))
    n_around = 6
    t = (np.arange(n_up) + 0.5) / n_up
    lean = np.zeros(3, F32) if lean is None else lean
    axis_pts = base + np.outer(t, np.array([0, 0, height], F32)) + np.outer(t**2, lean)
    a = np.arange(n_around) / n_around * 2 * np.pi
    tt, aa = np.meshgrid(t, a, indexing="ij")
    r = radius * (1 - 0.45 * tt.ravel())
    offs = np.stack([np.cos(aa.ravel()) * r, np.sin(aa.ravel()) * r, np.zeros_like(r)], axis=1)
    pts = np.repeat(axis_pts, n_around, axis=0) + offs
    normals = offs / np.maximum(np.linalg.norm(offs, axis=1, keepdims=True), 1e-6)
    cols = jitter_color(rng, np.asarray(color, F32), len(pts), 0.08)
    direction = np.tile((np.array([0, 0, height]) + 2 * lean * 0.5)[None], (len(pts), 1))
    scales = np.stack([r * 0.55, r * 0.55, np.full_like(r, height / n_up * 0.8)], axis=1)
    out.add(pts.astype(F32), scales, quat_from_z_to(direction), cols, opacity=1.0, normals=normals)
    return (base + np.array([0, 0, height], F32) + lean).astype(F32)


def _oak(out, base, rng, season, snowy):
    h = rng.uniform(5.0, 8.5)
    top = _trunk(out, base, h * 0.6, rng.uniform(0.2, 0.32), BARK, rng)
    n = int(rng.integers(380, 560))
    radii = np.array([1.0, 1.0, 0.8], F32) * h * rng.uniform(0.3, 0.38)
    _canopy(out, top + np.array([0, 0, radii[2] * 0.6], F32), radii, n, _leaf_colors(rng, season, n), rng, snowy, clumps=6)


def _birch(out, base, rng, season, snowy):
    h = rng.uniform(6.0, 9.5)
    top = _trunk(out, base, h * 0.8, rng.uniform(0.12, 0.18), (0.85, 0.83, 0.78), rng)
    n = int(rng.integers(260, 380))
    radii = np.array([0.9, 0.9, 1.6], F32) * h * 0.17
    palette = [(0.45, 0.6, 0.2), (0.38, 0.55, 0.18)] if season == "summer" else None
    if season == "autumn":
        palette = [(0.92, 0.76, 0.2), (0.88, 0.64, 0.15)]
    _canopy(out, top - np.array([0, 0, radii[2] * 0.3], F32), radii, n, _leaf_colors(rng, season, n, palette=palette), rng, snowy, clumps=4)


def _pine(out, base, rng, season, snowy):
    h = rng.uniform(6.0, 12.0)
    _trunk(out, base, h * 0.95, rng.uniform(0.15, 0.25), (0.28, 0.2, 0.14), rng)
    n = int(rng.integers(420, 620))
    t = rng.uniform(0.12, 1.0, n) ** 0.8
    tiers = 6
    tier = np.floor(t * tiers) / tiers
    r_max = h * 0.24 * (1 - t) ** 0.85 * (0.75 + 0.25 * (t * tiers - np.floor(t * tiers)))
    a = rng.uniform(0, 2 * np.pi, n)
    r = r_max * np.sqrt(rng.uniform(0.3, 1.0, n))
    pts = base + np.stack([r * np.cos(a), r * np.sin(a), h * t - 0.25 * r], axis=1)
    normals = np.stack([np.cos(a), np.sin(a), np.full(n, 0.8)], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    cols = jitter_color(rng, np.asarray(PINE, F32) * rng.uniform(0.85, 1.15), n, 0.06) * (0.75 + 0.25 * (r / np.maximum(r_max, 1e-3)))[:, None]
    cols = cols * (0.85 + 0.3 * tier[:, None] / 1.0).clip(0, 1.2)
    if snowy:
        s = (rng.uniform(0, 1, (n, 1)) < 0.45) * 0.85
        cols = cols * (1 - s) + SNOW * s
    outward = np.stack([np.cos(a), np.sin(a), np.full(n, -0.35)], axis=1)
    scales = np.array([0.07, 0.07, 0.38], F32) * rng.uniform(0.7, 1.3, (n, 1))
    out.add(pts.astype(F32), scales, quat_from_z_to(outward + rng.normal(0, 0.2, (n, 3))), cols, opacity=0.97, normals=normals)


def _palm(out, base, rng, season, snowy):
    h = rng.uniform(6.0, 9.0)
    lean = np.append(rng.normal(0, 1.2, 2), 0).astype(F32)
    top = _trunk(out, base, h, 0.2, (0.5, 0.4, 0.28), rng, lean=lean)
    fronds = int(rng.integers(7, 11))
    for k in range(fronds):
        a = 2 * np.pi * k / fronds + rng.uniform(-0.2, 0.2)
        length = rng.uniform(2.6, 3.6)
        s = np.linspace(0.05, 1, 22)
        d = np.array([np.cos(a), np.sin(a), 0], F32)
        spine = top + np.outer(s * length, d) + np.outer(0.9 * s - 1.6 * s**2, [0, 0, 1.0])
        side = np.cross(d, [0, 0, 1.0])
        pts = np.concatenate([spine + np.outer(w * (1 - s) * 0.6, side) for w in (-1, -0.5, 0.5, 1)])
        m = len(pts)
        cols = jitter_color(rng, np.array((0.22, 0.48, 0.16), F32), m, 0.08)
        out.add(pts.astype(F32), np.array([0.22, 0.07, 0.02], F32), quat_from_z_to(np.tile(np.append(side * 0.3, 1.0), (m, 1))), cols, opacity=0.95)


def _willow(out, base, rng, season, snowy):
    h = rng.uniform(5.0, 8.0)
    top = _trunk(out, base, h * 0.65, rng.uniform(0.25, 0.38), (0.24, 0.2, 0.15), rng)
    n = int(rng.integers(450, 600))
    radii = np.array([1.2, 1.2, 0.6], F32) * h * 0.33
    palette = [(0.24, 0.32, 0.13), (0.3, 0.36, 0.14), (0.2, 0.27, 0.12)]
    if season == "autumn":
        palette = [(0.55, 0.45, 0.15), (0.45, 0.35, 0.12)]
    _canopy(out, top + np.array([0, 0, 0.5], F32), radii, n, _leaf_colors(rng, season, n, palette=palette), rng, snowy, clumps=5, droop=h * 0.35)


def _cactus(out, base, rng, season, snowy):
    h = rng.uniform(2.0, 4.5)
    green = np.array((0.3, 0.47, 0.24), F32)
    _column(out, base, h, 0.28, green, rng)
    for _ in range(int(rng.integers(0, 3))):
        a = rng.uniform(0, 2 * np.pi)
        d = np.array([np.cos(a), np.sin(a), 0], F32)
        z0 = rng.uniform(0.35, 0.6) * h
        arm_base = base + np.array([0, 0, z0], F32) + d * 0.75
        _column(out, arm_base - d * 0.5 + np.array([0, 0, -0.1], F32), 0.3, 0.18, green, rng, axis=d)
        _column(out, arm_base, rng.uniform(0.8, 1.4), 0.2, green, rng)


def _column(out, base, length, radius, color, rng, axis=None):
    axis = np.array([0, 0, 1.0], F32) if axis is None else np.asarray(axis, F32)
    n_up, n_around = max(3, int(length / 0.12)), 10
    t = (np.arange(n_up) + 0.5) / n_up
    a = np.arange(n_around) / n_around * 2 * np.pi
    tmp = np.array([1.0, 0, 0]) if abs(axis[2]) > 0.9 else np.array([0, 0, 1.0])
    u = np.cross(axis, tmp)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    tt, aa = (q.ravel() for q in np.meshgrid(t, a, indexing="ij"))
    normals = np.outer(np.cos(aa), u) + np.outer(np.sin(aa), v)
    pts = base + np.outer(tt * length, axis) + normals * radius
    ridges = 0.85 + 0.15 * np.cos(aa * 5)[:, None]
    out.add(pts.astype(F32), np.array([radius * 0.4, radius * 0.4, length / n_up * 0.8], F32), quat_from_z_to(np.tile(axis, (len(pts), 1))), jitter_color(rng, color, len(pts), 0.05) * ridges, opacity=1.0, normals=normals)


def _bush(out, base, rng, season, snowy):
    r = rng.uniform(0.5, 1.1)
    n = int(rng.integers(60, 120))
    cols = _leaf_colors(rng, season if season != "spring" else "summer", n) * 0.9
    _canopy(out, base + np.array([0, 0, r * 0.5], F32), np.array([r, r, r * 0.7], F32), n, cols, rng, snowy, clumps=3, leaf=(0.18, 0.11, 0.03))


def _shrub(out, base, rng, season, snowy):
    r = rng.uniform(0.4, 0.8)
    n = int(rng.integers(40, 80))
    cols = jitter_color(rng, np.array((0.45, 0.42, 0.24), F32), n, 0.1)
    _canopy(out, base + np.array([0, 0, r * 0.4], F32), np.array([r, r, r * 0.6], F32), n, cols, rng, snowy, clumps=3, leaf=(0.14, 0.05, 0.03))


def _rock(out, base, rng, season, snowy):
    r = rng.uniform(0.4, 1.3)
    n = int(rng.integers(40, 90))
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d[:, 2] = np.abs(d[:, 2])
    pts = base + d * r * np.array([1.2, 1.0, 0.7])
    cols = jitter_color(rng, np.array((0.45, 0.44, 0.43), F32), n, 0.06) * (0.7 + 0.3 * d[:, 2:3])
    if snowy:
        s = np.clip(d[:, 2:3] - 0.4, 0, 1) * 1.5
        cols = cols * (1 - s.clip(0, 1)) + SNOW * s.clip(0, 1)
    out.add(pts.astype(F32), np.array([r * 0.35, r * 0.35, 0.05], F32), quat_from_z_to(d), cols, opacity=1.0, normals=d)


def _grass(out: Splats, terrain: Terrain, rng, n: int, clearings) -> None:
    spec = terrain.spec
    x, y = rng.uniform(-FOOTPRINT - 4, FOOTPRINT + 4, (2, n))
    z = terrain.height(x, y)
    normals = terrain.normals(x, y)
    keep = terrain.is_dry(x, y, margin=0.15) & (normals[:, 2] > 0.82)
    x, y, z = x[keep], y[keep], z[keep]
    m = len(x)
    base = {"summer": (0.3, 0.5, 0.15), "autumn": (0.6, 0.52, 0.24), "spring": (0.4, 0.64, 0.2)}[spec.season]
    if spec.biome == "swamp":
        base = (0.35, 0.42, 0.18)
    if spec.biome == "beach":
        base = (0.45, 0.55, 0.25)
    height = rng.uniform(0.12, 0.3, m) * (1.6 if spec.biome == "swamp" else 1.0)
    cols = jitter_color(rng, np.asarray(base, F32), m, 0.1) * (0.8 + 0.25 * rng.uniform(0, 1, (m, 1)))
    tilt = np.stack([rng.normal(0, 0.3, m), rng.normal(0, 0.3, m), np.ones(m)], axis=1)
    out.add(
        np.stack([x, y, z + height * 0.9], axis=1).astype(F32),
        np.stack([np.full(m, 0.03), np.full(m, 0.012), height], axis=1),
        quat_from_z_to(tilt),
        cols,
        opacity=0.95,
    )
    if spec.biome in ("meadow", "temperate_forest") and spec.season != "autumn":
        k = m // (4 if spec.season == "spring" else 8)
        petals = np.array([(0.92, 0.2, 0.18), (0.97, 0.85, 0.2), (0.97, 0.97, 0.95), (0.6, 0.35, 0.8), (0.35, 0.5, 0.92)], F32)
        cols = petals[rng.integers(len(petals), size=k)] * rng.uniform(0.85, 1.05, (k, 1))
        pts = np.stack([x[:k], y[:k], z[:k] + height[:k] * 1.9], axis=1)
        out.add(pts.astype(F32), np.array([0.07, 0.07, 0.03], F32), random_quats(rng, k) * 0 + np.array([1, 0, 0, 0], F32), cols, opacity=1.0)


def _lily_pads(out: Splats, terrain: Terrain, rng) -> None:
    x, y = rng.uniform(-FOOTPRINT, FOOTPRINT, (2, 2500))
    wet = terrain.height(x, y) < terrain.water_level - 0.1
    x, y = x[wet][:500], y[wet][:500]
    m = len(x)
    pts = np.stack([x, y, np.full(m, terrain.water_level + 0.02)], axis=1)
    out.add(pts.astype(F32), np.array([0.22, 0.22, 0.01], F32), np.array([1, 0, 0, 0], F32), jitter_color(rng, np.array((0.2, 0.4, 0.15), F32), m, 0.1), opacity=1.0)


_TREES = {
    "oak": _oak, "birch": _birch, "pine": _pine, "palm": _palm, "willow": _willow, "cactus": _cactus,
    "shrub": _shrub, "rock": _rock,
}  # fmt: skip
#: the part kind of each species (`worldgen.procedural.parts.KINDS`)
PART_KIND = {"oak": "tree", "birch": "tree", "pine": "tree", "palm": "tree", "willow": "tree", "cactus": "cactus",
             "shrub": "bush", "rock": "rock"}  # fmt: skip
