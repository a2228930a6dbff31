"""`evaluate`: run a generator over the prompt sets and measure what it made.

A generator is any `Callable[[str, int], Gaussians]` (prompt, seed -> world).
Before trained weights exist the default is the **procedural baseline**: for
each prompt the evaluation knows the spec it was written from and builds it
with `build_world`. The model plugs in through `model_generator(weights)`.

    result = evaluate(EvalConfig(per_set=4))            # procedural baseline
    write_report(result, "eval-report/")                 # report.py
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldgen.errors import UsageError
from worldgen.gaussians import Gaussians

#: (prompt, seed) -> world
Generator = Callable[[str, int], Gaussians]

#: procedural reference worlds use these seeds (apart from the generator's seeds 0, 1, ...)
REFERENCE_SEED0 = 1_000_003


@dataclass(frozen=True)
class EvalConfig:
    sets: tuple[str, ...] = ("train_phrasing", "heldout_phrasing", "heldout_combination", "free")
    per_set: int = 8  # prompts per set
    seeds: int = 2  # generated worlds per prompt (seeds 0..seeds-1)
    ref_seeds: int = 2  # procedural reference worlds per prompt
    points: int = 1024  # Gaussians per world for the Chamfer metrics
    prompt_seed: int = 0  # which prompts the generated sets draw
    judge: str | None = None  # judge weights (default: the committed ones)
    sheet_rows: int = 3  # contact-sheet rows per set


# -- generators -------------------------------------------------------------------------------


def procedural_generator(cases) -> Generator:
    """The baseline: each known prompt's spec built by `build_world` at the seed."""
    from worldgen.procedural.world import build_world

    specs = {c.prompt: c.spec for c in cases}

    def generate(prompt: str, seed: int) -> Gaussians:
        if prompt not in specs:
            raise UsageError(f"the procedural baseline knows only the evaluation's prompts, not {prompt!r}")
        return build_world(specs[prompt], seed=seed)

    return generate


def model_generator(weights: str | Path, *, steps: int | None = None, guidance: float | None = None) -> Generator:
    """The trained model as a generator (sampler `steps` and `guidance` as in `worldgen.generate`;
    None: its defaults).

    `worldgen.generate` (module `worldgen.pipeline`) is imported only here.
    """
    weights = Path(weights)
    try:
        from worldgen.pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS, check_sampler, generate
    except ImportError:
        raise UsageError("the model is not available yet (no worldgen.generate); run without --weights for the procedural baseline") from None
    if not weights.exists():
        raise FileNotFoundError(2, "No such file or directory", str(weights))
    steps = DEFAULT_STEPS if steps is None else steps
    guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    check_sampler(steps, guidance)
    return lambda prompt, seed: generate(prompt, seed=seed, weights=weights, steps=steps, guidance=guidance)


def autoencoder_generator(cases, weights: str | Path) -> Generator:
    """The autoencoder's bound: each known prompt's procedural world rebuilt from its true parts through the
    weights' part encoder and decoder (no set model). What it loses is what the decoder costs any world."""
    from worldgen.model.world import decode_world, encode_world, load_model
    from worldgen.procedural.parts import build_world_parts

    weights = Path(weights)
    if not weights.exists():
        raise FileNotFoundError(2, "No such file or directory", str(weights))
    model = load_model(weights)
    specs = {c.prompt: c.spec for c in cases}

    def generate(prompt: str, seed: int) -> Gaussians:
        if prompt not in specs:
            raise UsageError(f"the autoencoder bound knows only the evaluation's prompts, not {prompt!r}")
        return decode_world(model, encode_world(model, build_world_parts(specs[prompt], seed=seed)))

    return generate


def device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# -- the run ----------------------------------------------------------------------------------


@dataclass
class WorldRecord:
    set: str
    prompt: str
    spec: dict
    seed: int
    kind: str  # "generated" or "procedural"
    stated: list[str] = field(default_factory=list)  # the judged attributes the prompt fixes
    seconds: float = 0.0
    judged: dict | None = None
    probes: dict = field(default_factory=dict)


