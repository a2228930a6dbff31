"""Conditioning encoders: MiniLM text (one real prompt) and the image encoder."""

from __future__ import annotations

import pytest
import torch

from tests.test_model import micro_config, randomize
from worldgen.errors import UsageError
from worldgen.model.image import ImageEncoder, load_image, prepare_images, sincos_2d
from worldgen.model.text import encode_text


def test_minilm_encodes_a_real_prompt_offline():
    cond = encode_text(["a wintry woodland beside a frozen pond", "a sunny desert with dunes at noon"])
    b, length, dim = cond.tokens.shape
    assert (b, dim) == (2, 384) and length >= 9
    assert cond.mask[0].sum() >= 9 and cond.mask.dtype == torch.bool
    torch.testing.assert_close(cond.pooled.norm(dim=1), torch.ones(2))
    snowy = encode_text("a snowy forest next to an icy lake").pooled[0]
    # the encoder's semantics: the paraphrase lies nearer the wintry prompt than the desert one
    assert snowy @ cond.pooled[0] > snowy @ cond.pooled[1] + 0.1


def test_minilm_matches_the_transformers_bert_forward():
    """Our post-LN encoder stack over the package's safetensors is the same network as transformers' BertModel."""
    transformers = pytest.importorskip("transformers")
    from worldgen.model.text import model_dir

    prompts = ["a snowy pine forest by a frozen lake at dusk", "Ünïcode café, naïve résumé: 42 towers! " * 8, "x"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir(), local_files_only=True)
    bert = transformers.AutoModel.from_pretrained(model_dir(), local_files_only=True).eval()
    batch = tokenizer(prompts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**batch).last_hidden_state
    cond = encode_text(prompts)
    assert torch.equal(cond.mask, batch["attention_mask"].bool())  # same word pieces, truncation and padding
    assert cond.mask[1].sum() == 64
    kept = cond.mask[..., None]
    assert ((cond.tokens - hidden).abs() * kept).max() < 1e-4


def test_empty_prompt_is_a_usage_error():
    with pytest.raises(UsageError):
        encode_text("   ")
    with pytest.raises(UsageError):
        encode_text([])


def test_image_encoder_shapes_and_positions_matter():
    cfg = micro_config()
    enc = randomize(ImageEncoder(cfg), std=0.1)
    img = torch.randint(0, 256, (2, 40, 50, 3), dtype=torch.uint8)
    cond = enc(img)
    grid = cfg.image_size // cfg.patch
    assert cond.tokens.shape == (2, grid * grid, cfg.cond_dim) and cond.mask.all()
    torch.testing.assert_close(cond.pooled.norm(dim=1), torch.ones(2))
    # an image has order: swapping its halves changes the encoding (2-D positions, unlike the set)
    flipped = enc(img.flip(2))
    assert (flipped.pooled - cond.pooled).abs().max() > 1e-4
    pe = sincos_2d(4, 16)
    assert pe.shape == (16, 16) and torch.unique(pe, dim=0).shape[0] == 16


def test_prepare_images_and_load_errors(tmp_path):
    x = prepare_images(torch.full((30, 60, 3), 255, dtype=torch.uint8), 16)
    assert x.shape == (1, 3, 16, 16) and torch.allclose(x, torch.ones_like(x))
    with pytest.raises(UsageError):
        prepare_images(torch.zeros(2, 8, 8), 16)
    with pytest.raises(UsageError):
        load_image(str(tmp_path / "missing.png"))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UsageError):
        load_image(str(tmp_path / "bad.png"))
    from PIL import Image

    Image.new("RGB", (7, 5), (10, 20, 30)).save(tmp_path / "ok.png")
    arr = load_image(str(tmp_path / "ok.png"))
    assert arr.shape == (5, 7, 3) and arr.dtype == torch.uint8 and arr[0, 0].tolist() == [10, 20, 30]


def test_prompt_to_gaussians_end_to_end_with_a_tiny_model():
    from worldgen.model import WorldModel, decode_world, get_config, sample

    from worldgen.model import tokens as tok

    model = randomize(WorldModel(get_config("tiny")), std=0.05)
    cond = encode_text("a wintry woodland beside a frozen pond")
    parts = sample(model, cond, n=40, steps=3, guidance=3.0, seed=0)
    world = decode_world(model, parts[0])
    frames, _ = tok.decode_parts(parts[0])
    assert len(world) == int(frames.counts[frames.kinds != tok.EMPTY].sum()) > 0  # every part's Gaussians
    world.validate()
    again = decode_world(model, sample(model, cond, n=40, steps=3, guidance=3.0, seed=0)[0])
    assert torch.equal(world.means, again.means)  # the same seed and prompt give the same world
