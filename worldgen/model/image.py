"""A small image encoder, trained here on the dataset's rendered views.

An image has order, so its patch tokens carry fixed 2-D sin-cos positional
embeddings (the Gaussian set never does). The encoder maps a picture to a
`Condition` in the same 384-d space as the text encoder: patch tokens for the
set model's cross-attention and a normalised pooled vector for adaLN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldgen.errors import UsageError
from worldgen.model.config import ModelConfig
from worldgen.model.set_transformer import Condition


def sincos_2d(grid: int, dim: int) -> Tensor:
    """Fixed 2-D sin-cos embedding of a grid x grid patch layout (row-major). [grid*grid, dim]"""
    if dim % 4:
        raise UsageError(f"2-D positional embedding needs a width divisible by 4, got {dim}")
    q = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(q, dtype=torch.float64) / q))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    ax = xs.flatten()[:, None] * omega
    ay = ys.flatten()[:, None] * omega
    return torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=1).float()


class ImageEncoder(nn.Module):
    """Patchify -> + 2-D positions -> pre-norm transformer -> Condition (tokens, pooled)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.image_width
        self.grid = cfg.image_size // cfg.patch
        self.patchify = nn.Conv2d(3, w, kernel_size=cfg.patch, stride=cfg.patch)
        self.register_buffer("pos", sincos_2d(self.grid, w), persistent=False)
        layer = nn.TransformerEncoderLayer(w, max(1, w // 64), 4 * w, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.image_depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.cond_dim)

    def forward(self, images: Tensor) -> Condition:  # [B, H, W, 3] uint8 or float in [0, 1]
        x = prepare_images(images, self.cfg.image_size).to(self.patchify.weight.dtype)  # [B, 3, S, S]
        h = self.patchify(x * 2.0 - 1.0).flatten(2).transpose(1, 2)  # [B, G*G, w]
        h = self.norm(self.blocks(h + self.pos.to(h.dtype)))
        tokens = self.out(h)  # [B, G*G, cond_dim]
        pooled = F.normalize(tokens.mean(dim=1), dim=-1)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return Condition(tokens, mask, pooled)


def prepare_images(images: Tensor, size: int) -> Tensor:
    """[B, H, W, 3] uint8 / float in [0, 1] -> [B, 3, size, size] float, centre-cropped square, resized."""
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UsageError(f"images must be [B, H, W, 3], got {tuple(images.shape)}")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    x = x.permute(0, 3, 1, 2)
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = x[..., top : top + s, left : left + s]
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0)


def load_image(path: str) -> Tensor:
    """A picture file as [H, W, 3] uint8 (typed error for a missing or unreadable file)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise UsageError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"cannot read image {path}: {e}") from None
    return torch.from_numpy(arr.copy())
