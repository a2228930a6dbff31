"""Structures: cabin, village, castle, ruins, lighthouse, built from flat splat-tiled walls and roofs.

Walls are planes tiled on a grid, so a structure reads as straight edges
above the ground. Windows glow warm at night and at dusk and dawn.
"""

from __future__ import annotations

import numpy as np

from worldgen.procedural.primitives import F32, Splats, add_box, add_cylinder, add_quad, jitter_color, quat_from_z_to, rotate_z
from worldgen.procedural.terrain import Terrain

WINDOW_LIT = np.array((1.0, 0.78, 0.38), F32)
WINDOW_DARK = np.array((0.1, 0.11, 0.14), F32)
STONE = np.array((0.56, 0.55, 0.51), F32)
#: clearing radius kept free of trees around each structure kind
CLEARING = {"cabin": 6.0, "village": 17.0, "castle": 14.0, "ruins": 10.0, "lighthouse": 6.0}


def find_site(terrain: Terrain, rng: np.random.Generator, kind: str) -> tuple[float, float]:
    """A dry, fairly flat place near the middle (a lighthouse goes by the water)."""
    best, best_score = (0.0, 0.0), -np.inf
    cand = rng.uniform(-14, 14, size=(160, 2))
    if kind == "lighthouse":
        cand = rng.uniform(-30, 30, size=(400, 2))
    x, y = cand[:, 0], cand[:, 1]
    r = CLEARING[kind] * 0.5
    ring = [(x + dx, y + dy) for dx, dy in ((r, 0), (-r, 0), (0, r), (0, -r), (0, 0))]
    hs = np.stack([terrain.height(a, b) for a, b in ring])
    flat = -(hs.max(0) - hs.min(0))
    dry = np.all(hs > terrain.water_level + 0.5, axis=0)
    score = flat * 2.0 - 0.04 * np.hypot(x, y) + np.where(dry, 0.0, -100.0)
    if kind == "lighthouse":
        near = np.stack([terrain.height(x + dx, y + dy) for dx, dy in ((6, 0), (-6, 0), (0, 6), (0, -6))]).min(0)
        score = score + np.where(near < terrain.water_level, 6.0, 0.0) + 0.1 * np.hypot(x, y)
    i = int(np.argmax(score))
    if score[i] > best_score:
        best = (float(x[i]), float(y[i]))
    return best


def build_structures(terrain: Terrain, rng: np.random.Generator, *, lit: bool) -> tuple[Splats, list[tuple[float, float, float]]]:
    """The spec's structure and the clearings (x, y, radius) it needs."""
    kind = terrain.spec.structure
    out = Splats()
    if kind == "none":
        return out, []
    sx, sy = find_site(terrain, rng, kind)
    yaw = rng.uniform(0, 2 * np.pi)
    if kind == "cabin":
        _house(out, terrain, rng, (sx, sy), yaw, (5.5, 4.2, 2.6), lit=lit, wall=np.array((0.45, 0.3, 0.18), F32), roof=np.array((0.28, 0.18, 0.13), F32), chimney=True)
    elif kind == "village":
        n = int(rng.integers(4, 7))
        walls = [(0.86, 0.82, 0.72), (0.6, 0.5, 0.4), (0.45, 0.32, 0.2), (0.78, 0.74, 0.66)]
        roofs = [(0.6, 0.2, 0.14), (0.35, 0.22, 0.16), (0.3, 0.3, 0.34), (0.55, 0.3, 0.18)]
        for k in range(n):
            a = 2 * np.pi * k / n + rng.uniform(-0.3, 0.3)
            d = rng.uniform(6, 11)
            p = (sx + d * np.cos(a), sy + d * np.sin(a))
            size = (rng.uniform(4, 6.5), rng.uniform(3.5, 4.5), rng.uniform(2.4, 3.4))
            _house(out, terrain, rng, p, a + np.pi / 2 + rng.uniform(-0.2, 0.2), size, lit=lit,
                   wall=np.array(walls[k % 4], F32), roof=np.array(roofs[int(rng.integers(4))], F32), chimney=rng.uniform() < 0.5)  # fmt: skip
        _well(out, terrain, rng, (sx, sy))
    elif kind == "castle":
        _castle(out, terrain, rng, (sx, sy), yaw, lit=lit)
    elif kind == "ruins":
        _ruins(out, terrain, rng, (sx, sy), yaw)
    elif kind == "lighthouse":
        _lighthouse(out, terrain, rng, (sx, sy), yaw, lit=lit)
    return out, [(sx, sy, CLEARING[kind])]


