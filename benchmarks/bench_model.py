"""World-model speed on CPU: sampling part tokens, decoding parts, encoding worlds, training steps, OT pairing.

- sampling: seconds per world for `steps` Euler steps with classifier-free
  guidance (both branches in one batch), at the preset's tokens per world;
- decode: seconds to grow a procedural world's parts (its true frames and
  counts, ~110-150k Gaussians) through the part decoder;
- encode: seconds to encode a procedural world's parts (the dataset pass of
  `worldgen train --stage set`);
- training: one optimiser step of each stage (parts: slots/s; set: worlds/s);
- pairing: ms per batch of Sinkhorn OT pairing vs exact Hungarian.

    python benchmarks/bench_model.py               # presets small (and base: --presets small,base)
    python benchmarks/bench_model.py --quick       # the tiny preset, seconds
    python benchmarks/bench_model.py --threads 1   # on a shared machine: no OpenMP barrier stalls
"""

from __future__ import annotations

import argparse
import time

import torch

from worldgen.model import Condition, WorldModel, get_config, sample
from worldgen.model.flow import _sinkhorn_pairing_reference, sinkhorn_pairing
from worldgen.model.world import decode_world, encode_world


def timed(fn, repeats: int = 1, *, warmup=None) -> float:
    """Wall seconds per call; also records the process CPU seconds per call in `timed.cpu`.

    On a shared machine the CPU time divided by the thread count is the better
    estimate of the wall time an idle machine would give.
    """
    (warmup or fn)()  # warm-up (allocator, kernels)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    timed.cpu = (time.process_time() - c0) / repeats
    return (time.perf_counter() - t0) / repeats


timed.cpu = 0.0


def cpu_note() -> str:
    return f"(cpu {timed.cpu:6.2f} s = {timed.cpu / torch.get_num_threads():6.2f} s per thread)"


def fake_condition(dim: int = 384, length: int = 12) -> Condition:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(1, length, dim, generator=g)
    return Condition(tokens, torch.ones(1, length, dtype=torch.bool), torch.nn.functional.normalize(tokens.mean(1), dim=-1))


def randomized(model: WorldModel) -> WorldModel:
    with torch.no_grad():  # untrained heads are zero; give every weight a value so no work is skipped
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def bench_sampling(presets: list[str], steps: int) -> None:
    print(f"\n## sampling: {steps} Euler steps, guidance 2 (seconds per world)")
    cond = fake_condition()
    for name in presets:
        model = randomized(WorldModel(get_config(name)))
        params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
        s = timed(lambda: sample(model, cond, steps=steps, guidance=2.0, seed=0),
                  warmup=lambda: sample(model, cond, steps=1, guidance=2.0, seed=0))  # fmt: skip
        print(f"{name:6s} {params:5.1f}M  N={model.cfg.n_tokens}  {s:7.2f} s  {cpu_note()}")


def bench_parts(presets: list[str]) -> None:
    from worldgen.procedural import WorldSpec
    from worldgen.procedural.parts import build_world_parts

    parts = build_world_parts(WorldSpec(biome="pine_forest", water="lake", vegetation="dense", structure="village",
                                        time="sunset", weather="snow"), seed=0)  # fmt: skip
    print(f"\n## one procedural world's parts ({len(parts)} parts, {len(parts.gaussians):,} splats): "
          "encode (its parts -> tokens) and decode (tokens -> Gaussians), seconds")  # fmt: skip
    for name in presets:
        model = randomized(WorldModel(get_config(name, n_tokens=max(448, len(parts)))))
        tokens = encode_world(model, parts)
        enc = timed(lambda: encode_world(model, parts))
        enc_note = cpu_note()
        dec = timed(lambda: decode_world(model, tokens))
        print(f"{name:6s} encode {enc:6.2f} s {enc_note}   decode {dec:6.2f} s {cpu_note()}")


def bench_training(presets: list[str], batch: int) -> None:
    from worldgen.data import toy_part_set, toy_token_set
    from worldgen.train import train, train_config

    print("\n## training: one optimiser step (median of 5 after 1 warm-up)")
    for name in presets:
        cfg = get_config(name)
        data, _ = toy_token_set(batch * 2, cfg.n_tokens, latent=cfg.parts.latent)
        run = train_config(name, steps=6, batch_size=batch, warmup=1, progress=False, out_dir="", probe_worlds=0)
        t0 = time.perf_counter()
        result = train(run, data)
        print(f"{name:6s} set   {batch} worlds x {cfg.n_tokens} tokens: {result.rate:6.2f} worlds/s "
              f"({batch / max(result.rate, 1e-9):.2f} s a step; {time.perf_counter() - t0:.1f} s for 6 steps)")  # fmt: skip
        parts = toy_part_set(256, splats=256)
        run = train_config(f"{name}-parts", steps=6, warmup=1, progress=False, out_dir="")
        result = train(run, parts)
        print(f"{name:6s} parts {run.part_splats} slots a step: {result.rate:8.0f} slots/s "
              f"({run.part_splats / max(result.rate, 1e-9):.2f} s a step)")  # fmt: skip


def bench_pairing(n: int, batch: int) -> None:
    print(f"\n## pairing: {batch} sets of N={n}, token width 63 (ms per batch)")
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(batch, n, 63, generator=g), torch.randn(batch, n, 63, generator=g)
    fast = timed(lambda: sinkhorn_pairing(x0, x1)) * 1e3
    exact = timed(lambda: _sinkhorn_pairing_reference(x0, x1)) * 1e3
    print(f"sinkhorn {fast:8.1f} ms   hungarian (scipy) {exact:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8, help="worlds per set-stage training step")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated: sampling, parts, training, pairing")
    parser.add_argument("--quick", action="store_true", help="the tiny preset only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = ["tiny"] if args.quick else args.presets.split(",")
    skip = set(args.skip.split(",")) - {""}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "sampling" not in skip:
        bench_sampling(presets, args.steps)
    if "parts" not in skip:
        bench_parts(presets)
    if "training" not in skip:
        bench_training(presets, args.batch)
    if "pairing" not in skip:
        bench_pairing(64 if args.quick else get_config(presets[0]).n_tokens, 4 if args.quick else args.batch)


if __name__ == "__main__":
    main()
