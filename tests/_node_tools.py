"""The third-party tools of the interoperability tests: splat-transform and gltf-validator.

`scripts/ensure-node-tools.sh` (run by `make test`) installs the pinned npm
packages into `.node-tools/`. Each helper here skips the calling test with
the reason when node, npm or the package is missing, so a machine without
them still runs every other test::

    from tests._node_tools import splat_transform, validate_gltf

    splat_transform("in.ply", "out.sog")          # runs the CLI (skips if missing)
    report = validate_gltf("world.glb")           # the validator's JSON report
    assert gltf_errors(report, allow={"MESH_PRIMITIVE_INVALID_ATTRIBUTE"}) == []
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODE_TOOLS = ROOT / ".node-tools"
SPLAT_TRANSFORM = NODE_TOOLS / "node_modules" / ".bin" / "splat-transform"
GLTF_VALIDATOR = NODE_TOOLS / "node_modules" / "gltf-validator"
_VALIDATE_SCRIPT = Path(__file__).with_name("gltf_validate.mjs")
_INSTALL_HINT = "run `bash scripts/ensure-node-tools.sh` (make test does)"


def node() -> str:
    """The `node` executable, or skip the test."""
    exe = shutil.which("node")
    if exe is None:
        pytest.skip("node is not installed: the splat-transform and gltf-validator tests need node and npm")
    return exe


def require_splat_transform() -> Path:
    """The splat-transform CLI of .node-tools/, or skip the test."""
    node()
    if not SPLAT_TRANSFORM.exists():
        pytest.skip(f"splat-transform is not installed in {NODE_TOOLS}: {_INSTALL_HINT}")
    return SPLAT_TRANSFORM


def require_gltf_validator() -> Path:
    """The gltf-validator package directory of .node-tools/, or skip the test."""
    node()
    if not (GLTF_VALIDATOR / "package.json").exists():
        pytest.skip(f"gltf-validator is not installed in {NODE_TOOLS}: {_INSTALL_HINT}")
    return GLTF_VALIDATOR


def splat_transform(*args: str | os.PathLike, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `splat-transform --overwrite --quiet ARGS...` on the CPU; a failure fails the test with its output."""
    exe = require_splat_transform()
    cmd = [node(), str(exe), "--overwrite", "--quiet", "--gpu", "cpu", *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        pytest.fail(f"splat-transform {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def validate_gltf(path: str | os.PathLike, *, timeout: float = 120) -> dict:
    """The Khronos glTF-Validator's report of a .glb / .gltf file, as a dict (its JSON form)."""
    module = require_gltf_validator()
    cmd = [node(), str(_VALIDATE_SCRIPT), str(module), str(path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        pytest.fail(f"gltf-validator could not read {path} ({r.returncode}):\n{r.stderr}")
    return json.loads(r.stdout)


def gltf_errors(report: dict, *, allow: set[str] = frozenset()) -> list[str]:
    """The report's errors (severity 0) as 'CODE at POINTER: message', less the codes in `allow`."""
    return [
        f"{m['code']} at {m.get('pointer', '?')}: {m['message']}"
        for m in report["issues"]["messages"]
        if m["severity"] == 0 and m["code"] not in allow
    ]


__all__ = [
    "GLTF_VALIDATOR",
    "NODE_TOOLS",
    "SPLAT_TRANSFORM",
    "gltf_errors",
    "node",
    "require_gltf_validator",
    "require_splat_transform",
    "splat_transform",
    "validate_gltf",
]
