"""`worldgen info` and `worldgen convert`: look into and convert splat files.

Only typer and the standard library at module level: torch and the format
modules load inside the commands, so `worldgen --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

UP_HELP = "z, y or -y (default: the format's own, -y for .ply/.splat, y for .spz)"


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("convert")(convert)


def info(
    world: Path = typer.Argument(..., help="a .ply, .splat or .spz file"),
    up: Optional[str] = typer.Option(None, "--up", help="up axis of the file: " + UP_HELP),
) -> None:
    """Count, bounds, SH degree, opacity and scale statistics of a splat file."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from exporters import format_of, load
    from exporters.frames import check_up

    fmt = format_of(world)
    g = load(world, up=None if up is None else check_up(up))
    table = Table(title=f"{world} ({fmt}, {world.stat().st_size / 1e6:.2f} MB)", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("splats", f"{len(g):,}")
    table.add_row("SH degree", str(g.sh_degree))
    if len(g):
        lo, hi = g.bounds()
        fmt3 = lambda t: "(" + ", ".join(f"{v:.3g}" for v in t.tolist()) + ")"  # noqa: E731
        table.add_row("bounds min (x, y, z) m", fmt3(lo))
        table.add_row("bounds max (x, y, z) m", fmt3(hi))
        table.add_row("extent m", fmt3(hi - lo))
        op = g.opacities.to(torch.float64)
        q = torch.quantile(op, torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)).tolist()
        table.add_row("opacity min / median / max", f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}")
        table.add_row("opacity mean", f"{op.mean().item():.3f}")
        table.add_row("opacity < 1/255", f"{int((op < 1 / 255).sum()):,}")
        s = g.scales.to(torch.float64).amax(dim=1)
        qs = torch.quantile(s[: 1 << 24], torch.tensor([0.0, 0.5, 0.99, 1.0], dtype=torch.float64)).tolist()
        table.add_row("largest scale min / median / p99 / max m", " / ".join(f"{v:.3g}" for v in qs))
    Console().print(table)


def convert(
    src: Path = typer.Argument(..., help="input .ply, .splat or .spz"),
    dst: Path = typer.Argument(..., help="output .ply, .splat or .spz (written atomically)"),
    max_splats: Optional[int] = typer.Option(None, "--max-splats", help="keep only the N most visible splats (opacity x volume)"),
    up: Optional[str] = typer.Option(None, "--up", help="up axis of the output file: " + UP_HELP),
    in_up: Optional[str] = typer.Option(None, "--in-up", help="up axis of the input file: " + UP_HELP),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="skip rows with NaN/Inf or zero quaternions instead of failing"),
) -> None:
    """Convert between .ply, .splat and .spz; optionally keep the N most visible splats."""
    import warnings

    from exporters import format_of, load, save
    from exporters.frames import check_up
    from worldgen.errors import UsageError
    from worldgen.ops import most_visible

    format_of(dst)  # an unknown output extension fails before reading anything
    if max_splats is not None and max_splats < 1:
        raise UsageError(f"--max-splats must be at least 1, got {max_splats}")
    g = load(
        src,
        up=None if in_up is None else check_up(in_up),
        on_invalid="drop" if drop_invalid else "error",
    )
    n_in = len(g)
    if max_splats is not None:
        g = most_visible(g, max_splats)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save(g, dst, up=None if up is None else check_up(up))
    for w in caught:
        typer.echo(f"worldgen: note: {w.message}", err=True)
    typer.echo(f"{src} -> {dst}: {len(g):,} of {n_in:,} splats, SH degree {g.sh_degree if format_of(dst) != 'splat' else 0}")
