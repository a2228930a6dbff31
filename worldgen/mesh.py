"""Meshes from splats: a collider for game engines and a vertex-coloured preview.

Both are made from the splats alone, with no knowledge of how the world was
made, in three stages:

1. **Ground** (`ground`): an orthographic render of the splats from below,
   one ray per node of a `cell`-spaced grid. Each splat's footprint is its
   covariance projected onto the ground plane, widened by the node's own
   footprint with its opacity scaled to keep its mass (so a splat seen
   edge-on, such as a wall's, covers almost nothing); the ground's height
   at a node is the median depth, where the transmittance from below first
   falls to one half. Grass, leaves, roofs and weather lie above the first
   opaque surface and do not move it.
2. **Solids** (`solids`): what stands on the ground. Splats that are not
   sky or weather (`solid_candidates`) and lie above the ground deposit
   their opaque area on a `voxel`-spaced grid; blurred and thresholded, it
   is a set of closed shells (walls and roofs, trunks, rocks, canopies).
   Each shell is rooted into the ground, its inside filled, and it is
   meshed with marching cubes.
3. **One mesh**, simplified to the triangle budget with quadric decimation.

The mesh is in the world frame (+Z up, meters); `save_glb` writes it +Y up,
as glTF requires. The ground and the solids are separate components that
overlap where a solid stands (a union of surfaces, as game engines take
colliders, not a boolean union).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from worldgen.errors import InvalidGaussiansError, UsageError
from worldgen.gaussians import Gaussians, covariance

if TYPE_CHECKING:
    import trimesh

MeshKind = Literal["collider", "preview"]
KINDS: tuple[MeshKind, ...] = ("collider", "preview")

#: the transmittance from below at which the ground's surface is placed (median depth)
GROUND_TRANSMITTANCE = 0.5
#: ground regions smaller than this (m^2), or than this share of the largest, are dropped: specks under
#: far-out sky splats, the sun's disc seen from below (80 m^2 against the footprint's 6400 m^2)
MIN_GROUND_AREA = 25.0
MIN_GROUND_SHARE = 0.05
#: splats larger than this (largest standard deviation, m) are never solid: sky dome 5 m, clouds 3.5-10 m, fog 2-7 m
MAX_SOLID_SCALE = 1.0
#: splats fainter than this are never solid: fog is 0.04-0.09
MIN_SOLID_OPACITY = 0.1
#: a splat is part of a solid only if its centre is this far above the ground (grass blades stand 0.1-0.3 m)
CLEARANCE = 0.3
#: the blur (standard deviation, in voxels) that closes the gaps between a surface's splats
SOLID_BLUR = 0.5
#: blurred opaque area per voxel face at which a voxel is solid; measured on procedural worlds:
#: walls, trunks and canopies reach 0.5-1.4 (median to 90th percentile, unblurred), rain and snow stay under 0.1
SOLID_COVERAGE = 0.3
#: solids smaller than this (m^3) are dropped: a stray clump of snowflakes, a lone floater
MIN_SOLID_VOLUME = 0.1
#: how deep a solid that stands on the ground is rooted into it, m
ROOT_DEPTH = 0.3
#: side of the coarse cells that split the solids into separate pieces, m
CLUSTER_CELL = 1.0
#: opaque area per volume (m^2 / m^3) of a coarse cell that holds part of a solid: canopies 0.7-1, walls 3, rain 0.0002
PIECE_DENSITY = 0.15
#: the share of the triangle budget that the solids may take (the ground takes the rest)
SOLID_SHARE = 0.7
#: solids keep at most this share of their marching-cubes triangles (most lie in flat staircases)
SOLID_REDUCTION = 0.5
#: where quadric decimation would open a solid, manifold3d simplifies it within this share of a voxel
MANIFOLD_TOLERANCE = 0.2
#: how far (m) around a mesh vertex the preview looks for the splats that colour it
COLOR_RADIUS = 0.35


@dataclass(frozen=True)
class SplatGeometry:
    """The numpy float64 view of a set of Gaussians that the mesh stages work on."""

    means: np.ndarray  # [N, 3]
    covs: np.ndarray  # [N, 3, 3] world-frame covariances
    scales: np.ndarray  # [N, 3]
    opacities: np.ndarray  # [N]

    @classmethod
    def of(cls, g: Gaussians) -> SplatGeometry:
        g = g.detach().to("cpu")
        f64 = lambda t: t.double().numpy()  # noqa: E731
        return cls(f64(g.means), f64(covariance(g.quats, g.scales)), f64(g.scales), f64(g.opacities))

    def __len__(self) -> int:
        return len(self.means)

    def __getitem__(self, index: np.ndarray) -> SplatGeometry:
        return SplatGeometry(self.means[index], self.covs[index], self.scales[index], self.opacities[index])


# -- ground --------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeightField:
    """The ground: a height at each node of a square grid, NaN where there is none."""

    origin: np.ndarray  # [2] x, y of node (0, 0), m
    cell: float  # node spacing, m
    z: np.ndarray  # [I, J] height of node (i, j) at origin + (i, j) * cell

    def at(self, xy: np.ndarray) -> np.ndarray:
        """Bilinear height at points; NaN off the ground. [n, 2] -> [n]"""
        f = (np.asarray(xy, np.float64) - self.origin) / self.cell
        i0 = np.floor(f).astype(np.int64)
        w = f - i0
        inside = (i0 >= 0).all(1) & (i0[:, 0] < self.z.shape[0] - 1) & (i0[:, 1] < self.z.shape[1] - 1)
        out = np.full(len(f), np.nan)
        i, j, w = i0[inside, 0], i0[inside, 1], w[inside]
        z = self.z
        out[inside] = (
            z[i, j] * (1 - w[:, 0]) * (1 - w[:, 1]) + z[i + 1, j] * w[:, 0] * (1 - w[:, 1])
            + z[i, j + 1] * (1 - w[:, 0]) * w[:, 1] + z[i + 1, j + 1] * w[:, 0] * w[:, 1]
        )  # fmt: skip
        return out

    def nearest(self, xy: np.ndarray) -> np.ndarray:
        """Height of the nearest node; NaN off the grid or off the ground. [n, 2] -> [n]"""
        ij = np.round((np.asarray(xy, np.float64) - self.origin) / self.cell).astype(np.int64)
        inside = (ij >= 0).all(1) & (ij[:, 0] < self.z.shape[0]) & (ij[:, 1] < self.z.shape[1])
        out = np.full(len(ij), np.nan)
        out[inside] = self.z[ij[inside, 0], ij[inside, 1]]
        return out

    def triangles(self) -> tuple[np.ndarray, np.ndarray]:
        """The ground as triangles: two per grid square whose four nodes have a height. ([V, 3], [F, 3])"""
        valid = np.isfinite(self.z)
        index = np.full(self.z.shape, -1, np.int64)
        index[valid] = np.arange(int(valid.sum()))
        i, j = np.nonzero(valid)
        vertices = np.stack([self.origin[0] + i * self.cell, self.origin[1] + j * self.cell, self.z[valid]], axis=1)
        a, b, c, d = index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]  # counter-clockwise from above
        square = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)
        a, b, c, d = a[square], b[square], c[square], d[square]
        faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
        return vertices, faces


def ground(s: SplatGeometry, *, cell: float = 0.15) -> HeightField:
    """The first opaque surface seen from below, at the nodes of a `cell`-spaced grid (see the module docstring)."""
    node, alpha, depth, shape, origin = _footprints_from_below(s, cell=cell)
    z = np.full(shape[0] * shape[1], np.nan)
    hit_node, hit_depth = _median_depth(node, alpha, depth)
    z[hit_node] = hit_depth
    return HeightField(origin, cell, _keep_large_regions(z.reshape(shape), cell=cell))


def _footprints_from_below(s: SplatGeometry, *, cell: float):
    """Each splat's opacity and depth at the grid nodes around its centre, seen along +Z.

    Returns (node [P] flat node index, alpha [P], depth [P] z where the ray
    meets the splat, (I, J) grid shape, origin [2]).
    """
    s = s[s.scales.max(1) <= 1.5 * MAX_SOLID_SCALE]  # sky and fog: too coarse to say where any ground is
    if len(s) == 0:
        raise InvalidGaussiansError("no splat is small enough to make a ground of (all are over 1.5 m)")
    xy = s.means[:, :2]
    origin = xy.min(0) - 2 * cell
    ij0 = np.round((xy - origin) / cell).astype(np.int64)
    shape = tuple(ij0.max(0) + 3)
    # the footprint on the ground plane, widened by a node's own (a low-pass filter) with its mass kept
    cxx, cxy, cyy = s.covs[:, 0, 0], s.covs[:, 0, 1], s.covs[:, 1, 1]
    det0 = np.clip(cxx * cyy - cxy**2, 0, None)
    fxx, fyy = cxx + (cell / 2) ** 2, cyy + (cell / 2) ** 2
    det = fxx * fyy - cxy**2
    inv = np.stack([fyy, -cxy, fxx], 1) / det[:, None]  # [n, 3]: the inverse's xx, xy, yy
    peak = s.opacities * np.sqrt(det0 / det)
    # depth along the ray: the conditional mean of z given (x, y)
    slope = np.stack([s.covs[:, 2, 0] * inv[:, 0] + s.covs[:, 2, 1] * inv[:, 1], s.covs[:, 2, 0] * inv[:, 1] + s.covs[:, 2, 1] * inv[:, 2]], 1)
    # the nodes within about 1.5 standard deviations: 3 x 3 for a small splat, 5 x 5 for one over a cell across
    reach = np.where(np.sqrt(np.maximum(cxx, cyy)) > cell, 2, 1)
    src, ij = [], []
    for r in (1, 2):
        mine = np.flatnonzero(reach == r)
        offsets = np.stack(np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij"), -1).reshape(-1, 2)
        src.append(np.repeat(mine, len(offsets)))
        ij.append((ij0[mine, None, :] + offsets[None]).reshape(-1, 2))
    src, ij = np.concatenate(src), np.concatenate(ij)  # [P], [P, 2]
    d = ij * cell + origin - xy[src]
    m = inv[src, 0] * d[:, 0] ** 2 + 2 * inv[src, 1] * d[:, 0] * d[:, 1] + inv[src, 2] * d[:, 1] ** 2
    alpha = peak[src] * np.exp(-0.5 * m)
    depth = s.means[src, 2] + (slope[src] * d).sum(1)
    keep = alpha > 1 / 255
    return ij[keep, 0] * shape[1] + ij[keep, 1], alpha[keep], depth[keep], shape, origin


def _median_depth(node: np.ndarray, alpha: np.ndarray, depth: np.ndarray, *, transmittance: float = GROUND_TRANSMITTANCE):
    """Per node, the depth at which the transmittance, composited in increasing depth, first falls to `transmittance`.

    node, alpha, depth: [P] one entry per (node, splat). Returns (nodes [M], depths [M]) of the nodes that get there.
    """
    order = np.lexsort((depth, node))
    node, alpha, depth = node[order], alpha[order], depth[order]
    log_t = np.log1p(-np.minimum(alpha, 0.999))
    total = np.cumsum(log_t)
    start = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    run = np.diff(np.r_[start, len(node)])
    within = total - np.repeat(total[start] - log_t[start], run)  # log-transmittance after each splat, per node
    reached = np.flatnonzero(within <= np.log(transmittance))
    nodes, first = np.unique(node[reached], return_index=True)
    return nodes, depth[reached[first]]


def _median_depth_reference(node: np.ndarray, alpha: np.ndarray, depth: np.ndarray, *, transmittance: float = GROUND_TRANSMITTANCE):
    """`_median_depth`, one node at a time."""
    nodes, depths = [], []
    for n in np.unique(node):
        mine = np.flatnonzero(node == n)
        t = 1.0
        for k in mine[np.lexsort((depth[mine],))]:
            t *= 1 - min(alpha[k], 0.999)
            if t <= transmittance:
                nodes.append(n)
                depths.append(depth[k])
                break
    return np.array(nodes, np.int64), np.array(depths)


def _keep_large_regions(z: np.ndarray, *, cell: float) -> np.ndarray:
    """Drop ground regions under `MIN_GROUND_AREA` or `MIN_GROUND_SHARE` of the largest, and fill the holes inside the rest from their nearest nodes. [I, J]"""
    from scipy import ndimage

    labels, count = ndimage.label(np.isfinite(z))
    if count == 0:
        return z
    area = np.bincount(labels.ravel(), minlength=count + 1) * cell**2
    area[0] = 0
    big = area >= max(min(MIN_GROUND_AREA, area.max()), MIN_GROUND_SHARE * area.max())
    region = ndimage.binary_fill_holes(big[labels])
    have = big[labels]
    nearest = ndimage.distance_transform_edt(~have, return_distances=False, return_indices=True)
    filled = z[tuple(nearest)]
    return np.where(region, filled, np.nan)


# -- solids --------------------------------------------------------------------------------


def solid_candidates(s: SplatGeometry, land: HeightField) -> np.ndarray:
    """The splats that may be part of something solid standing on `land`. [N] bool

    Sky and weather are not solid: the sky is huge or far out (off the ground),
    fog is huge and faint; rain and snow pass this test but are too sparse to
    reach `SOLID_COVERAGE`.
    """
    ground_z = land.nearest(s.means[:, :2])
    return (
        (s.scales.max(1) <= MAX_SOLID_SCALE)
        & (s.opacities >= MIN_SOLID_OPACITY)
        & np.isfinite(ground_z)
        & (s.means[:, 2] > np.nan_to_num(ground_z, nan=np.inf) + CLEARANCE)
    )


@dataclass(frozen=True)
class VoxelGrid:
    """A boolean grid of voxels of side `voxel`, voxel (0, 0, 0) centred at `origin`."""

    origin: np.ndarray  # [3]
    voxel: float
    solid: np.ndarray  # [X, Y, Z] bool

    def centres(self, axis: int) -> np.ndarray:
        """The voxel centres' coordinates along one axis. [X], [Y] or [Z]"""
        return self.origin[axis] + np.arange(self.solid.shape[axis]) * self.voxel


