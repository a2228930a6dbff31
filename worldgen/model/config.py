"""`ModelConfig`: the shape of the set-transformer world model, and its named presets.

A config fixes every parameter shape; nothing in it depends on the number of
tokens N, so one model samples sets of any size.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Literal

from worldgen.errors import UsageError
from worldgen.model.tokens import CHILD_TOKEN_DIM, TOKEN_DIM

#: width of all-MiniLM-L6-v2's token and pooled embeddings
TEXT_DIM = 384


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of `WorldModel` (backbone, detail decoder, image encoder)."""

    # -- the set backbone --
    width: int = 256  # channels per token
    depth: int = 8  # number of blocks
    heads: int = 4
    mlp_ratio: float = 4.0
    fourier_freqs: int = 6  # Fourier features of a token's own xyz (content, not order)
    attention: Literal["full", "isab"] = "full"  # self-attention over the set, or induced (ISAB)
    inducing: int = 64  # inducing points per block when attention == "isab"
    cross_attention: bool = True  # attend to the condition tokens (text words / image patches)
    local_blocks: int = 0  # extra blocks of distance-biased full self-attention (a soft neighbourhood per head)
    local_sigma: tuple[float, float] = (1 / 32, 8 / 32)  # their heads' initial lengths, lo..hi (token units: 32 m)
    token_dim: int = TOKEN_DIM
    cond_dim: int = TEXT_DIM  # width of condition tokens and the pooled condition
    # -- sampling defaults (no parameter depends on them) --
    n_tokens: int = 2048  # coarse Gaussians per world
    # -- the per-Gaussian detail decoder --
    children: int = 64  # full-detail Gaussians per coarse Gaussian
    child_dim: int = CHILD_TOKEN_DIM
    decoder_width: int = 128
    decoder_depth: int = 3
    # -- the group level (0: off): the set model generates n_tokens / group_size group Gaussians,
    #    and a group decoder (a detail decoder of its own) grows each into group_size coarse ones --
    group_size: int = 0
    group_width: int = 128
    group_depth: int = 3
    # -- the water head (0: none): which coarse Gaussians are water, so decoding lays them on the water level
    #    (`worldgen.model.water`; measured, in no preset) --
    water_width: int = 0
    # -- the image encoder (its patch tokens carry 2-D positions; the set does not) --
    image_size: int = 128
    patch: int = 16
    image_width: int = 192
    image_depth: int = 4

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise UsageError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.image_size % self.patch:
            raise UsageError(f"image_size {self.image_size} is not divisible by patch {self.patch}")
        for name in ("width", "depth", "heads", "inducing", "children", "decoder_width", "image_width"):
            if getattr(self, name) <= 0:
                raise UsageError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.group_size < 0 or self.group_size == 1 or self.group_width <= 0 or self.group_depth <= 0:
            raise UsageError("group_size must be 0 (off) or >= 2, group_width and group_depth positive")
        if self.group_size and self.n_tokens % self.group_size:
            raise UsageError(f"n_tokens {self.n_tokens} is not divisible by group_size {self.group_size}")
        if self.water_width < 0:
            raise UsageError(f"water_width must be 0 (no water head) or positive, got {self.water_width}")
        if not 0 <= self.local_blocks <= self.depth:
            raise UsageError(f"local_blocks must be between 0 and depth ({self.depth}), got {self.local_blocks}")
        if not 0 < self.local_sigma[0] <= self.local_sigma[1]:
            raise UsageError(f"local_sigma must be two lengths 0 < lo <= hi, got {self.local_sigma}")
        if self.attention not in ("full", "isab"):
            raise UsageError(f"attention must be 'full' or 'isab', got {self.attention!r}")

    @property
    def set_tokens(self) -> int:
        """Tokens the set model generates per world: the coarse Gaussians, or their groups."""
        return self.n_tokens // self.group_size if self.group_size else self.n_tokens

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown ModelConfig fields {unknown}")
        if "local_sigma" in data:  # JSON has lists, the config holds a tuple
            data["local_sigma"] = tuple(data["local_sigma"])
        return cls(**data)


#: named presets; `get_config(name, **overrides)` picks one
PRESETS: dict[str, ModelConfig] = {
    # trains in well under a minute on a 2-core CPU; for tests and smoke runs
    "tiny": ModelConfig(
        width=64, depth=2, heads=4, fourier_freqs=4, n_tokens=256, children=16,
        decoder_width=32, decoder_depth=2, image_size=64, patch=16, image_width=64, image_depth=1,
    ),
    # the CPU product model: induced attention keeps N=2048 sampling in seconds
    "small": ModelConfig(width=192, depth=6, heads=4, attention="isab", inducing=128, decoder_width=64, decoder_depth=2),
    # for a GPU: full attention over the whole set
    "base": ModelConfig(width=384, depth=12, heads=6, attention="full", decoder_width=128, image_width=256, image_depth=6),
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The preset `name` ("tiny", "small", "base") with some fields replaced."""
    if name not in PRESETS:
        raise UsageError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    try:
        return dataclasses.replace(PRESETS[name], **overrides)
    except TypeError as e:
        raise UsageError(f"bad ModelConfig override: {e}") from None
