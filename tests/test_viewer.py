"""The viewer without a browser: path policy, state and undo, presets, fly-through path, panels, CLI errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import random_gaussians
from viewer.app import ViewerConfig, WorldViewer
from viewer.flythrough import interpolate
from viewer.generators import GenerateRequest, check_request
from viewer.panels.camera import preset
from viewer.paths import PathPolicy, safe_suffix
from viewer.state import Viewpoint, WorldState
from worldgen.errors import UsageError, WorldgenError


class FailingGenerator:
    label = "failing"

    def __call__(self, request, progress):
        raise UsageError("the generator ran out of ideas")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    v = WorldViewer(ViewerConfig(port=0, data_dirs=[data], max_upload_bytes=4096), generator=FailingGenerator())
    yield v
    v.stop()


# -- paths ----------------------------------------------------------------------------


def test_path_policy_allows_only_the_data_dir_and_named_files(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir(), outside.mkdir()
    (data / "w.ply").write_bytes(b"x")
    (outside / "secret.ply").write_bytes(b"x")
    (outside / "named.splat").write_bytes(b"x")
    os.symlink(outside / "secret.ply", data / "link.ply")
    policy = PathPolicy(data_dirs=[data], files=[outside / "named.splat"])
    assert policy.resolve("w.ply") == (data / "w.ply").resolve()
    assert policy.resolve(str(outside / "named.splat")) == (outside / "named.splat").resolve()
    for bad in ["../outside/secret.ply", str(outside / "secret.ply"), "link.ply", "/etc/passwd", "w.txt", "", "missing.ply"]:
        with pytest.raises(UsageError):
            policy.resolve(bad)


@pytest.mark.parametrize("name", ["../../x.ply", "C:\\temp\\w.SPZ", "w.splat"])
def test_upload_names_give_only_a_suffix(name):
    assert safe_suffix(name) in (".ply", ".spz", ".splat")


def test_upload_names_of_other_types_are_refused():
    with pytest.raises(UsageError):
        safe_suffix("world.exe")


# -- state ----------------------------------------------------------------------------


def test_world_state_layers_and_undo():
    state = WorldState(max_undo=2)
    a = state.add(random_gaussians(10), name="w")
    b = state.add(random_gaussians(5), name="w")
    assert (a.name, b.name, state.active) == ("w", "w_2", "w_2")
    for n in (4, 3, 2):
        state.set_gaussians("w", random_gaussians(n))
    assert state.undo() == "w" and len(state.get("w").gaussians) == 3
    assert state.undo() == "w" and len(state.get("w").gaussians) == 4
    with pytest.raises(UsageError):
        state.undo()  # only max_undo steps are kept
    state.get("w").visible = False
    assert len(state.merged()) == 5 and len(state.merged(visible_only=False)) == 9
    state.remove("w_2")
    assert state.active == "w"


# -- cameras --------------------------------------------------------------------------


def test_interpolate_passes_through_keyframes():
    keys = [Viewpoint((0, 0, 1), (1, 0, 0), 40), Viewpoint((5, 0, 1), (6, 0, 0), 60), Viewpoint((5, 5, 2), (5, 9, 0), 80)]
    path = interpolate(keys, 9)  # frames 0, 4, 8 land on the keyframes
    for i, k in zip((0, 4, 8), keys):
        assert np.allclose(path[i].position, k.position) and np.allclose(path[i].look_at, k.look_at)
        assert path[i].fov_degrees == pytest.approx(k.fov_degrees)
    with pytest.raises(UsageError):
        interpolate(keys[:1], 10)


def test_presets_look_at_the_world_from_sensible_places(app):
    app.add_world(random_gaussians(500).replace(means=torch.rand(500, 3) * torch.tensor([10.0, 10.0, 1.0])), name="box",
                  replace=True)
    over, eye = preset(app, "overview"), preset(app, "eye level")
    assert over.position[2] > 10 and np.allclose(over.look_at[:2], (5, 5), atol=1)
    assert eye.position[2] == pytest.approx(eye.look_at[2]) and 1.5 < eye.position[2] < 2.5
    orbit = [preset(app, "orbit", azimuth_degrees=a) for a in (0, 90)]
    assert not np.allclose(orbit[0].position, orbit[1].position)


# -- panels through the app -------------------------------------------------------------


def test_edit_panel_deletes_recolours_moves_and_undoes(app):
    g = random_gaussians(200)
    app.add_world(g, name="edit", replace=True)
    panel = app.edit_panel
    panel.shape.value, panel.center.value, panel.radius.value = "sphere", (0.0, 0.0, 0.0), 8.0
    selected = int(panel.selection(app.state.get().gaussians).sum())
    assert 0 < selected < 200
    assert panel.apply("delete") == selected and len(app.state.get().gaussians) == 200 - selected
    app.undo()
    panel.color.value = (0, 255, 0)
    panel.apply("recolor")
    recoloured = app.state.get().gaussians.rgb[panel.selection(app.state.get().gaussians)]
    assert torch.allclose(recoloured, torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    app.undo()
    assert torch.equal(app.state.get().gaussians.sh0, g.sh0)
    with pytest.raises(UsageError):
        app.undo()


def test_failed_generation_keeps_the_world(app):
    app.add_world(random_gaussians(50), name="keep", replace=True)
    with pytest.raises(UsageError, match="ran out of ideas"):
        app.generate_panel.generate(GenerateRequest(prompt="a lake"))
    assert list(app.state.layers) == ["keep"] and not app.generate_panel.button.disabled


@pytest.mark.parametrize("request_", [GenerateRequest(prompt="  "), GenerateRequest(prompt="x", steps=0),
                                      GenerateRequest(prompt="x", guidance=-1)])
def test_impossible_requests_are_refused(request_):
    with pytest.raises(UsageError):
        check_request(request_)


def test_uploads_over_the_limit_or_broken_are_refused(app):
    app.add_world(random_gaussians(50), name="keep", replace=True)
    with pytest.raises(UsageError, match="over the"):
        app.load_upload("big.ply", b"\0" * 5000)
    with pytest.raises(WorldgenError):
        app.load_upload("broken.ply", b"ply\nnonsense")
    assert list(app.state.layers) == ["keep"]


def test_export_round_trip_and_phone_size(app):
    exporters = pytest.importorskip("exporters")
    app.add_world(random_gaussians(3000, sh_degree=1), name="x", replace=True)
    panel = app.export_panel
    for fmt in (".ply", ".splat", ".spz"):
        panel.format.value, panel.phone.value = fmt, False
        name, data = panel.export_bytes()
        path = app.scratch_dir() / name
        path.write_bytes(data)
        assert name.endswith(fmt) and len(exporters.load(path)) == 3000
    panel.format.value, panel.phone.value, panel.max_splats.value = ".splat", True, 1000
    name, data = panel.export_bytes()
    assert name == "world_phone.splat" and len(data) == 1000 * 32


# -- command line -----------------------------------------------------------------------


def _view_argv(*args: str) -> list[str]:
    from worldgen import cli

    group = hasattr(__import__("typer").main.get_command(cli.app), "commands")
    return (["view"] if group else []) + list(args)


@pytest.mark.parametrize("args", [["missing.ply"], ["--data-dir", "no-such-dir", "--max-seconds", "0"]])
def test_cli_bad_input_is_one_line_and_exit_2(args, capsys, tmp_path, monkeypatch):
    from worldgen import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(_view_argv(*args)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("worldgen: error:") and "\n" not in err


def test_cli_opens_a_world_and_stops_by_itself(tmp_path, capsys, monkeypatch):
    exporters = pytest.importorskip("exporters")
    from worldgen import cli

    world = tmp_path / "w.ply"
    exporters.save(random_gaussians(100), world)
    monkeypatch.chdir(tmp_path)
    assert cli.main(_view_argv(str(world), "--port", "0", "--max-seconds", "0.2")) == 0
    out = capsys.readouterr().out
    assert "100 splats" in out and "http://127.0.0.1:" in out
