"""The viewer's Export panel offers the collider and preview meshes as .glb downloads (a real viser server)."""

from __future__ import annotations

import io

import pytest
import trimesh

from tests.test_mesh import glb_json, slope_and_box_world
from viewer.app import ViewerConfig, WorldViewer
from worldgen.errors import UsageError


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    v = WorldViewer(ViewerConfig(port=0, data_dirs=[tmp_path_factory.mktemp("data")]))
    yield v
    v.stop()


class _Client:
    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []

    def send_file_download(self, filename: str, content: bytes, *, save_immediately: bool = False) -> None:
        self.files.append((filename, content))


class _Click:
    def __init__(self) -> None:
        self.client = _Client()


def test_export_panel_downloads_the_collider_and_the_preview(app):
    g, _ = slope_and_box_world()
    app.add_world(g, name="box", replace=True)
    panel = app.export_panel
    panel.name.value, panel.max_triangles.value = "my world", 5_000
    sizes = {}
    for kind in ("collider", "preview"):
        panel.mesh_kind.value = kind
        click = _Click()
        panel._on_download_mesh(click)  # what the button runs
        (name, data), = click.client.files
        assert name == f"my_world.{kind}.glb"
        primitive = glb_json(data)["meshes"][0]["primitives"][0]
        assert ("COLOR_0" in primitive["attributes"]) == (kind == "preview")
        mesh = trimesh.load(io.BytesIO(data), file_type="glb", force="mesh")
        assert 0 < len(mesh.faces) <= 5_000
        assert mesh.bounds[1, 1] > 2.5  # +Y up: the box's roof is glTF's y
        sizes[kind] = len(data)
    assert f"{sizes['preview'] / 1e6:.2f} MB" in panel.status.handle.content


def test_export_panel_refuses_an_empty_scene(app):
    for name in list(app.state.layers):
        app.state.remove(name)
    with pytest.raises(UsageError):
        app.export_panel.mesh_bytes()
