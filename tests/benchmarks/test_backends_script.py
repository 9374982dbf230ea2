"""The backends benchmark keeps working (a tiny budget, one env; its numbers live in
benchmarks/RESULTS.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_backends_benchmark_runs_on_a_tiny_budget() -> None:
    if importlib.util.find_spec("ray") is None:  # not imported here: see the ray_cluster fixture
        pytest.skip("Ray is not installed: pip install 'coltra[ray]'")
    command = ["benchmarks/backends.py", "--steps", "64", "--seeds", "1", "--env", "busy-1ms"]
    result = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["benchmark"] == "backends"
    backends = {row["backend"] for row in summary["rows"]}
    assert backends == {"inprocess", "subprocess-2", "ray-1", "ray-2", "ray-4"}
    assert all(row["env"] == "busy-1ms" and row["sps"] > 0 for row in summary["rows"])
    assert set(summary["round_trip_us"]) == backends
    assert all(value > 0 for value in summary["round_trip_us"].values())
