"""`generate`: a prompt or a picture -> a world, with the shipped (or given) weights.

    import worldgen
    world = worldgen.generate(prompt="a snowy pine forest by a frozen lake at dusk", seed=0)

The stages: condition (MiniLM text encoder or the model's image encoder) ->
set model (guided rectified flow over an unordered set of part tokens) ->
part decoder (each part token grows its Gaussians) -> `Gaussians`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from worldgen.errors import UsageError

if TYPE_CHECKING:
    import torch

    from worldgen.gaussians import Gaussians
    from worldgen.model.world import WorldModel

#: the weights that ship with worldgen (`worldgen train` writes new ones)
SHIPPED_WEIGHTS = Path(__file__).parent / "assets" / "world_model.safetensors"
#: the default prompt of `worldgen make` and the README's demo
DEFAULT_PROMPT = "a snowy pine forest by a frozen lake at dusk"
#: sampler defaults of `worldgen make`, `worldgen eval`, the viewer and `sample`: Euler steps, and the
#: classifier-free guidance scale that scored best on the held-out prompt sets (docs/model.md)
DEFAULT_STEPS = 16
DEFAULT_GUIDANCE = 2.0

Device = Literal["auto", "cpu", "cuda"]


def default_weights() -> Path:
    """$WORLDGEN_WEIGHTS if set, else the shipped weights."""
    return Path(os.environ.get("WORLDGEN_WEIGHTS", SHIPPED_WEIGHTS))


def resolve_device(device: str) -> torch.device:
    """"auto" (CUDA when there is one), "cpu" or "cuda" -> a torch device (UsageError otherwise)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available here (use cpu or auto)")
        return torch.device("cuda")
    raise UsageError(f"unknown device {device!r}: choose auto, cpu or cuda")


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str) -> WorldModel:
    from worldgen.model.world import load_model

    if not os.path.exists(path):
        raise UsageError(f"no model weights at {path}: train them with `worldgen train` or pass --weights")
    return load_model(path, device=device)


def load_weights(weights: str | os.PathLike | None = None, *, device: Device = "auto") -> WorldModel:
    """The world model from `weights` (default: the shipped weights), cached per path and device."""
    return _load(str(weights or default_weights()), str(resolve_device(device)))


def check_sampler(steps: int, guidance: float) -> None:
    """UsageError unless `steps` >= 1 and `guidance` >= 0 (NaN included)."""
    if steps < 1:
        raise UsageError(f"steps must be >= 1, got {steps}")
    if not guidance >= 0:
        raise UsageError(f"guidance must be >= 0, got {guidance}")


def generate(
    prompt: str | None = None,
    *,
    image: str | os.PathLike | torch.Tensor | None = None,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    weights: str | os.PathLike | None = None,
    device: Device = "auto",
    on_step: Callable[[int, int], None] | None = None,
) -> Gaussians:
    """A world for `prompt` (text) or `image` (a picture path or an [H, W, 3] uint8 tensor).

    seed: the same seed, prompt, weights and device give the same world.
    steps, guidance: sampler steps and classifier-free guidance scale.
    on_step: progress callback, called with (step, total) after each sampler step.
    """
    import torch

    if (prompt is None or not prompt.strip()) and image is None:
        raise UsageError("give a prompt (non-empty text) or an image")
    if prompt is not None and image is not None:
        raise UsageError("give either a prompt or an image, not both")
    check_sampler(steps, guidance)
    model = load_weights(weights, device=device)
    dev = next(model.parameters()).device

    from worldgen.model.world import decode_world, sample

    if image is not None:
        from worldgen.model.image import load_image

        pixels = load_image(str(image)) if not isinstance(image, torch.Tensor) else image
        with torch.no_grad():
            cond = model.image(pixels.to(dev))
    else:
        from worldgen.model.text import encode_text

        cond = encode_text(prompt.strip())

    step_callback = (lambda i: on_step(i, steps)) if on_step is not None else None
    tokens = sample(model, cond, steps=steps, guidance=guidance, seed=seed, on_step=step_callback)
    world = decode_world(model, tokens[0])
    world, _ = world.to("cpu").sanitize()
    return world
