"""Evaluation: does a generator's world match its prompt, how diverse are its worlds, how fast do they come.

- `judge.py`: the render judge (a small CNN over four fixed views, one head per attribute), its training and weights;
- `probes.py`: attributes read straight off the Gaussians, without learning;
- `metrics.py`: Chamfer distance, MMD, coverage, 1-NNA, diversity;
- `prompts.py`: the four prompt sets (training and held-out phrasings, held-out combinations, free paraphrases);
- `evaluate.py`: the run over a generator (`Callable[[prompt, seed], Gaussians]`; procedural baseline by default);
- `report.py`: report.md, report.json and contact_sheet.png.

`worldgen eval` and `worldgen judge train` are the command line (docs/eval.md).
"""
