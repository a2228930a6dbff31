"""`worldgen info` and `worldgen convert`: look into and convert splat files.

Only typer and the standard library at module level. The commands work on
numpy `SplatArrays` through `exporters.read` / `exporters.write` and never
import torch, so they start in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

FORMATS_HELP = ".ply, .splat, .spz, .glb (KHR_gaussian_splatting) or .sog"
UP_HELP = "z, y, -y or gltf (default: the format's own: -y for .ply/.splat/.sog, y for .spz, gltf for .glb)"


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("convert")(convert)


def info(
    world: Path = typer.Argument(..., help=f"a {FORMATS_HELP} file"),
    up: Optional[str] = typer.Option(None, "--up", help="frame of the file: " + UP_HELP),
) -> None:
    """Count, bounds, SH degree, opacity and scale statistics of a splat file."""
    import warnings

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from exporters import format_of, read
    from exporters.frames import check_up

    fmt = format_of(world)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = read(world, up=None if up is None else check_up(up))
    _notes(caught)
    table = Table(title=f"{world} ({fmt}, {world.stat().st_size / 1e6:.2f} MB)", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("splats", f"{len(a):,}")
    table.add_row("SH degree", str(a.sh_degree))
    if len(a):
        lo, hi = a.means.min(axis=0), a.means.max(axis=0)
        fmt3 = lambda v: "(" + ", ".join(f"{x:.3g}" for x in v.tolist()) + ")"  # noqa: E731
        table.add_row("bounds min (x, y, z) m", fmt3(lo))
        table.add_row("bounds max (x, y, z) m", fmt3(hi))
        table.add_row("extent m", fmt3(hi - lo))
        op = a.opacities.astype(np.float64)
        q = quantiles(op, [0.0, 0.5, 1.0])
        table.add_row("opacity min / median / max", f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f}")
        table.add_row("opacity mean", f"{op.mean():.3f}")
        table.add_row("opacity < 1/255", f"{int((op < 1 / 255).sum()):,}")
        qs = quantiles(a.scales.max(axis=1).astype(np.float64), [0.0, 0.5, 0.99, 1.0])
        table.add_row("largest scale min / median / p99 / max m", " / ".join(f"{v:.3g}" for v in qs))
    Console().print(table)


def convert(
    src: Path = typer.Argument(..., help=f"input {FORMATS_HELP}"),
    dst: Path = typer.Argument(..., help=f"output {FORMATS_HELP} (written atomically)"),
    max_splats: Optional[int] = typer.Option(None, "--max-splats", help="keep only the N most visible splats (opacity x volume)"),
    up: Optional[str] = typer.Option(None, "--up", help="frame of the output file: " + UP_HELP),
    in_up: Optional[str] = typer.Option(None, "--in-up", help="frame of the input file: " + UP_HELP),
    drop_invalid: bool = typer.Option(False, "--drop-invalid", help="skip rows with NaN/Inf or zero quaternions instead of failing"),
    spz_version: Optional[int] = typer.Option(None, "--spz-version", help="write .spz version 3 (default; Spark reads it) or 4 (zstd)"),
) -> None:
    """Convert between .ply, .splat, .spz, .glb and .sog; optionally keep the N most visible splats."""
    import warnings

    from exporters import convert as convert_files
    from exporters import format_of, module_of
    from exporters.frames import check_up
    from worldgen.errors import UsageError

    out_format = format_of(dst)  # an unknown output extension fails before reading anything
    if max_splats is not None and max_splats < 1:
        raise UsageError(f"--max-splats must be at least 1, got {max_splats}")
    options = {}
    if spz_version is not None:
        if out_format != "spz":
            raise UsageError(f"--spz-version applies to .spz output, not {dst}")
        if spz_version not in (3, 4):
            raise UsageError(f"--spz-version must be 3 or 4, got {spz_version}")
        options["version"] = spz_version
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n_in, a = convert_files(
            src,
            dst,
            in_up=None if in_up is None else check_up(in_up),
            up=None if up is None else check_up(up),
            on_invalid="drop" if drop_invalid else "error",
            max_splats=max_splats,
            **options,
        )
    _notes(caught)
    degree = min(a.sh_degree, module_of(dst).MAX_SH_DEGREE)
    typer.echo(f"{src} -> {dst}: {len(a):,} of {n_in:,} splats, SH degree {degree}")


def quantiles(x, qs: list[float]) -> list[float]:
    """np.quantile's default (linear) quantiles of a 1-D array, without importing numpy.ma as np.quantile does."""
    import numpy as np

    s = np.sort(x)
    out = []
    for q in qs:
        pos = q * (len(s) - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, len(s) - 1)
        out.append(float(s[lo] + (pos - lo) * (s[hi] - s[lo])))
    return out


def _notes(caught: list) -> None:
    """One line per warning about the data (SH bands a format cannot hold); numpy's arithmetic warnings are not news."""
    for w in caught:
        if not issubclass(w.category, RuntimeWarning):
            typer.echo(f"worldgen: note: {w.message}", err=True)
