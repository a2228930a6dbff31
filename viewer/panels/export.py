"""Export panel: download the visible world as .ply, .splat or .spz, optionally phone-sized, or as a .glb mesh."""

from __future__ import annotations

from viewer.panels import Status, guarded
from worldgen.errors import FormatError, UsageError

FORMATS = (".ply", ".splat", ".spz")
PHONE_SPLATS = 500_000  # a world a phone's browser renders smoothly
MESH_KINDS = ("collider", "preview")  # worldgen.mesh.KINDS, without importing the mesh libraries at start-up


class ExportPanel:
    def __init__(self, app) -> None:
        self.app = app
        gui = app.server.gui
        self.format = gui.add_dropdown("Format", FORMATS, initial_value=".ply")
        self.phone = gui.add_checkbox("Phone-sized", initial_value=False, hint="Keep only the most visible splats")
        self.max_splats = gui.add_number("Max splats", initial_value=PHONE_SPLATS, min=1_000, step=1_000)
        self.name = gui.add_text("File name", initial_value="world")
        self.button = gui.add_button("Download")
        self.status = Status(app.server)
        self.button.on_click(guarded(self.status, self._on_download))
        self.mesh_kind = gui.add_dropdown("Mesh", MESH_KINDS, initial_value="collider", hint="Collider: ground and solids; preview: with colours")
        self.max_triangles = gui.add_number("Max triangles", initial_value=200_000, min=1_000, step=10_000)
        self.mesh_button = gui.add_button("Download mesh (.glb)")
        self.mesh_button.on_click(guarded(self.status, self._on_download_mesh))

    def _on_download(self, event) -> None:
        filename, data = self.export_bytes()
        event.client.send_file_download(filename, data, save_immediately=True)
        self.status(f"Sent **{filename}** ({len(data) / 1e6:.2f} MB)")

    def _on_download_mesh(self, event) -> None:
        filename, data = self.mesh_bytes()
        event.client.send_file_download(filename, data, save_immediately=True)
        self.status(f"Sent **{filename}** ({len(data) / 1e6:.2f} MB)")

    def _stem(self) -> str:
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in self.name.value.strip())[:64] or "world"

    def mesh_bytes(self) -> tuple[str, bytes]:
        """The visible world's collider or preview mesh as binary glTF (+Y up): `<name>.<kind>.glb`."""
        kind = self.mesh_kind.value
        if kind not in MESH_KINDS:
            raise UsageError(f"unknown mesh kind {kind!r}")
        from worldgen.mesh import build, glb_bytes

        mesh = build(self.app.state.merged(), kind, max_triangles=int(self.max_triangles.value))
        return f"{self._stem()}.{kind}.glb", glb_bytes(mesh)

    def export_bytes(self) -> tuple[str, bytes]:
        """The visible world, encoded; written to a private temporary file, never into the user's folders."""
        fmt = self.format.value
        if fmt not in FORMATS:
            raise UsageError(f"unknown export format {fmt!r}")
        stem = self._stem()
        g = self.app.state.merged()
        max_splats = int(self.max_splats.value) if self.phone.value else None
        if max_splats is not None and len(g) > max_splats:
            from worldgen.ops import most_visible

            g = most_visible(g, max_splats)
            stem += "_phone"
        try:
            import exporters
        except ImportError as e:
            raise FormatError(f"the exporters package is not available ({e})") from e
        path = self.app.scratch_dir() / f"{stem}{fmt}"
        exporters.save(g, path)
        return path.name, path.read_bytes()
