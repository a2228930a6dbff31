"""The training loop: the tiny preset learns, resumes bit-for-bit, trains the image path, runs under torchrun."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from worldgen.errors import UsageError
from worldgen.model import load_model, sample
from worldgen.model import tokens as tok
from worldgen.model.flow import child_flow_loss
from worldgen.train import TrainConfig, budget_end, learning_rate, load_checkpoint, toy_worlds, train, train_config


@pytest.mark.parametrize("local_blocks", [0, 1])
def test_tiny_preset_learns_the_condition(tmp_path, local_blocks: int):
    data, labels = toy_worlds(64, 128, children=8)
    cfg = train_config("tiny", out_dir=str(tmp_path), progress=False, model_overrides={"local_blocks": local_blocks})
    result = train(cfg, data)
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)
    assert sum(result.decoder_losses[-10:]) < 0.8 * sum(result.decoder_losses[:10])
    assert result.step == cfg.steps and result.samples_per_s > 0
    ((step, with_prompt, without),) = result.prompt_gains  # the tiny preset saves no checkpoint on the way
    assert step == cfg.steps and without > 1.15 * with_prompt, result.prompt_gains  # it reads its prompt
    # the weights file loads, and sampling follows the condition: each class gets its own ground colour
    model = load_model(tmp_path / "model.safetensors")
    assert model.cfg.local_blocks == local_blocks
    class_rgb = torch.stack([data.coarse[labels == k][..., tok.RGB].mean((0, 1)) for k in range(4)])
    hits = 0
    for k in range(4):
        x = sample(model, data.cond.index(slice(k, k + 1)), n=128, steps=8, guidance=3.0, seed=k)[0]
        hits += int((x[:, tok.RGB].mean(0) - class_rgb).norm(dim=1).argmin() == k)
    assert hits >= 3


def test_tiny_preset_learns_with_a_group_level(tmp_path):
    from worldgen.model import decode_world
    from worldgen.train import with_groups

    data, _ = toy_worlds(64, 128, children=8)
    grouped = with_groups(data, 4)
    assert grouped.groups.shape == (64, 32, tok.TOKEN_DIM) and grouped.members.shape == (64, 32, 4)
    assert grouped.set_tokens is grouped.groups and data.set_tokens is data.coarse
    cfg = train_config("tiny", out_dir=str(tmp_path), progress=False, model_overrides={"n_tokens": 128, "group_size": 4})
    result = train(cfg, data)  # the group level is built from the coarse set on the way in
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)
    assert sum(result.decoder_losses[-10:]) < 0.8 * sum(result.decoder_losses[:10])
    model = load_model(tmp_path / "model.safetensors")
    assert model.cfg.group_size == 4
    groups = sample(model, data.cond.index(slice(0, 1)), steps=4, seed=0)
    assert groups.shape == (1, 32, tok.TOKEN_DIM)
    assert len(decode_world(model, groups[0], data.cond.pooled[0], steps=2)) == 128 * 16


def test_resume_continues_bit_for_bit(tmp_path):
    data, _ = toy_worlds(8, 32, children=4)
    base = dict(model="tiny", steps=6, batch_size=2, subset_n=16, decoder_parents=8, precision="fp32",
                ckpt_every=2, progress=False, warmup=2)  # fmt: skip
    straight = train(TrainConfig(**base, out_dir=str(tmp_path / "a")), data)
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
    data, _ = toy_worlds(8, 32, children=4)
    base = dict(model="tiny", batch_size=2, subset_n=16, decoder_parents=8, precision="fp32", ckpt_every=0,
                progress=False, warmup=2)  # fmt: skip
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
    data, _ = toy_worlds(8, 32, children=4)
    cfg = TrainConfig(model="tiny", steps=10**6, minutes=20 / 60, cooldown=5, batch_size=2, subset_n=16,
                      decoder_parents=8, warmup=2, ckpt_every=0, progress=False, out_dir=str(tmp_path))  # fmt: skip
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
        result.model.parameters()), torch.Generator()) == 20  # fmt: skip


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


def test_checkpoint_of_another_model_is_refused(tmp_path):
    data, _ = toy_worlds(4, 16)
    train(TrainConfig(model="tiny", steps=1, batch_size=2, subset_n=8, progress=False, out_dir=str(tmp_path)), data)
    with pytest.raises(UsageError):
        train(TrainConfig(model="tiny", model_overrides={"depth": 1}, steps=2, batch_size=2, progress=False,
                          out_dir=str(tmp_path)), data)  # fmt: skip
    from worldgen.model import WorldModel, get_config

    model = WorldModel(get_config("tiny"))
    opt = torch.optim.AdamW(model.parameters())
    assert load_checkpoint(tmp_path / "checkpoint.safetensors", model, opt, torch.Generator()) == 1


def test_decoder_stage_trains_the_decoder_alone(tmp_path):
    data, _ = toy_worlds(16, 64, children=8)
    start = train(TrainConfig(model="tiny", steps=0, progress=False, out_dir=""), data).model
    frozen = {k: v.clone() for k, v in start.state_dict().items() if not k.startswith("decoder.")}
    cfg = TrainConfig(model="tiny", stage="decoder", steps=60, batch_size=8, subset_n=32, decoder_parents=128, lr=2e-3,
                      warmup=5, progress=False, out_dir=str(tmp_path))  # fmt: skip
    parents, kids = data.coarse.reshape(-1, tok.TOKEN_DIM), data.children.reshape(-1, 8, tok.CHILD_TOKEN_DIM).float()
    pooled = data.cond.pooled.repeat_interleave(64, 0)

    def held_loss(model) -> float:  # the same noise and times before and after
        with torch.no_grad():
            return float(child_flow_loss(model.decoder, kids, parents, pooled, generator=torch.Generator().manual_seed(1)))

    before = held_loss(start)
    result = train(cfg, data, model=start)
    assert held_loss(result.model) < 0.9 * before
    assert all(v == 0.0 for v in result.losses)  # no flow loss in this stage
    after = result.model.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    with pytest.raises(UsageError, match="stage"):  # its checkpoint does not resume a joint run
        train(dataclass_replace(cfg, stage="joint", steps=61), data)
    with pytest.raises(UsageError):
        TrainConfig(stage="decoder", decoder_parents=0)


def test_image_conditioning_trains_the_image_encoder(tmp_path):
    data, _ = toy_worlds(6, 16)
    data.views = torch.randint(0, 256, (6, 2, 40, 40, 3), dtype=torch.uint8)
    cfg = TrainConfig(model="tiny", steps=3, batch_size=3, subset_n=8, image_prob=1.0, progress=False,
                      precision="fp32", out_dir=str(tmp_path))  # fmt: skip
    before = {k: v.clone() for k, v in train(dataclass_replace(cfg, steps=0), data).model.image.state_dict().items()}
    after = train(cfg, data).model.image.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_decoder_loss_reads_the_views_condition_where_a_view_replaces_the_caption(monkeypatch):
    import worldgen.train as T
    from worldgen.model import WorldModel, get_config

    data, _ = toy_worlds(4, 16, children=4)
    data.views = torch.randint(0, 256, (4, 2, 40, 40, 3), dtype=torch.uint8)
    model = WorldModel(get_config("tiny"))
    seen = []
    real = T.child_flow_loss
    monkeypatch.setattr(T, "child_flow_loss", lambda dec, kids, parents, pooled, **kw: seen.append(pooled) or
                        real(dec, kids, parents, pooled, **kw))  # fmt: skip
    cfg = TrainConfig(model="tiny", batch_size=4, subset_n=8, decoder_parents=16, image_prob=1.0, precision="fp32",
                      progress=False, out_dir="")  # fmt: skip
    batch = T._next_batch(data, cfg, torch.Generator().manual_seed(0), model.cfg.children, torch.device("cpu"))
    T._Objective(model)(*batch, cfg=cfg, gen=torch.Generator().manual_seed(0))
    images, use_image, parent_world = batch[2], batch[3], batch[6]
    assert bool(use_image.all()) and len(seen) == 1
    assert torch.allclose(seen[0], model.image(images).pooled[parent_world])  # the view's, not the caption's


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
    data, _ = toy_worlds(4, 16, cond_dim=10)
    with pytest.raises(UsageError):
        train(TrainConfig(model="tiny", steps=1, progress=False, out_dir=""), data)


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun")
def test_ddp_under_torchrun_with_gloo(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(f"""
        import gc, torch, torch.distributed as dist
        from worldgen.train import TrainConfig, toy_worlds, train
        data, _ = toy_worlds(8, 32, children=4)
        r = train(TrainConfig(model="tiny", steps=2, batch_size=2, subset_n=16, decoder_parents=8, progress=False,
                              precision="fp32", out_dir={str(tmp_path / "run")!r}), data)
        w = torch.cat([p.detach().flatten() for p in r.model.parameters()])
        gathered = [torch.zeros_like(w) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, w)
        assert dist.get_world_size() == 2 and torch.equal(gathered[0], gathered[1])
        # a time budget on clocks that disagree (rank 1's runs twice as fast): both ranks end together
        import worldgen.train as T
        T._clock = (lambda ticks: lambda: float(next(ticks)))(iter(range(0, 100, 1 + dist.get_rank())))
        b = train(TrainConfig(model="tiny", steps=1000, minutes=10 / 60, batch_size=2, subset_n=16, decoder_parents=8,
                              progress=False, precision="fp32", out_dir={str(tmp_path / "budget")!r}), data)
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


