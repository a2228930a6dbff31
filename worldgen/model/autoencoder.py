"""The part autoencoder: a part's Gaussians (in its own frame) <-> a latent vector z, one set of weights for every kind.

    ae = PartAutoencoder(AutoencoderConfig())
    mu, logvar = ae.encode(batch)                     # PartBatch -> [B, latent] each
    fields = ae.decode(kinds, mu, counts, colors)     # -> per-slot fields [B, n_max, ...] (mask by counts)

The encoder reads a part's splats (positions in [-1, 1]^3, rotations, scales
per part size, colour, opacity; `worldgen.procedural.parts`) through a shared
per-splat MLP and attention pooling by a few learned queries: invariant to the
order of the splats. The decoder grows `count` Gaussians from a fixed template:
the first `count` points of a 3-D Halton sequence, which are evenly spread for
any count, embedded by Fourier features and turned by an MLP modulated by
(kind, z, count, mean colour) into each Gaussian's fields. The part's mean
colour travels beside z, as its frame does: the decoder only adds each
splat's departure from it. Inside a part the slots are
fixed; between parts there is no order: permuting parts permutes whole blocks.

Training (`part_loss`): a set distance between decoded and true splats (nearest
neighbours both ways on position and colour) with the matched pairs' scales,
orientations and opacities beside it, plus a small KL term that keeps z smooth
for the set model.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldgen.errors import UsageError
from worldgen.gaussians import quat_to_rotmat
from worldgen.procedural.parts import KINDS

#: log-scale (per part size) of a fresh decoder's Gaussians: ~8% of the part's size
LOG_SCALE_BIAS = -2.5


@dataclass(frozen=True)
class AutoencoderConfig:
    """The shape of `PartAutoencoder`."""

    latent: int = 32  # numbers per part
    width: int = 128  # channels of the encoder and decoder MLPs
    encoder_depth: int = 2  # per-splat MLP layers before pooling
    queries: int = 8  # attention-pooling queries of the encoder
    decoder_depth: int = 4  # modulated residual MLP blocks of the decoder
    fourier_freqs: int = 6  # Fourier features of positions (encoder) and template points (decoder)
    encoder_splats: int = 128  # the encoder reads at most this many of a part's splats (a random subset)
    kinds: int = len(KINDS)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 1:
                raise UsageError(f"AutoencoderConfig.{f.name} must be positive, got {getattr(self, f.name)}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AutoencoderConfig:
        data: dict[str, Any] = json.loads(text)
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UsageError(f"unknown AutoencoderConfig fields {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class PartBatch:
    """B parts' splats in their own frames, padded to the longest: fields [B, n, ...] and a mask."""

    kinds: Tensor  # [B] long
    counts: Tensor  # [B] long, splats of each part
    present: Tensor  # [B] long, of which the batch holds the first rows (all, or a random subset)
    extents: Tensor  # [B, 3] half-sizes of the parts' boxes, meters
    colors: Tensor  # [B, 3] mean rgb of each part's splats (all of them)
    means: Tensor  # [B, n, 3] in [-1, 1]^3
    log_scales: Tensor  # [B, n, 3] log of scale / part size
    quats: Tensor  # [B, n, 4] unit, w >= 0
    rgb: Tensor  # [B, n, 3]
    opacities: Tensor  # [B, n]

    @property
    def mask(self) -> Tensor:  # [B, n] bool
        n = self.means.shape[1]
        return torch.arange(n, device=self.present.device)[None] < self.present[:, None]

    def features(self) -> Tensor:  # [B, n, 14]
        return torch.cat([self.means, self.log_scales, self.quats, self.rgb, self.opacities[..., None]], dim=-1)

    def to(self, device=None, dtype: torch.dtype | None = None) -> PartBatch:
        """On `device`, floating fields as `dtype` (when given)."""
        move = lambda t: t.to(device, dtype) if dtype is not None and t.is_floating_point() else t.to(device)  # noqa: E731
        return PartBatch(*(move(getattr(self, f.name)) for f in dataclasses.fields(self)))


