"""Every splat writer and reader, whole process, `worldgen convert` against `splat-transform` on the same files.

For each size, random Gaussians at SH degree 3 are saved as .ply; then each
writer is timed as `<tool> world.ply out.<fmt>` and each reader as
`<tool> world.<fmt> out.ply` (the input written by worldgen, the same file for
both tools), as separate processes from start to exit, best of `--repeats`,
with the CPU seconds (user + sys) of that best run. `worldgen info` is timed
the same way, and in-process `exporters.read` / `exporters.write` figures
say how much of a command is start-up. Both tools run on the same core
(`--cpu`, taskset) with one thread for worldgen's numpy. Prints Markdown
tables for BENCHMARKS.md.

    python benchmarks/bench_formats.py                       # 100k and 1M splats, 3 repeats, core 1
    python benchmarks/bench_formats.py --sizes 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPLAT_TRANSFORM = ROOT / ".node-tools" / "node_modules" / ".bin" / "splat-transform"
#: (label, output file name, worldgen options, splat-transform options or None where it has no such writer)
WRITERS = [
    (".ply", "out.ply", [], []),
    (".splat", "out.splat", [], None),
    (".spz v3", "out.spz", ["--spz-version", "3"], ["--spz-version", "3"]),
    (".spz v4", "out.spz", ["--spz-version", "4"], ["--spz-version", "4"]),
    (".glb", "out.glb", [], []),
    (".sog", "out.sog", [], []),
]
#: (label, input file made by worldgen, worldgen write options, does splat-transform read it)
READERS = [
    (".ply", "in.ply", {}, True),
    (".splat", "in.splat", {}, True),
    (".spz v3", "in3.spz", {"version": 3}, True),
    (".spz v4", "in4.spz", {"version": 4}, True),
    (".glb", "in.glb", {}, False),
    (".sog", "in.sog", {}, True),
]


def random_arrays(n: int, *, seed: int = 0):
    """Random splats (the same distribution as the tests' worlds): SH degree 3, numpy only."""
    from exporters.common import SplatArrays

    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return SplatArrays(
        means=(rng.normal(size=(n, 3)) * 10).astype(np.float32),
        quats=(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32),
        scales=(rng.random((n, 3)) * 0.5 + 0.01).astype(np.float32),
        opacities=(rng.random(n) * 0.98 + 0.01).astype(np.float32),
        sh0=rng.normal(size=(n, 1, 3)).astype(np.float32),
        shN=(rng.normal(size=(n, 15, 3)) * 0.3).astype(np.float32),
    )


def run(cmd: list[str], *, timeout: float) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process from start to exit; inf when it fails or runs past `timeout`."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = t + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            p.wait()
            return float("inf"), float("inf")
        time.sleep(0.01)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def best(cmd: list[str], repeats: int, timeout: float) -> tuple[float, float]:
    runs = [run(cmd, timeout=timeout)]
    while len(runs) < repeats and runs[0][0] != float("inf"):  # one run past the timeout is enough to say so
        runs.append(run(cmd, timeout=timeout))
    return min(runs)


def fmt(t: tuple[float, float] | None, timeout: float) -> str:
    if t is None:
        return "(no such writer / reader)"
    wall, cpu = t
    return f"> {timeout:.0f}" if wall == float("inf") else f"{wall:.2f} ({cpu:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=1, help="the core both tools are pinned to (taskset -c); -1: no pinning")
    parser.add_argument("--timeout", type=float, default=600, help="seconds after which a run is stopped and reported as longer")
    parser.add_argument("--skip-splat-transform", action="store_true")
    args = parser.parse_args()

    from exporters import read, write
    from exporters.splat import LossyExportWarning

    warnings.simplefilter("ignore", LossyExportWarning)
    pin = ["taskset", "-c", str(args.cpu)] if args.cpu >= 0 and shutil.which("taskset") else []
    worldgen = [*pin, "env", "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", sys.executable, "-m", "worldgen"]
    node = shutil.which("node")
    st = None if args.skip_splat_transform or not node or not SPLAT_TRANSFORM.exists() else [*pin, node, str(SPLAT_TRANSFORM), "-w", "-q", "--gpu", "cpu"]
    print(f"# {platform.machine()}, {os.cpu_count()} cores, pinned to core {args.cpu}; splat-transform: {'yes' if st else 'not installed'}")
    print("# seconds, best of", args.repeats, "whole-process wall (CPU user + sys in brackets)")
    print("| splats | file | worldgen write | splat-transform write | worldgen read | splat-transform read | size MB | in-process write / read |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in args.sizes:
            a = random_arrays(n)
            for label, name, options, _ in READERS:
                write(a, d / name, **options)
            size = {label: (d / name).stat().st_size / 1e6 for label, name, _, _ in READERS}
            for (label, out, wg_opts, st_opts), (_, name, options, st_reads) in zip(WRITERS, READERS, strict=True):
                ours_w = best([*worldgen, "convert", str(d / "in.ply"), str(d / out), *wg_opts], args.repeats, args.timeout)
                theirs_w = best([*st, str(d / "in.ply"), *st_opts, str(d / ("st_" + out))], args.repeats, args.timeout) if st and st_opts is not None else None
                ours_r = best([*worldgen, "convert", str(d / name), str(d / "back.ply")], args.repeats, args.timeout)
                theirs_r = best([*st, str(d / name), str(d / "st_back.ply")], args.repeats, args.timeout) if st and st_reads else None
                t = time.perf_counter()
                write(a, d / ("p_" + name), **options)
                t_write = time.perf_counter() - t
                t = time.perf_counter()
                read(d / name)
                t_read = time.perf_counter() - t
                print(
                    f"| {n:,} | {label} | {fmt(ours_w, args.timeout)} | {fmt(theirs_w, args.timeout)} | {fmt(ours_r, args.timeout)} "
                    f"| {fmt(theirs_r, args.timeout)} | {size[label]:.1f} | {t_write:.2f} / {t_read:.2f} |",
                    flush=True,
                )
            info = best([*worldgen, "info", str(d / "in.ply")], args.repeats, args.timeout)
            st_info = best([*st, str(d / "in.ply"), "null", "--stats"], args.repeats, args.timeout) if st else None
            print(f"| {n:,} | `info` of the .ply | {fmt(info, args.timeout)} | {fmt(st_info, args.timeout)} (`null --stats`) | | | | |", flush=True)
    help_ = best([*worldgen, "--help"], args.repeats, args.timeout)
    print(f"\n`worldgen --help` (start-up alone): {fmt(help_, args.timeout)}")


if __name__ == "__main__":
    main()
