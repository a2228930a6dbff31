"""World panel: open a file by path or upload, see its statistics, toggle layers."""

from __future__ import annotations

from viewer.panels import Status, guarded


class WorldPanel:
    def __init__(self, app) -> None:
        self.app = app
        gui = app.server.gui
        self.path = gui.add_text("Path", initial_value="", hint=f"A .ply, .splat or .spz file under {app.policy.describe()}")
        self.mode = gui.add_dropdown("Open as", ("new layer", "replace all"), initial_value="replace all")
        self.open_button = gui.add_button("Open file")
        self.upload = gui.add_upload_button("Upload world (.ply, .splat, .spz)")
        self.status = Status(app.server)
        self.stats = gui.add_markdown("No world loaded.")
        self.layers_folder = gui.add_folder("Layers")
        self.active = gui.add_dropdown("Active layer (edits apply here)", ("(none)",), initial_value="(none)")
        self.remove_button = gui.add_button("Remove active layer")
        self._checkboxes: dict = {}
        self.open_button.on_click(guarded(self.status, self._on_open))
        self.upload.on_upload(guarded(self.status, self._on_upload))
        self.active.on_update(guarded(self.status, self._on_active))
        self.remove_button.on_click(guarded(self.status, self._on_remove))
        app.on_change(self.refresh)

    def _replace(self) -> bool:
        return self.mode.value == "replace all"

    def _on_open(self, _event) -> None:
        layer = self.app.load_path(self.path.value, replace=self._replace())
        self.status(f"Opened **{layer.name}** ({len(layer.gaussians):,} splats)")

    def _on_upload(self, _event) -> None:
        upload = self.upload.value
        layer = self.app.load_upload(upload.name, upload.content, replace=self._replace())
        self.status(f"Opened upload **{layer.name}** ({len(layer.gaussians):,} splats)")

    def _on_active(self, _event) -> None:
        if self.active.value in self.app.state.layers:
            self.app.state.active = self.active.value
            self.refresh()

    def _on_remove(self, _event) -> None:
        name = self.app.state.get().name
        self.app.remove_layer(name)
        self.status(f"Removed **{name}**")

    def refresh(self) -> None:
        """Rebuild the layer list and the statistics from the state."""
        state = self.app.state
        with state.lock:
            layers = list(state.layers.values())
            names = tuple(layer.name for layer in layers) or ("(none)",)
            self.active.options = names
            self.active.value = state.active if state.active in state.layers else names[0]
            for name in list(self._checkboxes):
                if name not in state.layers:
                    self._checkboxes.pop(name).remove()
            for layer in layers:
                if layer.name not in self._checkboxes:
                    with self.layers_folder:
                        box = self.app.server.gui.add_checkbox(layer.name, initial_value=layer.visible)
                    box.on_update(guarded(self.status, lambda e, n=layer.name: self.app.set_visible(n, e.target.value)))
                    self._checkboxes[layer.name] = box
            self.stats.content = stats_markdown(state.get()) if state.active else "No world loaded."


def stats_markdown(layer) -> str:
    """A layer's statistics as a small Markdown table."""
    g = layer.gaussians
    lo, hi = g.bounds()
    size = hi - lo
    rows = [
        ("splats", f"{len(g):,}"),
        ("SH degree", str(g.sh_degree)),
        ("extent (m)", " x ".join(f"{v:.1f}" for v in size.tolist())),
        ("centre (m)", ", ".join(f"{v:.1f}" for v in ((lo + hi) / 2).tolist())),
        ("mean opacity", f"{float(g.opacities.mean()):.2f}"),
        ("median scale (m)", f"{float(g.scales.median()):.3f}"),
        ("source", layer.source or "-"),
    ]
    return f"**{layer.name}**\n\n| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
