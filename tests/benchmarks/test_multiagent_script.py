"""The multi-agent learning benchmark keeps working (a tiny budget; its numbers live in
benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coltra.groups import MacroAgent
from coltra.models import MLPModel

ROOT = Path(__file__).resolve().parents[2]


def _multiagent_module() -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import multiagent
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return multiagent


@pytest.mark.timeout(240)
def test_simple_tag_runs_both_phases_and_draws_its_curve(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/learning.py",
            "--env",
            "simple_tag_v3",
            "--steps",
            "800",  # one iteration of 2 workers x 4 copies x 100 steps per phase
            "--eval-episodes",
            "32",
            "--set",
            "env.envs_per_worker=4",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    [run] = summary["results"]
    assert (run["task"], run["seed"], run["env_steps"]) == ("simple_tag_v3", 0, 1600)
    assert [phase["phase"] for phase in run["phases"]] == [
        "adversaries vs random prey",
        "both learn",
    ]
    # Phase 1: the prey plays at random and does not learn, the adversaries do.
    assert {p["policy"] for p in run["policies"]} == {"adversary", "prey"}
    for policy in run["policies"]:
        assert policy["random_return"] is not None and policy["final_return"] is not None
    assert Path(run["curve"]).is_file() and Path(run["curve"]).parent == tmp_path / "results"
    assert (tmp_path / "runs" / "simple_tag_v3_seed0_0" / "metrics.csv").is_file()
    header = (
        (tmp_path / "runs" / "simple_tag_v3_seed0_0" / "metrics.csv").read_text().split("\n")[0]
    )
    assert "adversary/losses/policy_loss" in header and "prey/losses/policy_loss" not in header
    header = (
        (tmp_path / "runs" / "simple_tag_v3_seed0_1" / "metrics.csv").read_text().split("\n")[0]
    )
    assert "prey/losses/policy_loss" in header
    assert "adversary  random" in result.stdout


@pytest.mark.timeout(240)
def test_mappo_speaker_listener_runs_with_a_state_critic(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/multiagent.py",
            "--task", "simple_speaker_listener_v4", "--algo", "mappo",
            "--steps", "3200", "--eval-episodes", "16", "--out", str(tmp_path),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=230, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = json.loads(result.stdout.strip().splitlines()[-1])["results"]
    assert run["task"] == "simple_speaker_listener_v4_mappo"
    run_dir = tmp_path / "runs" / "simple_speaker_listener_v4_mappo_seed0_0"
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    group = MacroAgent.load(run_dir / "checkpoints" / latest / "agents")
    for policy in ("speaker", "listener"):
        model = group.policies[policy].model
        assert isinstance(model, MLPModel)
        assert model.state_features == 14 and model.value_norm is not None
        assert model.value_norm.count.item() > 0  # the update took in the returns


def test_the_curve_of_a_run_of_one_policy_reads_its_unprefixed_columns(tmp_path: Path) -> None:
    multiagent = _multiagent_module()
    (tmp_path / "metrics.csv").write_text(
        "iteration,charts/env_steps,charts/episode_return_mean\n1,3200,-25.5\n2,6400,\n3,9600,-24.0\n"
    )
    assert multiagent.read_curve(tmp_path, ["agent"]) == {
        "agent": [(3200.0, -25.5), (9600.0, -24.0)]
    }
    (tmp_path / "metrics.csv").write_text(
        "iteration,charts/env_steps,a/charts/episode_return_mean,b/charts/episode_return_mean\n"
        "1,100,1.5,-2.0\n"
    )
    assert multiagent.read_curve(tmp_path, ["a", "b"]) == {
        "a": [(100.0, 1.5)],
        "b": [(100.0, -2.0)],
    }


@pytest.mark.timeout(240)
def test_kaz_reports_the_team_return_of_stochastic_and_deterministic_play(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """KAZ's evaluation is stochastic (as its earlier results); the deterministic play of the
    same policies is evaluated too, per policy and for the team, each against the goal."""
    pytest.importorskip("pettingzoo.butterfly")
    multiagent = _multiagent_module()
    from dataclasses import replace

    base = multiagent.TASKS["knights_archers_zombies_v11"]
    # Episodes of 64 cycles (the benchmark's are 900): each evaluation is one round of the
    # 8 evaluation copies.
    env = {**base.config["env"], "env_kwargs": {"max_cycles": 64, "max_zombies": 10}}
    task = replace(base, config={**base.config, "env": env}, eval_episodes=8)
    result = multiagent.run_task(task, seed=0, steps=1024, out=tmp_path)
    team = result.team
    assert team is not None and team.goal == 43.7
    by_policy = {p.policy: p for p in result.policies}
    assert set(by_policy) == {"archer", "knight"}
    for played, reached, kind in (
        (team.final_return, team.reached, "final"),
        (team.deterministic_return, team.deterministic_reached, "deterministic"),
    ):
        assert played is not None
        # Two archers and two knights per copy: the team is twice each policy's mean.
        assert played == pytest.approx(
            2 * sum(getattr(p, f"{kind}_return") for p in by_policy.values()), abs=1e-9
        )
        assert reached == (played >= 43.7)
    for p in by_policy.values():  # agents live at most the 64 cycles of an episode
        for lived in (p.final_length, p.deterministic_length):
            assert lived is not None and 1 <= lived <= 64
    multiagent.print_report([result])
    report = capsys.readouterr().out
    assert report.count("deterministic") == 3  # archer, knight, team
    assert report.count("lives") == 4  # each policy, stochastic and deterministic


@pytest.mark.timeout(240)
def test_resume_continues_a_run_to_a_larger_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (the script's main and run_task), on a small simple_spread: 4 copies in
    one process, 8-episode evaluations."""
    multiagent = _multiagent_module()
    from dataclasses import replace

    base = multiagent.TASKS["simple_spread_v3"]
    env = {**base.config["env"], "backend": "inprocess", "workers": 1, "envs_per_worker": 4}
    task = replace(base, config={**base.config, "env": env}, eval_episodes=8, eval_copies=2)

    def run(steps: int, resume: bool = False) -> tuple[Any, str]:
        result = multiagent.run_task(task, seed=0, steps=steps, out=tmp_path, resume=resume)
        return result, capsys.readouterr().err

    metrics = tmp_path / "runs" / "simple_spread_v3_seed0_0" / "metrics.csv"
    first, _ = run(400)  # one iteration: 4 copies x 100 steps
    assert (first.env_steps, first.phases[0]["iterations"]) == (400, 1)
    first_rows = metrics.read_text().strip().splitlines()
    second, log = run(800, resume=True)
    assert "resuming" in log
    assert (second.env_steps, second.phases[0]["iterations"]) == (800, 2)
    rows = metrics.read_text().strip().splitlines()
    assert rows[:2] == first_rows and len(rows) == 3  # iteration 1 kept, iteration 2 added
    assert second.agent_sps > 0
    again, _ = run(800, resume=True)  # nothing left to train: evaluates the saved policies
    assert (again.env_steps, again.phases[0]["iterations"]) == (800, 2)
    assert again.wall_time_s == 0.0 and math.isnan(again.agent_sps)
    assert metrics.read_text().strip().splitlines() == rows
    # The same run resumed with other settings is refused, before anything trains.
    other = multiagent.with_overrides(task, ["ppo.lr=0.05"], None)
    with pytest.raises(ValueError, match="was started with other settings"):
        multiagent.run_task(other, seed=0, steps=1200, out=tmp_path, resume=True)
    assert metrics.read_text().strip().splitlines() == rows
    with pytest.raises(SystemExit) as refused:
        multiagent.main(["--task", "all", "--resume"])
    assert refused.value.code == 2 and "have several phases" in capsys.readouterr().err