def _ground(terrain: Terrain, xy, extent: float) -> float:
    x, y = xy
    pts = np.array([(x + dx, y + dy) for dx in (-extent, 0, extent) for dy in (-extent, 0, extent)])
    return float(terrain.height(pts[:, 0], pts[:, 1]).min())


def _windows(out: Splats, rng, center, normal, along, count: int, span: float, z: float, *, lit: bool, size=(0.7, 0.8)):
    for k in range(count):
        off = (k + 0.5) / count * span - span / 2
        lit_this = lit and rng.uniform() < 0.8
        color = WINDOW_LIT * rng.uniform(0.85, 1.0) if lit_this else WINDOW_DARK
        c = center + along * off + normal * 0.04 + np.array([0, 0, z], F32)
        add_quad(out, c, along, np.array([0, 0, 1], F32), size[0], size[1], color, rng, spacing=0.14, jitter=0.02, emissive=lit_this)


def _house(out, terrain, rng, xy, yaw, size, *, lit, wall, roof, chimney):
    out.begin("house", yaw=yaw)
    lx, ly, h = size
    z0 = _ground(terrain, xy, max(lx, ly) / 2)
    base = np.array([xy[0], xy[1], z0 - 0.6], F32)
    h_total = h + 0.6
    add_box(out, base, (lx, ly, h_total), yaw, wall, rng, top=False)
    ex, ey, ez = rotate_z(np.array([1, 0, 0], F32), yaw), rotate_z(np.array([0, 1, 0], F32), yaw), np.array([0, 0, 1], F32)
    top = base + ez * h_total
    rise = ly * 0.5 * 0.75
    slope_len = float(np.hypot(ly / 2, rise)) + 0.35
    for sign in (1, -1):
        up = -sign * ey * (ly / 2) + ez * rise
        up = up / np.linalg.norm(up)
        center = top + sign * ey * (ly / 4) + ez * (rise / 2)
        add_quad(out, center, -sign * ex, up, lx + 0.6, slope_len, roof, rng, spacing=0.2)
        # gable triangle
        gcenter = top + sign * ex * (lx / 2) + ez * (rise / 2)
        add_quad(out, gcenter, sign * ey, ez, ly, rise, wall, rng, keep=lambda u, v: np.abs(u) / (ly / 2) < 1 - (v + rise / 2) / rise)
    # door and windows on the long sides
    door_c = base + ey * (ly / 2 + 0.04) + ez * (0.6 + 1.0)
    add_quad(out, door_c, -ex, ez, 0.9, 2.0, np.array((0.25, 0.16, 0.1), F32), rng, spacing=0.15)
    n_win = max(1, int(lx // 2.5))
    for sign in (1, -1):
        _windows(out, rng, base + sign * ey * (ly / 2), sign * ey, -sign * ex, n_win, lx * 0.8, 0.6 + h * 0.55, lit=lit)
    if chimney:
        add_box(out, top + ex * lx * 0.25 + ey * ly * 0.15, (0.6, 0.6, rise + 0.9), yaw, STONE * 0.8, rng, spacing=0.15)


def _well(out, terrain, rng, xy):
    out.begin("well")
    z0 = _ground(terrain, xy, 1.0)
    add_cylinder(out, np.array([xy[0], xy[1], z0 - 0.3], F32), 0.8, 1.1, lambda t: jitter_color(rng, STONE, len(t), 0.05), rng, spacing=0.15)


def _battlements(out, rng, start, direction, length, z_top, yaw, color):
    n = int(length / 1.2)
    for k in range(n):
        if k % 2 == 0:
            c = start + direction * ((k + 0.5) * length / n) + np.array([0, 0, z_top], F32)
            add_box(out, c, (0.6, 0.6, 0.6), yaw, color, rng, spacing=0.15)


def _cone(out, rng, base, radius, height, color):
    n = int(np.pi * radius * np.hypot(radius, height) / 0.04)
    t = np.sqrt(rng.uniform(0, 1, n))  # dense near the rim
    a = rng.uniform(0, 2 * np.pi, n)
    r = radius * t
    pts = base + np.stack([r * np.cos(a), r * np.sin(a), height * (1 - t)], axis=1)
    normals = np.stack([np.cos(a) * height, np.sin(a) * height, np.full(n, radius)], axis=1)
    out.add(pts.astype(F32), np.array([0.16, 0.16, 0.02], F32), quat_from_z_to(normals), jitter_color(rng, color, n, 0.05), opacity=1.0, normals=normals / np.linalg.norm(normals, axis=1, keepdims=True))


def _tower(out, rng, base, radius, height, color, roof, *, lit):
    out.begin("tower")
    add_cylinder(out, base, radius, height, lambda t: jitter_color(rng, color, len(t), 0.05), rng)
    _cone(out, rng, base + np.array([0, 0, height], F32), radius * 1.25, radius * 1.8, roof)
    for k in range(3):
        a = 2 * np.pi * k / 3
        n = np.array([np.cos(a), np.sin(a), 0], F32)
        _windows(out, rng, base + n * radius, n, np.cross(np.array([0, 0, 1], F32), n), 1, 0.6, height * 0.7, lit=lit, size=(0.5, 0.9))


def _castle(out, terrain, rng, xy, yaw, *, lit):
    half = 7.0
    z0 = _ground(terrain, xy, half)
    center = np.array([xy[0], xy[1], z0 - 0.8], F32)
    ex, ey = rotate_z(np.array([1, 0, 0], F32), yaw), rotate_z(np.array([0, 1, 0], F32), yaw)
    wall_h = 5.5
    walls = {}
    for sign in (1, -1):
        for axis, other in ((ex, ey), (ey, ex)):
            mid = center + sign * axis * half
            wyaw = yaw if axis is ex else yaw + np.pi / 2
            walls[sign, axis is ey] = out.begin("wall", yaw=wyaw + np.pi / 2)  # long along the frame's x
            add_box(out, mid, (0.8, 2 * half, wall_h), wyaw, STONE, rng)
            _battlements(out, rng, mid - other * half, other, 2 * half, wall_h, wyaw, STONE)
    for sx in (1, -1):
        for sy in (1, -1):
            _tower(out, rng, center + sx * ex * half + sy * ey * half, 1.8, 9.0, STONE * 1.03, np.array((0.35, 0.2, 0.18), F32), lit=lit)
    out.begin("keep", yaw=yaw)
    add_box(out, center, (5.0, 5.0, 11.0), yaw, STONE * 0.95, rng)
    _battlements(out, rng, center - ex * 2.5 + ey * 2.5, ex, 5.0, 11.0, yaw, STONE)
    _windows(out, rng, center + ey * 2.5, ey, -ex, 2, 3.0, 7.5, lit=lit, size=(0.5, 1.0))
    out.resume(walls[1, True])  # the gate, in the wall it opens
    add_quad(out, center + ey * (half + 0.45) + np.array([0, 0, 2.0], F32), -ex, np.array([0, 0, 1], F32), 2.2, 2.8, np.array((0.2, 0.14, 0.09), F32), rng, spacing=0.15)


def _ruins(out, terrain, rng, xy, yaw):
    z0 = _ground(terrain, xy, 5.0)
    center = np.array([xy[0], xy[1], z0 - 0.5], F32)
    ex, ey = rotate_z(np.array([1, 0, 0], F32), yaw), rotate_z(np.array([0, 1, 0], F32), yaw)
    mossy = lambda n: jitter_color(rng, STONE, n, 0.08) * 0.95 + (rng.uniform(0, 1, (n, 1)) < 0.25) * np.array((-0.15, 0.0, -0.15), F32)  # noqa: E731
    half = 5.0
    for sign in (1, -1):
        for axis, other, wyaw in ((ex, ey, yaw + np.pi / 2), (ey, ex, yaw)):
            # a broken wall: pieces of different heights with gaps
            out.begin("wall", yaw=wyaw)  # its pieces line up along the frame's x
            for k in range(4):
                if rng.uniform() < 0.3:
                    continue
                off = (k + 0.5) / 4 * 2 * half - half
                h = rng.uniform(0.8, 4.5)
                add_box(out, center + sign * axis * half + other * off, (2.3, 0.7, h), wyaw, STONE * rng.uniform(0.85, 1.05), rng)
    for k in range(6):  # columns
        a = 2 * np.pi * k / 6
        p = center + (ex * np.cos(a) + ey * np.sin(a)) * 2.6
        out.begin("column")
        add_cylinder(out, p, 0.4, rng.uniform(1.0, 5.5), lambda t: mossy(len(t)), rng, spacing=0.18)
    for _ in range(8):  # fallen blocks
        p = center + ex * rng.uniform(-7, 7) + ey * rng.uniform(-7, 7)
        p[2] = terrain.height(np.array([p[0]]), np.array([p[1]]))[0] - 0.2
        size, turn = (rng.uniform(0.6, 1.4), rng.uniform(0.5, 0.9), rng.uniform(0.4, 0.8)), rng.uniform(0, np.pi)
        out.begin("block", yaw=turn)
        add_box(out, p, size, turn, STONE * 0.9, rng, spacing=0.15)


def _lighthouse(out, terrain, rng, xy, yaw, *, lit):
    z0 = _ground(terrain, xy, 2.0)
    base = np.array([xy[0], xy[1], z0 - 0.5], F32)
    h = 14.0
    out.begin("tower")
    stripes = lambda t: np.where((np.floor(t * 5) % 2 == 0)[:, None], np.array((0.93, 0.93, 0.9), F32), np.array((0.75, 0.12, 0.1), F32)) * rng.uniform(0.95, 1.03, (len(t), 1))  # noqa: E731
    add_cylinder(out, base, 1.7, h, stripes, rng)
    top = base + np.array([0, 0, h], F32)
    add_cylinder(out, top, 2.2, 0.3, lambda t: np.tile(np.array((0.15, 0.15, 0.15), F32), (len(t), 1)), rng, spacing=0.15)
    glow = lit or rng.uniform() < 0.0
    lamp = np.array((1.0, 0.93, 0.6), F32) if glow else np.array((0.75, 0.82, 0.85), F32)
    add_cylinder(out, top + np.array([0, 0, 0.3], F32), 1.1, 1.5, lambda t: np.tile(lamp, (len(t), 1)), rng, spacing=0.12)
    if glow:
        n = 200
        d = rng.normal(size=(n, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        out.add((top + np.array([0, 0, 1.0], F32) + d * 1.2).astype(F32), np.full(3, 0.45, F32), np.array([1, 0, 0, 0], F32), lamp, opacity=0.5, emissive=True)
    _cone(out, rng, top + np.array([0, 0, 1.8], F32), 1.5, 1.4, np.array((0.7, 0.12, 0.1), F32))
    ex = rotate_z(np.array([1, 0, 0], F32), yaw)
    _house(out, terrain, rng, (xy[0] + 4.2 * ex[0], xy[1] + 4.2 * ex[1]), yaw, (3.5, 3.0, 2.3), lit=lit, wall=np.array((0.9, 0.9, 0.86), F32), roof=np.array((0.5, 0.15, 0.12), F32), chimney=False)
