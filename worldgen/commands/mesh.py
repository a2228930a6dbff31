"""`worldgen mesh WORLD -o world.glb`: a collider or a vertex-coloured preview mesh of a splat world.

Only typer and the standard library at module level: the mesh libraries
(torch, trimesh, scikit-image, scipy) load inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

KINDS = ("collider", "preview")


def register(app: typer.Typer) -> None:
    app.command("mesh")(mesh)


def mesh(
    world: Path = typer.Argument(..., help="the splat world: .ply, .splat, .spz, .glb or .sog"),
    output: Path = typer.Option(..., "--output", "-o", help="where to write the mesh: a .glb (+Y up), written atomically"),
    kind: str = typer.Option("collider", "--kind", help="collider (ground and solids) or preview (the same, with vertex colours)"),
    max_triangles: int = typer.Option(200_000, "--max-triangles", help="the mesh's triangle budget"),
    cell: float = typer.Option(0.15, "--cell", help="spacing of the ground's height field, m"),
    voxel: float = typer.Option(0.25, "--voxel", help="voxel side of the solids standing on the ground, m"),
) -> None:
    """A collider (the walkable ground and the solid things on it) or a coloured preview mesh, from the splats alone."""
    from worldgen.errors import UsageError

    if output.suffix.lower() != ".glb":
        raise UsageError(f"{output}: a mesh is written as .glb")
    if kind not in KINDS:
        raise UsageError(f"unknown --kind {kind!r}; choose collider or preview")
    if max_triangles < 100:
        raise UsageError(f"--max-triangles must be at least 100, got {max_triangles}")

    import exporters
    from worldgen.mesh import build, save_glb

    g = exporters.load(world)
    result = build(g, kind, max_triangles=max_triangles, cell=cell, voxel=voxel)  # type: ignore[arg-type]
    save_glb(result, output)
    typer.echo(f"{world} -> {output}: {kind}, {len(result.faces):,} triangles from {len(g):,} splats")
