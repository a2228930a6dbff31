"""The viewer's state, apart from any viser handle: layers, undo, viewpoints, keyframes.

Every GUI callback runs on viser's thread pool, so the state takes a lock;
panels read and change the world only through these classes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians


@dataclass
class Layer:
    """One world shown in the scene."""

    name: str
    gaussians: Gaussians
    visible: bool = True
    source: str = ""  # where it came from: a path, an upload, a prompt


@dataclass(frozen=True)
class Viewpoint:
    """A camera: where it is, what it looks at, its vertical field of view."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    fov_degrees: float = 60.0


class WorldState:
    """Ordered layers, the active one, and an undo stack of (layer name, previous Gaussians)."""

    def __init__(self, *, max_undo: int = 32) -> None:
        self.layers: OrderedDict[str, Layer] = OrderedDict()
        self.active: str | None = None
        self.max_undo = max_undo
        self._undo: list[tuple[str, Gaussians | None]] = []
        self.lock = threading.RLock()

    def unique_name(self, stem: str) -> str:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:40] or "world"
        name, i = stem, 2
        while name in self.layers:
            name, i = f"{stem}_{i}", i + 1
        return name

    def add(self, gaussians: Gaussians, *, name: str, source: str = "", replace: bool = False) -> Layer:
        """Add a layer (named uniquely); `replace` first removes all others. The new layer becomes active."""
        with self.lock:
            if replace:
                self.layers.clear()
                self._undo.clear()
            layer = Layer(self.unique_name(name), gaussians, source=source)
            self.layers[layer.name] = layer
            self.active = layer.name
            return layer

    def remove(self, name: str) -> None:
        with self.lock:
            self.layers.pop(name, None)
            self._undo = [(n, g) for n, g in self._undo if n != name]
            if self.active == name:
                self.active = next(reversed(self.layers), None)

    def get(self, name: str | None = None) -> Layer:
        """The named layer, or the active one."""
        with self.lock:
            name = self.active if name is None else name
            if name is None or name not in self.layers:
                raise UsageError("no world is loaded: open or generate one first")
            return self.layers[name]

    def set_gaussians(self, name: str, gaussians: Gaussians) -> None:
        """Replace a layer's splats after an edit, remembering the old ones for undo."""
        with self.lock:
            layer = self.get(name)
            self._undo.append((name, layer.gaussians))
            del self._undo[: -self.max_undo]
            layer.gaussians = gaussians

    def undo(self) -> str:
        """Restore the last edited layer; return its name."""
        with self.lock:
            if not self._undo:
                raise UsageError("nothing to undo")
            name, previous = self._undo.pop()
            self.layers[name].gaussians = previous
            return name

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def visible(self) -> list[Layer]:
        with self.lock:
            return [layer for layer in self.layers.values() if layer.visible]

    def merged(self, *, visible_only: bool = True) -> Gaussians:
        """All (visible) layers as one set, for export."""
        with self.lock:
            layers = self.visible() if visible_only else list(self.layers.values())
            if not layers:
                raise UsageError("no visible world to export")
            return Gaussians.cat([layer.gaussians for layer in layers])


@dataclass
class Viewpoints:
    """Named viewpoints and the keyframes of a fly-through."""

    named: dict[str, Viewpoint] = field(default_factory=dict)
    keyframes: list[Viewpoint] = field(default_factory=list)
