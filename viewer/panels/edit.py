"""Edit panel: select splats with a box or a sphere, then delete, recolour or move them; undo.

The edits are `worldgen.edit` functions; this panel only reads its fields, calls
them on the active layer and hands the result to the app (which keeps the undo stack).
"""

from __future__ import annotations

import numpy as np
import torch

from viewer.panels import Status, guarded
from worldgen import edit

SELECTION_NODE = "/selection"


class EditPanel:
    def __init__(self, app) -> None:
        self.app = app
        gui = app.server.gui
        self.shape = gui.add_dropdown("Select with", ("box", "sphere"), initial_value="box")
        self.center = gui.add_vector3("Centre", initial_value=(0.0, 0.0, 0.0), step=0.1)
        self.size = gui.add_vector3("Box size", initial_value=(4.0, 4.0, 4.0), min=(0.0, 0.0, 0.0), step=0.1)
        self.radius = gui.add_number("Sphere radius", initial_value=2.0, min=0.0, step=0.1, visible=False)
        self.to_target = gui.add_button("Centre on camera target")
        self.count = gui.add_markdown("Selection: -")
        self.delete_button = gui.add_button("Delete selected", color="red")
        self.color = gui.add_rgb("Colour", initial_value=(255, 80, 40))
        self.recolor_mode = gui.add_dropdown("Recolour", ("replace", "tint"), initial_value="replace")
        self.recolor_button = gui.add_button("Recolour selected")
        self.offset = gui.add_vector3("Move by (m)", initial_value=(0.0, 0.0, 1.0), step=0.1)
        self.turn = gui.add_number("Turn about +Z (deg)", initial_value=0.0, step=5.0)
        self.move_button = gui.add_button("Move selected")
        self.undo_button = gui.add_button("Undo")
        self.status = Status(app.server)
        for handle in (self.shape, self.center, self.size, self.radius):
            handle.on_update(guarded(self.status, lambda _e: self.refresh()))
        self.to_target.on_click(guarded(self.status, self._on_to_target))
        self.delete_button.on_click(guarded(self.status, lambda _e: self.apply("delete")))
        self.recolor_button.on_click(guarded(self.status, lambda _e: self.apply("recolor")))
        self.move_button.on_click(guarded(self.status, lambda _e: self.apply("move")))
        self.undo_button.on_click(guarded(self.status, self._on_undo))
        app.on_change(self.refresh)
        self._draw_selection()

    def selection(self, gaussians) -> torch.Tensor:
        """The mask of the splats inside the selection shape. [N] bool"""
        if self.shape.value == "sphere":
            return edit.select_sphere(gaussians, self.center.value, float(self.radius.value))
        return edit.select_box(gaussians, self.center.value, self.size.value)

    def apply(self, action: str) -> int:
        """Apply an edit to the active layer's selected splats; return how many were affected."""
        layer = self.app.state.get()
        g = layer.gaussians
        mask = self.selection(g)
        n = int(mask.sum())
        if n == 0:
            self.status("Nothing selected: move or grow the selection shape")
            return 0
        if action == "delete":
            out = edit.delete(g, mask)
        elif action == "recolor":
            rgb = tuple(c / 255.0 for c in self.color.value)
            out = edit.recolor(g, mask, rgb, mode=self.recolor_mode.value)
        elif action == "move":
            turn = float(self.turn.value)
            rotation = edit.rotation_about_z(turn, dtype=g.dtype) if turn else None
            out = edit.move(g, mask, self.offset.value, rotation=rotation)
        else:
            raise ValueError(action)
        self.app.update_layer(layer.name, out)
        done = {"delete": "Deleted", "recolor": "Recoloured", "move": "Moved"}[action]
        self.status(f"{done} {n:,} splats in **{layer.name}**")
        return n

    def _on_to_target(self, event) -> None:
        self.center.value = tuple(float(v) for v in event.client.camera.look_at)

    def _on_undo(self, _event) -> None:
        name = self.app.undo()
        self.status(f"Undid the last edit of **{name}**")

    def refresh(self) -> None:
        self.size.visible = self.shape.value == "box"
        self.radius.visible = self.shape.value == "sphere"
        self._draw_selection()
        try:
            g = self.app.state.get().gaussians
        except Exception:
            self.count.content = "Selection: no world"
            return
        self.count.content = f"Selection: {int(self.selection(g).sum()):,} of {len(g):,} splats"

    def _draw_selection(self) -> None:
        scene = self.app.server.scene
        center = np.array(self.center.value, dtype=np.float64)
        if self.shape.value == "sphere":
            scene.add_icosphere(SELECTION_NODE, radius=max(float(self.radius.value), 1e-3), color=(255, 200, 0),
                                wireframe=True, position=center, subdivisions=2)
        else:
            size = np.maximum(np.array(self.size.value, dtype=np.float64), 1e-3)
            scene.add_box(SELECTION_NODE, color=(255, 200, 0), dimensions=size, wireframe=True, position=center)
