"""Time from `worldgen view world.ply` to the first browser frame that shows splats.

For each size: write a red-disc world as .ply, start `worldgen view` as a
subprocess, open headless Chromium on its URL as soon as it answers, and poll
screenshots until red splat pixels fill part of the view. Reports the seconds
from process start to the URL answering and to the first frame with splats.

    python benchmarks/bench_viewer.py            # 100k and 1M splats
    python benchmarks/bench_viewer.py --quick    # 10k
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--no-first-run"]  # fmt: skip


def red_world(n: int):
    from worldgen.gaussians import Gaussians

    g = torch.Generator().manual_seed(0)
    r, a = 20 * torch.rand(n, generator=g).sqrt(), 2 * torch.pi * torch.rand(n, generator=g)
    means = torch.stack([r * a.cos(), r * a.sin(), 0.05 * torch.randn(n, generator=g)], dim=1)
    scale = float(20 / np.sqrt(n) * 1.5)
    return Gaussians.from_rgb(means, torch.tensor([1.0, 0.05, 0.05]).expand(n, 3), torch.full((n, 3), scale), torch.full((n,), 0.95))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def red_pixels(png: bytes) -> int:
    from PIL import Image

    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)[:, : int(0.55 * 900)]
    return int(((im[..., 0] > 150) & (im[..., 1] < 110) & (im[..., 2] < 110)).sum())


def measure(n: int, browser, workdir: Path) -> tuple[float, float]:
    import exporters

    path = workdir / f"world_{n}.ply"
    exporters.save(red_world(n), path)
    port = free_port()
    worldgen = Path(sys.executable).with_name("worldgen")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(worldgen), "view", str(path), "--port", str(port)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read(1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("worldgen view exited early")
                time.sleep(0.05)
        t_url = time.perf_counter() - t0
        page = browser.new_page(viewport={"width": 900, "height": 600})
        page.goto(url)
        while red_pixels(page.screenshot(timeout=300_000)) < 5_000:  # software WebGL draws 1M splats slowly
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("no splats on screen after 10 minutes")
            time.sleep(0.2)
        t_frame = time.perf_counter() - t0
        page.close()
        return t_url, t_frame
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small world (10k splats)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="splat counts to time")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else args.sizes
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        print("| splats | URL answers (s) | first frame with splats (s) |")
        print("| ---: | ---: | ---: |")
        for n in sizes:
            t_url, t_frame = measure(n, browser, Path(d))
            print(f"| {n:,} | {t_url:.1f} | {t_frame:.1f} |", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
