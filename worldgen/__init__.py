"""worldgen: Gaussian-splat worlds from a prompt or an image.

Heavy modules (torch, gsplat, viser) load lazily: importing `worldgen` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Gaussians": "worldgen.gaussians",
    "WorldSpec": "worldgen.procedural.spec",
    "build_world": "worldgen.procedural.world",
    "Cameras": "worldgen.render",
    "RenderOutput": "worldgen.render",
    "most_visible": "worldgen.ops",
    "WorldModel": "worldgen.model",
    "ModelConfig": "worldgen.model",
    "load_model": "worldgen.model",
    "save_model": "worldgen.model",
    "TrainConfig": "worldgen.train",
    "generate": "worldgen.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'worldgen' has no attribute {name!r}")


__all__ = ["Gaussians", "__version__", "generate"]
