"""The learning benchmark keeps working (a tiny budget; its numbers live in the README)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coltra.configs import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "benchmarks/learning.py", "--seeds", "1", "--steps", "2048", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None, reason="needs make bench-setup"
)
def test_coltra_and_sb3_run_back_to_back_on_a_tiny_budget() -> None:
    summary = run_benchmark("--env", "CartPole-v1")
    results = {r["library"]: r for r in summary["results"]}
    assert set(results) == {"coltra", "sb3"} and len(summary["results"]) == 2
    for r in results.values():
        assert (r["env"], r["seed"]) == ("CartPole-v1", 0)
        assert r["env_steps"] == 2048  # two iterations of 8 envs x 128 steps
        assert r["wall_time_s"] > 0 and r["sps"] > 0
        assert math.isfinite(r["final_eval"]) and 1 <= r["final_eval"] <= 500
    settings = summary["sb3_settings"]["CartPole-v1"]
    assert (settings["n_steps"], settings["batch_size"], settings["n_epochs"]) == (128, 256, 4)
    assert settings["clip_range_vf"] == settings["clip_range"]
    [env_summary] = summary["summary"]
    assert env_summary["env"] == "CartPole-v1" and env_summary["verdict"] in {"PASS", "MISS"}
    assert set(env_summary["median_wall_s"]) == {"coltra", "sb3"}


@pytest.mark.timeout(120)
def test_coltra_alone_runs_pendulum_on_a_tiny_budget() -> None:
    summary = run_benchmark("--env", "Pendulum-v1", "--peers", "none")
    [result] = summary["results"]
    assert (result["env"], result["library"], result["env_steps"]) == (
        "Pendulum-v1",
        "coltra",
        2048,
    )
    assert summary["sb3_settings"] == {} and "verdict" not in summary["summary"][0]


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None, reason="needs make bench-setup"
)
@pytest.mark.parametrize("obs_norm", ["true", "false"])  # false: rewards scaled alone
def test_task_and_model_overrides_reach_both_libraries(obs_norm: str) -> None:
    """--task sets copies and rollout length for both; obs_norm and reward_scaling give SB3
    VecNormalize (its evaluation with the training statistics frozen); gSDE is SB3's."""
    summary = run_benchmark(
        "--env", "Pendulum-v1", "--task", "envs=2", "steps=512",
        "--model", f"obs_norm={obs_norm}", "continuous_mode=sde", "sde_every=8",
        "--ppo", "reward_scaling=true", "num_minibatches=8",
    )  # fmt: skip
    results = {r["library"]: r for r in summary["results"]}
    assert results["coltra"]["env_steps"] == results["sb3"]["env_steps"] == 2048
    assert all(math.isfinite(r["final_eval"]) and r["final_eval"] < 0 for r in results.values())
    settings = summary["sb3_settings"]["Pendulum-v1"]
    assert (settings["n_steps"], settings["batch_size"]) == (512, 128)
    assert (settings["use_sde"], settings["sde_sample_freq"]) == (True, 8)


def load_learning() -> Any:
    """benchmarks/learning.py as a module."""
    spec = importlib.util.spec_from_file_location("learning", ROOT / "benchmarks" / "learning.py")
    assert spec is not None and spec.loader is not None
    learning = importlib.util.module_from_spec(spec)
    sys.modules["learning"] = learning  # its dataclasses look their module up
    try:
        spec.loader.exec_module(learning)
    finally:
        del sys.modules["learning"]
    return learning


def test_the_pendulum_task_is_the_shipped_config() -> None:
    """The benchmark's Pendulum settings and scripts/configs/pendulum.yaml do not drift."""
    task = load_learning().TASKS["Pendulum-v1"]
    config = RunConfig.from_yaml(ROOT / "scripts" / "configs" / "pendulum.yaml")
    assert config.env is not None and config.model is not None
    assert (task["envs"], task["steps"]) == (config.env.workers, config.trainer.steps)
    assert task["ppo"]["anneal_iterations"] == config.trainer.iterations  # lr to 0 over both
    ppo = config.ppo.to_dict()
    assert {key: ppo[key] for key in task["ppo"] if key != "anneal_iterations"} == {
        key: value for key, value in task["ppo"].items() if key != "anneal_iterations"
    }
    model = config.model.to_dict()
    assert {key: model[key] for key in task["model"]} == task["model"]


def test_a_whole_budget_run_is_solved_at_its_first_good_evaluation_and_judged_at_the_end() -> None:
    """With eval_every, training never stops early: the solve is the first evaluation at
    the target (its iterations and clock), final_eval the last one."""
    learning = load_learning()
    returns = iter([-900.0, -150.0, -400.0])  # solved at the 2nd evaluation, lost by the 3rd
    check = learning.SolveCheck(-200.0, lambda: next(returns), eval_every=2)
    for _ in range(6):
        check.resume()
        check.pause()
        assert not check.after_iteration([0.0] * 20)  # never stops
    assert check.stop is False and check.solved
    result = check.result("Pendulum-v1", 0, "coltra", batch=100)
    assert (result.solved, result.env_steps, result.final_eval) == (True, 400, -400.0)
    assert result.evals == [(200, -900.0), (400, -150.0), (600, -400.0)]
    summary = learning.summarise("Pendulum-v1", [result], whole_budget=True)
    assert summary["solved"] == {"coltra": 1} and summary["held"] == {"coltra": 0}


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None, reason="needs make bench-setup"
)
def test_eval_every_trains_both_libraries_for_the_whole_budget() -> None:
    summary = run_benchmark(
        "--env", "Pendulum-v1", "--task", "envs=2", "steps=512", "--eval-every", "1"
    )  # fmt: skip
    for r in summary["results"]:
        assert [steps for steps, _ in r["evals"]] == [1024, 2048]  # both iterations, no more
        assert r["final_eval"] == r["evals"][-1][1] < -200
        assert (r["solved"], r["env_steps"]) == (False, 2048)
    assert summary["summary"][0]["held"] == {"coltra": 0, "sb3": 0}


def test_eval_every_below_one_is_refused_by_value() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/learning.py", "--env", "Pendulum-v1", "--eval-every", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--eval-every takes a positive number of iterations, got 0" in result.stderr