def solids(s: SplatGeometry, land: HeightField, *, voxel: float = 0.25) -> list[VoxelGrid]:
    """The solid things standing on `land`, one grid per piece (a house, a tree, a wall with its towers)."""
    s = s[solid_candidates(s, land)]
    return [grid for piece in _pieces(s) if (grid := _solid_piece(s[piece], land, voxel=voxel)) is not None]


def _pieces(s: SplatGeometry) -> list[np.ndarray]:
    """Split splats into pieces that touch on a coarse grid (weather between them left out). [list of [n] indices]"""
    from scipy import ndimage

    if len(s) == 0:
        return []
    origin = s.means.min(0)
    cells = np.floor((s.means - origin) / CLUSTER_CELL).astype(np.int64)
    shape = tuple(cells.max(0) + 1)
    flat = np.ravel_multi_index(cells.T, shape)
    area = np.bincount(flat, weights=_opaque_area(s), minlength=int(np.prod(shape))).reshape(shape)
    dense = area / CLUSTER_CELL**3 >= PIECE_DENSITY
    labels, count = ndimage.label(ndimage.binary_dilation(dense, np.ones((3, 3, 3), bool)), np.ones((3, 3, 3), bool))
    label_of = labels.ravel()[flat]
    order = np.argsort(label_of, kind="stable")
    bounds = np.searchsorted(label_of[order], np.arange(1, count + 2))
    return [order[bounds[k] : bounds[k + 1]] for k in range(count)]


