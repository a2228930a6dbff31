"""`worldgen render WORLD -o view.png | tour.mp4`: still images and fly-through videos."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

PATHS = ("orbit", "walk", "flyover")


def _vector(text: Optional[str], option: str) -> Optional[tuple[float, float, float]]:
    """'X,Y,Z' -> three finite floats."""
    import math

    from worldgen.errors import UsageError

    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{option} takes three numbers X,Y,Z, got {text!r}")
    return values  # type: ignore[return-value]


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        world: Path = typer.Argument(..., help="The world to render: a .ply, .splat or .spz file."),
        output: Path = typer.Option(..., "--output", "-o", help="Where to write: .png/.jpg for a still, .mp4/.gif for a video."),
        camera: Optional[str] = typer.Option(None, help="Camera position X,Y,Z in meters (+Z up); default: framed automatically."),
        look_at: Optional[str] = typer.Option(None, help="Point the camera looks at, X,Y,Z; default: the centre of the world."),
        fov: float = typer.Option(60.0, help="Vertical field of view, degrees."),
        width: int = typer.Option(960, help="Image width, pixels."),
        height: int = typer.Option(540, help="Image height, pixels."),
        path: Optional[str] = typer.Option(None, help="Camera path for a video: orbit, walk or flyover (default orbit)."),
        frames: int = typer.Option(120, help="Number of video frames."),
        fps: float = typer.Option(30.0, help="Video frames per second."),
        background: str = typer.Option("0,0,0", help="Background colour R,G,B in [0, 1]."),
        backend: str = typer.Option("auto", help="auto (gsplat on CUDA, torch elsewhere), gsplat or torch."),
        device: str = typer.Option("auto", help="auto (CUDA when there is one), cpu or cuda."),
    ) -> None:
        """Render a still image or a fly-through video of a world."""
        import torch

        from worldgen.errors import UsageError
        from worldgen.render import camera_path, check_image_size, overview_camera, render
        from worldgen.render.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, write_image

        suffix = output.suffix.lower()
        if suffix not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
            raise UsageError(f"{output}: write a .png or .jpg image, or an .mp4 or .gif video")
        is_video = suffix in VIDEO_SUFFIXES
        if path is not None and path not in PATHS:
            raise UsageError(f"--path must be one of {', '.join(PATHS)}, got {path!r}")
        if path is not None and not is_video:
            raise UsageError(f"--path renders a video: write to .mp4 or .gif, not {output.name}")
        if is_video and (camera is not None or look_at is not None):
            raise UsageError("--camera and --look-at set a still image; a video follows --path")
        check_image_size(width, height)
        if not 1 <= frames <= 100_000:
            raise UsageError(f"--frames must be between 1 and 100000, got {frames}")
        if not 0.0 < fov < 180.0:
            raise UsageError(f"--fov must be between 0 and 180 degrees, got {fov}")
        if backend not in ("auto", "gsplat", "torch"):
            raise UsageError(f"--backend must be auto, gsplat or torch, got {backend!r}")
        if device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")
        dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
        bg = _vector(background, "--background")
        if not all(0.0 <= c <= 1.0 for c in bg):
            raise UsageError(f"--background colours must lie in [0, 1], got {background!r}")
        cam_pos, target = _vector(camera, "--camera"), _vector(look_at, "--look-at")

        if not world.is_file():
            raise UsageError(f"{world}: no such file")
        from exporters import load

        g = load(world)
        if len(g) == 0:
            raise UsageError(f"{world} holds no splats: there is nothing to render")
        g, _ = g.sanitize()  # clamps opacities, normalises quaternions (load already refused NaN rows)
        g = g.to(dev)

        if is_video:
            cams = camera_path(path or "orbit", g.means, frames, fov_deg=fov, width=width, height=height)
            _write_tour(g, cams, output, fps=fps, background=bg, backend=backend)
            return

        cams = overview_camera(g.means, position=cam_pos, target=target, fov_deg=fov, width=width, height=height)
        with torch.no_grad():
            out = render(g, cams, backend=backend, background=bg)  # type: ignore[arg-type]
        if float(out.alphas.max()) == 0.0:
            typer.echo("worldgen: warning: no splat is in view of this camera; the image is the background", err=True)
        write_image(output, out.images_uint8()[0])
        typer.echo(f"{output}: {width}x{height}, {len(g):,} splats")


def _write_tour(g, cams, output: Path, *, fps: float, background, backend: str) -> None:
    """Render the cameras one by one into a video, with a progress bar."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from worldgen.render import render
    from worldgen.render.video import write_video

    progress = Progress(
        TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty(),
    )  # fmt: skip

    def frames():
        with progress, torch.no_grad():
            task = progress.add_task("frames", total=len(cams))
            for i in range(len(cams)):
                yield render(g, cams[i], backend=backend, background=background).images_uint8()[0]  # type: ignore[arg-type]
                progress.advance(task)

    count = write_video(output, frames(), fps=fps)
    typer.echo(f"{output}: {count} frames at {cams.width}x{cams.height}, {len(g):,} splats")
