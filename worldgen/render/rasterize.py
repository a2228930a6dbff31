"""The pure-PyTorch rasterizer: gsplat's classic 3DGS maths, tile-binned and vectorised.

Stages, for one camera at a time:

1. `project`: world -> camera, 3-D covariance from quats and scales, EWA
   projection with gsplat's clamped Jacobian, the 0.3-pixel low-pass `eps2d`,
   near/far culling, opacity-aware 3.33-sigma screen extents, SH colour from
   the camera direction. Only the Gaussians that can touch the image survive.
2. `bin_tiles`: every (8x8 tile, Gaussian) pair whose screen box overlaps,
   sorted by tile and then by depth.
3. `composite`: per chunk of tiles, the depth-sorted lists are padded into a
   [T, L] index and walked in slabs of growing depth; each slab computes
   alpha for [T, tile pixels, slab] with one batched matmul (the exponent is a
   quadratic in the pixel's tile-local coordinates), transmittance by a
   cumulative product, and the colour by a second matmul. Saturated tiles
   drop out between slabs.

Compositing rules are gsplat's (`RasterizeToPixels3DGSFwd.cu`): pixel centres
at (x + 0.5, y + 0.5); alpha = min(ALPHA_MAX, opacity * exp(-sigma)); a
Gaussian with alpha < 1/255 is skipped; a pixel stops *before* the Gaussian
that would bring its transmittance to T_MIN or below; background adds
T_final * background. Everything is differentiable by autograd (the skip and
stop decisions are constants, as in gsplat's backward).

`_render_reference` is the slow twin: it projects with explicit matrices and
composites every Gaussian over every pixel, one Gaussian at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from worldgen.gaussians import Gaussians, quat_to_rotmat
from worldgen.sh import eval_sh

#: alpha below this is skipped (gsplat's ALPHA_THRESHOLD)
ALPHA_THRESHOLD = 1.0 / 255.0
#: alpha cap (gsplat 1.5.3 uses 0.999 in its kernels)
ALPHA_MAX = 0.999
#: a pixel stops before the Gaussian that brings its transmittance to this or below
T_MIN = 1e-4
#: screen extent in standard deviations, at most (gsplat's `extend`)
EXTEND_MAX = 3.33
LOG_ALPHA_MAX = math.log(ALPHA_MAX)
LOG_ALPHA_THRESHOLD = math.log(ALPHA_THRESHOLD)
#: a padded slot in a tile's list gets this exponent: alpha = exp(-PAD_EXPONENT) = 0
PAD_EXPONENT = 1e4


@dataclass(frozen=True)
class RasterConfig:
    """Settings of the torch rasterizer (the defaults match gsplat's classic mode, but the far plane)."""

    near_plane: float = 0.01
    far_plane: float = 1e4  # must include a sky dome of radius >= 150 m
    eps2d: float = 0.3
    #: elements of the [tiles, 256, slab] working set per step: memory is bounded by this (x ~8 tensors)
    chunk_elements: int = 1 << 22
    first_slab: int = 16
    max_slab: int = 256
    #: square tile side in pixels; results do not depend on it (every pixel a Gaussian reaches is in its box)
    tile_size: int = 8


@dataclass(frozen=True)
class Projected:
    """The Gaussians of one view that can touch the image, in screen space."""

    ids: Tensor  # [V] int64 rows of the input Gaussians
    means2d: Tensor  # [V, 2] pixels
    conics: Tensor  # [V, 3] inverse 2-D covariance (a, b, c): sigma = 0.5 (a dx^2 + c dy^2) + b dx dy
    depths: Tensor  # [V] camera z
    radii: Tensor  # [V, 2] int64 screen half-extent in pixels (x, y)
    opacities: Tensor  # [V]
    colors: Tensor  # [V, 3] SH colour seen from this camera


def project(
    g: Gaussians,
    viewmat: Tensor,  # [4, 4] world-to-camera
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    config: RasterConfig = RasterConfig(),
) -> Projected:
    """Project to screen space and cull as gsplat's `fully_fused_projection` does (classic mode)."""
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    means_c = g.means @ rot.T + trans  # [N, 3]
    z = means_c[:, 2]
    in_depth = (z >= config.near_plane) & (z <= config.far_plane)
    keep = in_depth & (g.opacities >= ALPHA_THRESHOLD)
    ids = keep.nonzero()[:, 0]
    means_c, z = means_c[ids], z[ids]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]

    # EWA: J (R_wc M) with M = R_q diag(s), so cov2d = (J R M)(J R M)^T
    m = rot @ (quat_to_rotmat(g.quats[ids]) * g.scales[ids][:, None, :])  # [V, 3, 3]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    x, y = means_c[:, 0], means_c[:, 1]
    rz = 1.0 / z
    tx = z * torch.minimum(torch.maximum(x * rz, -lim_x_neg), lim_x_pos)
    ty = z * torch.minimum(torch.maximum(y * rz, -lim_y_neg), lim_y_pos)
    j0 = torch.stack([fx * rz, torch.zeros_like(z), -fx * tx * rz * rz], -1)  # [V, 3]
    j1 = torch.stack([torch.zeros_like(z), fy * rz, -fy * ty * rz * rz], -1)
    jm0 = (j0[:, :, None] * m).sum(1)  # [V, 3] row 0 of J M
    jm1 = (j1[:, :, None] * m).sum(1)
    cxx = (jm0 * jm0).sum(-1) + config.eps2d
    cyy = (jm1 * jm1).sum(-1) + config.eps2d
    cxy = (jm0 * jm1).sum(-1)
    det = cxx * cyy - cxy * cxy
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)  # [V, 2]

    with torch.no_grad():
        opac = g.opacities[ids]
        extend = torch.sqrt(2.0 * torch.log(opac / ALPHA_THRESHOLD)).clamp(max=EXTEND_MAX)
        rx = torch.ceil(extend * cxx.sqrt())
        ry = torch.ceil(extend * cyy.sqrt())
        mx, my = means2d[:, 0], means2d[:, 1]
        ok = (det > 0) & torch.isfinite(means2d).all(-1) & torch.isfinite(det) & ((rx > 0) | (ry > 0))
        ok &= (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        sel = ok.nonzero()[:, 0]
        radii = torch.stack([rx, ry], -1)[sel].long()

    det = det[sel]
    conics = torch.stack([cyy[sel] / det, -cxy[sel] / det, cxx[sel] / det], -1)
    ids = ids[sel]
    campos = -(rot.T @ trans)
    dirs = torch.nn.functional.normalize(g.means[ids] - campos, dim=-1)
    colors = eval_sh(torch.cat([g.sh0[ids], g.shN[ids]], 1), dirs)  # [V, 3], includes +0.5 and clamp at 0
    return Projected(ids, means2d[sel], conics, z[sel], radii, g.opacities[ids], colors)


@dataclass(frozen=True)
class Bins:
    """(tile, Gaussian) pairs sorted by tile, then by depth."""

    order: Tensor  # [V] projected rows sorted by depth (rank r -> row)
    ranks: Tensor  # [M] depth rank of each pair's Gaussian, grouped by tile
    tile_starts: Tensor  # [n_tiles] first pair of each tile
    tile_counts: Tensor  # [n_tiles] pairs per tile
    tiles_x: int
    tiles_y: int
    tile: int  # tile side, pixels


@torch.no_grad()
def bin_tiles(p: Projected, width: int, height: int, tile: int = 16) -> Bins:
    """Tile overlaps of each Gaussian's screen box (gsplat's `isect_tiles`), ordered by tile then depth."""
    tiles_x, tiles_y = (width + tile - 1) // tile, (height + tile - 1) // tile
    order = torch.argsort(p.depths, stable=True)
    m2, r = p.means2d[order] / tile, p.radii[order].to(p.means2d.dtype) / tile
    x0 = torch.floor(m2[:, 0] - r[:, 0]).clamp(0, tiles_x).long()
    x1 = torch.ceil(m2[:, 0] + r[:, 0]).clamp(0, tiles_x).long()
    y0 = torch.floor(m2[:, 1] - r[:, 1]).clamp(0, tiles_y).long()
    y1 = torch.ceil(m2[:, 1] + r[:, 1]).clamp(0, tiles_y).long()
    w = x1 - x0
    counts = w * (y1 - y0)  # [V]
    total = int(counts.sum())
    rank = torch.repeat_interleave(torch.arange(len(order), device=counts.device), counts)  # [M]
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=counts.device) - first[rank]
    wr = w[rank]
    tile_of = (y0[rank] + local // wr) * tiles_x + x0[rank] + local % wr  # [M]
    tile_of, perm = torch.sort(tile_of, stable=True)  # stable: depth order kept within a tile
    n_tiles = tiles_x * tiles_y
    tile_counts = torch.bincount(tile_of, minlength=n_tiles)
    tile_starts = torch.cumsum(tile_counts, 0) - tile_counts
    return Bins(order, rank[perm], tile_starts, tile_counts, tiles_x, tiles_y, tile)


def composite(
    p: Projected,
    bins: Bins,
    width: int,
    height: int,
    *,
    with_depth: bool = False,
    config: RasterConfig = RasterConfig(),
) -> tuple[Tensor, Tensor]:
    """Front-to-back alpha compositing per tile.

    Returns (features [H, W, 3 (+1 depth)] before background, transmittance [H, W]).
    """
    dtype, device = p.means2d.dtype, p.means2d.device
    n_feat = 4 if with_depth else 3
    grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (p.means2d, p.conics, p.opacities, p.colors, p.depths)
    )
    n_tiles = bins.tiles_x * bins.tiles_y
    TILE = bins.tile  # noqa: N806

    # per-Gaussian tables in depth order, with one padding row at the end (alpha 0)
    order = bins.order
    pad = lambda t, v: torch.cat([t, torch.full_like(t[:1], v)])  # noqa: E731
    means2d = pad(p.means2d[order], 0.0)  # [V+1, 2]
    conics = pad(p.conics[order], 0.0)  # [V+1, 3]
    neg_log_op = pad(-torch.log(p.opacities[order]), PAD_EXPONENT)  # [V+1]
    feats = [p.colors[order]] + ([p.depths[order, None]] if with_depth else [])
    feats.append(torch.ones_like(p.depths[order, None]))  # last channel sums the weights
    feats = pad(torch.cat(feats, -1), 0.0)  # [V+1, n_feat + 1]
    n_pad = len(order)

    # the exponent sigma - log(opacity) is sum_k P[pix, k] Q[k, gaussian] in tile-local pixel coordinates
    coord = torch.arange(TILE, dtype=dtype, device=device) + 0.5
    py, px = torch.meshgrid(coord, coord, indexing="ij")
    px, py = px.reshape(-1), py.reshape(-1)  # [256], row-major within the tile
    pix = torch.stack([px * px, py * py, px * py, px, py, torch.ones_like(px)], -1)  # [256, 6]
    tile_ids = torch.arange(n_tiles, device=device)
    origin = torch.stack([tile_ids % bins.tiles_x, tile_ids // bins.tiles_x], -1).to(dtype) * TILE  # [n_tiles, 2]

    acc_all = torch.zeros(n_tiles, TILE * TILE, n_feat, dtype=dtype, device=device)
    trans_all = torch.ones(n_tiles, TILE * TILE, dtype=dtype, device=device)

    busy = (bins.tile_counts > 0).nonzero()[:, 0]
    busy = busy[torch.argsort(bins.tile_counts[busy], descending=True)]  # similar lengths share a chunk
    max_slab = config.max_slab
    chunk_tiles = max(1, config.chunk_elements // (TILE * TILE * max_slab))
    arange_slab = torch.arange(max_slab, device=device)
    if not grad:
        buf_a = torch.empty(chunk_tiles * TILE * TILE * max_slab, dtype=dtype, device=device)
        buf_b = torch.empty_like(buf_a)
    n_px = TILE * TILE
    for c0 in range(0, len(busy), chunk_tiles):
        tiles = busy[c0 : c0 + chunk_tiles]  # [A] the chunk's tiles still being composited
        counts, starts = bins.tile_counts[tiles], bins.tile_starts[tiles]
        acc = torch.zeros(len(tiles), n_px, n_feat, dtype=dtype, device=device)  # [A, P, F]
        trans = torch.ones(len(tiles), n_px, dtype=dtype, device=device)  # [A, P] transmittance
        live = torch.ones(len(tiles), n_px, dtype=torch.bool, device=device)  # [A, P] pixel not stopped
        finished: list[tuple[Tensor, Tensor, Tensor]] = []
        s, slab = 0, config.first_slab
        while True:
            if s > 0:  # retire tiles whose lists are exhausted or whose pixels have all stopped
                keep = (counts > s) & live.any(1)
                if not bool(keep.all()):
                    finished.append((tiles[~keep], acc[~keep], trans[~keep]))
                    tiles, counts, starts, acc, trans, live = (t[keep] for t in (tiles, counts, starts, acc, trans, live))
                    if len(tiles) == 0:
                        break
            e = min(s + slab, int(counts.max()))
            k = arange_slab[: e - s] + s  # [S]
            slot = starts[:, None] + k  # [A, S]
            rank = torch.where(k < counts[:, None], bins.ranks[slot.clamp(max=len(bins.ranks) - 1)], n_pad)  # [A, S]

            d = means2d[rank] - origin[tiles][:, None, :]  # [A, S, 2] tile-local means
            dx, dy = d[..., 0], d[..., 1]
            ca, cb, cc = conics[rank].unbind(-1)  # [A, S] each
            q = torch.stack(
                [
                    0.5 * ca,
                    0.5 * cc,
                    cb,
                    -(ca * dx + cb * dy),
                    -(cc * dy + cb * dx),
                    0.5 * ca * dx * dx + 0.5 * cc * dy * dy + cb * dx * dy + neg_log_op[rank],
                ],
                1,
            )  # [A, 6, S]
            t_carry = trans * live  # [A, P]
            if grad:
                alpha = torch.exp(-(pix @ q)).clamp(max=ALPHA_MAX)  # [A, P, S]
                alpha = torch.where(alpha < ALPHA_THRESHOLD, torch.zeros_like(alpha), alpha)
                t_in = torch.cumprod(1.0 - alpha, -1) * t_carry[..., None]
                t_ex = torch.cat([t_carry[..., None], t_in[..., :-1]], -1)
                w = (t_ex - t_in) * (t_in > T_MIN)
            else:  # the same maths in place, in reused buffers, folding steps where exact
                shape = (len(tiles), n_px, e - s)
                ne = torch.matmul(pix, q.neg_(), out=buf_a[: math.prod(shape)].view(shape))  # log(opacity) - sigma
                ne.clamp_(max=LOG_ALPHA_MAX)
                torch.nn.functional.threshold(ne, LOG_ALPHA_THRESHOLD, -math.inf, inplace=True)
                one_minus = torch.expm1(ne, out=ne).neg_()  # 1 - alpha
                one_minus[..., 0].mul_(t_carry)
                t_in = torch.cumprod(one_minus, -1, out=buf_b[: math.prod(shape)].view(shape))
                w = ne  # reuse: w = T_before - T_after, the weight of each Gaussian
                w[..., 0] = t_carry
                w[..., 1:] = t_in[..., :-1]
                w.sub_(t_in)
                if bool(((t_in[..., -1] <= T_MIN) & (t_carry > 0)).any()):  # some pixel stops in this slab
                    w.masked_fill_(t_in <= T_MIN, 0.0)
            out = w @ feats[rank]  # [A, P, F + 1]
            if grad:
                acc = acc + out[..., :n_feat]
                trans = trans - out[..., n_feat]
            else:
                acc += out[..., :n_feat]
                trans -= out[..., n_feat]
            live = live & (t_in[..., -1] > T_MIN)
            s, slab = e, min(2 * slab, max_slab)
        finished.append((tiles, acc, trans))
        done = torch.cat([f[0] for f in finished])
        if grad:
            acc_all = acc_all.index_copy(0, done, torch.cat([f[1] for f in finished]))
            trans_all = trans_all.index_copy(0, done, torch.cat([f[2] for f in finished]))
        else:
            acc_all.index_copy_(0, done, torch.cat([f[1] for f in finished]))
            trans_all.index_copy_(0, done, torch.cat([f[2] for f in finished]))

    return _untile(acc_all, bins, width, height), _untile(trans_all[..., None], bins, width, height)[..., 0]


def _untile(
    t: Tensor,  # [tiles_y * tiles_x, 256, F]
    bins: Bins,
    width: int,
    height: int,
) -> Tensor:
    """Tile-major pixels to an image. [H, W, F]"""
    f, TILE = t.shape[-1], bins.tile  # noqa: N806
    img = t.reshape(bins.tiles_y, bins.tiles_x, TILE, TILE, f).permute(0, 2, 1, 3, 4)
    return img.reshape(bins.tiles_y * TILE, bins.tiles_x * TILE, f)[:height, :width]


def rasterize(
    g: Gaussians,
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor,  # [3]
    with_depth: bool = False,
    config: RasterConfig = RasterConfig(),
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One view with the torch rasterizer: (colors [H, W, 3], alphas [H, W, 1], depths [H, W, 1] or None)."""
    viewmat, K = viewmat.to(g.means), K.to(g.means)
    p = project(g, viewmat, K, width, height, config)
    bins = bin_tiles(p, width, height, config.tile_size)
    feats, trans = composite(p, bins, width, height, with_depth=with_depth, config=config)
    colors = feats[..., :3] + trans[..., None] * background.to(feats)
    depths = feats[..., 3:4] if with_depth else None
    return colors, (1.0 - trans)[..., None], depths


# -- the slow twin ---------------------------------------------------------------------------


def _render_reference(
    g: Gaussians,
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor,  # [3]
    near_plane: float = 0.01,
    far_plane: float = 1e4,
    eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor]:
    """Every Gaussian over every pixel of a tiny image, one Gaussian at a time in depth order.

    Returns (colors [H, W, 3], alphas [H, W, 1], depths [H, W, 1]).
    """
    viewmat, K = viewmat.to(g.means), K.to(g.means)
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    campos = -rot.T @ trans
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=g.dtype) + 0.5, torch.arange(width, dtype=g.dtype) + 0.5, indexing="ij"
    )
    color = torch.zeros(height, width, 3, dtype=g.dtype)
    depth = torch.zeros(height, width, dtype=g.dtype)
    transmit = torch.ones(height, width, dtype=g.dtype)
    done = torch.zeros(height, width, dtype=torch.bool)

    z_all = (g.means @ rot.T + trans)[:, 2].detach()
    for i in torch.argsort(z_all, stable=True).tolist():
        mean_c = rot @ g.means[i] + trans
        x, y, z = mean_c
        if not (near_plane <= float(z.detach()) <= far_plane) or float(g.opacities[i].detach()) < ALPHA_THRESHOLD:
            continue
        lim = (
            (width - cx) / fx + 0.3 * 0.5 * width / fx,
            cx / fx + 0.3 * 0.5 * width / fx,
            (height - cy) / fy + 0.3 * 0.5 * height / fy,
            cy / fy + 0.3 * 0.5 * height / fy,
        )
        tx = z * torch.clamp(x / z, min=-lim[1], max=lim[0])
        ty = z * torch.clamp(y / z, min=-lim[3], max=lim[2])
        jac = torch.stack(
            [
                torch.stack([fx / z, torch.zeros_like(z), -fx * tx / z**2]),
                torch.stack([torch.zeros_like(z), fy / z, -fy * ty / z**2]),
            ]
        )  # [2, 3]
        r_q = quat_to_rotmat(g.quats[i])
        cov3 = r_q @ torch.diag(g.scales[i] ** 2) @ r_q.T
        cov2 = jac @ rot @ cov3 @ rot.T @ jac.T + eps2d * torch.eye(2, dtype=g.dtype)
        if float(torch.linalg.det(cov2.detach())) <= 0:
            continue
        conic = torch.linalg.inv(cov2)
        mean2 = torch.stack([fx * x / z + cx, fy * y / z + cy])
        dx, dy = xs - mean2[0], ys - mean2[1]
        sigma = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) + conic[0, 1] * dx * dy
        alpha = torch.clamp(g.opacities[i] * torch.exp(-sigma), max=ALPHA_MAX)
        use = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD) & ~done
        next_t = transmit * (1 - alpha)
        stop = use & (next_t <= T_MIN)
        done = done | stop
        use = use & ~stop
        weight = torch.where(use, alpha * transmit, torch.zeros_like(alpha))
        rgb = eval_sh(g.colors[i], torch.nn.functional.normalize(g.means[i] - campos, dim=-1))
        color = color + weight[..., None] * rgb
        depth = depth + weight * z
        transmit = torch.where(use, next_t, transmit)
    color = color + transmit[..., None] * background.to(color)
    return color, (1 - transmit)[..., None], depth[..., None]


__all__ = ["ALPHA_MAX", "ALPHA_THRESHOLD", "T_MIN", "RasterConfig", "Projected", "bin_tiles", "composite", "project", "rasterize"]
