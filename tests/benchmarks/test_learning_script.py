"""The learning benchmark keeps working (a tiny budget; its numbers live in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_learning_benchmark_runs_on_a_tiny_budget() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/learning.py", "--seeds", "1", "--steps", "2048"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {r["env"] for r in summary["results"]} == {"CartPole-v1", "Pendulum-v1"}
    assert all(r["env_steps"] >= 2048 for r in summary["results"])
