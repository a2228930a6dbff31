"""The collider of a procedural village, `worldgen mesh` against `splat-transform --collision-mesh` on the same files.

A village in a dense temperate forest (133,304 splats with its sky, seed 0)
is saved as .ply, with a 3,000-splat copy made by splat-transform's
`--decimate`. For each file, both tools run as separate processes from
start to exit on the same core (`--cpu`, taskset), timed once (wall and CPU
seconds): `worldgen mesh world.ply -o out.glb` (collider, default budget)
and `splat-transform world.ply --filter-box <footprint> --voxel-size 0.25
--collision-mesh out.voxel.json` (it writes out.collision.glb; 0.25 m is
worldgen's voxel, and the box drops the sky dome, which worldgen drops by
itself). Each mesh's ground is then measured as tests/test_mesh.py does: at
1000 random points of the 64 m footprint, the lowest upward-facing surface
against the procedural terrain's own height function.

splat-transform voxelizes on a WebGPU device. Without a GPU it needs a
software Vulkan driver that Dawn accepts (Mesa's lavapipe 25; Debian 12's
22.3 lacks a feature Dawn requires): point VK_ICD_FILENAMES at it. Prints a
Markdown table for BENCHMARKS.md.

    python benchmarks/bench_mesh.py                      # both files, core 1, 600 s per run
    python benchmarks/bench_mesh.py --skip-splat-transform
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_formats import SPLAT_TRANSFORM, fmt, run  # noqa: E402

SEED = 0
SPEC = {"biome": "temperate_forest", "structure": "village", "vegetation": "dense"}
HALF = 32.0  # half the footprint, m
#: the footprint and the heights above it, in the glTF-like frame splat-transform works in (y up, z = world y)
ST_BOX = f"{-HALF - 2},-60,{-HALF - 2},{HALF + 2},20,{HALF + 2}"


def world_ply(path: Path) -> int:
    """Save the benchmark's procedural village as .ply; its splat count."""
    import exporters
    from worldgen.procedural.spec import WorldSpec
    from worldgen.procedural.world import build_world

    g = build_world(WorldSpec(**SPEC), seed=SEED)
    exporters.save(g, path)
    return len(g)


def height_error(mesh_path: Path, file_from_world: np.ndarray) -> tuple[float, float, int]:
    """(share of 1000 footprint points within 0.25 m of the terrain, median error m, triangles) of a .glb mesh
    whose vertices are `file_from_world @ p_world`; a point with no upward-facing surface above it counts as a miss."""
    import trimesh

    from tests.test_mesh import terrain_of, walkable_height
    from worldgen.procedural.spec import WorldSpec

    mesh = trimesh.load(mesh_path, file_type="glb", force="mesh")
    mesh.vertices = mesh.vertices @ file_from_world  # p_world = R^T p_file, row by row
    terrain = terrain_of(WorldSpec(**SPEC), SEED)
    xy = np.random.default_rng(1).uniform(-HALF, HALF, (1000, 2))
    error = np.abs(walkable_height(mesh, xy) - terrain.height(xy[:, 0], xy[:, 1]))
    return float(np.mean(error <= 0.25)), float(np.nanmedian(error)), len(mesh.faces)


def row(label: str, splats: int, tool: str, timing: tuple[float, float], mesh: Path, frame: np.ndarray, timeout: float) -> str:
    if timing[0] == float("inf") or not mesh.exists():
        return f"| {label} | {splats:,} | {tool} | | {fmt(timing, timeout)} | | |"
    within, median, faces = height_error(mesh, frame)
    return f"| {label} | {splats:,} | {tool} | {faces:,} | {fmt(timing, timeout)} | {within:.1%} | {median:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=1, help="the core both tools are pinned to (taskset -c); -1: no pinning")
    parser.add_argument("--timeout", type=float, default=600, help="seconds after which a run is stopped and reported as longer")
    parser.add_argument("--small", type=int, default=3000, help="splats of the decimated copy (0: none)")
    parser.add_argument("--skip-splat-transform", action="store_true")
    args = parser.parse_args()

    from exporters.frames import file_from_world
    from worldgen.mesh import Z_UP_TO_Y_UP

    ours_frame, st_frame = Z_UP_TO_Y_UP[:3, :3], file_from_world("gltf")  # x, z, -y and -x, z, y
    pin = ["taskset", "-c", str(args.cpu)] if args.cpu >= 0 and shutil.which("taskset") else []
    worldgen = [*pin, "env", "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", sys.executable, "-m", "worldgen"]
    node = shutil.which("node")
    st = None if args.skip_splat_transform or not node or not SPLAT_TRANSFORM.exists() else [*pin, node, str(SPLAT_TRANSFORM), "-w", "-q"]
    print(f"# {platform.machine()}, {os.cpu_count()} cores, pinned to core {args.cpu}; splat-transform: {'yes' if st else 'not installed'}")
    print("# seconds, one whole-process run each, wall (CPU user + sys in brackets); height error at 1000 footprint points")
    print("| world | splats | tool | triangles | seconds | within 0.25 m | median error m |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = [("village", d / "world.ply", world_ply(d / "world.ply"))]
        if st and args.small:
            run([*st, str(d / "world.ply"), "--decimate", str(args.small), str(d / "small.ply")], timeout=args.timeout)
            import exporters

            files.append((f"village, `--decimate {args.small}`", d / "small.ply", len(exporters.read(d / "small.ply"))))
        for label, path, splats in files:
            ours = d / f"{path.stem}.worldgen.glb"
            timing = run([*worldgen, "mesh", str(path), "-o", str(ours)], timeout=args.timeout)
            print(row(label, splats, "`worldgen mesh`", timing, ours, ours_frame, args.timeout), flush=True)
            if st:
                voxels = d / f"{path.stem}.voxel.json"
                timing = run([*st, str(path), "--filter-box", ST_BOX, "--voxel-size", "0.25", "--collision-mesh", str(voxels)], timeout=args.timeout)
                mesh = d / f"{path.stem}.collision.glb"
                print(row(label, splats, "splat-transform `--collision-mesh`", timing, mesh, st_frame, args.timeout), flush=True)


if __name__ == "__main__":
    main()
