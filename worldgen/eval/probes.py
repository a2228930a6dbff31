"""Probes without learning: attributes read straight off a world's Gaussians.

Each probe is a number a reader can check by hand, computed from positions,
shapes and colours only (no spec, no caption, no network), so it gives a
second opinion on a generated world beside the render judge:

| probe | what it measures | separates |
| --- | --- | --- |
| `sky_luminance`, `sky_hue`, `sky_warmth` | mean colour of the dome's upper half | time of day |
| `snow_share`, `sand_share`, `grass_share`, `rock_share` | colour classes of the ground splats | biome |
| `water_share` | share of the footprint under a flat surface at water level | water |
| `tall_clusters` | connected groups of 2 m cells with tall, non-planar stuff | vegetation |
| `structure_cells` | 2 m cells whose tall splats lie on a few planes (walls, roofs) | structure |
| `precipitation`, `fog_volume` | small airborne splats; large faint ones | weather |

    probes = probe_world(gaussians)            # {"sky_luminance": 0.61, ...}
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from worldgen.gaussians import Gaussians, shortest_axis


@dataclass(frozen=True)
class ProbeConfig:
    """Where things are in a worldgen world (CONVENTIONS.md: +Z up, ground near 0, dome far out)."""

    footprint: float = 32.0  # half side of the square the ground probes look at, meters
    sky_radius: float = 160.0  # splats farther than this from the origin are sky
    water_level: float = 0.0
    cell: float = 2.0  # grid cell for tall things, meters
    tall: float = 1.5  # meters above the cell's ground that count as tall
    min_tall: int = 24  # tall splats a cell needs to hold something


PROBES: tuple[str, ...] = (
    "sky_luminance", "sky_hue", "sky_warmth", "snow_share", "sand_share", "grass_share", "rock_share",
    "water_share", "tall_clusters", "structure_cells", "precipitation", "fog_volume",
)  # fmt: skip


def _luminance(rgb: Tensor) -> Tensor:  # rgb [N, 3] -> [N]
    return 0.2126 * rgb[:, 0] + 0.7152 * rgb[:, 1] + 0.0722 * rgb[:, 2]


def _hue_sat(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """HSV hue in degrees [0, 360) and saturation [0, 1]. rgb [N, 3] -> ([N], [N])"""
    mx, arg = rgb.max(1)
    mn = rgb.min(1).values
    d = (mx - mn).clamp_min(1e-6)
    r, g, b = rgb.unbind(1)
    h = torch.where(arg == 0, ((g - b) / d) % 6, torch.where(arg == 1, (b - r) / d + 2, (r - g) / d + 4)) * 60.0
    s = torch.where(mx > 1e-6, (mx - mn) / mx.clamp_min(1e-6), torch.zeros_like(mx))
    return h % 360.0, s


def _normals(g: Gaussians) -> tuple[Tensor, Tensor]:
    """Unit normal (the axis of the smallest scale) and flatness (smallest / largest scale). ([N, 3], [N])"""
    n = shortest_axis(g.quats, g.scales)
    flat = g.scales.min(1).values / g.scales.max(1).values.clamp_min(1e-9)
    return n, flat


def _cells(xy: Tensor, half: float, cell: float) -> tuple[Tensor, int]:
    """Flat cell index of points inside the square [-half, half)^2. xy [N, 2] -> ([N] int64, -1 outside; side)"""
    side = int(math.ceil(2 * half / cell))
    ij = torch.floor((xy + half) / cell).long()
    inside = (ij >= 0).all(1) & (ij < side).all(1)
    return torch.where(inside, ij[:, 0] * side + ij[:, 1], torch.full_like(ij[:, 0], -1)), side


def _components(mask: Tensor) -> int:
    """Number of 4-connected groups of True cells. mask [S, S] bool"""
    todo = {(int(i), int(j)) for i, j in mask.nonzero().tolist()}
    count = 0
    while todo:
        count += 1
        stack = [todo.pop()]
        while stack:
            i, j = stack.pop()
            for nb in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if nb in todo:
                    todo.remove(nb)
                    stack.append(nb)
    return count


def probe_world(gaussians: Gaussians, config: ProbeConfig = ProbeConfig()) -> dict[str, float]:
    """Every probe of one world (keys `PROBES`)."""
    g = gaussians.detach().to("cpu", torch.float32)
    means, rgb, op = g.means, g.rgb.clamp(0, 1), g.opacities
    out: dict[str, float] = {}

    # -- sky: the upper half of everything far out
    dist = means.norm(dim=1)
    sky = (dist > config.sky_radius) & (means[:, 2] > 0.15 * dist)
    sky_rgb = rgb[sky].median(0).values if sky.any() else torch.zeros(3)  # median: stars and sun discs are outliers
    out["sky_luminance"] = float(_luminance(sky_rgb[None])[0])
    out["sky_hue"] = float(_hue_sat(sky_rgb[None])[0][0])
    out["sky_warmth"] = float(sky_rgb[0] - sky_rgb[2])

    # -- the ground grid: lowest splat per cell
    h, cell = config.footprint, config.cell
    in_fp = (means[:, :2].abs() < h).all(1) & (means[:, 2].abs() < 60)
    idx, side = _cells(means[:, :2], h, 1.0)
    idx = torch.where(in_fp, idx, torch.full_like(idx, -1))
    ok = idx >= 0
    ground = torch.full((side * side,), float("inf")).scatter_reduce(0, idx[ok], means[ok, 2], "amin")
    z_ground = torch.full_like(means[:, 2], float("inf"))
    z_ground[ok] = ground[idx[ok]]
    above = means[:, 2] - z_ground  # [N] height over the cell's lowest splat (inf outside)
    # the highest ground within 2 m: a cliff face stays below it, a wall or a tree rises above it
    g2 = torch.where(torch.isfinite(ground), ground, torch.full_like(ground, -1e4)).reshape(1, 1, side, side)
    ridge = torch.nn.functional.max_pool2d(g2, 5, stride=1, padding=2).reshape(-1)
    z_ridge = torch.full_like(means[:, 2], float("inf"))
    z_ridge[ok] = ridge[idx[ok]]
    rise = means[:, 2] - z_ridge  # [N] height over the highest nearby ground
    normals, flat = _normals(g)

    # -- water: a flat surface at water level over ground that lies below it
    surface = ok & (flat < 0.2) & (normals[:, 2].abs() > 0.98) & ((means[:, 2] - config.water_level).abs() < 0.06)
    wet_cells = torch.zeros(side * side, dtype=torch.bool)
    wet_cells[idx[surface]] = True
    wet_cells &= ground < config.water_level - 0.1
    out["water_share"] = float(wet_cells.float().sum() / (side * side))

    # -- ground colour classes: opaque splats lying on the ground, not water
    on_ground = ok & (above < 0.35) & (op > 0.5) & ~surface
    if on_ground.any():
        col = rgb[on_ground]
        lum = _luminance(col)
        rel = lum / lum.quantile(0.95).clamp_min(1e-3)  # exposure: night and dusk darken everything alike
        hue, sat = _hue_sat(col)
        snow = (rel > 0.55) & (sat < 0.15)
        sand = ~snow & (hue >= 22) & (hue < 55) & (sat > 0.2) & (rel > 0.55)
        grass = ~snow & (hue >= 60) & (hue < 170) & (sat > 0.2)
        rock = ~snow & ~sand & ~grass & (sat < 0.3)
        n = float(on_ground.sum())
        for name, m in (("snow", snow), ("sand", sand), ("grass", grass), ("rock", rock)):
            out[f"{name}_share"] = float(m.sum()) / n
    else:
        out.update(snow_share=0.0, sand_share=0.0, grass_share=0.0, rock_share=0.0)

    # -- tall things on a coarser grid: planar (structures) or not (vegetation)
    tall = ok & (rise > config.tall) & (above < 40) & (op > 0.3) & (g.scales.max(1).values < 2.0)
    small_air = g.scales.max(1).values < 0.08
    tall &= ~small_air  # falling snow
    thin = g.scales.max(1).values > 8 * g.scales.min(1).values.clamp_min(1e-6)
    rain_like = thin & (g.scales.min(1).values < 0.02) & (op < 0.6)
    tall &= ~rain_like
    cidx, cside = _cells(means[:, :2], h, cell)
    cidx = torch.where(tall, cidx, torch.full_like(cidx, -1))
    t_ok = cidx >= 0
    count = torch.zeros(cside * cside).index_add_(0, cidx[t_ok], torch.ones(int(t_ok.sum())))
    # planarity: how much of the flat splats' normals (folded to one hemisphere) line up with a few planes
    fl = t_ok & (flat < 0.25)
    nrm = normals[fl] * torch.where(normals[fl, 2:3] < 0, -1.0, 1.0)
    nn_t = (nrm[:, :, None] * nrm[:, None, :]).reshape(-1, 9)
    tensor = torch.zeros(cside * cside, 9).index_add_(0, cidx[fl], nn_t)
    n_flat = torch.zeros(cside * cside).index_add_(0, cidx[fl], torch.ones(int(fl.sum())))
    eig = torch.linalg.eigvalsh(tensor.reshape(-1, 3, 3) / n_flat.clamp_min(1)[:, None, None])  # [cells, 3] ascending
    wall = fl & (normals[:, 2].abs() < 0.1)  # flat splats standing upright
    n_wall = torch.zeros(cside * cside).index_add_(0, cidx[wall], torch.ones(int(wall.sum())))
    # upright flat splats whose normals span at most a plane: walls, towers (leaves turn every way)
    planar = (eig[:, 0] < 0.12) & (n_flat > 0.5 * count) & (n_wall > 0.4 * n_flat)
    filled = count >= config.min_tall
    structure = filled & planar
    veg = filled & ~planar
    out["structure_cells"] = float(structure.sum())
    out["tall_clusters"] = float(_components(veg.reshape(cside, cside)))

    # -- weather: small splats in the air, large faint ones near the ground
    air = ok & (above > 2.0)
    out["precipitation"] = float((air & (small_air | rain_like)).sum()) / (4 * h * h)  # per square meter
    big_faint = ok & (op < 0.15) & (g.scales.max(1).values > 2.0)
    out["fog_volume"] = float((g.scales[big_faint].prod(1) * op[big_faint]).sum()) / (4 * h * h)
    return out


def probe_worlds(worlds: list[Gaussians], config: ProbeConfig = ProbeConfig()) -> list[dict[str, float]]:
    return [probe_world(w, config) for w in worlds]


__all__ = ["PROBES", "ProbeConfig", "probe_world", "probe_worlds"]
