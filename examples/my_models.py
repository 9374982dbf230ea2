"""A model of your own, trainable from a config (README, "Your own model").

    coltra train -c scripts/configs/gym_config.yaml --import my_models --set model.class=TinyModel

(run from examples/, or with examples/ on PYTHONPATH). Importing this module registers the
model; the config's ``model:`` section is then read with ``TinyConfig``.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from pydantic import Field
from torch import nn
from torch.distributions import Distribution

from coltra.agents import register_model
from coltra.buffers import Observation
from coltra.configs import Int, ModelConfig
from coltra.models import BaseModel, State
from coltra.models.distributions import Categorical


class TinyConfig(ModelConfig):
    """The keys of ``model:`` when ``model.class`` is ``TinyModel``."""

    width: Int = Field(32, gt=0, description="Units of the one hidden layer.")


@register_model
class TinyModel(BaseModel):
    """One hidden layer shared by a policy head and a value head, for Discrete actions."""

    config_class = TinyConfig

    def __init__(
        self,
        config: TinyConfig,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__()
        assert isinstance(observation_space, gym.spaces.Box)
        assert isinstance(action_space, gym.spaces.Discrete)
        self.config, self.discrete = config, True
        self.observation_space, self.action_space = observation_space, action_space
        inputs = int(gym.spaces.flatdim(observation_space))
        self.body = nn.Sequential(nn.Linear(inputs, config.width), nn.Tanh())
        self.policy_head = nn.Linear(config.width, int(action_space.n))
        self.value_head = nn.Linear(config.width, 1)

    def forward(
        self, obs: Observation, state: State = (), get_value: bool = False
    ) -> tuple[Distribution, State, dict[str, torch.Tensor]]:
        x = self.body(torch.as_tensor(obs.vector, device=self.device).float())
        extra = {"value": self.value_head(x).squeeze(-1)} if get_value else {}
        return Categorical(self.policy_head(x)), state, extra

    def value(self, obs: Observation, state: State = ()) -> torch.Tensor:
        x = self.body(torch.as_tensor(obs.vector, device=self.device).float())
        return self.value_head(x).squeeze(-1)


if __name__ == "__main__":
    from coltra.trainers import PPOCrowdTrainer

    config = {
        "trainer": {"name": "tiny_model", "iterations": 5, "progress": False},
        "model": {"class": "TinyModel", "width": 16},
    }
    with PPOCrowdTrainer.from_config(config) as trainer:
        summary = trainer.train()
    print(f"TinyModel trained {int(summary['iterations'])} iterations: {trainer.run.path}")
