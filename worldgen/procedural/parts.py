"""A world as a set of whole parts: each a kind, a frame (centre, extent, yaw) and its own Gaussians.

    parts = build_world_parts(spec, seed=0)     # WorldParts: the same splats as build_world(spec, seed)
    local = parts.local()                       # every splat in its own part's frame

Whole objects are parts as the builders made them (`Splats.begin`): a tree, a
bush, a house, a castle wall, a cloud. The tiled kinds are cut by position:
terrain and water on an 8 m grid over the detailed square (grass and ground
detail with the terrain) and in sectors beyond it, the sky dome in 32 patches
by direction (its stars and sun or moon with them), rain, snow and fog on a
4 x 4 grid over the footprint.

A part's frame: `yaw` turns it about +Z (the builder's heading: a house's, a
wall's; 0 for the rest), `centre` and `extent` are the middle and half-size of
its splats' box in that turned frame. In the frame a splat's position is
R(-yaw) (p - centre) / extent, inside [-1, 1]^3; its rotation is turned by
-yaw and its scales are divided by the part's `size` (the mean of its extents),
so the map is exactly invertible (`WorldParts.from_local`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians, quat_multiply

#: every part kind; "generic" is a piece of a user's scene cut by spatial clustering (`worldgen.scenes`)
KINDS: tuple[str, ...] = (
    "terrain", "far_terrain", "water", "far_water",
    "tree", "bush", "rock", "cactus",
    "house", "well", "wall", "tower", "keep", "column", "block",
    "sky", "cloud", "rain", "snow", "fog",
    "generic",
)  # fmt: skip
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}
#: kinds that stand on the footprint and can be stood on (the ground, plants, buildings): [k] long indices
SOLID = torch.tensor([i for i, k in enumerate(KINDS) if k in (
    "terrain", "tree", "bush", "rock", "cactus", "house", "well", "wall", "tower", "keep", "column", "block")])  # fmt: skip
#: kinds the builders lay down as layers, cut into tiles here
TILED = ("terrain", "water", "sky", "rain", "snow", "fog")
#: side of a terrain or water tile, meters; the detailed square [-HALF, HALF]^2 holds 10 x 10 of them
TILE = 8.0
HALF = 40.0
#: beyond the square: sectors of the far ring (terrain, ocean) and the radius between their two bands
FAR_SECTORS = 16
FAR_BAND = 90.0
#: sky patches: elevation band edges (degrees) and patches per band (32 in all)
SKY_BANDS = (-90.0, 8.0, 30.0, 55.0, 90.0)
SKY_SECTORS = (12, 10, 6, 4)
#: weather tiles: 4 x 4 over the square each kind falls on (half-side, meters)
WEATHER_HALF = {"rain": 36.0, "snow": 36.0, "fog": 48.0}
WEATHER_GRID = 4
#: smallest half-extent of a part's box, meters (a flat water tile has none in z)
MIN_EXTENT = 0.05


@dataclass(frozen=True, eq=False)
class WorldParts:
    """A world's Gaussians grouped into P parts (its splats part by part, in part order)."""

    gaussians: Gaussians  # [N] in the world frame
    counts: Tensor  # [P] long, splats of each part; sums to N
    kinds: Tensor  # [P] long, index into KINDS
    centers: Tensor  # [P, 3] meters
    extents: Tensor  # [P, 3] half-sizes in the part's turned frame, meters
    yaws: Tensor  # [P] radians

    def __post_init__(self) -> None:
        p = self.counts.shape[0]
        shapes = {"kinds": (p,), "centers": (p, 3), "extents": (p, 3), "yaws": (p,)}
        for name, shape in shapes.items():
            if tuple(getattr(self, name).shape) != shape:
                raise UsageError(f"WorldParts.{name} must be {shape}, got {tuple(getattr(self, name).shape)}")
        if int(self.counts.sum()) != len(self.gaussians):
            raise UsageError(f"part counts sum to {int(self.counts.sum())}, not the {len(self.gaussians)} Gaussians")

    def __len__(self) -> int:
        return self.counts.shape[0]

    @property
    def part_index(self) -> Tensor:  # [N] long
        """The part of every splat."""
        return torch.repeat_interleave(torch.arange(len(self), device=self.counts.device), self.counts)

    @property
    def sizes(self) -> Tensor:  # [P]
        """Each part's size: the mean of its half-extents (the unit of its splats' scales in its frame)."""
        return self.extents.mean(-1)

    def mean_colors(self) -> Tensor:  # [P, 3]
        """Each part's mean rgb."""
        return torch.segment_reduce(self.gaussians.rgb, "mean", lengths=self.counts, axis=0)

    def kind_names(self) -> list[str]:
        return [KINDS[int(k)] for k in self.kinds]

    def local(self) -> Gaussians:
        """Every splat in its part's frame: positions in [-1, 1]^3, rotations turned by -yaw, scales per part size."""
        g, idx = self.gaussians, self.part_index
        turn = _yaw_quats(-self.yaws.to(g.dtype))[idx]
        means = _rotate_z(g.means - self.centers[idx], -self.yaws[idx]) / self.extents[idx]
        return g.replace(means=means, quats=quat_multiply(turn, g.quats), scales=g.scales / self.sizes[idx, None])

    @staticmethod
    def from_local(
        local: Gaussians,  # [N] in their parts' frames
        counts: Tensor,  # [P] long
        kinds: Tensor,  # [P] long
        centers: Tensor,  # [P, 3]
        extents: Tensor,  # [P, 3]
        yaws: Tensor,  # [P]
    ) -> WorldParts:
        """The inverse of `local`: splats in their parts' frames and the frames -> the world."""
        idx = torch.repeat_interleave(torch.arange(counts.shape[0], device=counts.device), counts)
        sizes = extents.mean(-1)
        means = centers[idx] + _rotate_z(local.means * extents[idx], yaws[idx])
        quats = quat_multiply(_yaw_quats(yaws.to(local.dtype))[idx], local.quats)
        g = local.replace(means=means, quats=quats, scales=local.scales * sizes[idx, None])
        return WorldParts(g, counts, kinds, centers, extents, yaws)

    def select(self, keep: Tensor) -> WorldParts:
        """The parts where `keep` [P] bool is True, with their splats."""
        splat_keep = keep[self.part_index]
        return WorldParts(self.gaussians[splat_keep], self.counts[keep], self.kinds[keep], self.centers[keep],
                          self.extents[keep], self.yaws[keep])  # fmt: skip