def test_trains_on_procedural_dataset_shards(tmp_path):
    dataset = pytest.importorskip("worldgen.procedural.dataset")
    from worldgen.train import world_set_from_shards

    cfg = dataset.DatasetConfig(count=2, shard_size=2, coarse_n=32, children=8, views=1, view_size=32, captions=2)
    dataset.build_dataset(tmp_path / "data", cfg)
    data = world_set_from_shards(tmp_path / "data")  # real MiniLM captions
    assert data.coarse.shape == (2, 32, tok.TOKEN_DIM) and data.children.shape == (2, 32, 8, tok.CHILD_TOKEN_DIM)
    assert len(data) == 4 and data.caption_world.tolist() == [0, 0, 1, 1] and data.cond.tokens.shape[-1] == 384
    assert data.views.shape == (2, 1, 32, 32, 3)
    result = train(TrainConfig(model="tiny", steps=2, batch_size=2, subset_n=16, decoder_parents=8, image_prob=0.5,
                               progress=False, out_dir=str(tmp_path / "run")), data)  # fmt: skip
    assert result.step == 2 and all(map(torch.isfinite, map(torch.tensor, result.losses)))


def test_caption_encodings_are_cached_in_the_dataset(tmp_path, monkeypatch):
    dataset = pytest.importorskip("worldgen.procedural.dataset")
    import worldgen.model.text as text
    from worldgen.train import CAPTION_CACHE, world_set_from_shards

    cfg = dataset.DatasetConfig(count=2, shard_size=2, coarse_n=16, children=4, views=0, view_size=32, captions=2)
    dataset.build_dataset(tmp_path / "data", cfg)
    first = world_set_from_shards(tmp_path / "data")
    assert (tmp_path / "data" / CAPTION_CACHE).is_file()

    calls = []
    real = text.encode_text
    monkeypatch.setattr(text, "encode_text", lambda prompts: calls.append(len(prompts)) or real(prompts))
    again = world_set_from_shards(tmp_path / "data")  # the same captions: read back, MiniLM not run
    assert calls == []
    assert torch.equal(again.cond.tokens, first.cond.tokens) and torch.equal(again.cond.mask, first.cond.mask)
    assert torch.equal(again.cond.pooled, first.cond.pooled)

    fewer = world_set_from_shards(tmp_path / "data", max_captions=1)  # other captions: encoded afresh
    assert calls == [2] and len(fewer) == 2
    assert torch.allclose(fewer.cond.pooled, first.cond.pooled[::2], atol=1e-5)

    (tmp_path / "data" / CAPTION_CACHE).write_bytes(b"\x10\x00not a safetensors file")
    mended = world_set_from_shards(tmp_path / "data")  # a damaged cache is re-encoded, not read
    assert calls == [2, 4] and torch.allclose(mended.cond.pooled, first.cond.pooled, atol=1e-5)
