"""`worldgen make` and `worldgen.generate`, on a tiny untrained model (the shipped weights get one smoke test)."""

from __future__ import annotations

import pytest
import torch

from worldgen.cli import main
from worldgen.errors import UsageError
from worldgen.pipeline import SHIPPED_WEIGHTS, generate
from worldgen.model.config import get_config
from worldgen.model.world import WorldModel, save_model
from worldgen.procedural.parts import KINDS


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    model = WorldModel(get_config("tiny"))
    with torch.no_grad():  # an untrained model emits zero velocity; give it some so outputs depend on it
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_model(model, path)
    return path


def test_generate_is_deterministic_in_the_seed(tiny_weights):
    a = generate("a desert at night", seed=1, steps=2, weights=tiny_weights, device="cpu")
    b = generate("a desert at night", seed=1, steps=2, weights=tiny_weights, device="cpu")
    c = generate("a desert at night", seed=2, steps=2, weights=tiny_weights, device="cpu")
    assert len(a) == len(b) > 0
    a.validate()
    torch.testing.assert_close(a.means, b.means, rtol=0, atol=0)
    assert len(a) != len(c) or (a.means - c.means).abs().mean() > 1e-3  # another seed, another world


def test_generate_from_an_image(tiny_weights, tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), (200, 120, 40)).save(path)
    g = generate(image=path, seed=0, steps=2, weights=tiny_weights, device="cpu")
    assert len(g) > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prompt": "   "}, "give a prompt"),
        ({"prompt": "x", "image": "y.png"}, "not both"),
        ({"prompt": "x", "steps": 0}, "steps"),
        ({"prompt": "x", "device": "tpu"}, "unknown device"),
    ],
)
def test_generate_refuses_bad_input(tiny_weights, kwargs, message):
    with pytest.raises(UsageError, match=message):
        generate(weights=tiny_weights, **kwargs)


def test_make_writes_world_and_preview(tiny_weights, tmp_path, capsys):
    out = tmp_path / "w.spz"
    code = main(["make", "a snowy pine forest", "-o", str(out), "--steps", "2", "--weights", str(tiny_weights), "--device", "cpu"])
    assert code == 0
    assert out.is_file() and (tmp_path / "w.png").is_file()
    from exporters import load

    printed = capsys.readouterr().out
    assert f"{len(load(out)):,} splats" in printed  # the file holds the world the command reports
    assert str(out) in printed and "worldgen view" in printed


@pytest.mark.parametrize(
    "args, message",
    [
        (["make", ""], "give a prompt"),
        (["make", "--image", "missing.png"], "image not found"),
        (["make", "x", "--device", "tpu"], "unknown device"),
        (["make", "x", "-o", "world.obj"], "unknown extension"),
        (["make", "x", "--preview", "p.gif"], "--preview"),
    ],
)
def test_make_bad_input_is_one_line_and_exit_2(tiny_weights, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code = main([*args, "--weights", str(tiny_weights), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.skipif(not SHIPPED_WEIGHTS.exists(), reason="no shipped weights in this checkout")
@pytest.mark.xfail(strict=True, reason="the shipped checkpoint grows 92,753 splats on this prompt at 4 sampler steps "
                   "(101,615 at the default 16), short of 100k (docs/model.md); strict: weights that reach it make this "
                   "fail until the mark goes")
def test_shipped_weights_make_a_full_detail_world():
    from worldgen.model import sample
    from worldgen.model import tokens as tok
    from worldgen.model.text import encode_text
    from worldgen.pipeline import load_weights

    g = generate("a sandy desert at sunset", seed=0, steps=4, device="cpu")
    assert len(g) >= 100_000
    g.validate()
    kinds = tok.decode_parts(sample(load_weights(device="cpu"), encode_text("a sandy desert at sunset"), steps=4)[0])[0].kinds
    names = {KINDS[int(k)] for k in kinds if k != tok.EMPTY}
    assert {"terrain", "sky"} <= names  # whole parts: ground tiles and sky patches at least
