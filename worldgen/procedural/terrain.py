"""Terrain: a height field from layered noise, shaped by biome and water, coloured by height and slope.

The ground lies near z = 0; water (lake, river, ocean) is carved below
`WATER_LEVEL`. Beyond the terrain grid a ring of larger splats carries the
far hills to the horizon.
"""

from __future__ import annotations

import numpy as np

from worldgen.procedural.primitives import F32, Splats, fbm, quat_from_z_to, smoothstep
from worldgen.procedural.spec import WorldSpec

WATER_LEVEL = 0.0
#: the detailed terrain covers [-HALF, HALF]^2 (the 64 m footprint plus a margin)
HALF = 40.0
GRID = 240  # detailed terrain splats per side
FAR_RADIUS = 150.0

# per biome: ground colours (low, mid, high), rock
PALETTES = {
    "temperate_forest": ((0.30, 0.42, 0.16), (0.26, 0.40, 0.14), (0.34, 0.38, 0.2), (0.42, 0.4, 0.37)),
    "pine_forest": ((0.24, 0.32, 0.15), (0.22, 0.3, 0.16), (0.3, 0.31, 0.24), (0.4, 0.39, 0.37)),
    "desert": ((0.86, 0.72, 0.48), (0.9, 0.76, 0.52), (0.84, 0.66, 0.42), (0.68, 0.48, 0.32)),
    "tundra": ((0.86, 0.89, 0.93), (0.9, 0.92, 0.96), (0.94, 0.95, 0.98), (0.45, 0.45, 0.47)),
    "meadow": ((0.42, 0.58, 0.2), (0.46, 0.62, 0.22), (0.5, 0.6, 0.26), (0.5, 0.48, 0.42)),
    "beach": ((0.93, 0.86, 0.66), (0.5, 0.62, 0.28), (0.42, 0.55, 0.24), (0.55, 0.5, 0.45)),
    "mountains": ((0.34, 0.44, 0.22), (0.42, 0.43, 0.36), (0.93, 0.94, 0.97), (0.46, 0.44, 0.42)),
    "canyon": ((0.74, 0.44, 0.26), (0.82, 0.5, 0.3), (0.88, 0.64, 0.42), (0.66, 0.34, 0.22)),
    "swamp": ((0.27, 0.28, 0.15), (0.3, 0.33, 0.17), (0.33, 0.36, 0.2), (0.34, 0.32, 0.27)),
}
SAND = np.array((0.86, 0.78, 0.58), F32)
SNOW = np.array((0.94, 0.95, 0.98), F32)


