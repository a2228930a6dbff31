"""`ModelConfig`: the shape of the world model (set transformer, part autoencoder, image encoder), and its presets.

A config fixes every parameter shape; nothing in it depends on where a token
stands in the set, so one model samples sets of any size.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from worldgen.errors import UsageError
from worldgen.model.autoencoder import AutoencoderConfig
from worldgen.model.tokens import token_dim

#: width of all-MiniLM-L6-v2's token and pooled embeddings
TEXT_DIM = 384


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of `WorldModel`."""

    # -- the set transformer over part tokens --
    width: int = 192  # channels per token
    depth: int = 6  # number of blocks
    heads: int = 6
    mlp_ratio: float = 4.0
    fourier_freqs: int = 6  # Fourier features of a token's own centre (content, not order)
    cross_attention: bool = True  # attend to the condition tokens (text words / image patches)
    cond_dim: int = TEXT_DIM  # width of condition tokens and the pooled condition
    n_tokens: int = 448  # part tokens per world: its parts, padded with "empty" ones (procedural worlds: 167-401)
    # -- the part autoencoder (its decoder turns each part token into Gaussians) --
    parts: AutoencoderConfig = field(default_factory=AutoencoderConfig)
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
        for name in ("width", "depth", "heads", "n_tokens", "image_width", "image_depth"):
            if getattr(self, name) <= 0:
                raise UsageError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")

    @property
    def token_dim(self) -> int:
        return token_dim(self.parts.latent)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data: dict[str, Any] = json.loads(text)
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UsageError(f"unknown ModelConfig fields {unknown}")
        if "parts" in data:
            data["parts"] = AutoencoderConfig.from_json(json.dumps(data["parts"]))
        return cls(**data)


#: named presets; `get_config(name, **overrides)` picks one
PRESETS: dict[str, ModelConfig] = {
    # trains in seconds on a 2-core CPU; for tests and smoke runs
    "tiny": ModelConfig(
        width=32, depth=2, heads=4, fourier_freqs=3, n_tokens=64,
        parts=AutoencoderConfig(latent=8, width=32, encoder_depth=1, queries=2, decoder_depth=2, fourier_freqs=3),
        image_size=32, patch=16, image_width=32, image_depth=1,
    ),  # fmt: skip
    # the CPU product model
    "small": ModelConfig(),
    # for a GPU: a wider, deeper set model and autoencoder
    "base": ModelConfig(width=384, depth=12, heads=6, parts=AutoencoderConfig(latent=48, width=256, decoder_depth=6),
                        image_width=256, image_depth=6),  # fmt: skip
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The preset `name` ("tiny", "small", "base") with some fields replaced."""
    if name not in PRESETS:
        raise UsageError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    try:
        return dataclasses.replace(PRESETS[name], **overrides)
    except TypeError as e:
        raise UsageError(f"bad ModelConfig override: {e}") from None