#: probe facts: name -> (probe -> bool, spec -> bool); a generated world agrees when both say the same
PROBE_FACTS: dict[str, tuple[Callable[[dict], bool], Callable[[dict], bool]]] = {
    "water": (lambda p: p["water_share"] > 0.03, lambda s: s["water"] != "none" or s["biome"] == "beach"),
    "vegetation": (lambda p: p["tall_clusters"] >= 1, lambda s: s["vegetation"] != "none"),
    "structure": (lambda p: p["structure_cells"] >= 3, lambda s: s["structure"] != "none"),
    "night": (lambda p: p["sky_luminance"] < 0.15, lambda s: s["time"] == "night"),
    "precipitation": (lambda p: p["precipitation"] > 0.3, lambda s: s["weather"] in ("rain", "snow")),
    "fog": (lambda p: p["fog_volume"] > 0.05, lambda s: s["weather"] == "fog"),
}


def stated_accuracy(records: list[WorldRecord]) -> dict:
    """The judge's accuracy on the attributes each world's prompt fixes (`PromptCase.stated`).

    Per attribute over the worlds whose prompt states it (None where none does), and "mean"
    over every (world, stated attribute) pair; "pairs" counts those.
    """
    from worldgen.eval.prompts import JUDGED

    pairs = [(a, r.judged[a] == r.spec[a]) for r in records for a in r.stated]
    out: dict = {}
    for a in JUDGED:
        hits = [ok for b, ok in pairs if b == a]
        out[a] = float(np.mean(hits)) if hits else None
    out["mean"] = float(np.mean([ok for _, ok in pairs])) if pairs else float("nan")
    out["pairs"] = len(pairs)
    return out


def stated_scores(gen: list[WorldRecord], ref: list[WorldRecord]) -> dict:
    """`stated_accuracy` of the generated and the procedural worlds of one prompt set, and their ratio:
    the model's acceptance figure (a prompt that leaves the time of day unsaid has no right time)."""
    g, p = stated_accuracy(gen), stated_accuracy(ref)
    return {"generated": g, "procedural": p, "relative": g["mean"] / p["mean"] if p["mean"] > 0 else float("nan")}


