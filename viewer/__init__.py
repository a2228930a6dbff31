"""The worldgen web viewer: a thin layer over viser handles.

`WorldViewer` owns one viser server, the world's layers and the panels
(Generate, World, Camera, Edit, Export). Start it with `worldgen view` or::

    from viewer import WorldViewer, ViewerConfig
    v = WorldViewer(ViewerConfig(port=8080))
    v.add_world(gaussians, name="world")
    v.serve_forever()
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "WorldViewer": "viewer.app",
    "ViewerConfig": "viewer.app",
    "PathPolicy": "viewer.paths",
    "WorldState": "viewer.state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'viewer' has no attribute {name!r}")


__all__ = list(_LAZY)
