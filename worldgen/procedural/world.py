"""`build_world(spec, seed=...)`: one procedural world as `Gaussians`, deterministic in its seed.

Stages: light (time, weather) -> terrain -> water -> structures -> vegetation
-> ground detail -> sky -> weather; then one lighting pass shades every
non-emissive splat by its normal.
"""

from __future__ import annotations

import numpy as np
import torch

from worldgen.gaussians import Gaussians
from worldgen.procedural.primitives import F32, Splats, fbm, quat_from_z_to
from worldgen.procedural.sky import Lighting, build_sky, build_weather, lighting
from worldgen.procedural.spec import WorldSpec
from worldgen.procedural.structures import build_structures
from worldgen.procedural.terrain import HALF, Terrain
from worldgen.procedural.vegetation import build_vegetation
from worldgen.procedural.water import build_water

#: a full-detail world holds at least this many Gaussians (ground detail fills up to it)
MIN_GAUSSIANS = 110_000
LAYERS = ("terrain", "water", "structures", "vegetation", "detail", "sky", "weather")


def build_world_layers(spec: WorldSpec, *, seed: int = 0) -> dict[str, Gaussians]:
    """The world split by what each part is (keys in `LAYERS` order), each lit and ready to cat."""
    layers, light = build_world_splats(spec, seed=seed)
    return {name: to_gaussians(splats, light) for name, splats in layers.items()}


def build_world_splats(spec: WorldSpec, *, seed: int = 0) -> tuple[dict[str, Splats], Lighting]:
    """The world's splats by layer (keys in `LAYERS` order), before lighting, each tagged with its parts,
    and the light that `to_gaussians` shades them with."""
    rng = np.random.default_rng([seed, 0x5EED])
    light = lighting(spec, rng)
    terrain = Terrain(spec, seed, rng)
    parts: dict[str, Splats] = {}
    parts["terrain"] = terrain.build(rng)
    parts["water"] = build_water(terrain, light, rng)
    lit_windows = spec.time in ("night", "sunset", "dawn") or spec.weather in ("rain", "fog") and spec.time != "day"
    parts["structures"], clearings = build_structures(terrain, rng, lit=lit_windows or spec.time == "night")
    parts["vegetation"] = build_vegetation(terrain, rng, clearings=clearings)
    parts["sky"] = build_sky(spec, light, rng)
    parts["weather"] = build_weather(spec, light, terrain.height, rng)
    have = sum(len(p) for p in parts.values())
    parts["detail"] = _ground_detail(terrain, rng, max(4000, MIN_GAUSSIANS - have))
    return {name: parts[name] for name in LAYERS}, light


def build_world(spec: WorldSpec, *, seed: int = 0) -> Gaussians:
    """A full-detail world (>= `MIN_GAUSSIANS` Gaussians, sky dome included)."""
    return Gaussians.cat(list(build_world_layers(spec, seed=seed).values()))


def _ground_detail(terrain: Terrain, rng: np.random.Generator, n: int) -> Splats:
    """Small pebbles, tufts and ripples lying on the ground: texture that also fills the budget."""
    out = Splats()
    out.begin("terrain")
    x, y = rng.uniform(-HALF, HALF, (2, n))
    z = terrain.height(x, y)
    normals = terrain.normals(x, y)
    col = terrain.colors(z, normals, x, y)
    grain = fbm(x * 4, y * 4, terrain.seed + 3, scale=1.0, octaves=2)[:, None]
    col = col * (0.9 + 0.18 * grain) * rng.uniform(0.88, 1.08, (n, 1))
    wet = z < terrain.water_level - 0.05
    col[wet] *= 0.55
    size = rng.uniform(0.08, 0.2, n)
    scales = np.stack([size, size * rng.uniform(0.4, 1.0, n), np.full(n, 0.02)], axis=1)
    tilt = normals + rng.normal(0, 0.1, (n, 3))
    out.add(np.stack([x, y, z + 0.02], axis=1).astype(F32), scales, quat_from_z_to(tilt), col, opacity=0.9, normals=normals)
    return out


def to_gaussians(splats: Splats, light: Lighting) -> Gaussians:
    """Shade `splats` under `light` (Lambert and sky light on their normals; emissive ones as they are)."""
    a = splats.arrays()
    color = a["colors"]
    if len(color):
        lambert = np.clip(a["normals"] @ light.sun_dir, 0, 1)[:, None]
        sky_light = 0.75 + 0.25 * a["normals"][:, 2:3]
        shaded = color * (light.ambient_rgb * sky_light + light.sun_rgb * lambert * 0.85)
        color = np.where(a["emissive"][:, None], color, shaded)
    t = lambda v: torch.from_numpy(np.ascontiguousarray(v, dtype=F32))  # noqa: E731
    return Gaussians.from_rgb(
        t(a["means"]), t(np.clip(color, 0, 1)), t(np.maximum(a["scales"], 1e-4)), t(a["opacities"]), t(a["quats"])
    )
