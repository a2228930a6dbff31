"""The set-transformer world model: tokens, backbone, flow, decoder, text and image conditioning."""

from __future__ import annotations

from worldgen.model.config import PRESETS, ModelConfig, get_config
from worldgen.model.set_transformer import Condition
from worldgen.model.world import WorldModel, decode_world, load_model, sample, save_model

__all__ = [
    "PRESETS",
    "Condition",
    "ModelConfig",
    "WorldModel",
    "decode_world",
    "get_config",
    "load_model",
    "sample",
    "save_model",
]