def build_world_parts(spec, *, seed: int = 0) -> WorldParts:
    """The procedural world of `spec` and `seed` as parts: `build_world`'s splats, bit for bit, in part order."""
    from worldgen.procedural.world import build_world_splats, to_gaussians

    layers, light = build_world_splats(spec, seed=seed)
    tiled: dict[str, list[Gaussians]] = {k: [] for k in TILED}  # grass joins the terrain, lily pads the water
    objects: list[tuple[Gaussians, str, float]] = []
    for splats in layers.values():
        if not len(splats):
            continue
        g = to_gaussians(splats, light)
        part = torch.from_numpy(splats.arrays()["part"].astype(np.int64))
        for p in torch.unique(part).tolist():  # in the order the builder began them
            rows = (part == p).nonzero()[:, 0]
            if splats.kinds[p] in TILED:
                tiled[splats.kinds[p]].append(g[rows])
            else:
                objects.append((g[rows], splats.kinds[p], splats.yaws[p]))
    pieces, kinds, yaws = [], [], []
    for kind, chunks in tiled.items():
        if chunks:
            g = Gaussians.cat(chunks)
            names, key = tile_keys(kind, g.means)
            for k, name in names.items():
                pieces.append(g[key == k])
                kinds.append(name)
                yaws.append(0.0)
    for g, kind, yaw in objects:
        pieces.append(g)
        kinds.append(kind)
        yaws.append(yaw)
    return assemble_parts(pieces, kinds, yaws)


