"""The throughput benchmark keeps working (a tiny budget; its numbers live in
benchmarks/RESULTS.md). Needs the optional bench extras (``make bench-setup``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: A smoke run: 1,024 samples per measurement, one repeat, 16 steps per copy per iteration.
SMOKE = ("--steps", "1024", "--seeds", "1", "--rollout", "16")


@pytest.mark.timeout(330)
def test_throughput_benchmark_runs_on_a_tiny_budget() -> None:
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("supersuit")
    pytest.importorskip("pettingzoo.sisl")
    result = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", *SMOKE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=320,  # ~40 s on a quiet machine
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["benchmark"] == "throughput"
    assert {"machine", "settings", "summary", "targets", "results"} <= set(summary)
    assert summary["settings"]["num_steps"] == 16
    rows = {(row["scenario"], row["contender"], row["agents"]) for row in summary["summary"]}
    for scenario, contender in (
        ("cartpole", "coltra"),
        ("cartpole", "sb3"),
        ("cartpole", "cleanrl"),
        ("cartpole", "ceiling"),
        ("cartpole", "coltra-ut2"),
        ("cartpole", "sb3-t2"),
        ("pursuit", "coltra-subprocess"),
        ("pursuit", "coltra-inprocess"),
        ("pursuit", "coltra-subprocess-ut2"),
        ("pursuit", "coltra-subprocess-overlap"),
        ("pursuit", "coltra-subprocess-shm"),
        ("pursuit", "coltra-subprocess-overlap-shm"),
        ("pursuit", "sb3-ss-cpus0"),
        ("pursuit", "sb3-ss-cpus2"),
        ("pursuit", "raw-1proc"),
    ):
        assert any(row[:2] == (scenario, contender) for row in rows), (scenario, contender)
    for agents in (16, 64, 256, 1024):
        assert ("crowd", "coltra", agents) in rows
        assert ("crowd", "coltra-native", agents) in rows
        assert ("crowd", "sb3-ss", agents) in rows
        assert ("crowd", "ceiling", agents) in rows
    for contender in ("coltra-native-ut2", "coltra-ut2", "sb3-ss-t2"):
        assert ("crowd", contender, 1024) in rows
    assert len(summary["targets"]) == 9  # issue 15's six and three kept from before
    for target in summary["targets"]:
        assert {"name", "value", "threshold", "passed", "per_repeat"} <= set(target)
        assert target["value"] > 0
    assert all(r["sps"] > 0 and r["samples"] >= 1024 for r in summary["results"])


def test_crowd_env_is_a_proper_parallel_env() -> None:
    """The crowd env passes PettingZoo's own API test, episodes end by truncation."""
    pytest.importorskip("pettingzoo")
    from pettingzoo.test import parallel_api_test

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from crowd_env import CrowdEnv
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    parallel_api_test(CrowdEnv(8, episode_length=10), num_cycles=30)
    env = CrowdEnv(4, episode_length=3)
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(infos) == set(env.possible_agents)
    assert all(o.shape == (8,) for o in obs.values())
    for step in range(3):
        _, _, terminations, truncations, _ = env.step(dict.fromkeys(env.agents, 1))
        assert not any(terminations.values())
        assert all(truncations.values()) == (step == 2)
    assert env.agents == []


def test_a_rollout_shorter_than_the_minibatches_is_refused_by_value() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--rollout", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--rollout must be >= 4 (the minibatches), got 2" in result.stderr
