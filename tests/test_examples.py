"""Every program in examples/ runs as written (the README shows them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("script", sorted(path.name for path in EXAMPLES.glob("*.py")))
def test_example_runs(script: str, tmp_path: Path) -> None:
    # Run from an empty directory: examples that train write their runs/ there.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(EXAMPLES)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=230,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if script == "at_a_glance.py":  # it prints the last metrics: all finite
        metrics_line = result.stdout.strip().splitlines()[-1]
        assert "losses/policy_loss" in metrics_line
        assert "nan" not in metrics_line and "inf" not in metrics_line
    if script in ("custom_metric.py", "extra_loss.py"):  # the new column is in metrics.csv
        (run_dir,) = (tmp_path / "runs").iterdir()
        header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
        assert (
            "custom/push_right_share" if script == "custom_metric.py" else "losses/value_l2"
        ) in header
