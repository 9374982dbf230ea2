"""The memory benchmark keeps working (a tiny budget; its numbers live in
benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(200)
def test_memory_script_runs_coltra_and_sb3_contrib_side_by_side() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/memory.py", "--seeds", "1", "--steps", "512"],
        cwd=ROOT, capture_output=True, text=True, timeout=190, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])["results"]
    assert [run["run"] for run in runs] == ["coltra-lstm", "coltra-mlp", "sb3-lstm"]
    assert all(run["env_steps"] == 512 for run in runs)
    assert all(run["final_eval"] >= 8 for run in runs)  # CartPole pays 1 per step survived
