"""`worldgen make` (prompt or picture -> world) and `worldgen train` (dataset -> weights)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS


def register(app: typer.Typer) -> None:
    @app.command()
    def make(
        prompt: Optional[str] = typer.Argument(None, help="What the world should be; default: a snowy pine forest by a frozen lake at dusk."),
        image: Optional[Path] = typer.Option(None, help="Condition on a picture instead of a prompt."),
        output: Path = typer.Option(Path("world.ply"), "--output", "-o", help="Where to write the world: .ply, .splat, .spz, .glb or .sog."),
        seed: int = typer.Option(0, help="Random seed: the same seed, prompt, weights and device give the same world."),
        steps: int = typer.Option(DEFAULT_STEPS, help="Sampler steps."),
        guidance: float = typer.Option(DEFAULT_GUIDANCE, help="Classifier-free guidance scale."),
        device: str = typer.Option("auto", help="auto (CUDA when there is one), cpu or cuda."),
        preview: Optional[Path] = typer.Option(None, help="Preview image; default: beside the world, <name>.png."),
        no_preview: bool = typer.Option(False, "--no-preview", help="Write no preview image."),
        weights: Optional[Path] = typer.Option(None, help="Model weights (.safetensors); default: the shipped weights."),
    ) -> None:
        """Generate a world from a prompt or a picture with the set-transformer model."""
        import time

        from worldgen.errors import UsageError
        from worldgen.pipeline import DEFAULT_PROMPT, generate, resolve_device

        from exporters import format_of, save

        format_of(output)  # refuse an unknown extension before any work
        if image is not None and prompt is not None:
            raise UsageError("give either a prompt or --image, not both")
        if image is not None and not image.is_file():
            raise UsageError(f"image not found: {image}")
        if prompt is None and image is None:
            prompt = DEFAULT_PROMPT
        preview_path = None if no_preview else (preview or output.with_suffix(".png"))
        if preview_path is not None and preview_path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise UsageError(f"--preview writes a .png or .jpg image, not {preview_path.name}")
        dev = resolve_device(device)

        start = time.perf_counter()
        with _StepBar("sampling") as bar:
            world = generate(prompt, image=image, seed=seed, steps=steps, guidance=guidance,
                             device=dev.type, weights=weights, on_step=bar.update)  # fmt: skip
        save(world, output)
        seconds = time.perf_counter() - start
        what = f"image {image}" if image is not None else repr(prompt)
        typer.echo(f"world for {what} (seed {seed}, {len(world):,} splats, {seconds:.1f} s on {dev.type}) -> {output}")
        if preview_path is not None:
            _write_preview(world, preview_path)
            typer.echo(f"preview -> {preview_path}")
        typer.echo(f"open it in the browser: worldgen view {output}")

    @app.command()
    def train(
        data: Path = typer.Argument(..., help="A dataset directory from `worldgen dataset build`, or a directory of your own "
                                              "splat scenes (.ply/.splat/.spz/.glb/.sog) with captions (captions.jsonl or NAME.txt)."),
        stage: str = typer.Option("set", help="parts: the part autoencoder; set: the set model over part tokens (needs "
                                              "--init with a trained autoencoder, e.g. the parts run's model.safetensors "
                                              "or the shipped weights)."),
        out: Path = typer.Option(Path("runs/world"), help="Run directory: checkpoint.safetensors and model.safetensors."),
        preset: str = typer.Option("small", help="Model and training preset: tiny, small or base."),
        init: Optional[Path] = typer.Option(None, help="Start from these weights instead of a fresh model."),
        steps: Optional[int] = typer.Option(None, help="Total optimizer steps (default: the preset's)."),
        lr: Optional[float] = typer.Option(None, help="Peak learning rate (default: the preset's)."),
        cooldown: Optional[int] = typer.Option(None, help="Take the LR linearly to 0 over the last N steps "
                                                          "(checkpoint-stable.safetensors keeps the state before)."),
        minutes: Optional[float] = typer.Option(None, help="Train for at most this many minutes (after the data is "
                                                           "loaded): the run ends at the last step that fits, "
                                                           "--steps at most, and --cooldown cools the LR over its "
                                                           "last steps."),
        worlds: int = typer.Option(0, help="Train on the first N worlds of the dataset (0: all)."),
        batch_size: Optional[int] = typer.Option(None, help="Stage set: worlds per step (default: the preset's)."),
        part_splats: Optional[int] = typer.Option(None, help="Stage parts: decoded slots per step (default: the preset's)."),
        n_tokens: Optional[int] = typer.Option(None, help="Stage set: part tokens per world, its parts padded with empty "
                                                          "ones (default: the preset's, or --init's)."),
        threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
        max_captions: Optional[int] = typer.Option(None, help="Use at most this many captions per world."),
        resume: bool = typer.Option(True, help="Continue from the run directory's checkpoint when there is one."),
        seed: int = typer.Option(0, help="Random seed of initialisation and batches."),
    ) -> None:
        """Train the part autoencoder or the set model on procedural shards or your own scenes (resumable;
        torchrun for several GPUs)."""
        from worldgen.errors import UsageError
        from worldgen.train import train as run_training
        from worldgen.train import train_config

        if stage not in ("parts", "set"):
            raise UsageError(f"--stage must be parts or set, got {stage!r}")
        if not data.is_dir():
            raise UsageError(f"{data}: not a directory (build a dataset with `worldgen dataset build`, or give a folder of scenes)")
        if worlds < 0:
            raise UsageError(f"--worlds must be 0 (all) or more, got {worlds}")
        overrides = {k: v for k, v in {"steps": steps, "lr": lr, "cooldown": cooldown, "minutes": minutes,
                                       "batch_size": batch_size, "part_splats": part_splats}.items() if v is not None}  # fmt: skip
        cfg = train_config(f"{preset}-parts" if stage == "parts" else preset, out_dir=str(out), threads=threads,
                           resume=resume, seed=seed, **overrides)  # fmt: skip
        if threads:
            import torch

            torch.set_num_threads(threads)
        from worldgen.model import load_model
        from worldgen.model.config import get_config
        from worldgen.model.world import WorldModel

        checkpoint = out / "checkpoint.safetensors"
        if init is not None:
            model = load_model(init)
        elif stage == "set" and not (resume and checkpoint.exists()):
            raise UsageError("stage set needs a trained autoencoder: pass --init (the parts run's model.safetensors)")
        else:
            model = WorldModel(get_config(cfg.model))  # a resumed checkpoint overwrites these weights
        if n_tokens is not None:
            from worldgen.model.world import with_tokens

            model = with_tokens(model, n_tokens)
        typer.echo(f"reading {data} ...", err=True)
        from worldgen.scenes import is_scenes_dir

        log = lambda m: typer.echo(m, err=True)  # noqa: E731
        if is_scenes_dir(data):
            from worldgen.scenes import scenes_shard

            shards = [scenes_shard(data, n_tokens=model.cfg.n_tokens, on_scene=lambda i, n, s: log(f"  scene {i}/{n}: {s.path.name}"))]
        else:
            shards = None
        if stage == "parts":
            from worldgen.data import PartSet

            train_data = PartSet.from_shards(shards) if shards else PartSet.from_dataset(data, worlds=worlds)
            typer.echo(f"{len(train_data)} parts, {len(train_data.splats['splat_means']):,} splats; training the "
                       f"autoencoder to step {cfg.steps}" + (f" or for {cfg.minutes:g} minutes" if cfg.minutes else ""),
                       err=True)  # fmt: skip
        else:
            from worldgen.data import token_set_from_dataset, token_set_from_shards

            if shards:
                train_data = token_set_from_shards(shards, model, max_captions=max_captions)
            else:
                train_data = token_set_from_dataset(data, model, worlds=worlds, max_captions=max_captions, log=log)
            typer.echo(f"{train_data.tokens.shape[0]} worlds, {len(train_data)} captions; training the set model to "
                       f"step {cfg.steps}" + (f" or for {cfg.minutes:g} minutes" if cfg.minutes else ""), err=True)  # fmt: skip
        result = run_training(cfg, train_data, model=model)
        _leave_process_group()
        tail = result.losses[-50:]
        loss = sum(tail) / len(tail) if tail else float("nan")
        unit = "slots/s" if stage == "parts" else "worlds/s"
        typer.echo(f"step {result.step}: loss {loss:.4f}, {result.rate:.1f} {unit} -> {out / 'model.safetensors'}")


def _leave_process_group() -> None:
    """Under torchrun: free DDP's state, then leave the process group together (gloo aborts at exit otherwise)."""
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


class _StepBar:
    """A rich progress bar over the sampler's steps, on stderr when it is a terminal."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty(),
        )  # fmt: skip
        self._task = None

    def __enter__(self) -> _StepBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def update(self, step: int, total: int) -> None:
        if self._task is None:
            self._task = self._progress.add_task("steps", total=total)
        self._progress.update(self._task, completed=step)


def _write_preview(world, path: Path, *, width: int = 960, height: int = 540) -> None:
    import torch

    from worldgen.render import overview_camera, render
    from worldgen.render.video import write_image

    cams = overview_camera(world.means, width=width, height=height)
    with torch.no_grad():
        image = render(world, cams).images_uint8()[0]
    write_image(path, image)
