"""The viewer in a real browser: a real server in this process, headless Chromium driven by Playwright.

One server and one browser serve every test (module fixtures); the world is a
few thousand splats and the viewport small. Outside CI a missing Chromium skips
these tests; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from viewer.app import ViewerConfig, WorldViewer
from viewer.generators import GenerateRequest
from worldgen.gaussians import Gaussians

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
]  # fmt: skip
VIEWPORT = {"width": 900, "height": 600}
RED, GREEN = (1.0, 0.05, 0.05), (0.05, 1.0, 0.05)


def flat_world(n: int, rgb: tuple[float, float, float], *, radius: float = 3.0, seed: int = 0) -> Gaussians:
    """A disc of splats of one colour on the ground (z = 0), dense enough to cover it."""
    g = torch.Generator().manual_seed(seed)
    r = radius * torch.rand(n, generator=g).sqrt()
    a = 2 * torch.pi * torch.rand(n, generator=g)
    means = torch.stack([r * a.cos(), r * a.sin(), 0.02 * torch.randn(n, generator=g)], dim=1)
    return Gaussians.from_rgb(means, torch.tensor(rgb).expand(n, 3), torch.full((n, 3), 0.12), torch.full((n,), 0.95))


class GreenGenerator:
    """A stand-in for the model in tests: a green disc, whatever the prompt."""

    label = "test generator"

    def __call__(self, request: GenerateRequest, progress) -> Gaussians:
        progress(0.5)
        return flat_world(1500, GREEN, radius=2.0, seed=request.seed)


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium (scripts/ensure-chromium.sh)")
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    v = WorldViewer(ViewerConfig(port=0, data_dirs=[data], max_upload_bytes=256 * 1024), generator=GreenGenerator())
    v.add_world(flat_world(3000, RED), name="red")
    yield v
    v.stop()


@pytest.fixture(scope="module")
def page(chromium, viewer):
    context = chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.goto(viewer.url)
    page.get_by_text("Generate", exact=True).first.wait_for(timeout=30_000)
    yield page
    context.close()


def pixels(page) -> np.ndarray:
    """The page as an RGB array, [H, W, 3] ints."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(int)


def count_colour(image: np.ndarray, channel: int, *, left_fraction: float = 0.55) -> int:
    """Pixels strongly of one primary colour, in the left part of the page (the panel sits on the right)."""
    im = image[:, : int(image.shape[1] * left_fraction)]
    others = [c for c in range(3) if c != channel]
    return int(((im[..., channel] > 150) & (im[..., others[0]] < 110) & (im[..., others[1]] < 110)).sum())


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.3):
    """Poll until `predicate()` is truthy; return its value (or the last one, falsy, on timeout)."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def client_of(viewer):
    clients = list(viewer.server.get_clients().values())
    assert clients, "the page never connected"
    return clients[0]


def text_input(page, label: str):
    """The text box of a labelled viser input (its <label> does not point at the <input>)."""
    return page.locator("div.mantine-Flex-root", has=page.locator("label", has_text=label)).locator("input").first


def set_camera_fields(viewer, page, position, look_at, fov=50.0):
    panel = viewer.camera_panel
    panel.position.value, panel.look_at.value, panel.fov.value = position, look_at, fov
    page.get_by_role("tab", name="Camera").click()
    page.get_by_role("button", name="Move camera").click()


def test_page_loads_and_shows_the_world_in_its_colours(viewer, page):
    assert page.title() is not None
    assert wait_for(lambda: viewer.server.get_clients())
    set_camera_fields(viewer, page, (0.0, -0.5, 9.0), (0.0, 0.0, 0.0))
    red = wait_for(lambda: count_colour(pixels(page), 0) > 5_000)
    assert red, f"no red splats on screen (red pixels: {count_colour(pixels(page), 0)})"
    assert count_colour(pixels(page), 1) < 500  # and no green yet


def test_camera_fields_move_the_view(viewer, page):
    set_camera_fields(viewer, page, (0.0, -0.5, 8.0), (0.0, 0.0, 0.0))
    assert wait_for(lambda: np.allclose(client_of(viewer).camera.position, (0.0, -0.5, 8.0), atol=1e-3))
    near = wait_for(lambda: (n := count_colour(pixels(page), 0)) > 5_000 and n)
    set_camera_fields(viewer, page, (0.0, -1.5, 30.0), (0.0, 0.0, 0.0))
    far = wait_for(lambda: (n := count_colour(pixels(page), 0)) < near / 3 and n)
    assert far and far > 100, f"from 30 m the disc should look much smaller, not gone: near {near}, far {far}"
    # Looking away from the world: no splats on screen.
    set_camera_fields(viewer, page, (0.0, -1.5, 4.0), (0.0, -30.0, 4.0))
    assert wait_for(lambda: count_colour(pixels(page), 0) < 50)


def test_generate_with_a_prompt_adds_a_world(viewer, page):
    page.get_by_role("tab", name="Generate").click()
    text_input(page, "Prompt").fill("a green meadow")
    viewer.generate_panel.placement.value = "add beside"
    page.get_by_role("button", name="Generate").last.click()
    assert wait_for(lambda: len(viewer.state.layers) == 2), "Generate did not add a layer"
    assert "Generated" in wait_for(lambda: page.get_by_text("Generated").count() and page.content())
    layer = viewer.state.get()
    assert len(layer.gaussians) == 1500 and float(layer.gaussians.means[:, 0].min()) > 3.0  # placed beside the red one
    set_camera_fields(viewer, page, (6.0, -0.5, 12.0), (6.0, 0.0, 0.0))
    assert wait_for(lambda: count_colour(pixels(page), 1) > 2_000), "the generated world is not on screen"


def test_failed_generation_shows_its_error_and_keeps_the_world(viewer, page):
    before = dict(viewer.state.layers)
    page.get_by_role("tab", name="Generate").click()
    text_input(page, "Prompt").fill("")
    page.get_by_role("button", name="Generate").last.click()
    assert wait_for(lambda: page.get_by_text("give a prompt or an image").count())
    assert dict(viewer.state.layers) == before


def test_export_download_reads_back_with_the_same_count(viewer, page, tmp_path):
    import exporters

    page.get_by_role("tab", name="Export").click()
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download", exact=True).click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.suffix == ".ply"
    expected = sum(len(layer.gaussians) for layer in viewer.state.visible())
    assert len(exporters.load(path)) == expected


def test_a_second_tab_sees_the_world_and_closing_it_disturbs_nothing(viewer, page, chromium):
    other = chromium.new_page(viewport=VIEWPORT)
    other.goto(viewer.url)
    assert wait_for(lambda: len(viewer.server.get_clients()) == 2)
    assert wait_for(lambda: count_colour(pixels(other), 0) > 200), "the second tab does not show the world"
    other.close()
    assert wait_for(lambda: len(viewer.server.get_clients()) == 1)
    set_camera_fields(viewer, page, (0.0, -0.5, 9.0), (0.0, 0.0, 0.0))  # the first tab still answers
    assert wait_for(lambda: count_colour(pixels(page), 0) > 5_000)


def test_an_upload_over_the_limit_is_refused_with_a_message(viewer, page, tmp_path):
    big = tmp_path / "big.ply"
    big.write_bytes(b"\0" * (512 * 1024))  # over the fixture's 256 KiB limit
    layers = dict(viewer.state.layers)
    page.get_by_role("tab", name="World").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Upload world").click()
    chooser.value.set_files(str(big))
    assert wait_for(lambda: page.get_by_text("upload refused").count()), "no refusal message in the page"
    assert dict(viewer.state.layers) == layers
