"""World-model speed on CPU: sampling a coarse world, the detail decoder, training throughput.

- sampling: seconds per world for `steps` Euler steps with classifier-free
  guidance (both branches in one batch), at N coarse Gaussians, per preset
  and attention kind (full SDPA vs induced-set attention, with or without
  local blocks);
- detail: seconds to grow N coarse Gaussians into N x children splats;
- training: samples/s of one optimiser step at the preset's subset size,
  bf16 autocast vs fp32;
- pairing: ms per batch of Sinkhorn OT pairing vs exact Hungarian.

    python benchmarks/bench_model.py            # N=2048, presets small and base
    python benchmarks/bench_model.py --quick    # small sizes, seconds
    python benchmarks/bench_model.py --threads 1   # on a shared machine: no OpenMP barrier stalls
    python benchmarks/bench_model.py --presets small --attention isab --local-blocks 0,2 --skip detail,training,pairing
"""

from __future__ import annotations

import argparse
import time

import torch

from worldgen.model import Condition, WorldModel, decode_world, get_config, sample
from worldgen.model.flow import _sinkhorn_pairing_reference, flow_loss, sinkhorn_pairing
from worldgen.model.world import autocast_for


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


def bench_sampling(
    presets: list[str], n: int, steps: int, attentions: list[str], precisions: list[str], local_blocks: list[int]
) -> None:
    print(f"\n## sampling: N={n}, {steps} Euler steps, guidance 3 (seconds per world)")
    cond = fake_condition()
    for name in presets:
        for attention in attentions:
            for local in local_blocks:
                cfg = get_config(name, attention=attention, local_blocks=local)
                model = randomized(WorldModel(cfg))
                params = sum(p.numel() for p in model.backbone.parameters()) / 1e6
                kind = f"{attention}+{local} local" if local else attention
                for prec in precisions:
                    s = timed(
                        lambda: sample(model, cond, n=n, steps=steps, guidance=3.0, seed=0, precision=prec),
                        warmup=lambda: sample(model, cond, n=n, steps=1, guidance=3.0, seed=0, precision=prec),
                    )
                    print(f"{name:5s} {kind:12s} {params:5.1f}M params  {prec}: {s:6.2f} s  {cpu_note()}")


def bench_detail(presets: list[str], n: int) -> None:
    print(f"\n## detail decoder: N={n} coarse -> N x children splats, 4 steps (seconds)")
    for name in presets:
        cfg = get_config(name)
        model = randomized(WorldModel(cfg))
        coarse = torch.randn(n, cfg.token_dim) * 0.5
        s = timed(lambda: decode_world(model, coarse, torch.randn(cfg.cond_dim), steps=4))
        print(f"{name:5s} children={cfg.children}: {n * cfg.children} splats in {s:.2f} s  {cpu_note()}")


def bench_training(presets: list[str], subset: int, batch: int) -> None:
    print(f"\n## training step: batch {batch}, subset N={subset} (samples/s)")
    cond = Condition.cat([fake_condition()] * batch)
    for name in presets:
        cfg = get_config(name)
        model = WorldModel(cfg).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x1 = torch.randn(batch, subset, cfg.token_dim) * 0.5
        for prec in ("fp32", "bf16"):
            def step() -> None:
                with autocast_for(prec, torch.device("cpu")):
                    loss = flow_loss(model, x1, cond)
                opt.zero_grad()
                loss.backward()
                opt.step()

            s = timed(step, repeats=2)
            print(f"{name:5s} {prec}: {batch / s:6.1f} samples/s ({s:.2f} s/step)  {cpu_note()}")


def bench_pairing(n: int, batch: int) -> None:
    print(f"\n## OT pairing: batch {batch}, N={n} (ms per batch)")
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(batch, n, 14, generator=g), torch.randn(batch, n, 14, generator=g) * 0.5
    fast = timed(lambda: sinkhorn_pairing(x0, x1))
    fast_cpu = timed.cpu
    exact = timed(lambda: _sinkhorn_pairing_reference(x0, x1))
    exact_cpu = timed.cpu

    def cost(p: torch.Tensor) -> float:
        return float(((torch.gather(x0, 1, p[..., None].expand_as(x0)) - x1) ** 2).sum(-1).mean())

    ident = torch.arange(n).expand(batch, n)
    print(f"sinkhorn {fast * 1e3:7.1f} ms (cpu {fast_cpu * 1e3:7.1f} ms)  cost {cost(sinkhorn_pairing(x0, x1)):.3f}")
    print(f"hungarian {exact * 1e3:6.1f} ms (cpu {exact_cpu * 1e3:7.1f} ms)  cost {cost(_sinkhorn_pairing_reference(x0, x1)):.3f}")
    print(f"unpaired              cost {cost(ident):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: finishes in seconds")
    ap.add_argument("--presets", default="small,base")
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--attention", default="full,isab", help="comma-separated: full, isab")
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--local-blocks", default="0", help="comma-separated counts of local-attention blocks to add")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: sampling, detail, training, pairing")
    args = ap.parse_args()
    presets = args.presets.split(",")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        presets, n, steps = ["tiny"], 256, 2
    else:
        n, steps = args.n, args.steps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    skip = set(args.skip.split(","))
    if "sampling" not in skip:
        local_counts = [int(k) for k in args.local_blocks.split(",")]
        bench_sampling(presets, n, steps, args.attention.split(","), args.precision.split(","), local_counts)
    if "detail" not in skip:
        bench_detail(presets, n)
    if "training" not in skip:
        bench_training(presets, 64 if args.quick else 256, 4 if args.quick else 8)
    if "pairing" not in skip:
        bench_pairing(64 if args.quick else 256, 4 if args.quick else 32)  # the subset training step
        if not args.quick:
            bench_pairing(2048, 4)  # a whole-world training step


if __name__ == "__main__":
    main()
