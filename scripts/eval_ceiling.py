"""How well could any generator score on the judge, if it read the prompt perfectly?

A generator sees only the prompt. Where the prompt leaves an attribute unsaid (no time of day,
say), the best it can do is sample that attribute as the captioner's data implies: P(value |
biome, unsaid). Scoring *every* attribute of the hidden spec then caps its relative figure below
100%; scoring the stated attributes (`PromptCase.stated`) does not. This prints both caps for the
evaluation's prompt sets, with the judge taken as a perfect reader.

Usage: python scripts/eval_ceiling.py [--per-set 8] [--draws 60000]
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import numpy as np

from worldgen.eval.prompts import JUDGED, prompt_set
from worldgen.procedural.captions import describe_said
from worldgen.procedural.spec import sample_spec


def unsaid_odds(draws: int) -> dict[tuple[str, str], Counter]:
    """(biome, attribute) -> how often each value goes unsaid in training captions."""
    rng = np.random.default_rng(0)
    odds: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for _ in range(draws):
        spec = sample_spec(rng, split="train")
        _, said = describe_said(spec, rng, split="train")
        for a in JUDGED:
            if a not in said:
                odds[(spec.biome, a)][getattr(spec, a)] += 1
    return odds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-set", type=int, default=8)
    ap.add_argument("--draws", type=int, default=60000)
    args = ap.parse_args()
    odds = unsaid_odds(args.draws)
    for name in ("train_phrasing", "heldout_phrasing", "heldout_combination", "free"):
        every, stated = [], 0
        for case in prompt_set(name, args.per_set):
            for a in JUDGED:
                if a in case.stated:
                    every.append(1.0)
                    stated += 1
                else:
                    seen = odds[(case.spec.biome, a)]
                    every.append(seen[getattr(case.spec, a)] / max(1, sum(seen.values())))
        print(f"{name:20s} every attribute: {100 * np.mean(every):.0f}%   stated attributes: 100% ({stated} of {len(every)} pairs)")


if __name__ == "__main__":
    main()
