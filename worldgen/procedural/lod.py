"""Level of detail: the coarse set the model generates, and the children that bring it back to full detail.

`build_lod` clusters a full world into `coarse_n` groups (balanced median
splits on position and colour; k-means as an option), moment-matches one Gaussian to
each group, and keeps exactly `children` members per group (subsampled, or
repeated when a group is small) in the parent's local frame:

    offset      = R_p^T (mean - mean_p) / scales_p          # [3]
    log_scale   = log(scales / scales_p)                    # [3]
    quat        = q_p^-1 * q                                # [4] wxyz
    rgb, opacity                                            # [3], []

`to_children_local` and `from_children_local` are the two directions; the
model's detail decoder uses the second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import Tensor

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians, quat_multiply, quat_to_rotmat, rotmat_to_quat

#: floor on a coarse Gaussian's scale, meters (keeps local offsets bounded)
MIN_PARENT_SCALE = 0.01


@dataclass(frozen=True, eq=False)
class Children:
    """`C` children per parent, in each parent's local frame."""

    offsets: Tensor  # [M, C, 3] R_p^T (mean - mean_p) / scales_p
    log_scales: Tensor  # [M, C, 3] log(scales / scales_p)
    quats: Tensor  # [M, C, 4] q_p^-1 * q, wxyz
    rgb: Tensor  # [M, C, 3]
    opacities: Tensor  # [M, C]


@dataclass(frozen=True, eq=False)
class Lod:
    """A coarse set and its children."""

    coarse: Gaussians  # M Gaussians
    children: Children  # [M, C, ...]
    assignment: Tensor  # [N] cluster of every full-detail Gaussian (-1: none)

    def expand(self) -> Gaussians:
        """The full-detail set rebuilt from coarse + children (M * C Gaussians)."""
        return from_children_local(self.coarse, self.children)


# -- local frame ------------------------------------------------------------------------


def quat_conjugate(q: Tensor) -> Tensor:
    """Inverse of a unit quaternion. [..., 4] -> [..., 4]"""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def to_children_local(
    parents: Gaussians,  # M parents
    members: Gaussians,  # M * C members, grouped by parent (parent i owns rows i*C .. i*C+C-1)
    children: int,
) -> Children:
    """Express each parent's `children` members in the parent's local frame."""
    m = len(parents)
    if len(members) != m * children:
        raise UsageError(f"{len(members)} members for {m} parents x {children} children")
    rot = quat_to_rotmat(parents.quats)  # [M, 3, 3]
    s_p = parents.scales.clamp_min(MIN_PARENT_SCALE)  # [M, 3]
    d = members.means.reshape(m, children, 3) - parents.means[:, None]  # [M, C, 3]
    offsets = torch.einsum("mji,mcj->mci", rot, d) / s_p[:, None]
    log_scales = torch.log(members.scales.reshape(m, children, 3).clamp_min(1e-6) / s_p[:, None])
    q_p = torch.nn.functional.normalize(parents.quats, dim=-1)[:, None].expand(m, children, 4)
    quats = quat_multiply(quat_conjugate(q_p), torch.nn.functional.normalize(members.quats, dim=-1).reshape(m, children, 4))
    quats = quats * torch.where(quats[..., :1] < 0, -1.0, 1.0)  # w >= 0
    return Children(
        offsets=offsets,
        log_scales=log_scales,
        quats=quats,
        rgb=members.rgb.reshape(m, children, 3),
        opacities=members.opacities.reshape(m, children),
    )


def from_children_local(parents: Gaussians, children: Children) -> Gaussians:
    """World-frame Gaussians from parents and their local children (the decoder's last step). [M*C]"""
    m, c = children.offsets.shape[:2]
    dtype = parents.dtype
    rot = quat_to_rotmat(parents.quats)  # [M, 3, 3]
    s_p = parents.scales.clamp_min(MIN_PARENT_SCALE)
    means = parents.means[:, None] + torch.einsum("mij,mcj->mci", rot, children.offsets.to(dtype) * s_p[:, None])
    scales = s_p[:, None] * torch.exp(children.log_scales.to(dtype))
    q_p = torch.nn.functional.normalize(parents.quats, dim=-1)[:, None].expand(m, c, 4)
    quats = torch.nn.functional.normalize(quat_multiply(q_p, children.quats.to(dtype)), dim=-1)
    return Gaussians.from_rgb(
        means.reshape(-1, 3),
        children.rgb.to(dtype).reshape(-1, 3).clamp(0, 1),
        scales.reshape(-1, 3),
        children.opacities.to(dtype).reshape(-1).clamp(0, 1),
        quats.reshape(-1, 4),
    )


