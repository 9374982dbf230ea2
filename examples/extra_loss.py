"""An extra loss term added to PPO's: an L2 penalty on the value estimates (README,
"Extending a run")."""

import torch

from coltra.policy_optimization import Minibatch
from coltra.trainers import PPOCrowdTrainer


def value_l2(batch: Minibatch) -> torch.Tensor:
    """Keeps V(s) small; logged as losses/value_l2."""
    return 1e-3 * (batch.value**2).mean()


config = {"trainer": {"name": "extra_loss", "iterations": 5, "progress": False}}
with PPOCrowdTrainer.from_config(config, loss_terms={"value_l2": value_l2}) as trainer:
    trainer.train()
print(f"metrics.csv with losses/value_l2: {trainer.run.path / 'metrics.csv'}")
