"""What the Generate panel calls: a small `Generator` interface and the one that exists.

`default_generator()` picks, in order: the model (`worldgen.generate`) when it
is installed; else the procedural baseline (`worldgen.procedural`), labelled as
such in the page; else none, and the panel says so. Swapping in the model
touches nothing but this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians
from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS

Progress = Callable[[float], None]  # fraction done, 0..1


@dataclass(frozen=True)
class GenerateRequest:
    """What the user asked for in the Generate panel."""

    prompt: str
    image: Any = None  # a PIL image, or None
    seed: int = 0
    steps: int = DEFAULT_STEPS  # as `worldgen make`
    guidance: float = DEFAULT_GUIDANCE


class Generator(Protocol):
    label: str  # shown in the page, e.g. "model" or "procedural baseline (model not installed)"

    def __call__(self, request: GenerateRequest, progress: Progress) -> Gaussians: ...


@dataclass
class ModelGenerator:
    """The set model: `worldgen.generate(prompt=..., image=..., seed=...)`."""

    generate: Callable[..., Gaussians]
    label: str = "model"

    def __call__(self, request: GenerateRequest, progress: Progress) -> Gaussians:
        progress(0.05)
        g = self.generate(
            prompt=request.prompt or None,
            image=_pixels(request.image),
            seed=request.seed,
            steps=request.steps,
            guidance=request.guidance,
            on_step=lambda step, total: progress(0.05 + 0.85 * step / total),
        )
        progress(1.0)
        return g


@dataclass
class ProceduralGenerator:
    """The procedural baseline: a `WorldSpec` made from the prompt's keywords, then `build_world`.

    Not a model: the page labels it so. The image, steps and guidance are not used.
    """

    build: Callable[..., Gaussians]
    spec_from_prompt: Callable[[str], Any]
    label: str = "procedural baseline (model not installed)"

    def __call__(self, request: GenerateRequest, progress: Progress) -> Gaussians:
        if not request.prompt.strip():
            raise UsageError("the procedural baseline needs a prompt")
        progress(0.1)
        g = self.build(self.spec_from_prompt(request.prompt), seed=request.seed)
        progress(1.0)
        return g


def _pixels(image: Any):
    """A PIL image -> [H, W, 3] uint8 tensor, as `worldgen.generate` takes it (None stays None)."""
    if image is None:
        return None
    import numpy as np
    import torch

    return torch.from_numpy(np.asarray(image.convert("RGB")).copy())


def default_generator() -> Generator | None:
    """The best generator installed, or None."""
    from worldgen.pipeline import default_weights, generate

    if default_weights().is_file():  # the model, when its weights are installed
        return ModelGenerator(generate)
    try:
        from worldgen import procedural
    except ImportError:
        return None
    build = getattr(procedural, "build_world", None)
    if build is None:
        return None
    return ProceduralGenerator(build, getattr(procedural, "spec_from_prompt", keyword_spec))


def keyword_spec(prompt: str):
    """A `WorldSpec` whose fields take the first of their allowed values named in the prompt.

    ("a snowy forest at night" -> season winter if "winter" is named, time "night", ...); fields the
    prompt does not name keep their defaults. Words only, no understanding: the page says so.
    """
    import dataclasses
    import typing

    from worldgen.procedural.spec import WorldSpec

    words = set("".join(c.lower() if c.isalnum() else " " for c in prompt).split())
    hints = typing.get_type_hints(WorldSpec)
    chosen = {}
    for f in dataclasses.fields(WorldSpec):
        options = typing.get_args(hints.get(f.name))
        named = [o for o in options if isinstance(o, str) and set(o.lower().replace("_", " ").split()) <= words]
        if named:
            chosen[f.name] = named[0]
    return WorldSpec(**chosen)


def check_request(request: GenerateRequest) -> None:
    """Refuse what no generator can do, before any work starts."""
    if not request.prompt.strip() and request.image is None:
        raise UsageError("give a prompt or an image")
    if not 1 <= request.steps <= 1000:
        raise UsageError(f"steps must be between 1 and 1000, got {request.steps}")
    if not 0 <= request.guidance <= 50:
        raise UsageError(f"guidance must be between 0 and 50, got {request.guidance}")
