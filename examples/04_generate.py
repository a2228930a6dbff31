"""Generate a world from a prompt with the shipped weights, save it, and look at it.

`worldgen.generate` runs the set-transformer world model: a text prompt goes
through MiniLM, the flow turns noise into an unordered set of part tokens
(terrain tiles, trees, houses, sky patches, clouds, ...), and the part decoder
grows each into its Gaussians (over 100k in all). The same seed gives
the same world; another seed gives another world for the same prompt. The
world is written as .spz (small, opens on a phone) and a preview is rendered
from above the footprint with the CPU rasterizer.

    python examples/04_generate.py "a sandy desert with a pyramid at noon" --seed 3
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="a snowy pine forest by a frozen lake at dusk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=16, help="sampler steps")
    args = parser.parse_args()

    import exporters
    import worldgen
    from worldgen.render import overview_camera, render
    from worldgen.render.video import write_image

    t0 = time.perf_counter()
    world = worldgen.generate(args.prompt, seed=args.seed, steps=args.steps, device="cpu")
    print(f"{len(world):,} Gaussians in {time.perf_counter() - t0:.1f} s for {args.prompt!r} (seed {args.seed})")

    exporters.save(world, "04_generate.spz")
    cam = overview_camera(world.means, width=640, height=360)
    write_image("04_generate.png", render(world, cam).colors[0])
    print("-> 04_generate.spz, 04_generate.png; fly through it with: worldgen view 04_generate.spz")


if __name__ == "__main__":
    main()