def _to_children_local_reference(parents: Gaussians, members: Gaussians, children: int) -> Children:
    """One parent and one member at a time: the obviously-correct twin of `to_children_local`."""
    out = {k: [] for k in ("offsets", "log_scales", "quats", "rgb", "opacities")}
    for i in range(len(parents)):
        r = quat_to_rotmat(parents.quats[i])
        s = parents.scales[i].clamp_min(MIN_PARENT_SCALE)
        qi = parents.quats[i] / parents.quats[i].norm()
        for j in range(children):
            k = i * children + j
            out["offsets"].append(r.T @ (members.means[k] - parents.means[i]) / s)
            out["log_scales"].append(torch.log(members.scales[k].clamp_min(1e-6) / s))
            q = quat_multiply(quat_conjugate(qi), members.quats[k] / members.quats[k].norm())
            out["quats"].append(q if q[0] >= 0 else -q)
            out["rgb"].append(members.rgb[k])
            out["opacities"].append(members.opacities[k])
    m = len(parents)
    return Children(**{k: torch.stack(v).reshape(m, children, *v[0].shape) for k, v in out.items()})


# -- fitting ----------------------------------------------------------------------------


def kmeans(
    features: Tensor,  # [N, D]
    k: int,
    *,
    iters: int = 5,
    generator: torch.Generator,
    chunk: int = 16384,
) -> Tensor:
    """Cluster index of every row after `iters` Lloyd iterations; no cluster is left empty. [N] long"""
    n = features.shape[0]
    if k > n:
        raise UsageError(f"cannot make {k} clusters from {n} points")
    centers = features[torch.randperm(n, generator=generator)[:k]].clone()
    for it in range(iters + 1):
        assign = _nearest(features, centers, chunk)
        if it == iters:
            break
        sums = torch.zeros_like(centers).index_add_(0, assign, features)
        counts = torch.bincount(assign, minlength=k).to(features.dtype)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None]
    return _fill_empty(features, assign, centers, k)


