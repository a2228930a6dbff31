"""`worldgen make`, `worldgen eval`, the viewer and `sample` share one sampler default."""

from __future__ import annotations

import inspect

from worldgen.eval.evaluate import model_generator
from worldgen.model.world import sample
from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS, generate


def test_every_entry_point_samples_with_the_same_defaults() -> None:
    from viewer.generators import GenerateRequest

    for fn in (sample, generate):
        params = inspect.signature(fn).parameters
        assert params["steps"].default == DEFAULT_STEPS and params["guidance"].default == DEFAULT_GUIDANCE
    request = GenerateRequest(prompt="a desert")
    assert (request.steps, request.guidance) == (DEFAULT_STEPS, DEFAULT_GUIDANCE)
    assert inspect.signature(model_generator).parameters["guidance"].default is None  # None: the pipeline's


def test_cli_help_shows_the_default(capsys) -> None:
    from worldgen.cli import main

    for command in ("make", "eval"):
        try:
            main([command, "--help"])
        except SystemExit:
            pass
        after = capsys.readouterr().out.split("--guidance", 1)[1]
        assert after.split("[default: ", 1)[1].startswith(f"{DEFAULT_GUIDANCE}]"), command
