"""The seed's scripts, run from scripts/ as its README shows, and the shipped configs.

The scripts and their configs are copied to a temporary scripts/ folder, so that the runs/
directory a run makes by default lands there, not in the checkout.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coltra.configs import RunConfig, finish_run_config
from coltra.factory import pettingzoo_env_fn

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    folder = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, folder, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    return folder


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def test_train_gym_runs_as_in_the_seed_and_resumes(scripts: Path) -> None:
    tiny = ["--set", "trainer.steps=16", "env.workers=2", "trainer.eval_episodes=1"]
    seed_command = ["-c", "configs/gym_config.yaml", "-i", "2", "-e", "CartPole-v1"]
    result = run(scripts, "train_gym.py", *seed_command, "-n", "test_run", *tiny)

    (run_dir,) = (scripts / "runs").iterdir()
    assert re.fullmatch(r"test_run_\d{8}-\d{6}", run_dir.name)
    assert f"Run directory: runs/{run_dir.name}" in result.stdout
    assert "Final score:" in result.stdout
    assert [row["iteration"] for row in rows(run_dir)] == ["1.0", "2.0"]
    assert (run_dir / "checkpoints" / "iter_000002" / "agents" / "group.json").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert "env_name: CartPole-v1" in (run_dir / "config.yaml").read_text()

    run(scripts, "train_gym.py", "--resume", f"runs/{run_dir.name}", "--iters", "3")
    assert [row["charts/env_steps"] for row in rows(run_dir)] == ["32.0", "64.0", "96.0"]


def test_train_pursuit_runs_with_the_long_flags(scripts: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "pursuit_run"
    tiny = ["trainer.steps=8", "env.workers=1", "env.envs_per_worker=2"]
    tiny += ["env.env_kwargs.max_cycles=20", "ppo.num_minibatches=2"]
    run(
        scripts,
        "train_pursuit.py",
        "--config",
        "configs/pursuit_config.yaml",
        "--iters",
        "2",
        "--name",
        "test_run",
        "--seed",
        "1",
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
        "--set",
        *tiny,
    )
    logged = rows(run_dir)
    assert [row["iteration"] for row in logged] == ["1.0", "2.0"]
    # 2 copies x 8 pursuers act in every step.
    assert [row["charts/agent_steps"] for row in logged] == ["128.0", "256.0"]
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "iter_000002"


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("configs/*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = RunConfig.from_yaml(path)
    assert config.env is not None
    if config.env.kind == "pettingzoo":
        assert callable(pettingzoo_env_fn(config.env.env_name))


def test_the_shipped_cartpole_config_trains_until_solved() -> None:
    config = finish_run_config(RunConfig.from_yaml(SCRIPTS / "configs" / "gym_config.yaml"))
    assert config.env is not None and config.env.env_name == "CartPole-v1"
    assert config.trainer.stop_at_return == 475
    assert config.trainer.eval_episodes > 0
    assert config.ppo.anneal_iterations == config.trainer.iterations


@pytest.mark.parametrize("name", ["pendulum.yaml", "cartpole_memory.yaml"])
def test_the_issue_17_configs_train_two_iterations(name: str, tmp_path: Path) -> None:
    """Pendulum's tuned config and the recurrent CartPole without velocities."""
    from coltra.cli import main

    run = tmp_path / "run"
    argv = ["train", "-c", str(SCRIPTS / "configs" / name), "-i", "2", "--run-dir", str(run)]
    assert main([*argv, "--no-progress", "--set", "trainer.eval_every=null"]) == 0
    assert (run / "checkpoints" / "latest").read_text().strip() == "iter_000002"
    saved = RunConfig.from_yaml(run / "config.yaml")
    model = saved.model.to_dict()
    assert model["recurrent"] == ("lstm" if name == "cartpole_memory.yaml" else "none")
    assert model["obs_norm"] is True
