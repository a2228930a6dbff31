"""Water surfaces: flat splats at the water level wherever the ground lies below it.

Water colour depends on the biome (turquoise lagoon, murky swamp, deep lake
blue) and mirrors some of the sky; it is emissive so that the lighting pass
leaves the reflection alone.
"""

from __future__ import annotations

import numpy as np

from worldgen.procedural.primitives import F32, Splats, fbm
from worldgen.procedural.sky import Lighting
from worldgen.procedural.terrain import FAR_RADIUS, HALF, Terrain

WATER_COLORS = {
    "beach": (0.12, 0.55, 0.62),
    "swamp": (0.2, 0.24, 0.14),
    "tundra": (0.22, 0.34, 0.42),
    "mountains": (0.1, 0.3, 0.4),
    "desert": (0.14, 0.42, 0.5),
    "canyon": (0.2, 0.38, 0.4),
}
DEFAULT_WATER = (0.1, 0.27, 0.42)


def water_albedo(biome: str) -> np.ndarray:
    """The body colour of water in a biome. [3]"""
    return np.asarray(WATER_COLORS.get(biome, DEFAULT_WATER), F32)


def build_water(terrain: Terrain, light: Lighting, rng: np.random.Generator, *, grid: int = 160) -> Splats:
    """Splats on the plane z = water level over every wet cell (and to the horizon for an ocean)."""
    out = Splats()
    out.begin("water")
    spec = terrain.spec
    if spec.water == "none" and spec.biome not in ("beach", "swamp"):
        return out
    step = 2 * HALF / grid
    g = (np.arange(grid) + 0.5) * step - HALF
    x, y = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    sizes = np.full(x.shape, step, F32)
    if spec.water == "ocean" or spec.biome == "beach":
        n_ring = 5000
        r = np.sqrt(rng.uniform((HALF * 0.95) ** 2, FAR_RADIUS**2, n_ring))
        a = rng.uniform(0, 2 * np.pi, n_ring)
        fx, fy = r * np.cos(a), r * np.sin(a)
        keep = (np.abs(fx) > HALF - 1) | (np.abs(fy) > HALF - 1)
        x, y = np.concatenate([x, fx[keep]]), np.concatenate([y, fy[keep]])
        sizes = np.concatenate([sizes, np.full(int(keep.sum()), np.sqrt(np.pi * FAR_RADIUS**2 / n_ring) * 1.1, F32)])
    depth = terrain.water_level - terrain.height(x, y)
    wet = depth > -0.02
    x, y, sizes, depth = x[wet], y[wet], sizes[wet], depth[wet]
    n = len(x)
    if n == 0:
        return out
    body = water_albedo(spec.biome)
    shallow = np.clip(depth / 1.2, 0, 1)[:, None]
    col = body * (0.75 + 0.25 * (1 - shallow)) + (1 - shallow) * 0.12 * np.array((0.6, 0.55, 0.35), F32)
    ripple = fbm(x * 3.0, y * 0.7, terrain.seed + 9, scale=1.5, octaves=2)[:, None]
    lit = light.ambient_rgb * 0.9 + light.sun_rgb * 0.45 * max(float(light.sun_dir[2]), 0.2)
    col = col * lit * 1.15 + 0.16 * light.horizon_rgb + 0.08 * light.zenith_rgb + 0.06 * ripple * light.horizon_rgb
    z = np.full(n, terrain.water_level, F32)
    scales = np.stack([sizes * 0.75, sizes * 0.75, np.full(n, 0.02, F32)], axis=1)
    quats = np.tile(np.array([1, 0, 0, 0], F32), (n, 1))
    out.add(np.stack([x, y, z], axis=1).astype(F32), scales, quats, np.clip(col, 0, 1), opacity=0.92, emissive=True)
    return out