def _opaque_area(s: SplatGeometry) -> np.ndarray:
    """Opacity times the area of a splat's disc at one standard deviation (its two largest axes). [N]"""
    two = np.sort(s.scales, axis=1)[:, 1:]
    return s.opacities * np.pi * two[:, 0] * two[:, 1]


def _solid_piece(s: SplatGeometry, land: HeightField, *, voxel: float) -> VoxelGrid | None:
    """One piece's voxels: opaque area deposited, blurred, thresholded, rooted, filled, specks dropped."""
    from scipy import ndimage

    pad = 3
    low = s.means.min(0) - pad * voxel
    high = s.means.max(0) + pad * voxel
    footprint_ground = land.at(np.array([[x, y] for x in (low[0], high[0]) for y in (low[1], high[1])] + [s.means[:, :2].mean(0).tolist()]))
    floor = np.nanmin(np.r_[footprint_ground, land.nearest(s.means[:, :2])]) - ROOT_DEPTH - pad * voxel
    low[2] = min(low[2], floor)
    shape = tuple(np.ceil((high - low) / voxel).astype(np.int64) + 1)
    coverage = _deposit(s.means, _opaque_area(s), low, voxel, shape) / voxel**2
    solid = ndimage.gaussian_filter(coverage, SOLID_BLUR, mode="constant") >= SOLID_COVERAGE
    solid, below = _root(VoxelGrid(low, voxel, solid), land)
    solid |= ndimage.binary_fill_holes(solid | below) & ~below  # the inside of a house: walled, roofed and floored by the ground
    labels, count = ndimage.label(solid)
    volume = np.bincount(labels.ravel(), minlength=count + 1) * voxel**3
    volume[0] = 0
    solid = (volume >= MIN_SOLID_VOLUME)[labels]
    return VoxelGrid(low, voxel, solid) if solid.any() else None


