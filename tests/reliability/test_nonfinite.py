"""NaN or inf from the env: a clear error naming the agent and the step, before the weights
are touched; or, with trainer.on_nonfinite=drop, the spoiled entries are left out of
training and counted."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faulty_envs import BAD_AGENT, FaultyProbeEnv, run_config

from coltra.buffers import MemoryRecord
from coltra.checks import NonFiniteError
from coltra.cli import main
from coltra.trainers import PPOCrowdTrainer


def all_weights_finite(trainer: PPOCrowdTrainer) -> bool:
    return all(
        bool(parameter.isfinite().all())
        for agent in trainer.group.policies.values()
        if agent.model is not None
        for parameter in agent.model.parameters()
    )


def csv_column(run_dir: Path, key: str) -> list[float]:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return [float(row[key]) for row in csv.DictReader(file)]


def record_updates(
    trainer: PPOCrowdTrainer, monkeypatch: pytest.MonkeyPatch
) -> dict[int, MemoryRecord]:
    """The record each iteration trains on, by iteration number (filled as training runs)."""
    seen: dict[int, MemoryRecord] = {}
    real_update = trainer.optimizer.train_on_data

    def spy(records: dict[str, MemoryRecord], *args: Any, **kwargs: Any) -> Any:
        seen[trainer.counters.iteration + 1] = records["crowd"]
        return real_update(records, *args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "train_on_data", spy)
    return seen


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fault", "backend", "expected"),
    [
        (
            "nan_obs",
            "inprocess",
            "nan in the observation ('vector') of agent '{agent}' returned by",
        ),
        (
            "inf_obs",
            "subprocess",
            "inf in the observation ('vector') of agent '{agent}' returned by",
        ),
        ("nan_reward", "inprocess", "nan in the reward of agent '{agent}' in step 2 "),
        ("inf_reward", "subprocess", "inf in the reward of agent '{agent}' in step 2 "),
    ],
)
def test_nan_or_inf_from_the_env_is_an_error_naming_the_agent_and_step(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], fault: str, backend: str, expected: str
) -> None:
    run_dir = tmp_path / "run"
    with PPOCrowdTrainer.from_config(run_config(run_dir, fault, backend=backend)) as trainer:
        with pytest.raises(NonFiniteError) as caught:
            trainer.train()  # the bad copy's 10th step: step 2 of iteration 3's rollout
        assert all_weights_finite(trainer)
        assert trainer.counters.iteration == 2
    message = str(caught.value)
    assert expected.format(agent=BAD_AGENT) in message
    assert "step 2 of the rollout of iteration 3" in message
    assert "trainer.on_nonfinite=drop" in message
    assert isinstance(caught.value, FloatingPointError)  # the CLI's "the run failed" kind
    assert "iter_000002 (iteration 2), is intact" in " ".join(caught.value.__notes__)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fault", "dropped_entries"),
    # Step 2 of the rollout is entry 1. A bad reward spoils that entry; a bad observation
    # spoils the entry that acts on it (2) and the one whose value target reads it (1).
    [("nan_obs", [1, 2]), ("inf_obs", [1, 2]), ("nan_reward", [1]), ("inf_reward", [1])],
)
def test_on_nonfinite_drop_leaves_the_spoiled_entries_out_and_counts_them(
    tmp_path: Path,
    faulty_probe: type[FaultyProbeEnv],
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    dropped_entries: list[int],
) -> None:
    run_dir = tmp_path / "run"
    cfg = run_config(run_dir, fault, trainer={"on_nonfinite": "drop"})
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        seen = record_updates(trainer, monkeypatch)
        summary = trainer.train()
        assert all_weights_finite(trainer)
    assert summary["iterations"] == 5
    assert csv_column(run_dir, "charts/nonfinite_dropped") == [0, 0, len(dropped_entries), 0, 0]
    assert all(math.isfinite(value) for value in csv_column(run_dir, "losses/value_loss"))

    record = seen[3]
    row = record.agent_names.index(BAD_AGENT)
    assert np.flatnonzero(~record.mask[row]).tolist() == dropped_entries
    assert record.mask[np.arange(len(record.agent_names)) != row].all()  # the other agents
    assert np.isfinite(record.obs.vector).all() and np.isfinite(record.reward).all()
    # The kept entry before the dropped ones bootstraps from the next finite observation.
    first = dropped_entries[0]
    assert record.bootstrap_value[row, first - 1] == record.value[row, first]


@pytest.mark.timeout(60)
def test_a_bad_observation_from_a_rollouts_last_step_is_dropped_in_both_rollouts(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bad copy's 8th step ends iteration 2's rollout (4 steps each) mid-episode: its
    # observation spoils that rollout's last entry and the next rollout's first.
    run_dir = tmp_path / "run"
    cfg = run_config(
        run_dir, "nan_obs", at_step=8, episode_length=5, trainer={"on_nonfinite": "drop"}
    )
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        seen = record_updates(trainer, monkeypatch)
        trainer.train(4)
    assert csv_column(run_dir, "charts/nonfinite_dropped") == [0, 1, 1, 0]
    for iteration, entry in [(2, 3), (3, 0)]:
        record = seen[iteration]
        row = record.agent_names.index(BAD_AGENT)
        assert np.flatnonzero(~record.mask[row]).tolist() == [entry]


@pytest.mark.timeout(60)
def test_the_command_line_reports_nan_in_one_line_with_exit_code_1(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "config.yaml"
    run_config(tmp_path / "run", "nan_reward").to_yaml(config_path)
    assert main(["train", "-c", str(config_path), "--no-progress"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        f"coltra: error: the env returned nan in the reward of agent '{BAD_AGENT}'"
    )
    assert "is intact: resume with coltra train --resume" in lines[0]
