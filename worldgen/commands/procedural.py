"""`worldgen procedural ...` (the procedural baseline world) and `worldgen dataset build` (training shards)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def procedural(
        output: Path = typer.Option(..., "--output", "-o", help="Where to write the world: .ply, .splat or .spz."),
        biome: str = typer.Option("meadow", help="temperate_forest, pine_forest, desert, tundra, meadow, beach, mountains, canyon, swamp."),
        water: str = typer.Option("none", help="none, lake, river, ocean."),
        vegetation: str = typer.Option("sparse", help="none, sparse, dense."),
        structure: str = typer.Option("none", help="none, cabin, village, castle, ruins, lighthouse."),
        time: str = typer.Option("day", help="day, sunset, night, dawn."),
        weather: str = typer.Option("clear", help="clear, fog, snow, rain."),
        season: str = typer.Option("summer", help="summer, autumn, spring (forest, meadow, swamp)."),
        seed: int = typer.Option(0, help="Random seed: the same seed gives the same world."),
    ) -> None:
        """Build a reference world from explicit attributes: the procedural baseline, not the model."""
        import exporters
        from worldgen.procedural import WorldSpec, build_world

        spec = WorldSpec(biome, water, vegetation, structure, time, weather, season)  # type: ignore[arg-type]
        exporters.format_of(output)  # a bad extension fails before the work
        g = build_world(spec, seed=seed)
        exporters.save(g, output)
        typer.echo(f"procedural baseline world ({len(g)} Gaussians, seed {seed}) -> {output}")

    dataset_app = typer.Typer(help="Training data for the model: procedural worlds, captions, views.", no_args_is_help=True)

    @dataset_app.command("build")
    def build(
        output: Path = typer.Option(..., "--output", "-o", help="Dataset directory (resumed when it exists)."),
        count: int = typer.Option(64, help="Number of worlds."),
        workers: int = typer.Option(1, help="Worker processes (one torch thread each)."),
        shard_size: int = typer.Option(32, help="Worlds per shard."),
        views: int = typer.Option(2, help="Rendered views of each world that keeps views (0: none)."),
        view_size: int = typer.Option(96, help="View width and height, pixels."),
        views_every: int = typer.Option(4, help="One world in this many keeps rendered views (for the image encoder)."),
        captions: int = typer.Option(8, help="Captions per world."),
        seed: int = typer.Option(0, help="Dataset seed."),
        split: str = typer.Option("train", help="train, or heldout (held-out combinations and phrasings, for evaluation)."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Build (or resume) shards of procedural worlds as parts, with specs, captions and some rendered views."""
        from rich.progress import Progress

        from worldgen.procedural.dataset import DatasetConfig, build_dataset

        config = DatasetConfig(count, shard_size, views, view_size, views_every, captions, seed, split)  # type: ignore[arg-type]
        with Progress(disable=not progress, transient=False) as bar:
            task = bar.add_task("shards", total=config.num_shards)
            build_dataset(output, config, workers=workers, on_shard=lambda done, total: bar.update(task, completed=done))
        typer.echo(f"dataset: {config.count} worlds in {config.num_shards} shards -> {output}")

    app.add_typer(dataset_app, name="dataset")