def _deposit(points: np.ndarray, weights: np.ndarray, origin: np.ndarray, voxel: float, shape: tuple[int, int, int]) -> np.ndarray:
    """Trilinear splatting of weighted points onto voxel centres origin + index * voxel. [n, 3], [n] -> [X, Y, Z]"""
    f = (points - origin) / voxel
    i0 = np.floor(f).astype(np.int64)
    w = f - i0
    out = np.zeros(int(np.prod(shape)))
    for corner in np.ndindex(2, 2, 2):
        c = np.array(corner)
        weight = weights * np.prod(np.where(c, w, 1 - w), axis=1)
        idx = np.clip(i0 + c, 0, np.array(shape) - 1)
        out += np.bincount(np.ravel_multi_index(idx.T, shape), weights=weight, minlength=out.size)
    return out.reshape(shape)


def _root(grid: VoxelGrid, land: HeightField) -> tuple[np.ndarray, np.ndarray]:
    """Extend each column that reaches down to the ground into it, to `ROOT_DEPTH` below the surface.

    Returns the rooted solid and the voxels deeper than that under the ground. ([X, Y, Z] bool, [X, Y, Z] bool)
    """
    solid = grid.solid
    xs, ys, zs = grid.centres(0), grid.centres(1), grid.centres(2)
    xx, yy = np.meshgrid(xs, ys, indexing="ij")
    g = land.at(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(xx.shape)
    floor = (g - ROOT_DEPTH)[:, :, None]  # NaN off the ground: no root and nothing below
    occupied = solid.any(2)
    lowest = np.where(occupied, zs[np.argmax(solid, axis=2)], np.inf)
    stands = occupied & (lowest <= g + CLEARANCE + 3 * grid.voxel)
    root = stands[:, :, None] & (zs >= floor) & (zs <= lowest[:, :, None])
    return solid | root, zs < floor


def _solid_triangles(grid: VoxelGrid) -> tuple[np.ndarray, np.ndarray]:
    """The closed surface of a voxel grid's solid voxels (marching cubes). ([V, 3], [F, 3])"""
    from skimage import measure

    padded = np.pad(grid.solid, 1).astype(np.float32)
    vertices, faces, _, _ = measure.marching_cubes(padded, 0.5, spacing=(grid.voxel,) * 3, method="lorensen")
    return vertices + grid.origin - grid.voxel, faces[:, ::-1].astype(np.int64)  # wound to face out of the solid


# -- meshes --------------------------------------------------------------------------------


def collider(
    g: Gaussians, *, max_triangles: int = 200_000, cell: float = 0.15, voxel: float = 0.25
) -> trimesh.Trimesh:
    """The walkable ground and the solid things standing on it, at most `max_triangles` triangles (+Z up, meters).

    cell: the ground grid's spacing; voxel: the solids' voxel side (both m).
    """
    import trimesh

    s = _geometry(g, max_triangles=max_triangles, cell=cell, voxel=voxel)
    land = ground(s, cell=cell)
    pieces = [trimesh.Trimesh(*_solid_triangles(grid), process=False) for grid in solids(s, land, voxel=voxel)]
    pieces = _simplify_solids(pieces, budget=int(max_triangles * SOLID_SHARE), voxel=voxel)
    left = max_triangles - sum(len(p.faces) for p in pieces)
    surface = _simplify(trimesh.Trimesh(*land.triangles(), process=False), left)
    return trimesh.util.concatenate([surface, *pieces])


def _simplify(mesh: trimesh.Trimesh, budget: int) -> trimesh.Trimesh:
    """`mesh` with at most `budget` triangles (quadric decimation; it lands near its target, so it aims a little lower)."""
    for aim in (budget, int(budget * 0.95), int(budget * 0.8)):
        if len(mesh.faces) <= budget:
            break
        mesh = mesh.simplify_quadric_decimation(face_count=max(aim, 4))
    if len(mesh.faces) > budget:  # pragma: no cover - decimation has always got there within three tries
        raise AssertionError(f"quadric decimation left {len(mesh.faces)} triangles for a budget of {budget}")
    return mesh


def _simplify_solids(pieces: list[trimesh.Trimesh], *, budget: int, voxel: float) -> list[trimesh.Trimesh]:
    """Each solid simplified to about `SOLID_REDUCTION` of its marching-cubes triangles (most lie in flat
    staircases), or further where all together exceed `budget`, and still closed."""
    total = sum(len(p.faces) for p in pieces)
    share = min(SOLID_REDUCTION, budget / total) if total else 1.0
    out = [_simplify_closed(p, max(int(len(p.faces) * share), 12), tolerance=MANIFOLD_TOLERANCE * voxel) for p in pieces]
    have = sum(len(p.faces) for p in out)
    if have > budget:  # a budget too small for every solid to stay closed: simplify on, drop what cannot fit
        scale = budget / have
        out = [_simplify(p, int(len(p.faces) * scale)) for p in out if int(len(p.faces) * scale) >= 4]
    return out


def _simplify_closed(piece: trimesh.Trimesh, target: int, *, tolerance: float) -> trimesh.Trimesh:
    """`piece` with about `target` triangles by quadric decimation, or, where that would leave it
    non-manifold, by manifold3d's simplification, which keeps it closed by construction."""
    simple = piece.simplify_quadric_decimation(face_count=target)
    simple.merge_vertices()
    if simple.is_watertight and simple.volume > 0:
        return simple
    import manifold3d
    import trimesh

    solid = manifold3d.Manifold(
        manifold3d.Mesh(vert_properties=piece.vertices.astype(np.float32), tri_verts=piece.faces.astype(np.uint32))
    )
    mesh = solid.simplify(tolerance).to_mesh()
    return trimesh.Trimesh(mesh.vert_properties[:, :3], mesh.tri_verts, process=False)


def preview(
    g: Gaussians, *, max_triangles: int = 200_000, cell: float = 0.15, voxel: float = 0.25
) -> trimesh.Trimesh:
    """The collider's surfaces with vertex colours: each vertex takes the opacity-weighted colour of the splats near it."""
    mesh = collider(g, max_triangles=max_triangles, cell=cell, voxel=voxel)
    mesh.visual.vertex_colors = vertex_colors(g, mesh.vertices)
    return mesh


def vertex_colors(g: Gaussians, vertices: np.ndarray) -> np.ndarray:
    """RGBA uint8 per vertex: the base colour of the splats within `COLOR_RADIUS`, weighted by opacity and
    closeness (the nearest splat's where none is that close). [V, 3] -> [V, 4]"""
    from scipy.spatial import cKDTree

    rgb = g.rgb.detach().double().cpu().numpy()
    keep = (g.scales.max(1).values <= MAX_SOLID_SCALE).cpu().numpy() & (g.opacities >= MIN_SOLID_OPACITY).cpu().numpy()
    means, rgb, opacity = g.means.detach().double().cpu().numpy()[keep], rgb[keep], g.opacities.detach().double().cpu().numpy()[keep]
    if len(means) == 0:
        return np.full((len(vertices), 4), 255, np.uint8)
    k = min(16, len(means))
    dist, idx = cKDTree(means).query(vertices, k=k)
    dist, idx = dist.reshape(len(vertices), k), idx.reshape(len(vertices), k)
    w = opacity[idx] * np.exp(-0.5 * (dist / (COLOR_RADIUS / 2)) ** 2)
    w[:, 0] = np.maximum(w[:, 0], 1e-12)  # the nearest splat colours a vertex that nothing is near
    color = (w[:, :, None] * rgb[idx]).sum(1) / w.sum(1, keepdims=True)
    out = np.full((len(vertices), 4), 255, np.uint8)
    out[:, :3] = np.clip(np.round(color * 255), 0, 255).astype(np.uint8)
    return out


def build(g: Gaussians, kind: MeshKind = "collider", **options) -> trimesh.Trimesh:
    """`collider(g, ...)` or `preview(g, ...)` by name."""
    if kind not in KINDS:
        raise UsageError(f"unknown mesh kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return {"collider": collider, "preview": preview}[kind](g, **options)


def _geometry(g: Gaussians, *, max_triangles: int, cell: float, voxel: float) -> SplatGeometry:
    if not isinstance(g, Gaussians):
        raise InvalidGaussiansError(f"a mesh is made from Gaussians, got {type(g).__name__}")
    if max_triangles < 100:
        raise UsageError(f"the triangle budget must be at least 100, got {max_triangles}")
    for name, value in (("cell", cell), ("voxel", voxel)):
        if not (0.01 <= value <= 10):
            raise UsageError(f"{name} must be between 0.01 and 10 m, got {value}")
    if len(g) == 0:
        raise InvalidGaussiansError("cannot make a mesh of an empty set of Gaussians")
    g.validate()
    return SplatGeometry.of(g)


# -- glTF ----------------------------------------------------------------------------------

def _world_to_gltf() -> np.ndarray:  # [4, 4]
    """World (+Z up) to glTF (+Y up) as the splat .glb writes it: (x, y, z) -> (-x, z, y), so a world's collider
    and its splat .glb lie over each other in an engine."""
    from exporters.frames import file_from_world

    m = np.eye(4)
    m[:3, :3] = file_from_world("gltf")
    return m


Z_UP_TO_Y_UP = _world_to_gltf()


def save_glb(mesh: trimesh.Trimesh, path: str | Path) -> None:
    """Write `mesh` (world frame, +Z up) as binary glTF, +Y up as glTF requires, atomically."""
    from worldgen.io import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise UsageError(f"{path}: a mesh is written as .glb")
    atomic_write_bytes(path, glb_bytes(mesh))


def glb_bytes(mesh: trimesh.Trimesh) -> bytes:
    """`mesh` (world frame, +Z up) as the bytes of a binary glTF file, +Y up."""
    import trimesh

    y_up = mesh.copy()
    y_up.apply_transform(Z_UP_TO_Y_UP)
    return trimesh.Scene(y_up).export(file_type="glb")


__all__ = [
    "KINDS", "HeightField", "MeshKind", "SplatGeometry", "VoxelGrid", "build", "collider", "glb_bytes", "ground",
    "preview", "save_glb", "solid_candidates", "solids", "vertex_colors",
]  # fmt: skip
