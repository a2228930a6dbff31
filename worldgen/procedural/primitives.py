"""Building blocks the procedural builders share: a splat buffer, noise, shapes.

Builders work in numpy (float32) and hand a `Splats` buffer to `world.py`,
which lights it and turns it into `Gaussians`. A splat's `normal` says which
way its surface faces (for lighting); `emissive` splats (sky, lit windows,
stars) keep their colour whatever the light.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

F32 = np.float32


@dataclass
class Splats:
    """A growable list of splats, all arrays float32 (emissive: bool), each tagged with the part it belongs to.

    A builder opens a part with `begin(kind)` before it adds that part's splats: a whole object
    (one tree, one house) or, for a tiled kind (`TILED`: terrain, water, sky, weather), a layer
    that `worldgen.procedural.parts` later cuts into tiles by position.
    """

    means: list[np.ndarray] = field(default_factory=list)  # [n, 3] each
    scales: list[np.ndarray] = field(default_factory=list)  # [n, 3]
    quats: list[np.ndarray] = field(default_factory=list)  # [n, 4] wxyz
    opacities: list[np.ndarray] = field(default_factory=list)  # [n]
    colors: list[np.ndarray] = field(default_factory=list)  # [n, 3] albedo in [0, 1]
    normals: list[np.ndarray] = field(default_factory=list)  # [n, 3]
    emissive: list[np.ndarray] = field(default_factory=list)  # [n] bool
    part: list[np.ndarray] = field(default_factory=list)  # [n] int32, index into `kinds`
    kinds: list[str] = field(default_factory=list)  # [P] the kind of each part
    yaws: list[float] = field(default_factory=list)  # [P] the part's heading about +Z (radians; 0: none)
    current: int = -1  # the part that `add` tags splats with

    def begin(self, kind: str, *, yaw: float = 0.0) -> int:
        """Start a new part of `kind`; the splats added from now on belong to it. Returns its index."""
        self.kinds.append(kind)
        self.yaws.append(float(yaw))
        self.current = len(self.kinds) - 1
        return self.current

    def resume(self, part: int) -> None:
        """Add to an earlier part again (a castle's gate joins the wall it stands in)."""
        if not 0 <= part < len(self.kinds):
            raise IndexError(part)
        self.current = part

    def add(
        self,
        means: np.ndarray,  # [n, 3]
        scales: np.ndarray,  # [n, 3] or [3]
        quats: np.ndarray,  # [n, 4] or [4]
        colors: np.ndarray,  # [n, 3] or [3]
        *,
        opacity: float | np.ndarray = 0.95,  # [n] or scalar
        normals: np.ndarray | None = None,  # [n, 3] or [3]; +Z when None
        emissive: bool | np.ndarray = False,
    ) -> None:
        n = len(means)
        if n == 0:
            return
        if self.current < 0:
            raise RuntimeError("Splats.add before Splats.begin: every splat belongs to a part")
        b = lambda a, w: np.broadcast_to(np.asarray(a, dtype=F32), (n, w) if w else (n,)).astype(F32)  # noqa: E731
        self.means.append(b(means, 3))
        self.scales.append(b(scales, 3))
        q = b(quats, 4)
        self.quats.append((q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)).astype(F32))
        self.colors.append(np.clip(b(colors, 3), 0.0, 1.0))
        self.opacities.append(np.clip(b(opacity, 0), 0.0, 1.0))
        self.normals.append(b((0.0, 0.0, 1.0) if normals is None else normals, 3))
        self.emissive.append(np.broadcast_to(np.asarray(emissive, dtype=bool), (n,)).copy())
        self.part.append(np.full(n, self.current, np.int32))

    def extend(self, other: Splats) -> None:
        """Append `other`'s splats and parts (its part indices shift past ours)."""
        for name in ("means", "scales", "quats", "opacities", "colors", "normals", "emissive"):
            getattr(self, name).extend(getattr(other, name))
        self.part.extend(p + len(self.kinds) for p in other.part)
        self.kinds.extend(other.kinds)
        self.yaws.extend(other.yaws)

    def __len__(self) -> int:
        return sum(len(m) for m in self.means)

    def arrays(self) -> dict[str, np.ndarray]:
        """All splats stacked: means [N,3], scales [N,3], quats [N,4], opacities [N], colors [N,3], normals [N,3],
        emissive [N] bool, part [N] int32."""
        width = {"means": 3, "scales": 3, "quats": 4, "opacities": 0, "colors": 3, "normals": 3, "emissive": 0, "part": 0}
        dtype = {"emissive": bool, "part": np.int32}
        out = {}
        for name, w in width.items():
            chunks = getattr(self, name)
            if chunks:
                out[name] = np.concatenate(chunks)
            else:
                out[name] = np.zeros((0, w) if w else (0,), dtype=dtype.get(name, F32))
        return out


