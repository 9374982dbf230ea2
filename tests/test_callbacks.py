"""Callbacks: every hook is called at its moment, metrics they add are logged, and a
callback can stop a run."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coltra.buffers import MemoryRecord
from coltra.callbacks import Callback
from coltra.trainers import PPOCrowdTrainer

PROBE: dict[str, Any] = {
    "trainer": {"name": "cb", "steps": 8, "iterations": 4, "save_every": 2, "progress": False},
    "ppo": {"lr": 1e-2, "epochs": 1, "num_minibatches": 1},
    "model": {"hidden_sizes": [8]},
    "env": {"kind": "probe", "env_name": "action", "workers": 2, "backend": "inprocess"},
}


def probe(run_dir: Path, **trainer: Any) -> dict[str, Any]:
    return {**PROBE, "trainer": {**PROBE["trainer"], "run_dir": str(run_dir), **trainer}}


class Recorder(Callback):
    """Writes down every call, with the iteration it came at."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def on_train_start(self, trainer: PPOCrowdTrainer) -> None:
        self.calls.append(("train_start", trainer.counters.iteration))

    def on_rollout_end(
        self,
        trainer: PPOCrowdTrainer,
        records: Mapping[str, MemoryRecord],
        metrics: dict[str, float],
    ) -> None:
        assert records["crowd"].shape == (2, 8)
        metrics["custom/mean_reward"] = float(records["crowd"].reward.mean())
        self.calls.append(("rollout_end", trainer.counters.iteration))

    def on_update_end(self, trainer: PPOCrowdTrainer, metrics: dict[str, float]) -> None:
        assert "losses/policy_loss" in metrics and "custom/mean_reward" in metrics
        metrics["custom/iteration_squared"] = float(trainer.counters.iteration**2)
        self.calls.append(("update_end", trainer.counters.iteration))

    def on_evaluation(self, trainer: PPOCrowdTrainer, metrics: dict[str, float]) -> None:
        assert metrics["eval/episodes"] == 2
        self.calls.append(("evaluation", trainer.counters.iteration))

    def on_checkpoint(self, trainer: PPOCrowdTrainer, path: Path) -> None:
        assert path == trainer.checkpoint_path and path.is_dir()
        self.calls.append(("checkpoint", trainer.counters.iteration))

    def on_train_end(self, trainer: PPOCrowdTrainer, summary: dict[str, float]) -> None:
        self.calls.append(("train_end", int(summary["iterations"])))


def test_every_hook_is_called_at_its_moment_and_added_metrics_are_logged(tmp_path: Path) -> None:
    recorder = Recorder()
    config = probe(tmp_path / "run", eval_episodes=2)
    with PPOCrowdTrainer.from_config(config, callbacks=[recorder]) as trainer:
        trainer.train()
    iteration = [("rollout_end", 0), ("update_end", 1), ("rollout_end", 1), ("update_end", 2)]
    assert recorder.calls == [
        ("train_start", 0),
        *iteration,
        ("checkpoint", 2),
        *[(hook, i + 2) for hook, i in iteration],
        ("checkpoint", 4),
        ("evaluation", 4),  # after the last checkpoint
        ("train_end", 4),
    ]
    with (tmp_path / "run" / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["custom/iteration_squared"]) for row in rows] == [1, 4, 9, 16]
    assert all(0.0 <= float(row["custom/mean_reward"]) <= 1.0 for row in rows)


def test_a_callback_can_stop_the_run_with_a_checkpoint(tmp_path: Path) -> None:
    class StopAtTwo(Callback):
        def on_update_end(self, trainer: PPOCrowdTrainer, metrics: dict[str, float]) -> None:
            if trainer.counters.iteration == 2:
                trainer.request_stop()

    config = probe(tmp_path / "run", save_every=10)
    with PPOCrowdTrainer.from_config(config, callbacks=[StopAtTwo()]) as trainer:
        summary = trainer.train()
    assert summary["iterations"] == 2 and summary["interrupted"] == 0.0
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "iter_000002"
    with PPOCrowdTrainer.resume(tmp_path / "run") as trainer:
        assert trainer.train()["iterations"] == 4  # the run goes on where it stopped
