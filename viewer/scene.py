"""Splat layers in the viser scene: one `GaussianSplatHandle` per layer, under /worlds/."""

from __future__ import annotations

import numpy as np
import viser

from viewer.state import Layer
from worldgen.gaussians import Gaussians


def splat_arrays(gaussians: Gaussians) -> dict[str, np.ndarray]:
    """The arrays viser's splat renderer takes, at full detail (covariances from scales and quats).

    centers [N, 3], covariances [N, 3, 3], rgbs [N, 3] (the SH degree-0 colour), opacities [N, 1].
    """
    g = gaussians.detach().to("cpu")
    return {
        "centers": g.means.float().numpy(),
        "covariances": g.covariances().float().numpy(),
        "rgbs": g.rgb.float().numpy(),
        "opacities": g.opacities.float().reshape(-1, 1).numpy(),
    }


class SplatScene:
    """Adds, replaces, hides and removes splat layers; sets the +Z-up frame."""

    ROOT = "/worlds"

    def __init__(self, server: viser.ViserServer) -> None:
        self.server = server
        self.handles: dict[str, viser.GaussianSplatHandle] = {}
        server.scene.set_up_direction("+z")

    def show(self, layer: Layer) -> None:
        """Send a layer's splats (again, after an edit) to every connected browser."""
        self.remove(layer.name)
        if len(layer.gaussians) == 0:
            return
        self.handles[layer.name] = self.server.scene.add_gaussian_splats(
            f"{self.ROOT}/{layer.name}", **splat_arrays(layer.gaussians), visible=layer.visible
        )

    def set_visible(self, name: str, visible: bool) -> None:
        if name in self.handles:
            self.handles[name].visible = visible

    def remove(self, name: str) -> None:
        handle = self.handles.pop(name, None)
        if handle is not None:
            handle.remove()

    def clear(self) -> None:
        for name in list(self.handles):
            self.remove(name)
