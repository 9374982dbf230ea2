"""The README shows what is true: its Python blocks run in order as written, and its config
tables are what `coltra config --markdown` generates."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coltra.configs import MLPConfig, PPOConfig, RunConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)


@pytest.mark.timeout(300)
def test_the_python_blocks_run_in_order_as_written(tmp_path: Path) -> None:
    """Issue 12 (h): `batch` meant a StepBatch in one block and an Observation in the next."""
    blocks = python_blocks()
    assert len(blocks) >= 10
    # One program, one namespace: each block sees what the blocks before it defined, as a
    # reader following the README does. The marker line names the block that failed.
    program = "\n".join(
        f"print('--- block {i}', flush=True)\n{block}" for i, block in enumerate(blocks)
    )
    (tmp_path / "readme_blocks.py").write_text(program, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "readme_blocks.py"],
        cwd=tmp_path,  # trainers write their runs/ here
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        check=False,
    )
    last = [line for line in result.stdout.splitlines() if line.startswith("--- block")]
    assert result.returncode == 0, f"{last[-1:]}: {result.stderr[-3000:]}"
    assert last[-1] == f"--- block {len(blocks) - 1}"


@pytest.mark.parametrize(
    "table",
    [
        MLPConfig.describe_markdown(),
        PPOConfig.describe_markdown(),
        RunConfig.describe_markdown(["trainer", "env"]),
        RunConfig.describe_markdown(["policies"]),
    ],
    ids=["model", "ppo", "trainer and env", "policies"],
)
def test_the_config_tables_are_the_generated_ones(table: str) -> None:
    assert table in README


def test_every_example_the_readme_names_exists() -> None:
    for name in re.findall(r"`examples/([\w]+\.py)`", README):
        assert (ROOT / "examples" / name).is_file(), name


@pytest.mark.parametrize("name", ["teams_config.yaml", "spread_mappo.yaml"])
def test_the_guides_show_the_shipped_yaml(name: str) -> None:
    shipped = (ROOT / "scripts" / "configs" / name).read_text(encoding="utf-8")
    assert f"```yaml\n{shipped}```" in README
