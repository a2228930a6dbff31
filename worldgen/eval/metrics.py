"""Distribution metrics over worlds: Chamfer distance, MMD, coverage, 1-NNA (as in PointFlow), diversity.

A world becomes a point cloud of `n` Gaussians drawn from its footprint (the
sky dome is left out), each a 6-vector: position divided by the footprint's
half side, and colour. Two sets of worlds are compared through the matrix of
Chamfer distances between them:

- MMD: for each reference world, the distance to its nearest generated world, averaged (0 when every reference has a twin).
- coverage: the share of reference worlds that are the nearest reference of some generated world.
- 1-NNA: leave-one-out 1-nearest-neighbour accuracy of telling the two sets apart; 0.5 is ideal, 1.0 means fully separable.
- diversity: the mean pairwise distance among worlds of one prompt.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians


def world_points(
    gaussians: Gaussians,
    n: int = 2048,
    *,
    seed: int = 0,
    footprint: float = 32.0,
    color_weight: float = 1.0,
) -> Tensor:
    """`n` footprint Gaussians as [position / footprint, colour * color_weight] rows. [n, 6]"""
    g = gaussians.detach().to("cpu", torch.float32)
    keep = (g.means[:, :2].abs() < footprint).all(1) & (g.means[:, 2].abs() < footprint * 2)
    means, rgb = g.means[keep], g.rgb[keep].clamp(0, 1)
    pts = torch.cat([means / footprint, rgb * color_weight], 1)
    if len(pts) == 0:
        raise UsageError("the world has no Gaussians in its footprint to compare")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(pts), (n,), generator=gen) if len(pts) < n else torch.randperm(len(pts), generator=gen)[:n]
    return pts[idx]


def chamfer(a: Tensor, b: Tensor) -> Tensor:
    """Symmetric Chamfer distance: mean squared distance to the nearest point, both ways. a [N, D], b [M, D] -> []"""
    d = torch.cdist(a, b).square()  # [N, M]
    return d.min(1).values.mean() + d.min(0).values.mean()


def _chamfer_reference(a: Tensor, b: Tensor) -> Tensor:
    """Loop twin of `chamfer`."""
    ab = torch.stack([((b - p) ** 2).sum(1).min() for p in a]).mean()
    ba = torch.stack([((a - q) ** 2).sum(1).min() for q in b]).mean()
    return ab + ba


def distance_matrix(xs: list[Tensor], ys: list[Tensor]) -> Tensor:
    """Chamfer distances between every x and every y. -> [len(xs), len(ys)]"""
    if not xs or not ys or len({len(p) for p in (*xs, *ys)}) != 1:
        return torch.tensor([[float(chamfer(x, y)) for y in ys] for x in xs]).reshape(len(xs), len(ys))
    Y = torch.stack(ys)  # [B, n, D]
    rows = []
    for x in xs:
        d = torch.cdist(x[None].expand(len(ys), -1, -1), Y).square()  # [B, n, n]
        rows.append(d.min(2).values.mean(1) + d.min(1).values.mean(1))
    return torch.stack(rows)


def mmd(d_gen_ref: Tensor) -> float:
    """Minimum matching distance: mean over references of the distance to the nearest generated world. d [G, R]"""
    return float(d_gen_ref.min(0).values.mean())


def coverage(d_gen_ref: Tensor) -> float:
    """Share of references matched as nearest by at least one generated world. d [G, R]"""
    return float(d_gen_ref.argmin(1).unique().numel() / d_gen_ref.shape[1])


def one_nna(d_gg: Tensor, d_rr: Tensor, d_gr: Tensor) -> float:
    """Leave-one-out 1-NN accuracy of classifying gen vs ref. d_gg [G, G], d_rr [R, R], d_gr [G, R]

    Each world's own distance is excluded; a tie between its own set and the other goes to the other set
    (so two identical sets score 0, independent draws of one distribution about 0.5, disjoint sets 1).
    """
    G, R = d_gr.shape
    if G < 2 or R < 2:
        raise UsageError("1-NNA needs at least two worlds on each side")
    inf = torch.eye(G, dtype=torch.bool)
    own_g = d_gg.masked_fill(inf, float("inf")).min(1).values
    right_g = own_g < d_gr.min(1).values
    own_r = d_rr.masked_fill(torch.eye(R, dtype=torch.bool), float("inf")).min(1).values
    right_r = own_r < d_gr.min(0).values
    return float((right_g.sum() + right_r.sum()) / (G + R))


def _one_nna_reference(d_gg: Tensor, d_rr: Tensor, d_gr: Tensor) -> float:
    """Loop twin of `one_nna`."""
    G, R = d_gr.shape
    full = torch.cat([torch.cat([d_gg, d_gr], 1), torch.cat([d_gr.T, d_rr], 1)], 0)
    label = [0] * G + [1] * R
    right = 0
    for i in range(G + R):
        best_same, best_other = float("inf"), float("inf")
        for j in range(G + R):
            if j == i:
                continue
            if label[j] == label[i]:
                best_same = min(best_same, float(full[i, j]))
            else:
                best_other = min(best_other, float(full[i, j]))
        right += best_same < best_other
    return right / (G + R)


def diversity(d_self: Tensor) -> float:
    """Mean distance between distinct worlds of one set. d_self [S, S]"""
    S = d_self.shape[0]
    if S < 2:
        return 0.0
    off = ~torch.eye(S, dtype=torch.bool)
    return float(d_self[off].mean())


def compare_sets(gen: list[Tensor], ref: list[Tensor]) -> dict[str, float]:
    """MMD, coverage and 1-NNA of generated point clouds against reference ones (each [n, 6])."""
    d_gr, d_gg, d_rr = distance_matrix(gen, ref), distance_matrix(gen, gen), distance_matrix(ref, ref)
    return {"mmd": mmd(d_gr), "coverage": coverage(d_gr), "1nna": one_nna(d_gg, d_rr, d_gr)}


__all__ = ["chamfer", "compare_sets", "coverage", "distance_matrix", "diversity", "mmd", "one_nna", "world_points"]