def evaluate(
    config: EvalConfig = EvalConfig(),
    generator: Generator | None = None,
    *,
    generator_name: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Generate, judge, probe and compare; returns the report's data (JSON-ready) plus `"_images"` for the sheet."""
    from worldgen.eval import judge as J
    from worldgen.eval.metrics import compare_sets, distance_matrix, diversity, world_points
    from worldgen.eval.probes import probe_world
    from worldgen.eval.prompts import PROMPT_SETS, prompt_sets
    from worldgen.procedural.world import build_world

    for s in config.sets:
        if s not in PROMPT_SETS:
            raise UsageError(f"unknown prompt set {s!r}; choose from: {', '.join(PROMPT_SETS)}")
    if config.seeds < 2 or config.ref_seeds < 2:
        raise UsageError("seeds and ref_seeds must be at least 2 (diversity and 1-NNA need pairs)")
    cases = prompt_sets(config.sets, config.per_set, seed=config.prompt_seed)
    baseline = generator is None
    if baseline:
        generator = procedural_generator(cases)
    name = generator_name or ("procedural baseline (build_world from each prompt's spec; not the model)" if baseline else "model")
    judge = J.load_judge(config.judge)
    meta = J.judge_metadata(config.judge or J.DEFAULT_WEIGHTS)
    vocab = J.vocabulary()
    t_start = time.time()

    records: list[WorldRecord] = []
    points: dict[tuple[str, str], list] = {}  # (set, kind) -> point clouds
    div: dict[tuple[str, str], list[float]] = {}
    images: dict[str, list] = {s: [] for s in config.sets}
    gen_seconds: list[float] = []
    for ci, case in enumerate(cases):
        spec = case.spec.to_dict()
        per_kind: dict[str, list] = {"generated": [], "procedural": []}
        thumbs = {}
        for kind, seeds in (("generated", range(config.seeds)), ("procedural", range(REFERENCE_SEED0, REFERENCE_SEED0 + config.ref_seeds))):
            for seed in seeds:
                t0 = time.time()
                world = generator(case.prompt, seed) if kind == "generated" else build_world(case.spec, seed=seed)
                dt = time.time() - t0
                if not isinstance(world, Gaussians):
                    raise UsageError(f"the generator returned {type(world).__name__}, not Gaussians")
                rec = WorldRecord(case.set, case.prompt, spec, seed, kind, list(case.stated), seconds=dt)
                if kind == "generated":
                    gen_seconds.append(dt)
                # the judge reads both kinds: the procedural worlds of the same prompts are the model's yardstick
                rendered = J.render_judge_views(world)
                views = rendered.images_uint8()
                idx = judge.predict_indices(views[None])[0]
                rec.judged = {a: vocab[a][int(i)] for a, i in zip(J.ATTRIBUTES, idx)}
                thumbs.setdefault(kind, views)
                rec.probes = {**probe_world(world), "uncovered": J.uncovered_share(rendered)}
                per_kind[kind].append(world_points(world, config.points, seed=seed))
                records.append(rec)
        for kind, pts in per_kind.items():
            points.setdefault((case.set, kind), []).extend(pts)
            div.setdefault((case.set, kind), []).append(diversity(distance_matrix(pts, pts)))
        if len(images[case.set]) < config.sheet_rows and "procedural" in thumbs:
            images[case.set].append((case.prompt, thumbs["generated"].numpy(), thumbs["procedural"].numpy()))
        log(f"[{ci + 1}/{len(cases)}] {case.set}: {case.prompt}")

    sets: dict[str, dict] = {}
    for s in config.sets:
        gen = [r for r in records if r.set == s and r.kind == "generated"]
        ref = [r for r in records if r.set == s and r.kind == "procedural"]
        acc = {a: float(np.mean([r.judged[a] == r.spec[a] for r in gen])) for a in J.ATTRIBUTES}
        acc["mean"] = float(np.mean(list(acc.values())))
        ref_acc = {a: float(np.mean([r.judged[a] == r.spec[a] for r in ref])) for a in J.ATTRIBUTES}
        ref_acc["mean"] = float(np.mean(list(ref_acc.values())))
        facts = {}
        for f, (probe_says, spec_says) in PROBE_FACTS.items():
            facts[f] = {
                "generated": float(np.mean([probe_says(r.probes) == spec_says(r.spec) for r in gen])),
                "procedural": float(np.mean([probe_says(r.probes) == spec_says(r.spec) for r in ref])),
            }
        probe_means = {
            k: {"generated": float(np.mean([r.probes[k] for r in gen])), "procedural": float(np.mean([r.probes[k] for r in ref]))}
            for k in gen[0].probes
        }
        dist = compare_sets(points[(s, "generated")], points[(s, "procedural")])
        sets[s] = {
            "prompts": len(gen) // config.seeds,
            "judge_accuracy": acc,
            "judge_accuracy_procedural": ref_acc,  # the same judge on procedural worlds of the same prompts
            "judge_relative": acc["mean"] / ref_acc["mean"] if ref_acc["mean"] > 0 else float("nan"),
            "judge_stated": stated_scores(gen, ref),
            "probe_agreement": facts,
            "probe_means": probe_means,
            "distribution": dist,
            "diversity": {"generated": float(np.mean(div[(s, "generated")])), "procedural": float(np.mean(div[(s, "procedural")]))},
        }
    return {
        "generator": name,
        "baseline": baseline,
        "config": asdict(config),
        "judge": {
            "weights": str(config.judge or J.DEFAULT_WEIGHTS),
            "heldout_accuracy": meta.get("heldout_accuracy"),
            "train_worlds": meta.get("train_worlds"),
            "heldout_worlds": meta.get("heldout_worlds"),
            "seed_ranges": meta.get("seed_ranges"),
        },
        "sets": sets,
        "speed": {
            "seconds_per_world": float(np.mean(gen_seconds)),
            "worlds": len(gen_seconds),
            "device": device_name(),
            "total_seconds": time.time() - t_start,
        },
        "worlds": [asdict(r) for r in records],
        "_images": images,
    }


__all__ = [
    "EvalConfig", "Generator", "PROBE_FACTS", "REFERENCE_SEED0", "WorldRecord", "autoencoder_generator", "device_name",
    "evaluate", "model_generator",
    "procedural_generator", "stated_accuracy", "stated_scores",
]  # fmt: skip