# -- rotations -------------------------------------------------------------------------


def quat_from_z_to(normals: np.ndarray) -> np.ndarray:
    """Quaternions (wxyz) rotating +Z onto each unit normal. [n, 3] -> [n, 4]"""
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    w = 1.0 + n[:, 2]
    q = np.stack([w, -n[:, 1], n[:, 0], np.zeros_like(w)], axis=1)
    flip = w < 1e-6  # normal = -Z: rotate pi about X
    q[flip] = (0.0, 1.0, 0.0, 0.0)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(F32)


def quat_yaw(yaw: np.ndarray) -> np.ndarray:
    """Rotation by `yaw` radians about +Z. [n] -> [n, 4]"""
    yaw = np.asarray(yaw, dtype=F32)
    return np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=-1).astype(F32)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b. [n, 4], [n, 4] -> [n, 4]"""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    ).astype(F32)


def random_quats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniformly random unit quaternions. [n, 4]"""
    q = rng.normal(size=(n, 4))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(F32)


def rotate_z(v: np.ndarray, yaw: float) -> np.ndarray:
    """Rotate vectors about +Z by `yaw`. [..., 3] -> [..., 3]"""
    c, s = np.cos(yaw), np.sin(yaw)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([c * x - s * y, s * x + c * y, z], axis=-1).astype(F32)


# -- noise -------------------------------------------------------------------------------


def _hash2(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    h = (ix.astype(np.int64) * 374761393 + iy.astype(np.int64) * 668265263 + seed * 2147483647) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).astype(np.float64) / float(0xFFFFFF)


def value_noise(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] with unit lattice spacing. [...] -> [...]"""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    ux, uy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    a, b = _hash2(x0, y0, seed), _hash2(x0 + 1, y0, seed)
    c, d = _hash2(x0, y0 + 1, seed), _hash2(x0 + 1, y0 + 1, seed)
    return 2.0 * (a + (b - a) * ux + (c - a) * uy + (a - b - c + d) * ux * uy) - 1.0


def fbm(x: np.ndarray, y: np.ndarray, seed: int, *, octaves: int = 5, scale: float = 1.0, ridged: bool = False) -> np.ndarray:
    """Fractal sum of value noise, roughly in [-1, 1] ([0, 1] when ridged). [...] -> [...]"""
    total, amp, norm = np.zeros_like(x, dtype=np.float64), 1.0, 0.0
    f = 1.0 / scale
    for o in range(octaves):
        n = value_noise(x * f + 17.3 * o, y * f - 9.1 * o, seed + 101 * o)
        if ridged:
            n = (1.0 - np.abs(n)) ** 2
        total += amp * n
        norm += amp
        amp *= 0.5
        f *= 2.03
    return total / norm


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def jitter_color(rng: np.random.Generator, base: np.ndarray, n: int, amount: float = 0.06) -> np.ndarray:
    """`n` colours around `base` (brightness and hue jitter). [3] -> [n, 3]"""
    base = np.asarray(base, dtype=F32)
    bright = 1.0 + rng.normal(0, amount * 1.5, size=(n, 1))
    hue = rng.normal(0, amount * 0.5, size=(n, 3))
    return np.clip(base * bright + hue, 0, 1).astype(F32)


# -- surfaces ----------------------------------------------------------------------------


def rect_grid(width: float, height: float, spacing: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Cell centres (u [n], v [n]) covering a width x height rectangle centred on 0, and the cell size."""
    nu, nv = max(1, int(round(width / spacing))), max(1, int(round(height / spacing)))
    du, dv = width / nu, height / nv
    u = (np.arange(nu) + 0.5) * du - width / 2
    v = (np.arange(nv) + 0.5) * dv - height / 2
    uu, vv = np.meshgrid(u, v, indexing="ij")
    return uu.ravel().astype(F32), vv.ravel().astype(F32), du, dv