@functools.lru_cache(maxsize=4)
def halton(n: int) -> Tensor:
    """The first `n` points of the 3-D Halton sequence (bases 2, 3, 5) in [-1, 1]^3. [n, 3]"""
    out = torch.zeros(n, 3, dtype=torch.float64)
    idx = torch.arange(1, n + 1, dtype=torch.float64)
    for d, base in enumerate((2, 3, 5)):
        i, f = idx.clone(), torch.ones(n, dtype=torch.float64)
        while bool((i > 0).any()):
            f = f / base
            out[:, d] += f * torch.remainder(i, base)
            i = torch.div(i, base, rounding_mode="floor")
    return (out * 2 - 1).float()


def fourier(x: Tensor, freqs: int) -> Tensor:
    """x and sin/cos of x at octave frequencies. [..., 3] -> [..., 3 + 6 * freqs]"""
    scales = (2.0 ** torch.arange(freqs, dtype=x.dtype, device=x.device)) * math.pi
    args = (x[..., None] * scales).flatten(-2)
    return torch.cat([x, torch.sin(args), torch.cos(args)], dim=-1)


class _Modulated(nn.Module):
    """x + gate * MLP(LN(x) * (1 + scale) + shift), the modulation from the part's code."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(approximate="tanh"), nn.Linear(2 * width, width))
        self.ada = nn.Linear(width, 3 * width)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:  # [B, n, W], [B, W] -> [B, n, W]
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        return x + gate[:, None] * self.mlp(self.norm(x) * (1 + scale[:, None]) + shift[:, None])


class PartAutoencoder(nn.Module):
    """encode: a part's splats -> (mu, logvar) of z; decode: (kind, z, count) -> that many Gaussians."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, f = cfg.width, cfg.fourier_freqs
        # -- encoder --
        layers: list[nn.Module] = [nn.Linear(14 + 6 * f, w), nn.GELU(approximate="tanh")]
        for _ in range(cfg.encoder_depth - 1):
            layers += [nn.Linear(w, w), nn.GELU(approximate="tanh")]
        self.point = nn.Sequential(*layers)
        self.enc_kind = nn.Embedding(cfg.kinds, w)
        self.queries = nn.Parameter(torch.zeros(cfg.queries, w))
        self.pool_k = nn.Linear(w, w)
        self.pool_v = nn.Linear(w, w)
        self.to_latent = nn.Sequential(nn.Linear(cfg.queries * w + w, 2 * w), nn.GELU(approximate="tanh"),
                                       nn.Linear(2 * w, 2 * cfg.latent))  # fmt: skip
        # -- decoder --
        self.dec_kind = nn.Embedding(cfg.kinds, w)
        self.code = nn.Sequential(nn.Linear(cfg.latent + w + 4, w), nn.SiLU(), nn.Linear(w, w))
        self.template = nn.Linear(3 + 6 * f, w)
        self.blocks = nn.ModuleList([_Modulated(w) for _ in range(cfg.decoder_depth)])
        self.out_norm = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(w, 14)
        # per kind: an affine map of the template (a terrain tile flattens it) and a bias on every output field
        self.template_scale = nn.Parameter(torch.ones(cfg.kinds, 3))
        self.kind_bias = nn.Parameter(torch.zeros(cfg.kinds, 14))
        initialize_autoencoder(self)

    # -- encoder ------------------------------------------------------------------------

    def encode(self, batch: PartBatch) -> tuple[Tensor, Tensor]:  # -> mu [B, latent], logvar [B, latent]
        """The distribution of z for each part (order of its splats does not matter)."""
        feats = batch.features()
        h = self.point(torch.cat([feats, fourier(batch.means, self.cfg.fourier_freqs)[..., 3:]], dim=-1))  # [B, n, W]
        h = h + self.enc_kind(batch.kinds)[:, None]
        mask = batch.mask  # [B, n]
        logits = torch.einsum("qw,bnw->bqn", self.queries, self.pool_k(h)) / math.sqrt(h.shape[-1])
        logits = logits.masked_fill(~mask[:, None], float("-inf"))
        pooled = torch.einsum("bqn,bnw->bqw", torch.softmax(logits, dim=-1), self.pool_v(h))  # [B, Q, W]
        mean = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)  # [B, W]
        mu, logvar = self.to_latent(torch.cat([pooled.flatten(1), mean], dim=-1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 4.0)

    # -- decoder ------------------------------------------------------------------------

    def decode(
        self,
        kinds: Tensor,  # [B] long
        z: Tensor,  # [B, latent]
        counts: Tensor,  # [B] long, Gaussians to grow per part
        colors: Tensor,  # [B, 3] the parts' mean rgb
        n: int | None = None,  # slots computed per part (default: the largest count)
    ) -> dict[str, Tensor]:  # means [B, n, 3], log_scales [B, n, 3], quats [B, n, 4], rgb [B, n, 3], opacities [B, n]
        """Every part's first `count` template slots -> Gaussians in the part's frame (slots past it: padding)."""
        n = int(counts.max()) if n is None else n
        return self.decode_slots(kinds, z, counts, colors, torch.arange(n, device=z.device).expand(len(kinds), -1))

    def decode_slots(
        self,
        kinds: Tensor,  # [B] long
        z: Tensor,  # [B, latent]
        counts: Tensor,  # [B] long
        colors: Tensor,  # [B, 3]
        slots: Tensor,  # [B, m] long, which template slots to grow (each below its part's count)
    ) -> dict[str, Tensor]:  # fields [B, m, ...]
        """`decode` at chosen slots only (training reads a random subset of a large part's slots)."""
        tpl = halton(max(int(slots.max()) + 1, 1)).to(z.device, z.dtype)[slots] * self.template_scale[kinds][:, None]
        colors = colors.to(z.dtype)
        code = [z, self.dec_kind(kinds), count_feature(counts).to(z.dtype)[:, None], colors * 2 - 1]
        c = self.code(torch.cat(code, dim=-1))  # [B, W]
        h = self.template(fourier(tpl, self.cfg.fourier_freqs)) + c[:, None]  # [B, m, W]
        for block in self.blocks:
            h = block(h, c)
        wide = torch.promote_types(z.dtype, torch.float32)  # fields at least in float32 (under autocast too)
        out = (self.head(self.out_norm(h)) + self.kind_bias[kinds][:, None]).to(wide)  # [B, m, 14]
        q = out[..., 6:10] + torch.tensor([1.0, 0, 0, 0], device=out.device, dtype=wide)
        return {
            "means": tpl.to(wide) + out[..., :3],
            "log_scales": out[..., 3:6] + LOG_SCALE_BIAS,
            "quats": F.normalize(q, dim=-1),
            "rgb": torch.sigmoid(torch.logit(colors.to(wide).clamp(0.01, 0.99))[:, None] + out[..., 10:13]),
            "opacities": torch.sigmoid(out[..., 13] + 2.0),
        }

    def forward(self, batch: PartBatch, *, sample: bool = True) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Encode, draw z (or take its mean), decode as many slots as each part has splats."""
        mu, logvar = self.encode(batch)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decode(batch.kinds, z, batch.counts, batch.colors, batch.means.shape[1]), mu, logvar


def count_feature(counts: Tensor) -> Tensor:  # [B] -> [B]
    """A part's splat count as the decoder reads it: log2(count) / 12 (a few hundred -> ~0.7)."""
    return torch.log2(counts.clamp_min(1).float()) / 12.0


def initialize_autoencoder(ae: PartAutoencoder) -> None:
    """Every initialisation decision of the autoencoder, in one place.

    Linear layers Xavier-uniform with zero biases; the decoder's modulations, its
    output head and its per-kind output biases zero, and its per-kind template
    maps the identity, so a fresh decoder puts a small Gaussian of the part's
    mean colour on every template point (the part's box evenly filled); pooling
    queries unit normal, so that they start apart.
    """
    for m in ae.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
    for block in ae.blocks:
        nn.init.zeros_(block.ada.weight)
        nn.init.zeros_(block.ada.bias)
    nn.init.zeros_(ae.head.weight)
    nn.init.zeros_(ae.head.bias)
    nn.init.normal_(ae.queries, std=1.0)
    nn.init.ones_(ae.template_scale)
    nn.init.zeros_(ae.kind_bias)


# -- the loss -----------------------------------------------------------------------------

#: weights of the loss terms; colour enters the matching distance with COLOR_MATCH
LOSS_WEIGHTS = {"chamfer": 1.0, "rgb": 1.0, "opacity": 0.5, "log_scales": 1.0, "shape": 0.5, "kl": 1e-4}
COLOR_MATCH = 0.5


def shape_matrices(quats: Tensor, log_scales: Tensor) -> Tensor:  # [..., 4], [..., 3] -> [..., 3, 3]
    """R diag(s) R^T: a Gaussian's shape, the same whichever way its axes are named."""
    r = quat_to_rotmat(quats)
    return (r * log_scales.exp()[..., None, :]) @ r.transpose(-1, -2)


@torch.no_grad()
def _nearest(a: Tensor, b: Tensor, b_mask: Tensor) -> Tensor:  # [B, n, D], [B, m, D], [B, m] -> [B, n] long
    """Index of each row of a's nearest valid row of b (no gradient: only the pairs are chosen here)."""
    out = []
    for i in range(a.shape[0]):  # one part at a time keeps the distance matrix small
        d = torch.cdist(a[i].float(), b[i].float())
        d.masked_fill_(~b_mask[i][None], float("inf"))
        out.append(d.argmin(dim=1))
    return torch.stack(out)


def part_loss(decoded: dict[str, Tensor], batch: PartBatch, mu: Tensor, logvar: Tensor) -> tuple[Tensor, dict[str, float]]:
    """The autoencoder's loss on one batch, and its terms (floats, for logging)."""
    mask = batch.mask.float()  # [B, n]: decoded slots and true splats are both the first `count`
    true = {"means": batch.means, "log_scales": batch.log_scales, "quats": batch.quats, "rgb": batch.rgb,
            "opacities": batch.opacities}  # fmt: skip
    key = lambda f: torch.cat([f["means"], COLOR_MATCH * f["rgb"]], dim=-1)  # noqa: E731
    kd, kt = key(decoded), key(true)
    terms: dict[str, Tensor] = {k: kd.new_zeros(()) for k in ("chamfer", "rgb", "opacity", "log_scales", "shape")}
    denom = mask.sum().clamp_min(1)
    for src, dst, src_key, dst_key in ((decoded, true, kd, kt), (true, decoded, kt, kd)):
        idx = _nearest(src_key, dst_key, batch.mask)  # [B, n]
        pick = lambda t: torch.gather(t, 1, idx.view(*idx.shape, *([1] * (t.ndim - 2))).expand(-1, -1, *t.shape[2:]))  # noqa: E731
        terms["chamfer"] = terms["chamfer"] + ((src_key - pick(dst_key)).square().sum(-1) * mask).sum() / denom
        terms["rgb"] = terms["rgb"] + ((src["rgb"] - pick(dst["rgb"])).abs().sum(-1) * mask).sum() / denom
        terms["opacity"] = terms["opacity"] + ((src["opacities"] - pick(dst["opacities"])).abs() * mask).sum() / denom
        ls_src, ls_dst = src["log_scales"].sort(-1).values, pick(dst["log_scales"]).sort(-1).values
        terms["log_scales"] = terms["log_scales"] + ((ls_src - ls_dst).abs().sum(-1) * mask).sum() / denom
        m_src = shape_matrices(src["quats"], src["log_scales"])
        m_dst = shape_matrices(pick(dst["quats"]), pick(dst["log_scales"]))
        rel = (m_src - m_dst).flatten(-2).norm(dim=-1) / (m_dst.flatten(-2).norm(dim=-1) + 1e-3)
        terms["shape"] = terms["shape"] + (rel * mask).sum() / denom
    terms["kl"] = 0.5 * (mu.square() + logvar.exp() - logvar - 1).sum(-1).mean()
    loss = sum(LOSS_WEIGHTS[k] * v for k, v in terms.items())
    return loss, {k: float(v.detach()) for k, v in terms.items()}


def render_loss(
    decoded: dict[str, Tensor],
    batch: PartBatch,
    *,
    pixels: int = 24,
    generator: torch.Generator | None = None,
) -> Tensor:  # scalar
    """The look of the decoded parts against the true ones: L1 on colour and alpha of one render of each set.

    Every part is drawn in its own cell of a grid, `pixels` square, seen from one random
    direction shared by the batch (a camera far away, close to orthographic). A part is shown
    in its turned frame scaled by its largest half-extent, so its proportions are its own.
    """
    from worldgen.gaussians import Gaussians
    from worldgen.render import Cameras, render

    b = batch.counts.shape[0]
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    q = F.normalize(torch.randn(4, generator=generator), dim=0).to(batch.means)
    rot = quat_to_rotmat(q)
    cell, dist = 2.4, 200.0
    grid = torch.arange(b, device=batch.means.device)
    offset = torch.stack([(grid % cols - (cols - 1) / 2) * cell, (grid // cols - (rows - 1) / 2) * cell,
                          torch.full((b,), dist, device=grid.device)], dim=-1).to(batch.means)  # fmt: skip
    stretch = batch.extents / batch.extents.amax(-1, keepdim=True)  # [B, 3]
    unit = (batch.extents.mean(-1) / batch.extents.amax(-1))[:, None]  # part size per largest half-extent
    keep = batch.mask

    def scene(f: dict[str, Tensor]) -> Gaussians:
        pos = (f["means"] * stretch[:, None]) @ rot.T + offset[:, None]
        quats = quat_multiply_batched(q, f["quats"])
        scales = f["log_scales"].exp() * unit[:, None]
        return Gaussians.from_rgb(pos[keep], f["rgb"][keep].clamp(0, 1), scales[keep], f["opacities"][keep], quats[keep])

    f = pixels * dist / cell
    k = torch.tensor([[f, 0.0, cols * pixels / 2], [0.0, f, rows * pixels / 2], [0.0, 0.0, 1.0]])
    cams = Cameras(torch.eye(4)[None], k[None], cols * pixels, rows * pixels)
    true = {"means": batch.means, "log_scales": batch.log_scales, "quats": batch.quats, "rgb": batch.rgb,
            "opacities": batch.opacities}  # fmt: skip
    with torch.no_grad():
        target = render(scene(true), cams)
    out = render(scene(decoded), cams)
    return (out.colors - target.colors).abs().mean() + (out.alphas - target.alphas).abs().mean()


def quat_multiply_batched(a: Tensor, b: Tensor) -> Tensor:  # [4], [..., 4] -> [..., 4]
    """The rotation a followed by each b (Hamilton product a * b)."""
    from worldgen.gaussians import quat_multiply

    return quat_multiply(a.expand_as(b).reshape(-1, 4), b.reshape(-1, 4)).reshape(b.shape)


__all__ = [
    "AutoencoderConfig", "PartAutoencoder", "PartBatch", "count_feature", "fourier", "halton", "initialize_autoencoder",
    "part_loss", "render_loss", "shape_matrices",
]  # fmt: skip
