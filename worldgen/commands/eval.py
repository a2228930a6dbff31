"""`worldgen eval` (the evaluation report) and `worldgen judge train` (the render judge's weights)."""

from __future__ import annotations

from pathlib import Path

import typer

from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS, check_sampler


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_(
        weights: Path = typer.Option(None, "--weights", help="Model weights; without them the procedural baseline is evaluated."),
        prompts: list[str] = typer.Option(
            ["all"], "--prompts", help="Prompt set(s): train_phrasing, heldout_phrasing, heldout_combination, free, or all."
        ),
        output: Path = typer.Option(Path("eval-report"), "--output", "-o", help="Report directory (report.md, report.json, contact_sheet.png)."),
        per_set: int = typer.Option(8, help="Prompts per set."),
        seeds: int = typer.Option(2, help="Worlds per prompt (seeds 0..seeds-1); at least 2."),
        ref_seeds: int = typer.Option(2, help="Procedural reference worlds per prompt; at least 2."),
        judge: Path = typer.Option(None, "--judge", help="Judge weights (default: the committed worldgen/assets/judge.safetensors)."),
        threads: int = typer.Option(1, help="Torch threads on the CPU (0: torch's default; 1 is fastest on a shared machine)."),
        steps: int = typer.Option(DEFAULT_STEPS, help="Sampler steps of the model (as `worldgen make --steps`)."),
        guidance: float = typer.Option(DEFAULT_GUIDANCE, help="Classifier-free guidance of the model (as `worldgen make --guidance`)."),
        bound: bool = typer.Option(False, "--bound", help="With --weights: the autoencoder's bound instead of the model: "
                                                           "each prompt's procedural worlds rebuilt from their true parts "
                                                           "through the weights' part encoder and decoder."),
    ) -> None:
        """Measure how well a generator's worlds match their prompts, how diverse and how fast they are."""
        from worldgen.errors import UsageError
        from worldgen.eval.prompts import PROMPT_SETS

        sets = tuple(PROMPT_SETS) if prompts == ["all"] else tuple(prompts)
        for s in sets:
            if s not in PROMPT_SETS:
                raise UsageError(f"unknown prompt set {s!r}; choose from: {', '.join(PROMPT_SETS)}, all")
        if per_set < 1:
            raise UsageError(f"--per-set must be at least 1, got {per_set}")
        check_sampler(steps, guidance)
        if seeds < 2 or ref_seeds < 2:
            raise UsageError("--seeds and --ref-seeds must be at least 2 (diversity and 1-NNA need pairs)")
        if judge is not None and not judge.exists():
            raise FileNotFoundError(2, "No such file or directory", str(judge))
        if output.exists() and not output.is_dir():
            raise UsageError(f"{output} exists and is not a directory")

        import torch

        from worldgen.eval.evaluate import EvalConfig, autoencoder_generator, evaluate, model_generator
        from worldgen.eval.prompts import prompt_sets
        from worldgen.eval.report import write_report

        if bound and weights is None:
            raise UsageError("--bound rebuilds procedural worlds through a model's autoencoder: give --weights")
        if threads:
            torch.set_num_threads(threads)
        config = EvalConfig(sets=sets, per_set=per_set, seeds=seeds, ref_seeds=ref_seeds, judge=str(judge) if judge else None)
        if bound:
            generator = autoencoder_generator(prompt_sets(config.sets, config.per_set, seed=config.prompt_seed), weights)
            name = f"autoencoder bound ({weights}: procedural worlds through the part encoder and decoder)"
        elif weights is not None:
            generator = model_generator(weights, steps=steps, guidance=guidance)
            name = f"model ({weights}; {steps} steps, guidance {guidance:g})"
        else:
            generator = name = None
        result = evaluate(config, generator, generator_name=name, log=lambda m: typer.echo(m, err=True))
        paths = write_report(result, output)
        rel = " ".join(f"{s}={100 * r['judge_stated']['relative']:.0f}%" for s, r in result["sets"].items())
        typer.echo(f"{result['generator']}: judge relative (stated attributes) {rel}; "
                   f"{result['speed']['seconds_per_world']:.2f} s/world")  # fmt: skip
        typer.echo(f"report -> {paths['markdown']}")

    judge_app = typer.Typer(help="The render judge of `worldgen eval`.", no_args_is_help=True)

    @judge_app.command("train")
    def train(
        output: Path = typer.Option(Path("worldgen/assets/judge.safetensors"), "--output", "-o", help="Weights file to write."),
        cache: Path = typer.Option(Path(".cache/judge"), help="Rendered views are cached here (resumable)."),
        worlds: int = typer.Option(900, help="Training worlds."),
        heldout: int = typer.Option(120, help="Held-out worlds (the judge's ceiling is measured on them)."),
        workers: int = typer.Option(2, help="Worker processes rendering worlds."),
        epochs: int = typer.Option(24, help="Training epochs."),
        seed: int = typer.Option(0, help="Training seed."),
    ) -> None:
        """Render judge worlds (seeds apart from the generator's data), train the CNN, write its weights."""
        import time

        import torch

        from worldgen.errors import UsageError
        from worldgen.eval import judge as J

        if output.suffix != ".safetensors":
            raise UsageError(f"judge weights are written as .safetensors, got {output.name}")
        if worlds < 10 or heldout < 10 or epochs < 1 or workers < 1:
            raise UsageError("need --worlds >= 10, --heldout >= 10, --epochs >= 1, --workers >= 1")
        t0 = time.time()
        log = lambda m: typer.echo(m, err=True)  # noqa: E731
        hv, hl = J.build_judge_data(cache, "heldout", heldout, workers=workers, log=log)
        tv, tl = J.build_judge_data(cache, "train", worlds, workers=workers, log=log)
        t_data = time.time() - t0
        torch.set_num_threads(max(1, workers))
        judge, history = J.train_judge(tv, tl, val_views=hv, val_labels=hl, config=J.JudgeTrainConfig(epochs=epochs, seed=seed), log=log)
        acc = J.accuracy(judge.predict_indices(torch.from_numpy(hv)), hl)
        meta = {
            "heldout_accuracy": acc,
            "train_worlds": worlds,
            "heldout_worlds": heldout,
            "epochs": epochs,
            "seed_ranges": {
                "train": [J.JUDGE_TRAIN_SEED0, J.JUDGE_TRAIN_SEED0 + worlds],
                "heldout": [J.JUDGE_HELDOUT_SEED0, J.JUDGE_HELDOUT_SEED0 + heldout],
            },
            "data_seconds": round(t_data, 1),
            "train_seconds": round(time.time() - t0 - t_data, 1),
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        J.save_judge(judge, output, metadata=meta)
        typer.echo("judge: held-out accuracy " + " ".join(f"{k} {100 * v:.1f}%" for k, v in acc.items()))
        typer.echo(f"weights -> {output} ({time.time() - t0:.0f} s)")

    app.add_typer(judge_app, name="judge")