def add_quad(
    splats: Splats,
    center: np.ndarray,  # [3]
    axis_u: np.ndarray,  # [3] unit, along the width
    axis_v: np.ndarray,  # [3] unit, along the height
    width: float,
    height: float,
    color: np.ndarray,  # [3] or [n, 3] after layout
    rng: np.random.Generator,
    *,
    spacing: float = 0.22,
    opacity: float = 0.97,
    jitter: float = 0.05,
    emissive: bool = False,
    keep=None,
) -> np.ndarray:
    """Tile a flat rectangle with thin splats; returns the (u, v) of its cells. [n, 2]

    keep: optional (u [n], v [n]) -> bool [n] that cuts a shape (a gable triangle) out of the rectangle.
    """
    u, v, du, dv = rect_grid(width, height, spacing)
    if keep is not None:
        mask = keep(u, v)
        u, v = u[mask], v[mask]
    axis_u, axis_v = np.asarray(axis_u, F32), np.asarray(axis_v, F32)
    normal = np.cross(axis_u, axis_v)
    normal /= np.linalg.norm(normal)
    means = np.asarray(center, F32) + u[:, None] * axis_u + v[:, None] * axis_v
    rot = np.stack([axis_u, axis_v, normal], axis=1)  # columns: local x, y, z in world
    q = _rotmat_to_quat(rot)
    color = np.asarray(color, F32)
    colors = jitter_color(rng, color, len(u), jitter) if color.ndim == 1 else color
    splats.add(
        means,
        np.array([du * 0.62, dv * 0.62, 0.015], F32),
        q,
        colors,
        opacity=opacity,
        normals=normal,
        emissive=emissive,
    )
    return np.stack([u, v], axis=1)


def _rotmat_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion (wxyz) of one rotation matrix. [3, 3] -> [4]"""
    t = np.trace(m)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q, F32)
    return q / np.linalg.norm(q)


def add_box(
    splats: Splats,
    center: np.ndarray,  # [3] centre of the base
    size: tuple[float, float, float],  # (length along local x, width along local y, height)
    yaw: float,
    color: np.ndarray,  # [3]
    rng: np.random.Generator,
    *,
    top: bool = True,
    spacing: float = 0.22,
) -> None:
    """A box standing on `center`, rotated by `yaw` about +Z: four walls and an optional top."""
    lx, ly, h = size
    c = np.asarray(center, F32)
    ex, ey, ez = rotate_z(np.array([1, 0, 0], F32), yaw), rotate_z(np.array([0, 1, 0], F32), yaw), np.array([0, 0, 1], F32)
    mid = c + ez * h / 2
    for sign in (1, -1):
        add_quad(splats, mid + sign * ex * lx / 2, sign * ey, ez, ly, h, color, rng, spacing=spacing)
        add_quad(splats, mid + sign * ey * ly / 2, -sign * ex, ez, lx, h, color, rng, spacing=spacing)
    if top:
        add_quad(splats, c + ez * h, ex, ey, lx, ly, color * 0.95, rng, spacing=spacing)


def add_cylinder(
    splats: Splats,
    base: np.ndarray,  # [3]
    radius: float,
    height: float,
    color_fn,  # z-in-[0, 1] [n] -> colours [n, 3]
    rng: np.random.Generator,
    *,
    spacing: float = 0.22,
    opacity: float = 0.97,
) -> None:
    """The side of a vertical cylinder, tiled with splats facing outward."""
    n_around = max(8, int(2 * np.pi * radius / spacing))
    n_up = max(2, int(height / spacing))
    a = (np.arange(n_around) + 0.5) / n_around * 2 * np.pi
    z = (np.arange(n_up) + 0.5) / n_up
    aa, zz = np.meshgrid(a, z, indexing="ij")
    aa, zz = aa.ravel(), zz.ravel()
    normals = np.stack([np.cos(aa), np.sin(aa), np.zeros_like(aa)], axis=1).astype(F32)
    means = np.asarray(base, F32) + normals * radius + np.array([0, 0, 1], F32) * (zz[:, None] * height)
    # local x = tangent, local y = up, local z = normal: a yaw of the frame at angle 0
    q0 = _rotmat_to_quat(np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], F32))
    q = quat_mul(quat_yaw(aa), np.broadcast_to(q0, (len(aa), 4)))
    scales = np.array([2 * np.pi * radius / n_around * 0.62, height / n_up * 0.62, 0.015], F32)
    splats.add(means, scales, q, color_fn(zz), opacity=opacity, normals=normals)


def fibonacci_sphere(n: int) -> np.ndarray:
    """`n` nearly evenly spread unit vectors. [n, 3]"""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1).astype(F32)
