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
        output: Path = typer.Option(Path("world.ply"), "--output", "-o", help="Where to write the world: .ply, .splat or .spz."),
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
                                              "splat scenes (.ply/.splat/.spz) with captions (captions.jsonl or NAME.txt)."),
        out: Path = typer.Option(Path("runs/world"), help="Run directory: checkpoint.safetensors and model.safetensors."),
        preset: str = typer.Option("small", help="Training preset: tiny, small or base."),
        steps: Optional[int] = typer.Option(None, help="Total optimizer steps (default: the preset's)."),
        batch_size: Optional[int] = typer.Option(None, help="Worlds per step (default: the preset's)."),
        subset_n: Optional[int] = typer.Option(None, help="Coarse Gaussians drawn per world per step; 0 = all of "
                                                          "them (default: the preset's)."),
        lr: Optional[float] = typer.Option(None, help="Peak learning rate (default: the preset's)."),
        cooldown: Optional[int] = typer.Option(None, help="Take the LR linearly to 0 over the last N steps "
                                                          "(checkpoint-stable.safetensors keeps the state before)."),
        minutes: Optional[float] = typer.Option(None, help="Train for at most this many minutes (after the data is "
                                                           "loaded): the run ends at the last step that fits, "
                                                           "--steps at most, and --cooldown cools the LR over its "
                                                           "last steps."),
        init: Optional[Path] = typer.Option(None, help="Start from these weights (e.g. the shipped ones, to fine-tune "
                                                       "on your scenes) instead of a fresh model."),
        stage: str = typer.Option("joint", help="joint: the set model, the decoders and the water head; decoder: "
                                                 "the decoders alone; water: the water head alone (the rest frozen; "
                                                 "use these two with --init)."),
        group_size: Optional[int] = typer.Option(None, help="Coarse Gaussians per set token: the set model generates "
                                                            "groups that a group decoder expands (0: off; default: the "
                                                            "preset's, or --init's). With --init, the loaded weights "
                                                            "keep theirs and a new group decoder starts fresh."),
        local_blocks: Optional[int] = typer.Option(None, help="Blocks of distance-biased self-attention added to the "
                                                              "set model (0: none; default: the preset's, or --init's). "
                                                              "With --init, new blocks start zero-gated."),
        water_width: Optional[int] = typer.Option(None, help="Width of the water head, which lays water onto the "
                                                             "water level (0: none; default: the preset's, or --init's). "
                                                             "With --init, a new head starts fresh."),
        decoder_parents: Optional[int] = typer.Option(None, help="Coarse Gaussians per step for the decoder's and "
                                                                 "the water head's losses (default: the preset's)."),
        t_dist: Optional[str] = typer.Option(None, help="Flow times drawn in training: logit_normal (more weight "
                                                         "mid-path) or uniform (as much near the data; default: the "
                                                         "preset's)."),
        threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
        max_captions: Optional[int] = typer.Option(None, help="Use at most this many captions per world."),
        resume: bool = typer.Option(True, help="Continue from the run directory's checkpoint when there is one."),
        seed: int = typer.Option(0, help="Random seed of initialisation and batches."),
    ) -> None:
        """Train the world model on procedural shards or your own scenes (resumable; torchrun for several GPUs)."""
        from worldgen.errors import UsageError
        from worldgen.scenes import is_scenes_dir
        from worldgen.train import train as run_training
        from worldgen.train import train_config, world_set_from_scenes, world_set_from_shards

        if not data.is_dir():
            raise UsageError(f"{data}: not a directory (build a dataset with `worldgen dataset build`, or give a folder of scenes)")
        overrides = {k: v for k, v in {"steps": steps, "batch_size": batch_size, "subset_n": subset_n,
                                       "lr": lr, "decoder_parents": decoder_parents, "cooldown": cooldown,
                                       "t_dist": t_dist, "minutes": minutes}.items() if v is not None}  # fmt: skip
        model = None
        if init is not None:
            from worldgen.model import load_model
            from worldgen.model.world import with_group_level, with_local_blocks, with_water_head

            model = load_model(init)
            if group_size is not None:
                model = with_group_level(model, group_size)
            if local_blocks is not None:
                model = with_local_blocks(model, local_blocks)
            if water_width is not None:
                model = with_water_head(model, water_width)
        else:
            grown = {k: v for k, v in {"group_size": group_size, "local_blocks": local_blocks,
                                       "water_width": water_width}.items() if v is not None}  # fmt: skip
            if grown:
                overrides["model_overrides"] = grown
        cfg = train_config(preset, out_dir=str(out), threads=threads, resume=resume, seed=seed, stage=stage,
                           **overrides)  # fmt: skip
        typer.echo(f"reading {data} ...", err=True)
        if is_scenes_dir(data):
            from worldgen.model.config import get_config

            mcfg = model.cfg if model is not None else get_config(cfg.model, **cfg.model_overrides)
            worlds = world_set_from_scenes(
                data, max_captions=max_captions, coarse_n=mcfg.n_tokens, children=mcfg.children,
                on_scene=lambda i, n, s: typer.echo(f"  scene {i}/{n}: {s.path.name}", err=True),
            )  # fmt: skip
        else:
            worlds = world_set_from_shards(data, max_captions=max_captions)
        typer.echo(f"{len(worlds.coarse)} worlds, {len(worlds)} captions; training preset {preset!r} to step {cfg.steps}"
                   + (f" or for {cfg.minutes:g} minutes, whichever ends first" if cfg.minutes else ""), err=True)
        result = run_training(cfg, worlds, model=model)
        _leave_process_group()
        tail = (result.decoder_losses if cfg.stage != "joint" else result.losses)[-50:]
        loss = sum(tail) / len(tail) if tail else float("nan")
        what, unit = {"joint": ("loss", "samples/s"), "decoder": ("decoder loss", "parents/s"),
                      "water": ("water loss", "parents/s")}[cfg.stage]  # fmt: skip
        typer.echo(f"step {result.step}: {what} {loss:.4f}, {result.samples_per_s:.1f} {unit} -> {out / 'model.safetensors'}")


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
