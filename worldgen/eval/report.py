"""The evaluation report: `report.md`, `report.json` and `contact_sheet.png` in one directory.

    paths = write_report(result, "eval-report/")   # result from evaluate()

Every file is written atomically (worldgen.io).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from worldgen.io import atomic_path, atomic_write_bytes

_SET_TITLES = {
    "train_phrasing": "training phrasings",
    "heldout_phrasing": "held-out phrasings",
    "heldout_combination": "held-out combinations",
    "free": "free paraphrases",
}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _judge_table(sets: dict, names: list[str], ceiling: dict, generated, procedural) -> list[str]:
    """Rows "attribute | ceiling | generated (procedural) per set"; `generated`/`procedural` pick a set's accuracies."""
    from worldgen.eval.judge import ATTRIBUTES

    lines = [
        "| attribute | ceiling | " + " | ".join(_SET_TITLES.get(n, n) for n in names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for a in (*ATTRIBUTES, "mean"):
        cells = [f"{_pct(generated(sets[n]).get(a))} ({_pct(procedural(sets[n]).get(a))})" for n in names]
        lines.append("| " + " | ".join([f"**{a}**" if a == "mean" else a, _pct(ceiling.get(a))] + cells) + " |")
    return lines


def render_markdown(result: dict) -> str:
    sets = result["sets"]
    names = list(sets)
    ceiling = result["judge"].get("heldout_accuracy") or {}
    lines = [
        "# worldgen evaluation",
        "",
        f"**Generator:** {result['generator']}",
        "",
        f"**Speed:** {result['speed']['seconds_per_world']:.2f} s per world over {result['speed']['worlds']} worlds "
        f"on {result['speed']['device']} (whole evaluation {result['speed']['total_seconds']:.0f} s).",
        "",
        "## 1. Render judge: attribute accuracy",
        "",
        "A small CNN trained on renders of procedural worlds (seeds the generator's data never uses) reads each "
        "attribute off four fixed views. *Ceiling*: its accuracy on held-out procedural worlds. The other columns: "
        "how often it finds the prompt's attribute in the generated worlds and, in brackets, in procedural worlds "
        "of the same prompts.",
        "",
        "**Stated attributes** (the model's acceptance figure): only the attributes a prompt fixes are scored, those "
        "its words say plus the absence of water or a structure it does not mention. A prompt that leaves the time "
        "of day unsaid has no right time; the procedural reference, built from the hidden spec, always has it. "
        "*Relative*: generated over procedural accuracy over all scored (world, attribute) pairs.",
        "",
        *_judge_table(sets, names, ceiling, lambda r: r["judge_stated"]["generated"], lambda r: r["judge_stated"]["procedural"]),
        "| *pairs scored* | | " + " | ".join(str(sets[n]["judge_stated"]["generated"]["pairs"]) for n in names) + " |",
        "| ***relative*** | | " + " | ".join(_pct(sets[n]["judge_stated"]["relative"]) for n in names) + " |",
        "",
        "**Every attribute of the hidden spec** (stated or not; the mean is over the six attributes). Even a "
        "generator that samples exactly what the prompts imply stays well below 100% relative here (docs/eval.md).",
        "",
        *_judge_table(sets, names, ceiling, lambda r: r["judge_accuracy"], lambda r: r["judge_accuracy_procedural"]),
        "| *relative* | | " + " | ".join(_pct(sets[n].get("judge_relative")) for n in names) + " |",
    ]
    lines += [
        "",
        "## 2. Probes (read off the Gaussians, and the judge's renders for *uncovered*; no learning)",
        "",
        "How often a probe agrees with the prompt's spec on a yes/no fact, on generated worlds and, in brackets, "
        "on procedural worlds of the same specs (the probe's own ceiling).",
        "",
        "| fact | " + " | ".join(_SET_TITLES.get(n, n) for n in names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for f in sets[names[0]]["probe_agreement"]:
        cells = [f"{_pct(sets[n]['probe_agreement'][f]['generated'])} ({_pct(sets[n]['probe_agreement'][f]['procedural'])})" for n in names]
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    lines += ["", "Mean probe values, generated / procedural:", "", "| probe | " + " | ".join(_SET_TITLES.get(n, n) for n in names) + " |",
              "| --- | " + " | ".join("---" for _ in names) + " |"]  # fmt: skip
    for p in sets[names[0]]["probe_means"]:
        cells = [f"{sets[n]['probe_means'][p]['generated']:.3g} / {sets[n]['probe_means'][p]['procedural']:.3g}" for n in names]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## 3. Distribution against procedural worlds of the same specs",
        "",
        "Chamfer distance over subsampled means (divided by the footprint's half side) and colours. MMD: lower is "
        "better (0 = every procedural world has a twin); coverage: higher is better; 1-NNA: 50% is ideal, 100% means "
        "a nearest-neighbour classifier tells the sets apart every time.",
        "",
        "| set | MMD | coverage | 1-NNA |",
        "| --- | --- | --- | --- |",
    ]
    for n in names:
        d = sets[n]["distribution"]
        lines.append(f"| {_SET_TITLES.get(n, n)} | {d['mmd']:.4f} | {_pct(d['coverage'])} | {_pct(d['1nna'])} |")
    lines += [
        "",
        "## 4. Diversity",
        "",
        "Mean pairwise Chamfer distance between worlds of one prompt from different seeds, averaged over prompts.",
        "",
        "| set | generated | procedural |",
        "| --- | --- | --- |",
    ]
    for n in names:
        d = sets[n]["diversity"]
        lines.append(f"| {_SET_TITLES.get(n, n)} | {d['generated']:.4f} | {d['procedural']:.4f} |")
    lines += [
        "",
        "## 5. Contact sheet",
        "",
        "![contact sheet](contact_sheet.png)",
        "",
        "Each row: one prompt; left, the generated world's four judge views; right, a procedural world of the same spec.",
        "",
    ]
    return "\n".join(lines)


def contact_sheet(images: dict[str, list], *, scale: int = 2) -> np.ndarray:
    """Rows of (generated views | procedural views) with the prompt above each. -> [H, W, 3] uint8"""
    from PIL import Image, ImageDraw

    rows = [(s, p, g, r) for s, items in images.items() for p, g, r in items]
    if not rows:
        return np.zeros((16, 16, 3), np.uint8)
    V, S = rows[0][2].shape[:2]
    tile, gap, label = S * scale, 8, 14
    width = 2 * V * tile + gap * 3
    height = 18 + len(rows) * (tile + label + 4)
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 2), "generated", fill=(230, 230, 230))
    draw.text((2 * gap + V * tile, 2), "procedural (same spec)", fill=(230, 230, 230))
    y = 18
    for s, prompt, gen, ref in rows:
        text = f"[{_SET_TITLES.get(s, s)}] {prompt}"
        draw.text((gap, y), text[: width // 6], fill=(200, 200, 200))
        y += label
        for side, views in enumerate((gen, ref)):
            x0 = gap + side * (V * tile + gap)
            for v in range(V):
                img = Image.fromarray(np.asarray(views[v])).resize((tile, tile), Image.NEAREST)
                sheet.paste(img, (x0 + v * tile, y))
        y += tile + 4
    return np.asarray(sheet)


def write_report(result: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.md, report.json and contact_sheet.png into `out_dir` (created); returns their paths."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "json": out / "report.json", "contact_sheet": out / "contact_sheet.png"}
    data = {k: v for k, v in result.items() if not k.startswith("_")}
    atomic_write_bytes(paths["json"], json.dumps(data, indent=1).encode())
    atomic_write_bytes(paths["markdown"], render_markdown(result).encode())
    with atomic_path(paths["contact_sheet"]) as tmp:
        Image.fromarray(contact_sheet(result.get("_images", {}))).save(tmp)
    return paths


__all__ = ["contact_sheet", "render_markdown", "write_report"]
