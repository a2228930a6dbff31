"""Sky and weather: the light of a time of day, the sky dome, sun or moon, stars, clouds, snow, rain, fog.

The dome (radius `DOME_RADIUS`, beyond the 64 m footprint) is part of the
world so that an exported file looks complete in any viewer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldgen.procedural.primitives import F32, Splats, fibonacci_sphere, quat_from_z_to, random_quats
from worldgen.procedural.spec import WorldSpec

DOME_RADIUS = 180.0
#: splats on the full sphere of the dome (about 60% of them lie above the lowest ring we keep)
DOME_POINTS = 7000


@dataclass(frozen=True)
class Lighting:
    """How a time of day and weather light the world (all colours rgb in [0, 1])."""

    sun_dir: np.ndarray  # [3] unit, towards the sun (or moon at night)
    sun_rgb: np.ndarray  # [3] direct light
    ambient_rgb: np.ndarray  # [3] sky light
    zenith_rgb: np.ndarray  # [3]
    horizon_rgb: np.ndarray  # [3]
    glow_rgb: np.ndarray  # [3] sky colour around the sun
    fog_rgb: np.ndarray  # [3]


_TIMES = {
    # elevation deg, sun, ambient, zenith, horizon, glow
    "day": (52, (1.0, 0.95, 0.85), (0.52, 0.56, 0.64), (0.22, 0.45, 0.85), (0.68, 0.8, 0.95), (0.9, 0.93, 0.97)),
    "sunset": (5, (1.0, 0.55, 0.25), (0.36, 0.28, 0.34), (0.16, 0.17, 0.4), (0.98, 0.5, 0.22), (1.0, 0.42, 0.12)),
    "dawn": (8, (1.0, 0.72, 0.6), (0.42, 0.38, 0.48), (0.33, 0.42, 0.7), (0.98, 0.72, 0.72), (1.0, 0.83, 0.6)),
    "night": (38, (0.16, 0.19, 0.3), (0.07, 0.09, 0.17), (0.01, 0.015, 0.05), (0.05, 0.07, 0.15), (0.1, 0.12, 0.2)),
}


def lighting(spec: WorldSpec, rng: np.random.Generator) -> Lighting:
    """The light of `spec.time` under `spec.weather`, with a sun azimuth drawn from `rng`."""
    elev, sun, amb, zen, hor, glow = (np.asarray(v, F32) if i else v for i, v in enumerate(_TIMES[spec.time]))
    az = rng.uniform(0, 2 * np.pi)
    e = np.radians(elev)
    sun_dir = np.array([np.cos(e) * np.cos(az), np.cos(e) * np.sin(az), np.sin(e)], F32)
    night = spec.time == "night"
    if spec.weather in ("rain", "snow", "fog"):
        grey = np.array({"rain": (0.5, 0.53, 0.57), "snow": (0.76, 0.78, 0.82), "fog": (0.78, 0.8, 0.82)}[spec.weather], F32)
        level = {"day": 1.0, "dawn": 0.8, "sunset": 0.75, "night": 0.12}[spec.time]
        keep = 0.3 if spec.weather == "fog" else 0.35
        zen = keep * zen + (1 - keep) * grey * level
        hor = keep * hor + (1 - keep) * grey * level
        glow = 0.5 * glow + 0.5 * hor
        sun = sun * 0.3
        amb = amb * (1.12 if spec.weather != "rain" else 0.95)
    fog = 0.4 * hor + 0.6 * np.array((0.8, 0.82, 0.84), F32) * (0.12 if night else 1.0)
    return Lighting(sun_dir, sun, amb, zen, hor, glow, fog.astype(F32))


def sky_color(light: Lighting, dirs: np.ndarray) -> np.ndarray:
    """Colour of the sky seen along unit directions. [n, 3] -> [n, 3]"""
    el = np.clip(dirs[:, 2], -1, 1)
    t = np.clip(el, 0, 1) ** 0.55
    base = (1 - t)[:, None] * light.horizon_rgb + t[:, None] * light.zenith_rgb
    cosang = dirs @ light.sun_dir
    glow = np.clip((cosang - 0.55) / 0.45, 0, 1) ** 2.5 * 0.85
    out = base * (1 - glow[:, None]) + light.glow_rgb * glow[:, None]
    below = el < 0
    out[below] = out[below] * (1 + 2.5 * el[below, None]).clip(0.55, 1)
    return out.astype(F32)


def build_sky(spec: WorldSpec, light: Lighting, rng: np.random.Generator) -> Splats:
    """Dome, sun or moon, stars and clouds, all emissive."""
    sky = Splats()
    sky.begin("sky")  # the dome, sun or moon and stars: cut into patches by direction
    dirs = fibonacci_sphere(DOME_POINTS)
    dirs = dirs[dirs[:, 2] > -0.28]
    spacing = DOME_RADIUS * np.sqrt(4 * np.pi / DOME_POINTS)
    sky.add(
        dirs * DOME_RADIUS,
        np.array([spacing * 0.75, spacing * 0.75, 0.6], F32),
        quat_from_z_to(-dirs),
        sky_color(light, dirs) * rng.uniform(0.985, 1.015, size=(len(dirs), 1)),
        opacity=1.0,
        normals=-dirs,
        emissive=True,
    )
    cloudy = spec.weather in ("rain", "snow", "fog")
    # sun or moon: a disc of splats facing the centre
    if not cloudy or spec.weather == "fog":
        radius = {"day": 5.0, "sunset": 8.0, "dawn": 7.0, "night": 4.5}[spec.time]
        color = {"day": (1.0, 0.98, 0.9), "sunset": (1.0, 0.62, 0.3), "dawn": (1.0, 0.85, 0.6), "night": (0.93, 0.93, 0.86)}
        _add_disc(sky, light.sun_dir, DOME_RADIUS - 12, radius, np.array(color[spec.time], F32), rng, fade=spec.weather == "fog")
    if spec.time in ("night", "dawn") and not cloudy:
        n = 1600 if spec.time == "night" else 250
        d = rng.normal(size=(n * 2, 3)).astype(F32)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        d = d[d[:, 2] > 0.08][:n]
        if spec.time == "dawn":
            d = d[d @ light.sun_dir < 0.0]
        bright = rng.uniform(0.55, 1.0, size=(len(d), 1)) ** 2
        tint = np.array((0.95, 0.95, 1.0), F32) + rng.normal(0, 0.05, size=(len(d), 3))
        size = rng.uniform(0.25, 0.55, size=(len(d), 1)) * np.ones(3, F32) * np.array([1, 1, 0.2], F32)
        sky.add(d * (DOME_RADIUS - 6), size, quat_from_z_to(-d), np.clip(tint * (0.35 + 0.65 * bright), 0, 1), opacity=1.0, emissive=True)
    _add_clouds(sky, spec, light, rng)
    return sky


def _add_disc(sky: Splats, direction: np.ndarray, dist: float, radius: float, color: np.ndarray, rng, *, fade: bool) -> None:
    n = 260
    r = radius * np.sqrt(rng.uniform(0, 1, n))
    a = rng.uniform(0, 2 * np.pi, n)
    normal = -direction
    tmp = np.array([0, 0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0, 0])
    u = np.cross(direction, tmp)
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    pts = direction * dist + (r * np.cos(a))[:, None] * u + (r * np.sin(a))[:, None] * v
    sky.add(
        pts.astype(F32),
        np.array([radius * 0.22, radius * 0.22, 0.2], F32),
        quat_from_z_to(np.broadcast_to(normal, pts.shape).copy()),
        color,
        opacity=0.35 if fade else 1.0,
        emissive=True,
    )


def _add_clouds(sky: Splats, spec: WorldSpec, light: Lighting, rng: np.random.Generator) -> None:
    overcast = spec.weather in ("rain", "snow")
    n_clouds = 40 if overcast else (int(rng.integers(3, 9)) if spec.weather == "clear" else 10)
    per = 70 if overcast else 55
    centers_dir = rng.normal(size=(n_clouds, 3))
    centers_dir[:, 2] = np.abs(centers_dir[:, 2]) * 0.45 + 0.12
    centers_dir /= np.linalg.norm(centers_dir, axis=1, keepdims=True)
    if spec.weather == "clear":
        base = light.horizon_rgb * 0.35 + np.array((0.97, 0.97, 0.98)) * 0.65
        if spec.time == "night":
            base = light.horizon_rgb * 1.3
    else:
        base = (light.zenith_rgb + light.horizon_rgb) * 0.5 * (0.85 if spec.weather == "rain" else 0.95)
    for c in centers_dir:
        dist = DOME_RADIUS * rng.uniform(0.6, 0.85)
        center = c * dist
        offs = rng.normal(size=(per, 3)) * np.array([14, 14, 3.5]) * (1.4 if overcast else 1.0)
        sky.begin("cloud")
        pts = (center + offs).astype(F32)
        shade = 0.82 + 0.18 * np.clip(offs[:, 2:3] / 5 + 0.5, 0, 1)
        glow = np.clip(pts @ light.sun_dir / np.linalg.norm(pts, axis=1) - 0.6, 0, 1)[:, None] * 0.6
        color = base * shade * (1 - glow) + light.glow_rgb * glow
        sky.add(
            pts,
            rng.uniform(3.5, 7.0, size=(per, 1)) * np.array([1.4, 1.4, 0.6], F32),
            random_quats(rng, per) * np.array([1, 0, 0, 1], F32) + np.array([1e-3, 0, 0, 0], F32),
            color,
            opacity=0.55 if not overcast else 0.7,
            emissive=True,
        )


def build_weather(spec: WorldSpec, light: Lighting, ground, rng: np.random.Generator) -> Splats:
    """Falling snow, rain streaks or fog banks over the footprint (emissive: they carry their own light).

    ground: callable (x [n], y [n]) -> terrain height [n]
    """
    out = Splats()
    if spec.weather != "clear":
        out.begin(spec.weather)  # rain, snow or fog: cut into tiles over the footprint
    night = spec.time == "night"
    if spec.weather == "snow":
        n = 5000
        x, y = rng.uniform(-36, 36, n), rng.uniform(-36, 36, n)
        z = ground(x, y) + rng.uniform(0.3, 24, n)
        c = np.array((0.95, 0.96, 1.0), F32) * (0.45 if night else 1.0)
        out.add(np.stack([x, y, z], 1).astype(F32), rng.uniform(0.03, 0.06, (n, 1)) * np.ones(3, F32), random_quats(rng, n), c, opacity=0.9, emissive=True)
    elif spec.weather == "rain":
        n = 5000
        x, y = rng.uniform(-36, 36, n), rng.uniform(-36, 36, n)
        z = ground(x, y) + rng.uniform(0.2, 24, n)
        tilt = quat_from_z_to(np.tile(np.array([[0.12, 0.05, 1.0]], F32), (n, 1)))
        c = np.array((0.72, 0.76, 0.85), F32) * (0.4 if night else 1.0)
        out.add(np.stack([x, y, z], 1).astype(F32), np.array([0.012, 0.012, 0.35], F32), tilt, c, opacity=0.4, emissive=True)
    elif spec.weather == "fog":
        n = 700
        x, y = rng.uniform(-48, 48, n), rng.uniform(-48, 48, n)
        z = ground(x, y) + rng.uniform(0.5, 7, n)
        out.add(
            np.stack([x, y, z], 1).astype(F32),
            rng.uniform(2.5, 4.5, (n, 1)) * np.array([1.5, 1.5, 0.8], F32),
            random_quats(rng, n) * np.array([1, 0, 0, 1], F32) + np.array([1e-3, 0, 0, 0], F32),
            light.fog_rgb,
            opacity=rng.uniform(0.04, 0.09, n),
            emissive=True,
        )
    return out