def kd_split(
    features: Tensor,  # [N, D]
    k: int,
) -> Tensor:
    """Balanced clusters by recursive median splits along each group's widest feature axis. [N] long

    Every group of points that is to become `kc` clusters is cut at the `floor(kc/2)/kc` quantile of
    its widest axis, all groups of a level at once (two stable sorts per level).
    """
    n, d = features.shape
    if k > n:
        raise UsageError(f"cannot make {k} clusters from {n} points")
    order = torch.arange(n)  # points, grouped by segment
    seg_start = torch.tensor([0])
    seg_k = torch.tensor([k])
    seg_len = torch.tensor([n])
    while bool((seg_k > 1).any()):
        seg_id = torch.repeat_interleave(torch.arange(len(seg_k)), seg_len)
        f = features[order]
        lo = torch.full((len(seg_k), d), float("inf")).scatter_reduce(0, seg_id[:, None].expand(n, d), f, "amin")
        hi = torch.full((len(seg_k), d), float("-inf")).scatter_reduce(0, seg_id[:, None].expand(n, d), f, "amax")
        axis = (hi - lo).argmax(1)  # [S]
        value = f.gather(1, axis[seg_id][:, None])[:, 0]
        by_value = torch.sort(value, stable=True).indices
        regroup = torch.sort(seg_id[by_value], stable=True).indices
        order = order[by_value[regroup]]
        k_left = seg_k // 2
        n_left = torch.where(seg_k > 1, (seg_len * k_left + seg_k // 2) // seg_k.clamp_min(1), seg_len)
        split = seg_k > 1
        clamped = torch.minimum(torch.maximum(n_left, k_left), seg_len - (seg_k - k_left))
        n_left = torch.where(split, clamped, seg_len)
        new_len = torch.stack([n_left, seg_len - n_left], 1)
        new_k = torch.stack([torch.where(split, k_left, seg_k), seg_k - k_left], 1)
        keep = torch.stack([torch.ones_like(split), split], 1)
        seg_len, seg_k = new_len[keep], new_k[keep]
    assign = torch.empty(n, dtype=torch.long)
    assign[order] = torch.repeat_interleave(torch.arange(len(seg_k)), seg_len)
    return assign


def _nearest(x: Tensor, centers: Tensor, chunk: int) -> Tensor:
    c2 = (centers * centers).sum(1)
    out = []
    for start in range(0, x.shape[0], chunk):
        xs = x[start : start + chunk]
        d = c2[None] - 2 * xs @ centers.T  # |x|^2 is the same for every centre
        out.append(d.argmin(1))
    return torch.cat(out)


def _fill_empty(x: Tensor, assign: Tensor, centers: Tensor, k: int) -> Tensor:
    counts = torch.bincount(assign, minlength=k)
    for empty in (counts == 0).nonzero()[:, 0].tolist():
        big = int(counts.argmax())
        rows = (assign == big).nonzero()[:, 0]
        far = rows[(x[rows] - centers[big]).square().sum(1).argmax()]
        assign[far] = empty
        counts[big] -= 1
        counts[empty] = 1
    return assign


def moment_match(g: Gaussians, assign: Tensor, k: int) -> Gaussians:
    """One Gaussian per cluster: opacity-weighted mean, covariance (spread + members' own), colour, opacity."""
    w = g.opacities.clamp_min(1e-3)[:, None]  # [N, 1]
    wsum = torch.zeros(k, 1, dtype=g.dtype).index_add_(0, assign, w)
    mean = torch.zeros(k, 3, dtype=g.dtype).index_add_(0, assign, w * g.means) / wsum
    d = g.means - mean[assign]
    cov_i = g.covariances() + d[:, :, None] * d[:, None, :]
    cov = torch.zeros(k, 3, 3, dtype=g.dtype).index_add_(0, assign, w[:, :, None] * cov_i) / wsum[:, :, None]
    evals, evecs = torch.linalg.eigh(cov.double())
    evecs = evecs * torch.where(torch.linalg.det(evecs) < 0, -1.0, 1.0)[:, None, None].to(evecs)  # proper rotation
    scales = evals.clamp_min(MIN_PARENT_SCALE**2).sqrt().to(g.dtype)
    quats = rotmat_to_quat(evecs).to(g.dtype)
    rgb = torch.zeros(k, 3, dtype=g.dtype).index_add_(0, assign, w * g.rgb) / wsum
    count = torch.bincount(assign, minlength=k).to(g.dtype)
    opac = (wsum[:, 0] / count).clamp(0, 1)
    return Gaussians.from_rgb(mean, rgb.clamp(0, 1), scales, opac, quats)


def pick_members(assign: Tensor, k: int, children: int, *, generator: torch.Generator) -> Tensor:
    """Row indices of exactly `children` members per cluster, grouped by cluster. [k * children]

    A cluster with at least `children` members gives a random subset; a smaller one repeats its members in turn.
    """
    n = assign.shape[0]
    key = torch.rand(n, generator=generator, dtype=torch.float64)
    order = torch.argsort(assign.double() * 2 + key)  # by cluster, shuffled within
    counts = torch.bincount(assign, minlength=k)
    starts = torch.cumsum(counts, 0) - counts
    j = torch.arange(children)
    slot = torch.where(counts[:, None] >= children, j[None], j[None] % counts.clamp_min(1)[:, None])
    return order[(starts[:, None] + slot).reshape(-1)]


def share_budget(sizes: list[int], total: int) -> list[int]:
    """`total` clusters shared over groups of `sizes` points: proportional (largest remainder), >= 1 each."""
    if total < len(sizes):
        raise UsageError(f"{total} coarse Gaussians cannot cover {len(sizes)} layers")
    n = sum(sizes)
    if n < total:
        raise UsageError(f"{n} Gaussians cannot give {total} coarse ones")
    spare = total - len(sizes)  # one each first, the rest in proportion
    exact = [spare * s / n for s in sizes]
    share = [min(1 + int(e), s) for e, s in zip(exact, sizes, strict=True)]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (int(exact[i]) - exact[i], i))
    while sum(share) < total:
        for i in by_remainder:
            if sum(share) < total and share[i] < sizes[i]:
                share[i] += 1
    return share


def _cluster_parts(
    feats: Tensor,  # [N, D]
    parts: list[tuple[Tensor, int]],  # (mask [N] bool, clusters k) per part
    split: Callable[[Tensor, int], Tensor],  # features [M, D], k -> cluster of each row [M] in [0, k)
) -> Tensor:  # [N] long: cluster of every row, numbered on across the parts (-1: in no part)
    """Cluster each part of the rows on its own, so that no cluster mixes two parts."""
    assign = torch.full((len(feats),), -1, dtype=torch.long)
    offset = 0
    for mask, k in parts:
        if k == 0:
            continue
        rows = mask.nonzero()[:, 0]
        assign[rows] = split(feats[rows], k) + offset
        offset += k
    return assign


def build_lod(
    world: Gaussians,
    *,
    coarse_n: int = 2048,
    children: int = 64,
    sky_mask: Tensor | None = None,  # [N] bool: which Gaussians are sky
    sky_fraction: float = 0.12,
    layers: Tensor | None = None,  # [N] long: which part of the world (terrain, water, ...) each Gaussian is
    color_weight: float = 4.0,
    method: Literal["kdtree", "kmeans"] = "kdtree",
    iters: int = 5,
    seed: int = 0,
) -> Lod:
    """Fit `coarse_n` Gaussians to `world` and keep `children` members of each in its local frame.

    The sky (when `sky_mask` is given) gets at most `sky_fraction` of the coarse budget, clustered on its own.
    With `layers`, no cluster mixes two layers: the rest of the budget is shared out in proportion to each
    layer's size (every non-empty layer gets at least one), so a coarse Gaussian is all water or all tree,
    never a blend of a lake and its bed.
    method "kdtree" (default) splits at medians into balanced groups in ~0.2 s; "kmeans" runs `iters`
    Lloyd iterations (about 15 s for a 110k world on one CPU thread).
    """
    if coarse_n < 1 or children < 1:
        raise UsageError(f"coarse_n and children must be positive, got {coarse_n} and {children}")
    if len(world) < coarse_n:
        raise UsageError(f"a world of {len(world)} Gaussians cannot give {coarse_n} coarse ones")
    gen = torch.Generator().manual_seed(int(seed))
    world = world.to(dtype=torch.float32)
    sky_mask = torch.zeros(len(world), dtype=torch.bool) if sky_mask is None else sky_mask
    n_sky = min(int(sky_mask.sum()), int(round(coarse_n * sky_fraction))) if sky_mask.any() else 0
    if layers is None:
        groups = [(~sky_mask, coarse_n - n_sky)]
    else:
        if layers.shape != (len(world),):
            raise UsageError(f"layers must hold one label per Gaussian ({len(world)}), got shape {tuple(layers.shape)}")
        masks = [(layers == v) & ~sky_mask for v in layers[~sky_mask].unique().tolist()]
        groups = list(zip(masks, share_budget([int(m.sum()) for m in masks], coarse_n - n_sky), strict=True))
    groups.append((sky_mask, n_sky))
    if method == "kmeans":
        split = partial(kmeans, iters=iters, generator=gen)
    elif method == "kdtree":
        split = kd_split
    else:
        raise UsageError(f"method must be 'kdtree' or 'kmeans', got {method!r}")
    assign = _cluster_parts(torch.cat([world.means, world.rgb * color_weight], dim=1), groups, split)
    used = assign >= 0
    coarse = moment_match(world[used], assign[used], coarse_n)
    members = pick_members(assign[used], coarse_n, children, generator=gen)
    local = to_children_local(coarse, world[used][members], children)
    return Lod(coarse=coarse, children=local, assignment=assign)


def build_groups(coarse: Gaussians, size: int, *, color_weight: float = 4.0, seed: int = 0) -> tuple[Gaussians, Tensor]:
    """Cluster a coarse set into groups of exactly `size` members: the level above it.

    Returns the group Gaussians (moment-matched, `len(coarse) // size` of them) and
    `members` [G, size], the coarse rows of each group. Gaussians inside the
    footprint's ball (|x| <= 32 m) and those beyond it (distant land, the sky) are
    grouped apart, on position (the far ones in the tokens' contracted metric, so
    that the sky shell is not one 500 m wide blur) and colour, with the balanced
    median splits of `build_lod`. A group smaller than `size` repeats members, a
    larger one leaves some out (at most a few per world).
    """
    from worldgen.model.tokens import HALF_EXTENT, contract

    n = len(coarse)
    if size < 1 or n % size:
        raise UsageError(f"{n} coarse Gaussians do not split into groups of {size}")
    k = n // size
    gen = torch.Generator().manual_seed(int(seed))
    coarse = coarse.to(dtype=torch.float32)
    pos = contract(coarse.means / HALF_EXTENT) * HALF_EXTENT  # meters inside the ball, contracted beyond
    feats = torch.cat([pos, coarse.rgb * color_weight], dim=1)
    far = coarse.means.norm(dim=1) > HALF_EXTENT
    masks = [m for m in (~far, far) if m.any()]
    shares = share_budget([int(m.sum()) for m in masks], k)
    assign = _cluster_parts(feats, list(zip(masks, shares, strict=True)), kd_split)
    groups = moment_match(coarse, assign, k)
    members = pick_members(assign, k, size, generator=gen).reshape(k, size)
    return groups, members
