"""The training loop: both stages learn, resume bit-for-bit, train the image path, run under torchrun."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from worldgen.data import toy_part_set, toy_token_set
from worldgen.errors import UsageError
from worldgen.model import load_model, sample
from worldgen.model import tokens as tok
from worldgen.train import TrainConfig, budget_end, kind_probabilities, learning_rate, load_checkpoint, train, train_config

#: a tiny set-model run's shape
SET = dict(model="tiny", batch_size=2, precision="fp32", progress=False, warmup=2)


def test_tiny_set_model_learns_the_condition(tmp_path):
    data, labels = toy_token_set(64, 24, latent=8)
    cfg = train_config("tiny", out_dir=str(tmp_path), progress=False, steps=120)
    result = train(cfg, data)
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)
    assert result.step == cfg.steps and result.rate > 0
    ((step, with_prompt, without),) = result.prompt_gains  # the tiny preset saves no checkpoint on the way
    assert step == cfg.steps and without > 1.05 * with_prompt, result.prompt_gains  # it reads its prompt (blind: 1.0)
    # the weights file loads, and sampling follows the condition: each class gets its own kind of part
    model = load_model(tmp_path / "model.safetensors")
    hits = 0
    for k in range(4):
        x = sample(model, data.cond.index(slice(k, k + 1)), n=24, steps=8, guidance=3.0, seed=k)[0]
        kinds = tok.decode_parts(x)[0].kinds
        want = tok.decode_parts(data.tokens[k])[0].kinds[0]
        hits += int((kinds == want).sum() > (kinds != tok.EMPTY).sum() / 2)
    assert hits >= 3


def test_tiny_autoencoder_learns_its_parts(tmp_path):
    data = toy_part_set(48, splats=48)
    cfg = train_config("tiny-parts", out_dir=str(tmp_path), progress=False, steps=80)
    result = train(cfg, data)
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)
    fresh = train(dataclass_replace(cfg, steps=0, out_dir=""), data).model
    assert all(torch.equal(a, b) for (k, a), (_, b) in zip(result.model.backbone.state_dict().items(),
                                                           fresh.backbone.state_dict().items()))  # only the autoencoder
    saved = load_model(tmp_path / "model.safetensors")  # in float16: the trained weights to within its rounding
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-4) for a, b in zip(saved.parameters(), result.model.parameters()))


def test_every_nth_autoencoder_step_adds_the_rendered_look():
    data = toy_part_set(24, splats=32)
    cfg = train_config("tiny-parts", out_dir="", progress=False, steps=3, precision="fp32")
    plain = train(cfg, data).losses
    looked = train(dataclass_replace(cfg, render_every=2), data).losses
    assert looked[0] == plain[0]  # step 1 renders nothing; the same weights reach step 2
    assert looked[1] > plain[1] + 1e-4  # step 2 adds render_weight x the L1 of two renders


def test_kinds_with_few_parts_are_drawn_more_than_their_share():
    data = toy_part_set(30)
    data.kinds = torch.tensor([0] * 20 + [4] * 6 + [8] * 4)  # 20 terrain tiles, 6 trees, 4 houses
    p = kind_probabilities(data, 0.5)
    share = torch.bincount(data.kinds, minlength=len(p)).float() / len(data)
    assert p.sum() == pytest.approx(1.0, abs=1e-6) and p[0] < share[0] and p[4] > share[4] and p[8] > share[8]
    assert torch.allclose(kind_probabilities(data, 0.0)[p > 0], torch.full((int((p > 0).sum()),), 1 / int((p > 0).sum())))


@pytest.mark.parametrize("stage", ["set", "parts"])
def test_resume_continues_bit_for_bit(tmp_path, stage: str):
    data = toy_token_set(8, 16, latent=8)[0] if stage == "set" else toy_part_set(12, splats=16)
    base = dict(SET, stage=stage, steps=6, ckpt_every=2, part_splats=64, part_slots=16)
    straight = train(TrainConfig(**base, out_dir=str(tmp_path / "a")), data)
    if stage == "set":
        assert [step for step, *_ in straight.prompt_gains] == [2, 4, 6]  # probed at checkpoints, without disturbing
    train(TrainConfig(**{**base, "steps": 3}, out_dir=str(tmp_path / "b")), data)
    resumed = train(TrainConfig(**base, out_dir=str(tmp_path / "b")), data)
    assert resumed.step == 6 and len(resumed.losses) == 3
    assert resumed.losses == straight.losses[3:]
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_learning_rate_warms_up_holds_and_cools_down():
    cfg = TrainConfig(steps=100, lr=1.0, warmup=10, cooldown=20)
    lrs = [learning_rate(cfg, s) for s in range(cfg.steps)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0 and lrs[79] == 1.0
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))  # strictly falling to the end
    assert lrs[80] == pytest.approx(20 / 21) and lrs[99] == pytest.approx(1 / 21)
    # before the cool-down the LR does not depend on the run's length, so a run can be extended
    longer = dataclasses.replace(cfg, steps=1000, cooldown=0)
    assert lrs[:80] == [learning_rate(longer, s) for s in range(80)]
    with pytest.raises(UsageError):
        TrainConfig(steps=10, cooldown=11)


def test_cooldown_keeps_the_stable_checkpoint_to_extend(tmp_path):
    data, _ = toy_token_set(8, 16, latent=8)
    base = dict(SET, ckpt_every=0)
    cooled = train(TrainConfig(**base, steps=6, cooldown=2, out_dir=str(tmp_path / "a")), data)
    stable = tmp_path / "a" / "checkpoint-stable.safetensors"
    assert stable.exists()
    # extending from the stable checkpoint is the same run as one that never cooled down
    longer = train(TrainConfig(**base, steps=8, out_dir=str(tmp_path / "b")), data)
    (tmp_path / "c").mkdir()
    shutil.copy(stable, tmp_path / "c" / "checkpoint.safetensors")
    extended = train(TrainConfig(**base, steps=8, out_dir=str(tmp_path / "c")), data)
    assert extended.losses == longer.losses[4:]
    assert cooled.losses[:4] == longer.losses[:4] and cooled.losses[4:] != longer.losses[4:6]


def test_a_time_budget_ends_the_run_where_its_steps_fit_and_cools_down_before(tmp_path, monkeypatch):
    from worldgen import train as train_module

    ticks = iter(range(100))  # a clock read once before the loop and once per step: one second a step
    monkeypatch.setattr(train_module, "_clock", lambda: float(next(ticks)))
    data, _ = toy_token_set(8, 16, latent=8)
    cfg = TrainConfig(**SET, steps=10**6, minutes=20 / 60, cooldown=5, ckpt_every=0, out_dir=str(tmp_path))
    lrs: list[float] = []
    real_step = torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda opt, *a, **k: (lrs.append(opt.param_groups[0]["lr"]),
                                                                        real_step(opt, *a, **k))[1])  # fmt: skip
    result = train(cfg, data)
    assert result.step == len(result.losses) == 20  # 20 s of budget at one second a step
    assert lrs[:15] == [learning_rate(cfg, s) for s in range(15)]  # the run's own schedule until the cool-down
    assert lrs[15:] == pytest.approx([cfg.lr * k / 6 for k in (5, 4, 3, 2, 1)])  # then down towards zero by the end
    assert (tmp_path / "checkpoint-stable.safetensors").exists() and (tmp_path / "model.safetensors").exists()
    assert load_checkpoint(tmp_path / "checkpoint.safetensors", result.model, torch.optim.AdamW(
        [p for p in result.model.parameters() if p.requires_grad]), torch.Generator(), stage="set") == 20  # fmt: skip


def test_budget_end_follows_the_pace_and_holds_still_in_the_cool_down():
    cfg = TrainConfig(steps=1000, minutes=1.0, cooldown=10)
    assert budget_end(cfg, step=10, end=1000, done=10, elapsed=5.0) == 120  # 55 s left at 0.5 s a step
    assert budget_end(cfg, step=10, end=1000, done=10, elapsed=0.5) == 1000  # the steps end first
    assert budget_end(cfg, step=100, end=1000, done=100, elapsed=59.0) == 110  # never a shorter cool-down ...
    assert budget_end(cfg, step=105, end=110, done=105, elapsed=59.5) == 110  # ... and no moving end inside it
    assert budget_end(cfg, step=105, end=110, done=105, elapsed=60.0) == 105  # past the budget: the end is now
    with pytest.raises(UsageError, match="minutes"):
        TrainConfig(minutes=-1.0)
    with pytest.raises(UsageError, match="minutes"):
        TrainConfig(minutes=float("nan"))


def test_checkpoint_of_another_model_or_stage_is_refused(tmp_path):
    data, _ = toy_token_set(4, 16, latent=8)
    train(TrainConfig(**SET, steps=1, out_dir=str(tmp_path)), data)
    with pytest.raises(UsageError, match="another model config"):
        train(TrainConfig(**SET, model_overrides={"depth": 1}, steps=2, out_dir=str(tmp_path)), data)
    with pytest.raises(UsageError, match="stage"):  # an autoencoder run's checkpoint holds other optimizer state
        train(TrainConfig(**SET, stage="parts", steps=2, out_dir=str(tmp_path)), toy_part_set(6))
    with pytest.raises(UsageError, match="PartSet"):
        train(TrainConfig(**SET, stage="parts", steps=2, out_dir=""), data)
    from worldgen.model import WorldModel, get_config

    model = WorldModel(get_config("tiny"))
    opt = torch.optim.AdamW([p for p in model.backbone.parameters()] + [p for p in model.image.parameters()])
    assert load_checkpoint(tmp_path / "checkpoint.safetensors", model, opt, torch.Generator(), stage="set") == 1


def test_the_set_stage_keeps_the_autoencoder_and_the_parts_stage_the_set_model(tmp_path):
    data, _ = toy_token_set(8, 16, latent=8)
    start = train(TrainConfig(**SET, steps=0, out_dir=""), data).model
    ae = {k: v.clone() for k, v in start.parts.state_dict().items()}
    trained = train(TrainConfig(**SET, steps=3, out_dir=""), data, model=start).model
    assert all(torch.equal(ae[k], v) for k, v in trained.parts.state_dict().items())
    backbone = {k: v.clone() for k, v in trained.backbone.state_dict().items()}
    tuned = train(TrainConfig(**SET, stage="parts", steps=3, part_splats=64, out_dir=""), toy_part_set(9), model=trained).model
    assert all(torch.equal(backbone[k], v) for k, v in tuned.backbone.state_dict().items())
    assert any(not torch.equal(ae[k], v) for k, v in tuned.parts.state_dict().items())


def test_image_conditioning_trains_the_image_encoder(tmp_path):
    data, _ = toy_token_set(6, 16, latent=8)
    data.views = torch.randint(0, 256, (5, 2, 40, 40, 3), dtype=torch.uint8)
    data.view_world = torch.tensor([0, 1, 2, 4, 5])  # world 3 kept no views
    assert data.view_row.tolist() == [0, 1, 2, -1, 3, 4]
    cfg = TrainConfig(**SET, steps=3, image_prob=1.0, out_dir=str(tmp_path))
    before = {k: v.clone() for k, v in train(dataclass_replace(cfg, steps=0), data).model.image.state_dict().items()}
    after = train(cfg, data).model.image.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def dataclass_replace(cfg: TrainConfig, **kw) -> TrainConfig:
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_bad_configs():
    with pytest.raises(UsageError):
        train_config("enormous")
    with pytest.raises(UsageError):
        TrainConfig(batch_size=0)
    with pytest.raises(UsageError, match="probe_worlds"):
        TrainConfig(probe_worlds=-1)
    with pytest.raises(UsageError):
        TrainConfig(precision="fp8")
    with pytest.raises(UsageError, match="t_dist must be uniform or logit_normal"):
        TrainConfig(t_dist="cosine")
    with pytest.raises(UsageError, match="pairing must be none or sinkhorn"):
        TrainConfig(pairing="hungarian")
    with pytest.raises(UsageError, match="stage"):
        TrainConfig(stage="joint")
    with pytest.raises(UsageError):
        TrainConfig(part_slots=0)
    with pytest.raises(UsageError, match="render_every"):
        TrainConfig(render_every=-1)
    data, _ = toy_token_set(4, 16, latent=8, cond_dim=10)
    with pytest.raises(UsageError, match="conditions"):
        train(TrainConfig(model="tiny", steps=1, progress=False, out_dir=""), data)
    data, _ = toy_token_set(4, 16, latent=5)
    with pytest.raises(UsageError, match="tokens"):
        train(TrainConfig(model="tiny", steps=1, progress=False, out_dir=""), data)


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun")
def test_ddp_under_torchrun_with_gloo(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(f"""
        import gc, torch, torch.distributed as dist
        from worldgen.data import toy_token_set
        from worldgen.train import TrainConfig, train
        data, _ = toy_token_set(8, 16, latent=8)
        r = train(TrainConfig(model="tiny", steps=2, batch_size=2, progress=False, precision="fp32",
                              out_dir={str(tmp_path / "run")!r}), data)
        w = torch.cat([p.detach().flatten() for p in r.model.parameters()])
        gathered = [torch.zeros_like(w) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, w)
        assert dist.get_world_size() == 2 and torch.equal(gathered[0], gathered[1])
        # a time budget on clocks that disagree (rank 1's runs twice as fast): both ranks end together
        import worldgen.train as T
        T._clock = (lambda ticks: lambda: float(next(ticks)))(iter(range(0, 100, 1 + dist.get_rank())))
        b = train(TrainConfig(model="tiny", steps=1000, minutes=10 / 60, batch_size=2, progress=False, precision="fp32",
                              out_dir={str(tmp_path / "budget")!r}), data)
        print("rank", dist.get_rank(), "budget", b.step)
        print("rank", dist.get_rank(), "ok")
        gc.collect()  # free DDP's reducer and pending work before the group goes (else gloo can abort at exit)
        dist.barrier()
        dist.destroy_process_group()
    """))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script)], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ok") == 2
    assert proc.stdout.count("budget 5") == 2  # the slower clock's 5 steps, not rank 0's 10
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_both_stages_train_on_procedural_dataset_shards(tmp_path):
    from worldgen.data import PartSet, token_set_from_dataset
    from worldgen.procedural.dataset import DatasetConfig, build_dataset

    build_dataset(tmp_path / "data", DatasetConfig(count=2, shard_size=2, views=1, view_size=32, views_every=2, captions=2))
    parts = PartSet.from_dataset(tmp_path / "data")
    assert 300 < len(parts) < 800 and len(parts.splats["splat_means"]) > 200_000
    ae = train(TrainConfig(**SET, stage="parts", steps=2, part_splats=512, model_overrides={"n_tokens": 400},
                           out_dir=str(tmp_path / "parts")), parts)  # fmt: skip
    data = token_set_from_dataset(tmp_path / "data", ae.model)  # real MiniLM captions
    assert data.tokens.shape == (2, ae.model.cfg.n_tokens, ae.model.cfg.token_dim)
    assert len(data) == 4 and data.caption_world.tolist() == [0, 0, 1, 1] and data.cond.tokens.shape[-1] == 384
    assert data.views.shape == (1, 1, 32, 32, 3) and data.view_world.tolist() == [0]  # one world in two keeps views
    assert list((tmp_path / "data" / "latents").iterdir())  # the part latents are cached for the next run
    result = train(TrainConfig(**SET, steps=2, image_prob=0.5, out_dir=str(tmp_path / "run")), data, model=ae.model)
    assert result.step == 2 and all(map(torch.isfinite, map(torch.tensor, result.losses)))


def test_caption_encodings_are_cached_in_the_dataset(tmp_path, monkeypatch):
    import worldgen.model.text as text
    from worldgen.data import token_set_from_dataset
    from worldgen.model import WorldModel, get_config
    from worldgen.procedural.dataset import DatasetConfig, build_dataset

    build_dataset(tmp_path / "data", DatasetConfig(count=2, shard_size=2, views=0, captions=2))
    model = WorldModel(get_config("tiny", n_tokens=400))
    first = token_set_from_dataset(tmp_path / "data", model)
    (cache,) = (tmp_path / "data" / "captions").iterdir()  # one file for the one shard

    calls = []
    real = text.encode_text
    monkeypatch.setattr(text, "encode_text", lambda prompts: calls.append(len(prompts)) or real(prompts))
    again = token_set_from_dataset(tmp_path / "data", model)  # the same captions: read back, MiniLM not run
    assert calls == []
    assert torch.equal(again.cond.tokens, first.cond.tokens) and torch.equal(again.cond.mask, first.cond.mask)
    assert torch.equal(again.cond.pooled, first.cond.pooled) and torch.equal(again.tokens, first.tokens)

    fewer = token_set_from_dataset(tmp_path / "data", model, max_captions=1)  # other captions: encoded afresh
    assert calls == [2] and len(fewer) == 2
    assert torch.allclose(fewer.cond.pooled, first.cond.pooled[::2], atol=1e-5)
    assert len(list((tmp_path / "data" / "captions").iterdir())) == 2  # both kept, each under its captions' hash

    cache.write_bytes(b"\x10\x00not a safetensors file")
    mended = token_set_from_dataset(tmp_path / "data", model)  # a damaged cache is re-encoded, not read
    assert calls == [2, 4] and torch.allclose(mended.cond.pooled, first.cond.pooled, atol=1e-5)
