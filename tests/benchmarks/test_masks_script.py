"""The action-mask benchmark keeps working (a tiny budget; its numbers live in
benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_masks_script_reports_every_variant_and_the_crash() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/masks.py", "--seeds", "1", "--iterations", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])["results"]
    by_variant = {run["variant"]: run for run in runs}
    assert "eval_return" in by_variant["masked"]
    assert "took action" in by_variant["unmasked, illegal raises"]["crashed"]
    assert "eval_return" in by_variant["unmasked, illegal pays -1"]
