"""A metric of your own, logged with the others: a callback (README, "Extending a run")."""

from collections.abc import Mapping

from coltra.buffers import MemoryRecord
from coltra.callbacks import Callback
from coltra.trainers import PPOCrowdTrainer


class PushRightShare(Callback):
    """How often the CartPole policy pushes right (action 1) in each rollout."""

    def on_rollout_end(
        self,
        trainer: PPOCrowdTrainer,
        records: Mapping[str, MemoryRecord],
        metrics: dict[str, float],
    ) -> None:
        actions = records["crowd"].action.discrete  # [agents, steps]
        metrics["custom/push_right_share"] = float((actions == 1).mean())


config = {"trainer": {"name": "custom_metric", "iterations": 5, "progress": False}}
with PPOCrowdTrainer.from_config(config, callbacks=[PushRightShare()]) as trainer:
    trainer.train()
print(f"metrics.csv with custom/push_right_share: {trainer.run.path / 'metrics.csv'}")