def assemble_parts(pieces: list[Gaussians], kinds: list[str], yaws: list[float]) -> WorldParts:
    """Parts from their splats, kinds and headings; each frame is the box of its splats in the turned frame."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise UsageError(f"unknown part kind(s) {unknown}; the kinds are {', '.join(KINDS)}")
    g = Gaussians.cat(pieces)
    counts = torch.tensor([len(p) for p in pieces], dtype=torch.long)
    yaw = torch.tensor(yaws, dtype=g.dtype)
    idx = torch.repeat_interleave(torch.arange(len(pieces)), counts)
    turned = _rotate_z(g.means, -yaw[idx])  # [N, 3]
    lo = torch.full((len(pieces), 3), math.inf, dtype=g.dtype).scatter_reduce(0, idx[:, None].expand(-1, 3), turned, "amin")
    hi = torch.full((len(pieces), 3), -math.inf, dtype=g.dtype).scatter_reduce(0, idx[:, None].expand(-1, 3), turned, "amax")
    centers = _rotate_z((lo + hi) / 2, yaw)
    extents = ((hi - lo) / 2).clamp_min(MIN_EXTENT)
    kind_ids = torch.tensor([KIND_INDEX[k] for k in kinds], dtype=torch.long)
    return WorldParts(g, counts, kind_ids, centers, extents, yaw)


def tile_keys(kind: str, means: Tensor) -> tuple[dict[int, str], Tensor]:
    """The tile of every splat of a tiled layer: (the kind of each tile key's part, key [n] long)."""
    x, y, z = means.double().unbind(-1)
    if kind in ("terrain", "water"):
        inside = (x.abs() < HALF) & (y.abs() < HALF)
        cells = int(2 * HALF / TILE)
        ix = ((x + HALF) / TILE).floor().clamp(0, cells - 1).long()
        iy = ((y + HALF) / TILE).floor().clamp(0, cells - 1).long()
        sector = ((torch.atan2(y, x) + math.pi) / (2 * math.pi) * FAR_SECTORS).floor().long().clamp(0, FAR_SECTORS - 1)
        band = (torch.hypot(x, y) >= FAR_BAND).long()
        far = cells * cells + band * FAR_SECTORS + sector
        key = torch.where(inside, ix * cells + iy, far)
        return {k: (kind if k < cells * cells else f"far_{kind}") for k in torch.unique(key).tolist()}, key
    if kind == "sky":
        elev = torch.rad2deg(torch.atan2(z, torch.hypot(x, y)))
        az = (torch.atan2(y, x) + math.pi) / (2 * math.pi)
        key = torch.zeros_like(x, dtype=torch.long)
        first = 0
        for lo, hi, n in zip(SKY_BANDS[:-1], SKY_BANDS[1:], SKY_SECTORS):
            hit = (elev >= lo) & (elev < hi) if hi < 90 else elev >= lo
            key = torch.where(hit, first + (az * n).floor().long().clamp(0, n - 1), key)
            first += n
        return {k: "sky" for k in torch.unique(key).tolist()}, key
    if kind in WEATHER_HALF:
        half = WEATHER_HALF[kind]
        ix = ((x + half) / (2 * half) * WEATHER_GRID).floor().clamp(0, WEATHER_GRID - 1).long()
        iy = ((y + half) / (2 * half) * WEATHER_GRID).floor().clamp(0, WEATHER_GRID - 1).long()
        key = ix * WEATHER_GRID + iy
        return {k: kind for k in torch.unique(key).tolist()}, key
    raise UsageError(f"{kind!r} is not a tiled kind ({', '.join(TILED)})")


def _rotate_z(v: Tensor, yaw: Tensor) -> Tensor:  # [..., 3], [...] -> [..., 3]
    c, s = torch.cos(yaw).to(v.dtype), torch.sin(yaw).to(v.dtype)
    x, y, z = v.unbind(-1)
    return torch.stack([c * x - s * y, s * x + c * y, z], dim=-1)


def _yaw_quats(yaw: Tensor) -> Tensor:  # [P] -> [P, 4] wxyz
    half = yaw / 2
    zero = torch.zeros_like(half)
    return torch.stack([torch.cos(half), zero, zero, torch.sin(half)], dim=-1)


__all__ = ["KINDS", "KIND_INDEX", "TILED", "WorldParts", "assemble_parts", "build_world_parts", "tile_keys"]
