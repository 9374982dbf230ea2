"""Callbacks: add behaviour to a training run without editing the library.

Subclass :class:`Callback`, override the hooks you need and pass instances to the trainer
(``PPOCrowdTrainer(..., callbacks=[...])`` or ``from_config(..., callbacks=[...])``). Each
hook gets the trainer: its ``counters`` (iteration, env steps, returns), ``config``, ``group``,
``optimizer``, ``collector`` and ``run`` directory. A ``metrics`` dict a hook receives is the
iteration's row of metrics before it is logged: keys added to it are logged with the rest
(TensorBoard, metrics.csv, W&B). ``trainer.request_stop()`` ends the run after the current
iteration, with a checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from coltra.buffers import MemoryRecord

if TYPE_CHECKING:
    from coltra.trainers import PPOCrowdTrainer

__all__ = ["Callback"]


class Callback:
    """Hooks into :class:`~coltra.trainers.PPOCrowdTrainer`; each does nothing by default."""

    def on_train_start(self, trainer: PPOCrowdTrainer) -> None:
        """A ``train()`` call begins (after the run directory and logs are ready)."""

    def on_rollout_end(
        self,
        trainer: PPOCrowdTrainer,
        records: Mapping[str, MemoryRecord],
        metrics: dict[str, float],
    ) -> None:
        """An iteration's rollout is collected (``records`` by policy, ``[agents, steps]``
        arrays), before the PPO update trains on it."""

    def on_update_end(self, trainer: PPOCrowdTrainer, metrics: dict[str, float]) -> None:
        """An iteration's PPO update is done and counted; ``metrics`` holds its losses,
        timings and SPS (add your own here)."""

    def on_evaluation(self, trainer: PPOCrowdTrainer, metrics: dict[str, float]) -> None:
        """The end-of-run evaluation finished; ``metrics`` holds its ``eval/*`` results."""

    def on_checkpoint(self, trainer: PPOCrowdTrainer, path: Path) -> None:
        """A checkpoint was written to ``path``."""

    def on_train_end(self, trainer: PPOCrowdTrainer, summary: dict[str, float]) -> None:
        """A ``train()`` call ends (also after a stop signal); ``summary`` is what it returns."""
