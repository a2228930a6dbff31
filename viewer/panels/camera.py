"""Camera panel: presets, exact position / look-at / FOV, named viewpoints, keyframes and a fly-through video."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from viewer.panels import Status, guarded
from viewer.state import Viewpoint
from worldgen.errors import UsageError

PresetName = Literal["overview", "orbit", "eye level"]
EYE_HEIGHT = 1.7  # meters above the ground


def world_extent(app) -> tuple[np.ndarray, float, float]:
    """Centre [3], horizontal radius and ground height of the visible worlds, ignoring a far sky dome.

    Uses the median and quantiles of the splat centres, so a few outliers or a sky dome
    (a minority of splats far out) do not swing the view. An empty scene gives a 64 m footprint.
    """
    layers = app.state.visible()
    if not layers:
        return np.zeros(3), 32.0, 0.0
    means = np.concatenate([layer.gaussians.means.detach().cpu().numpy() for layer in layers])
    if len(means) > 100_000:
        means = means[np.random.default_rng(0).choice(len(means), 100_000, replace=False)]
    center = np.median(means, axis=0)
    radius = float(np.quantile(np.linalg.norm(means[:, :2] - center[:2], axis=1), 0.8))
    ground = float(np.quantile(means[:, 2], 0.05))
    return center, max(radius, 0.5), ground


def preset(app, name: PresetName, *, azimuth_degrees: float = -90.0, fov_degrees: float = 60.0) -> Viewpoint:
    """A preset view of the visible worlds (+Z up)."""
    center, radius, ground = world_extent(app)
    target = (float(center[0]), float(center[1]), float(center[2]))
    az = math.radians(azimuth_degrees)
    if name == "overview":  # high above, tilted a little so "up" on screen is +y
        pos = (center[0], center[1] - 0.6 * radius, center[2] + 2.4 * radius)
    elif name == "orbit":  # on a ring at 30 degrees elevation
        d = 2.2 * radius
        pos = (center[0] + d * math.cos(az) * math.cos(math.radians(30)),
               center[1] + d * math.sin(az) * math.cos(math.radians(30)),
               center[2] + d * math.sin(math.radians(30)))
    elif name == "eye level":  # standing on the ground at the edge, looking across
        z = ground + EYE_HEIGHT
        pos = (center[0] + 0.8 * radius * math.cos(az), center[1] + 0.8 * radius * math.sin(az), z)
        target = (float(center[0]), float(center[1]), z)
    else:
        raise UsageError(f"unknown camera preset {name!r}")
    return Viewpoint(tuple(float(v) for v in pos), target, fov_degrees)


class CameraPanel:
    def __init__(self, app) -> None:
        self.app = app
        gui = app.server.gui
        self._orbit_azimuth = -90.0
        with gui.add_folder("Presets"):
            buttons = gui.add_button_group("View", ("Overview", "Orbit", "Eye level"))
        with gui.add_folder("Exact camera"):
            self.position = gui.add_vector3("Position", initial_value=(0.0, -20.0, 20.0), step=0.1)
            self.look_at = gui.add_vector3("Look at", initial_value=(0.0, 0.0, 0.0), step=0.1)
            self.fov = gui.add_number("FOV (deg)", initial_value=60.0, min=5.0, max=170.0, step=1.0)
            self.move_button = gui.add_button("Move camera")
            self.read_button = gui.add_button("Read current camera")
        with gui.add_folder("Viewpoints"):
            self.view_name = gui.add_text("Name", initial_value="view 1")
            self.save_button = gui.add_button("Save viewpoint")
            self.saved = gui.add_dropdown("Saved", ("(none)",), initial_value="(none)")
            self.restore_button = gui.add_button("Go to viewpoint")
        with gui.add_folder("Fly-through"):
            self.key_button = gui.add_button("Add keyframe (current view)")
            self.clear_keys = gui.add_button("Clear keyframes")
            self.keys_label = gui.add_markdown("0 keyframes")
            self.seconds = gui.add_number("Length (s)", initial_value=4.0, min=0.5, max=120.0, step=0.5)
            self.render_button = gui.add_button("Render video")
        self.status = Status(app.server)
        buttons.on_click(guarded(self.status, self._on_preset))
        self.move_button.on_click(guarded(self.status, self._on_move))
        self.read_button.on_click(guarded(self.status, self._on_read))
        self.save_button.on_click(guarded(self.status, self._on_save))
        self.restore_button.on_click(guarded(self.status, self._on_restore))
        self.key_button.on_click(guarded(self.status, self._on_keyframe))
        self.clear_keys.on_click(guarded(self.status, self._on_clear_keys))
        self.render_button.on_click(guarded(self.status, self._on_render))

    # -- helpers -----------------------------------------------------------------------

    def fields(self) -> Viewpoint:
        """The viewpoint typed into the exact-camera fields, checked."""
        pos, tgt, fov = tuple(self.position.value), tuple(self.look_at.value), float(self.fov.value)
        if not all(math.isfinite(v) for v in (*pos, *tgt, fov)):
            raise UsageError("camera fields must be finite numbers")
        if np.allclose(pos, tgt):
            raise UsageError("the camera position and the look-at point coincide")
        if not 1.0 <= fov <= 179.0:
            raise UsageError(f"FOV must be between 1 and 179 degrees, got {fov}")
        return Viewpoint(pos, tgt, fov)

    def show(self, client, view: Viewpoint) -> None:
        """Move the asking tab's camera and mirror the view in the fields."""
        from viewer.app import apply_viewpoint

        apply_viewpoint(client, view)
        self.position.value, self.look_at.value, self.fov.value = view.position, view.look_at, round(view.fov_degrees, 2)

    @staticmethod
    def current(client) -> Viewpoint:
        cam = client.camera
        return Viewpoint(tuple(float(v) for v in cam.position), tuple(float(v) for v in cam.look_at),
                         float(np.rad2deg(cam.fov)))

    # -- callbacks ---------------------------------------------------------------------

    def _on_preset(self, event) -> None:
        name = event.target.value.lower()
        if name == "orbit":
            self._orbit_azimuth += 45.0  # each press walks a step around the ring
        self.show(event.client, preset(self.app, name, azimuth_degrees=self._orbit_azimuth, fov_degrees=float(self.fov.value)))
        self.status(f"Preset: {name}")

    def _on_move(self, event) -> None:
        self.show(event.client, self.fields())
        self.status("Camera moved")

    def _on_read(self, event) -> None:
        self.show(event.client, self.current(event.client))

    def _on_save(self, event) -> None:
        name = self.view_name.value.strip()
        if not name:
            raise UsageError("give the viewpoint a name")
        self.app.viewpoints.named[name] = self.current(event.client)
        self.saved.options = tuple(self.app.viewpoints.named)
        self.saved.value = name
        self.status(f"Saved viewpoint **{name}**")

    def _on_restore(self, event) -> None:
        view = self.app.viewpoints.named.get(self.saved.value)
        if view is None:
            raise UsageError("no saved viewpoint selected")
        self.show(event.client, view)
        self.status(f"Restored **{self.saved.value}**")

    def _on_keyframe(self, event) -> None:
        self.app.viewpoints.keyframes.append(self.current(event.client))
        self.keys_label.content = f"{len(self.app.viewpoints.keyframes)} keyframes"

    def _on_clear_keys(self, _event) -> None:
        self.app.viewpoints.keyframes.clear()
        self.keys_label.content = "0 keyframes"

    def _on_render(self, event) -> None:
        from viewer.flythrough import render_flythrough

        keys = list(self.app.viewpoints.keyframes)
        if len(keys) < 2:
            raise UsageError("add at least 2 keyframes first")
        world = self.app.state.merged()

        def job():
            self.status("Rendering the fly-through…")
            path = render_flythrough(world, keys, self.app.scratch_dir() / "flythrough.mp4", seconds=float(self.seconds.value))
            event.client.send_file_download("flythrough.mp4", path.read_bytes(), save_immediately=True)
            self.status(f"Fly-through ready: {path.stat().st_size / 1e6:.1f} MB")

        self.app.run_exclusive(job)
