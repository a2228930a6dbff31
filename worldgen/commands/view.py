"""`worldgen view [WORLD]`: the web viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def view(
        world: Optional[Path] = typer.Argument(None, help="A .ply, .splat or .spz world to open; none opens an empty scene."),
        host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only)."),
        port: int = typer.Option(8080, help="Port to listen on (0 picks a free one)."),
        data_dir: list[Path] = typer.Option(
            [], "--data-dir", help="A folder the page may open worlds from (repeatable; default: the current folder)."
        ),
        max_upload_mb: int = typer.Option(512, help="Largest world or image a browser may upload, MiB."),
        max_seconds: Optional[float] = typer.Option(None, help="Stop after this many seconds (for scripts and CI)."),
    ) -> None:
        """Open the web viewer: generate, open, fly through, edit and download worlds."""
        from viewer.app import MiB, ViewerConfig, WorldViewer
        from worldgen.errors import UsageError

        if world is not None and not world.is_file():
            raise UsageError(f"{world}: no such file")
        for d in data_dir:
            if not d.is_dir():
                raise UsageError(f"--data-dir {d}: not a folder")
        if max_upload_mb < 1:
            raise UsageError("--max-upload-mb must be at least 1")
        config = ViewerConfig(host=host, port=port, data_dirs=list(data_dir) or [Path.cwd()], max_upload_bytes=max_upload_mb * MiB)
        try:
            viewer = WorldViewer(config)
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
        try:
            if world is not None:
                viewer.policy.allow_file(world)
                layer = viewer.load_path(str(world.resolve()), replace=True)
                typer.echo(f"{layer.name}: {len(layer.gaussians):,} splats")
            typer.echo(f"worldgen viewer: {viewer.url}", err=False)
            viewer.serve(max_seconds)
        finally:
            viewer.stop()
