"""How far can all-MiniLM-L6-v2 carry a held-out phrasing to the right attribute value?

For each attribute, the captioner's training phrasings (every value's phrase lists) are embedded
with the model's text encoder (`encode_text`, pooled) and a linear classifier is fitted on them;
the held-out phrasings, which training never sees, are then classified by it and by their nearest
training phrasing. No world model is involved: this bounds what any conditioning on these
embeddings can learn from the training phrasings alone.

Usage: python scripts/text_probe.py
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worldgen.model.text import encode_text
from worldgen.eval.prompts import JUDGED
from worldgen.procedural.captions import _VOCAB, ATTRIBUTE_TABLES

GROUPS = {a: ATTRIBUTE_TABLES[a] for a in JUDGED}


def phrases(tables: tuple[str, ...], side: int) -> list[tuple[str, str]]:
    """(value, phrase) pairs of one split; held-out pairs exclude phrases that training also has."""
    out = []
    for t in tables:
        for value, items in _VOCAB[t][side].items():
            out += [(value, p) for p in items if side == 0 or p not in _VOCAB[t][0][value]]
    return out


def main() -> None:
    torch.manual_seed(0)
    print("attribute    held-out phrasings  linear probe  nearest training phrasing")
    for attr, tables in GROUPS.items():
        train, held = phrases(tables, 0), phrases(tables, 1)
        values = sorted({v for v, _ in train})
        x_train = F.normalize(encode_text([p for _, p in train]).pooled, dim=-1)
        x_held = F.normalize(encode_text([p for _, p in held]).pooled, dim=-1)
        y_train = torch.tensor([values.index(v) for v, _ in train])
        y_held = torch.tensor([values.index(v) for v, _ in held])
        w = torch.zeros(x_train.shape[1], len(values), requires_grad=True)
        b = torch.zeros(len(values), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(10 * x_train @ w + b, y_train) + 1e-3 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            linear = ((10 * x_held @ w + b).argmax(1) == y_held).float().mean().item()
        nearest = (y_train[(x_held @ x_train.T).argmax(1)] == y_held).float().mean().item()
        print(f"{attr:12s} {len(held):18d}  {100 * linear:11.0f}%  {100 * nearest:24.0f}%")


if __name__ == "__main__":
    main()
