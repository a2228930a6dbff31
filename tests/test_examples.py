"""Every example runs, as a user would run it, with its default arguments.

Viewer examples (`examples/NN_view_*.py`) take `--max-seconds` and stop by themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("[0-9][0-9]_*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path):
    args = [sys.executable, str(script)]
    if script.stem.split("_", 1)[1].startswith("view"):
        args += ["--max-seconds", "3"]
    env = {**os.environ, "WORLDGEN_EXAMPLE_OUT": str(tmp_path)}
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def test_examples_exist():
    assert EXAMPLES, "examples/ holds no NN_name.py example"
