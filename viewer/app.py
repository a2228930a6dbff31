"""`WorldViewer`: one viser server, the world's layers, and the five panels.

Every browser tab shares the same scene and panels (they are server-wide
viser handles); camera moves apply to the tab that asked. Nothing a browser
sends reads a path the user did not allow (`viewer.paths.PathPolicy`) or
writes into a user's folders: uploads are parsed from a private temporary
folder and downloads are sent as bytes.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import viser
from viser import _messages

from viewer.generators import Generator, default_generator
from viewer.paths import PathPolicy, safe_suffix
from viewer.scene import SplatScene
from viewer.state import Layer, Viewpoint, Viewpoints, WorldState
from worldgen.errors import FormatError, UsageError, WorldgenError
from worldgen.gaussians import Gaussians

MiB = 1024 * 1024


@dataclass
class ViewerConfig:
    """How `worldgen view` starts."""

    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port
    data_dirs: list[Path] = field(default_factory=lambda: [Path.cwd()])
    max_upload_bytes: int = 512 * MiB
    max_undo: int = 32
    verbose: bool = False  # viser's own banner and logs


class WorldViewer:
    """The viewer: owns the server, the state and the panels."""

    def __init__(self, config: ViewerConfig | None = None, *, generator: Generator | None | str = "default") -> None:
        from viewer.panels import camera, edit, export, generate, world  # noqa: PLC0415  (panels import the app type)

        self.config = config or ViewerConfig()
        self.policy = PathPolicy(data_dirs=list(self.config.data_dirs))
        self.state = WorldState(max_undo=self.config.max_undo)
        self.viewpoints = Viewpoints()
        self.generator: Generator | None = default_generator() if generator == "default" else generator  # type: ignore[assignment]
        self._tmp = Path(tempfile.mkdtemp(prefix="worldgen-view-"))
        self._listeners: list = []
        self._job_lock = threading.Lock()
        self.server = viser.ViserServer(host=self.config.host, port=self.config.port, verbose=self.config.verbose)
        self.server.gui.configure_theme(control_width="large", dark_mode=False, show_logo=False)
        self.scene = SplatScene(self.server)
        self._guard_uploads()
        tabs = self.server.gui.add_tab_group()
        with tabs.add_tab("Generate", icon=viser.Icon.SPARKLES):
            self.generate_panel = generate.GeneratePanel(self)
        with tabs.add_tab("World", icon=viser.Icon.WORLD):
            self.world_panel = world.WorldPanel(self)
        with tabs.add_tab("Camera", icon=viser.Icon.CAMERA):
            self.camera_panel = camera.CameraPanel(self)
        with tabs.add_tab("Edit", icon=viser.Icon.PENCIL):
            self.edit_panel = edit.EditPanel(self)
        with tabs.add_tab("Export", icon=viser.Icon.DOWNLOAD):
            self.export_panel = export.ExportPanel(self)

    # -- where it runs ---------------------------------------------------------------

    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        return f"http://{shown}:{self.port}"

    def serve(self, max_seconds: float | None = None) -> None:
        """Block until `max_seconds` pass (forever when None) or Ctrl-C."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.1 if deadline is not None else 1.0)
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- worlds ----------------------------------------------------------------------

    def add_world(self, gaussians: Gaussians, *, name: str = "world", source: str = "", replace: bool = False,
                  beside: bool = False) -> Layer:
        """Show `gaussians` as a new layer; `replace` drops the others, `beside` moves it next to them (+x)."""
        gaussians, dropped = gaussians.detach().to("cpu").sanitize()
        if len(gaussians) == 0:
            raise UsageError("the world has no valid splats")
        if beside and not replace and self.state.layers:
            gaussians = _placed_beside(self.state.merged(visible_only=False), gaussians)
        with self.state.lock:
            if replace:
                self.scene.clear()
            layer = self.state.add(gaussians, name=name, source=source, replace=replace)
            self.scene.show(layer)
        if replace or len(self.state.layers) == 1:
            self.frame_world()
        self.changed()
        return layer

    def load_path(self, requested: str, *, replace: bool = False) -> Layer:
        """Open a world file the user allowed (see PathPolicy)."""
        path = self.policy.resolve(requested)
        return self.add_world(load_world(path), name=path.stem, source=str(path), replace=replace)

    def load_upload(self, filename: str, content: bytes, *, replace: bool = False) -> Layer:
        """Open an uploaded world: parsed from a private temporary file, never a user path."""
        if len(content) > self.config.max_upload_bytes:
            raise UsageError(f"upload refused: {len(content) / MiB:.1f} MiB is over the {self.config.max_upload_bytes / MiB:.0f} MiB limit")
        suffix = safe_suffix(filename)
        with tempfile.TemporaryDirectory(dir=self._tmp) as d:
            tmp = Path(d) / f"upload{suffix}"
            tmp.write_bytes(content)
            g = load_world(tmp)
        return self.add_world(g, name=Path(filename.replace("\\", "/")).stem, source=f"upload: {filename}", replace=replace)

    def update_layer(self, name: str, gaussians: Gaussians) -> None:
        """Replace a layer's splats after an edit (undoable) and redraw it."""
        with self.state.lock:
            self.state.set_gaussians(name, gaussians)
            self.scene.show(self.state.get(name))
        self.changed()

    def undo(self) -> str:
        with self.state.lock:
            name = self.state.undo()
            self.scene.show(self.state.get(name))
        self.changed()
        return name

    def remove_layer(self, name: str) -> None:
        with self.state.lock:
            self.state.remove(name)
            self.scene.remove(name)
        self.changed()

    def set_visible(self, name: str, visible: bool) -> None:
        with self.state.lock:
            self.state.get(name).visible = visible
            self.scene.set_visible(name, visible)
        self.changed()

    def on_change(self, callback) -> None:
        """Call `callback()` whenever layers or their splats change (panels refresh their text)."""
        self._listeners.append(callback)

    def changed(self) -> None:
        for callback in self._listeners:
            callback()

    def run_exclusive(self, job):
        """Run `job()` unless another long job (generate, render) is running; then raise UsageError."""
        if not self._job_lock.acquire(blocking=False):
            raise UsageError("another job is running: wait for it to finish")
        try:
            return job()
        finally:
            self._job_lock.release()

    # -- cameras -----------------------------------------------------------------------

    def frame_world(self) -> None:
        """Point new tabs' initial camera, and every open tab's camera, at an overview of the world."""
        from viewer.panels.camera import preset

        view = preset(self, "overview")
        cam = self.server.initial_camera
        cam.position, cam.look_at, cam.fov = view.position, view.look_at, np.deg2rad(view.fov_degrees)
        cam.up = (0.0, 0.0, 1.0)
        for client in self.server.get_clients().values():
            apply_viewpoint(client, view)

    def scratch_dir(self) -> Path:
        """A private folder for this session's temporary files (exports, videos)."""
        return Path(tempfile.mkdtemp(dir=self._tmp))

    # -- uploads -----------------------------------------------------------------------

    def _guard_uploads(self) -> None:
        """Refuse an upload larger than the limit as soon as its size is announced, before buffering it."""
        limit = self.config.max_upload_bytes
        gui = self.server.gui

        def check(client_id, message: _messages.FileTransferStartUpload) -> None:
            if message.size_bytes <= limit:
                return
            # viser registered its own handler first and opened a buffer for this transfer: drop it,
            # so every part that follows is ignored.
            gui._current_file_upload_states.pop(message.transfer_uuid, None)
            text = f"upload refused: {message.size_bytes / MiB:.1f} MiB is over the {limit / MiB:.0f} MiB limit"
            self.world_panel.status(text, error=True)
            client = self.server.get_clients().get(client_id)
            if client is not None:
                client.add_notification("Upload refused", text, color="red", auto_close_seconds=10)

        self.server._websock_server.register_handler(_messages.FileTransferStartUpload, check)


def load_world(path: Path) -> Gaussians:
    """Read a .ply / .splat / .spz file with the exporters; a broken file is a FormatError."""
    try:
        import exporters
    except ImportError as e:  # the formats area not installed
        raise FormatError(f"cannot open {path.name}: the exporters package is not available ({e})") from e
    try:
        return exporters.load(path)
    except WorldgenError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise FormatError(f"cannot read {path.name}: {e}") from e


def apply_viewpoint(client: viser.ClientHandle, view: Viewpoint) -> None:
    """Move one tab's camera (+Z up)."""
    with client.atomic():
        client.camera.up_direction = (0.0, 0.0, 1.0)
        client.camera.position = view.position
        client.camera.look_at = view.look_at
        client.camera.fov = float(np.deg2rad(view.fov_degrees))


def _placed_beside(existing: Gaussians, new: Gaussians, *, gap: float = 2.0) -> Gaussians:
    """`new` shifted along +x so that it starts `gap` meters past `existing`."""
    import torch

    shift = float(existing.means[:, 0].max() - new.means[:, 0].min()) + gap
    return new.replace(means=new.means + torch.tensor([shift, 0.0, 0.0], dtype=new.dtype))

