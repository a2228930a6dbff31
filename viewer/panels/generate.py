"""Generate panel: prompt, optional image, seed, steps, guidance; the result replaces the world or goes beside it."""

from __future__ import annotations

import io

from viewer.generators import GenerateRequest, check_request
from viewer.panels import Status, guarded
from worldgen.errors import UsageError
from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS

MAX_IMAGE_BYTES = 32 * 1024 * 1024


class GeneratePanel:
    def __init__(self, app) -> None:
        self.app = app
        gui = app.server.gui
        label = app.generator.label if app.generator is not None else "none installed"
        self.source = gui.add_markdown(f"Generator: **{label}**")
        self.prompt = gui.add_text("Prompt", initial_value="", hint="Describe the world, e.g. 'a forest by a lake'")
        self.image_button = gui.add_upload_button("Image (optional)", icon=None, mime_type="image/*")
        self.image_label = gui.add_markdown("No image")
        self.seed = gui.add_number("Seed", initial_value=0, min=0, step=1)
        self.steps = gui.add_slider("Steps", min=1, max=64, step=1, initial_value=DEFAULT_STEPS)
        self.guidance = gui.add_slider("Guidance", min=0.0, max=15.0, step=0.5, initial_value=DEFAULT_GUIDANCE)
        self.placement = gui.add_dropdown("Result", ("replace the world", "add beside"), initial_value="replace the world")
        self.button = gui.add_button("Generate", disabled=app.generator is None)
        self.progress = gui.add_progress_bar(0.0, visible=False)
        self.status = Status(app.server, "" if app.generator else "No generator is installed.")
        self._image = None
        self.image_button.on_upload(guarded(self.status, self._on_image))
        self.button.on_click(guarded(self.status, self._on_generate))

    def _on_image(self, _event) -> None:
        upload = self.image_button.value
        if len(upload.content) > MAX_IMAGE_BYTES:
            raise UsageError(f"image refused: over the {MAX_IMAGE_BYTES // 2**20} MiB limit")
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(upload.content))
            image.load()
        except (UnidentifiedImageError, OSError) as e:
            raise UsageError(f"{upload.name!r} is not an image I can read") from e
        self._image = image.convert("RGB")
        self.image_label.content = f"Image: {upload.name} ({image.width}x{image.height})"

    def request(self) -> GenerateRequest:
        return GenerateRequest(
            prompt=self.prompt.value,
            image=self._image,
            seed=int(self.seed.value),
            steps=int(self.steps.value),
            guidance=float(self.guidance.value),
        )

    def _on_generate(self, _event) -> None:
        self.generate(self.request(), beside=self.placement.value == "add beside")

    def generate(self, request: GenerateRequest, *, beside: bool = False):
        """Run the generator; on any failure the current world stays and the page shows why."""
        if self.app.generator is None:
            raise UsageError("no generator is installed")
        check_request(request)

        def job():
            self.button.disabled = True
            self.progress.visible, self.progress.value = True, 0.0
            self.status(f"Generating (seed {request.seed})…")
            try:
                g = self.app.generator(request, self._set_progress)
                name = "_".join(request.prompt.split()[:3]) or "generated"
                layer = self.app.add_world(g, name=name, source=f"{self.app.generator.label}: {request.prompt!r}",
                                           replace=not beside, beside=beside)
            finally:
                self.button.disabled = False
                self.progress.visible = False
            self.status(f"Generated **{layer.name}**: {len(layer.gaussians):,} splats")
            return layer

        return self.app.run_exclusive(job)

    def _set_progress(self, fraction: float) -> None:
        self.progress.value = max(0.0, min(100.0, 100.0 * float(fraction)))