class Terrain:
    """The height field of one world: `height(x, y)` in meters, vectorised."""

    def __init__(self, spec: WorldSpec, seed: int, rng: np.random.Generator):
        self.spec = spec
        self.seed = seed
        self.water_level = WATER_LEVEL
        # where water goes (drawn once so that every query agrees)
        self.lake_center = rng.uniform(-9, 9, 2)
        self.lake_radius = rng.uniform(10, 14)
        self.river_angle = rng.uniform(0, np.pi)
        self.river_phase = rng.uniform(0, 2 * np.pi)
        self.river_offset = rng.uniform(-8, 8)
        self.ocean_angle = rng.uniform(0, 2 * np.pi)
        self.canyon_angle = rng.uniform(0, np.pi)

    # -- shape ----------------------------------------------------------------------------

    def _base(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        b, s = self.spec.biome, self.seed
        r = np.hypot(x, y)
        n = fbm(x, y, s, scale=28.0)
        if b == "meadow":
            return 1.2 + 2.2 * n
        if b == "temperate_forest":
            return 1.5 + 3.5 * n + 1.2 * fbm(x, y, s + 7, scale=9.0, octaves=3)
        if b == "pine_forest":
            return 2.0 + 4.5 * n + 4.0 * fbm(x, y, s + 3, scale=30.0, ridged=True)
        if b == "desert":
            u = x * np.cos(0.7) + y * np.sin(0.7)
            dunes = np.abs(np.sin(u / 7.0 + 2.5 * fbm(x, y, s + 5, scale=25.0)))
            return 0.8 + 2.6 * (1 - dunes) ** 1.5 + 1.2 * n
        if b == "tundra":
            return 1.3 + 2.6 * n
        if b == "beach":
            island = 5.0 * (1 - smoothstep(6, 34, r + 6 * fbm(x, y, s + 2, scale=14.0)))
            return island - 1.6 + 0.6 * n
        if b == "mountains":
            ridges = fbm(x, y, s + 11, scale=34.0, ridged=True, octaves=6)
            ramp = smoothstep(8, 60, r)
            return 1.5 + 2.0 * n + (6 + 38 * ramp) * ridges * (0.35 + 0.65 * ramp)
        if b == "canyon":
            u = -x * np.sin(self.canyon_angle) + y * np.cos(self.canyon_angle)
            w = x * np.cos(self.canyon_angle) + y * np.sin(self.canyon_angle)
            center = 6 * np.sin(w / 13.0 + self.river_phase)
            d = np.abs(u - center) + 3 * fbm(x, y, s + 4, scale=9.0)
            h = 15.0 * smoothstep(5, 13, d) + 3.0 * smoothstep(24, 34, d) + 1.0 * n
            terraced = np.floor(h / 3.2) * 3.2
            return 0.4 + terraced + 0.35 * (h - terraced)
        if b == "swamp":
            return 0.35 + 0.9 * n
        raise AssertionError(b)

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground height at (x, y) after water has been carved. [n], [n] -> [n]"""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        h = self._base(x, y)
        water = self.spec.water
        bed = self.water_level - 1.6
        if water == "lake":
            c = self.lake_center
            d = np.hypot(x - c[0], y - c[1]) + 3.0 * fbm(x, y, self.seed + 21, scale=8.0)
            s = smoothstep(self.lake_radius - 4, self.lake_radius + 5, d)
            h = np.minimum(h, h * s + bed * (1 - s)) if self.spec.biome != "mountains" else h * s + bed * (1 - s)
        elif water == "river":
            a = self.river_angle
            u = -x * np.sin(a) + y * np.cos(a)
            w = x * np.cos(a) + y * np.sin(a)
            center = self.river_offset + 5.0 * np.sin(w / 11.0 + self.river_phase)
            d = np.abs(u - center)
            s = smoothstep(2.5, 7.5, d)
            h = h * s + bed * (1 - s)
        elif water == "ocean":
            if self.spec.biome == "beach":
                h = h - 1.0
            else:
                a = self.ocean_angle
                u = x * np.cos(a) + y * np.sin(a) + 4 * fbm(x, y, self.seed + 31, scale=12.0)
                drop = np.clip(u - 6.0, 0, None)
                h = np.where(u > 6.0, h * np.exp(-drop / 5.0) - 0.18 * drop, h)
        return h

    def normals(self, x: np.ndarray, y: np.ndarray, eps: float = 0.25) -> np.ndarray:
        """Unit surface normals from central differences. [n], [n] -> [n, 3]"""
        dx = (self.height(x + eps, y) - self.height(x - eps, y)) / (2 * eps)
        dy = (self.height(x, y + eps) - self.height(x, y - eps)) / (2 * eps)
        n = np.stack([-dx, -dy, np.ones_like(dx)], axis=1)
        return (n / np.linalg.norm(n, axis=1, keepdims=True)).astype(F32)

    def is_dry(self, x: np.ndarray, y: np.ndarray, margin: float = 0.3) -> np.ndarray:
        """Whether the ground at (x, y) is above the water by `margin` (when there is water). [n] bool"""
        h = self.height(x, y)
        if self.spec.water == "none" and self.spec.biome not in ("beach", "swamp"):
            return np.ones_like(h, dtype=bool)
        return h > self.water_level + margin

    # -- colour ---------------------------------------------------------------------------

    def colors(self, z: np.ndarray, normals: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Albedo by biome, height and slope (rock on steep ground, snow on high or snowy ground). [n, 3]"""
        spec = self.spec
        low, mid, high, rock = (np.asarray(c, F32) for c in PALETTES[spec.biome])
        if spec.season == "autumn" and spec.biome in ("temperate_forest", "meadow", "swamp"):
            low, mid, high = low * 0.6 + np.array((0.55, 0.42, 0.18)) * 0.4, mid * 0.55 + np.array((0.6, 0.45, 0.2)) * 0.45, high
        if spec.season == "spring" and spec.biome in ("temperate_forest", "meadow"):
            low, mid = low * 0.8 + np.array((0.42, 0.66, 0.22)) * 0.2, mid * 0.8 + np.array((0.45, 0.7, 0.25)) * 0.2
        slope = 1.0 - normals[:, 2]
        n = fbm(x, y, self.seed + 77, scale=4.0, octaves=3)[:, None]
        t = smoothstep(0.0, 6.0, z)[:, None]
        if spec.biome == "mountains":
            col = low * (1 - smoothstep(3, 10, z)[:, None]) + mid * smoothstep(3, 10, z)[:, None]
        else:
            col = low * (1 - t) + mid * t
        if spec.biome == "canyon":
            band = 0.5 + 0.5 * np.sin(z * 2.2 + 1.3 * n[:, 0])
            col = (col * (0.85 + 0.2 * band[:, None])).astype(F32)
        col = col * (1 + 0.12 * n)
        rockiness = smoothstep(0.28, 0.5, slope)[:, None]
        col = col * (1 - rockiness) + rock * (1 + 0.1 * n) * rockiness
        # sand by the water
        if spec.water != "none" or spec.biome in ("beach", "swamp"):
            shore = (1 - smoothstep(self.water_level + 0.4, self.water_level + 1.4, z))[:, None]
            shore_col = SAND if spec.biome not in ("swamp", "tundra") else np.array((0.3, 0.27, 0.18), F32)
            if spec.biome == "tundra":
                shore_col = np.array((0.5, 0.5, 0.52), F32)
            col = col * (1 - shore) + shore_col * shore
        snow = self.snow_cover(z, normals, x, y)[:, None]
        col = col * (1 - snow) + SNOW * (1 + 0.03 * n) * snow
        return np.clip(col, 0, 1).astype(F32)

    def snow_cover(self, z: np.ndarray, normals: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """How much snow lies at each point, in [0, 1]. [n]"""
        flat = smoothstep(0.55, 0.8, normals[:, 2])
        n = fbm(x, y, self.seed + 5, scale=6.0, octaves=3)
        if self.spec.weather == "snow" or self.spec.biome == "tundra":
            above = smoothstep(self.water_level - 0.1, self.water_level + 0.4, z) if self.spec.water != "none" else 1.0
            return np.clip(flat * 1.1 + 0.15 * n, 0, 1) * above
        if self.spec.biome == "mountains":
            return smoothstep(13.0, 17.0, z + 3 * n) * np.clip(flat + 0.3, 0, 1)
        return np.zeros_like(z)

    # -- splats ---------------------------------------------------------------------------

    def build(self, rng: np.random.Generator, *, grid: int = GRID) -> Splats:
        """Detailed terrain splats over the square plus the far ring to the horizon."""
        out = Splats()
        out.begin("terrain")
        step = 2 * HALF / grid
        g = (np.arange(grid) + 0.5) * step - HALF
        x, y = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
        x = x + rng.uniform(-0.3, 0.3, x.shape) * step
        y = y + rng.uniform(-0.3, 0.3, y.shape) * step
        self._emit(out, x, y, step, rng)
        # far ring: fewer, larger splats out to the horizon
        n_ring = 7000
        r = np.sqrt(rng.uniform((HALF * 0.95) ** 2, FAR_RADIUS**2, n_ring))
        a = rng.uniform(0, 2 * np.pi, n_ring)
        fx, fy = r * np.cos(a), r * np.sin(a)
        keep = (np.abs(fx) > HALF - 1) | (np.abs(fy) > HALF - 1)
        fx, fy = fx[keep], fy[keep]
        area_step = np.sqrt(np.pi * FAR_RADIUS**2 / n_ring) * (np.hypot(fx, fy) / 90.0).clip(0.6, 1.6)
        self._emit(out, fx, fy, area_step, rng)
        return out

    def _emit(self, out: Splats, x: np.ndarray, y: np.ndarray, step, rng: np.random.Generator) -> None:
        z = self.height(x, y)
        normals = self.normals(x, y, eps=float(np.mean(step)) * 0.5)
        col = self.colors(z, normals, x, y)
        col = col * rng.uniform(0.94, 1.06, size=(len(x), 1))
        stretch = 1.0 / np.clip(normals[:, 2], 0.35, 1.0)
        step = np.broadcast_to(np.asarray(step, F32), x.shape)
        scales = np.stack([step * 0.7 * stretch, step * 0.7 * stretch, np.full_like(step, 0.05) * (step / 0.33).clip(1, 10)], axis=1)
        out.add(np.stack([x, y, z], axis=1).astype(F32), scales, quat_from_z_to(normals), col, opacity=1.0, normals=normals)
