"""Model classes by name: register_model, build_model, and what checkpoints may name."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from pydantic import Field
from torch import nn
from torch.distributions import Distribution

from coltra.buffers import Observation
from coltra.configs import ConfigError, Int, MLPConfig, ModelConfig, RunConfig
from coltra.models import BaseModel, MLPModel, State, build_model, model_class, register_model
from coltra.models.distributions import Categorical

SPACES = (gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Discrete(2))


class LinearConfig(ModelConfig):
    bias: bool = Field(True, description="Whether the layer has a bias.")
    scale: Int = Field(1, gt=0, description="A number to check the config arrives.")


@register_model
class LinearModel(BaseModel):
    """The smallest trainable model: one linear layer for logits and one for the value."""

    config_class = LinearConfig

    def __init__(
        self,
        config: LinearConfig,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__()
        self.config, self.discrete = config, True
        self.observation_space, self.action_space = observation_space, action_space
        self.logits = nn.Linear(3, 2, bias=config.bias)
        self.values = nn.Linear(3, 1, bias=config.bias)

    def forward(
        self, obs: Observation, state: State = (), get_value: bool = False
    ) -> tuple[Distribution, State, dict[str, torch.Tensor]]:
        x = torch.as_tensor(obs.vector).float()
        extra = {"value": self.values(x).squeeze(-1)} if get_value else {}
        return Categorical(self.logits(x)), state, extra

    def value(self, obs: Observation, state: State = ()) -> torch.Tensor:
        return self.values(torch.as_tensor(obs.vector).float()).squeeze(-1)


def test_a_registered_model_is_built_from_its_config_section() -> None:
    config = RunConfig.from_dict({"model": {"class": "LinearModel", "bias": False, "scale": 3}})
    assert model_class("LinearModel") is LinearModel
    model = build_model(config.model, *SPACES)  # type: ignore[arg-type]
    assert isinstance(model, LinearModel) and model.logits.bias is None
    twin = LinearModel.from_description(model.describe())  # BaseModel's defaults
    assert isinstance(twin, LinearModel) and twin.config == model.config
    assert isinstance(build_model(MLPConfig(), *SPACES), MLPModel)


def test_registration_refuses_what_cannot_work() -> None:
    with pytest.raises(TypeError, match=r"takes a coltra\.models\.BaseModel subclass"):
        register_model(dict)  # type: ignore[type-var]

    class NoConfig(BaseModel):
        pass

    with pytest.raises(
        TypeError, match=r"NoConfig\.config_class must be a coltra\.configs\.ModelConfig"
    ):
        register_model(NoConfig)
    with pytest.raises(
        ValueError, match=r"model name 'MLPModel' is taken by coltra\.models\.mlp\.MLPModel"
    ):
        register_model(LinearModel, name="MLPModel")
    with pytest.raises(ValueError, match="is already the config of model 'LinearModel'"):

        @register_model
        class Another(LinearModel):
            pass

    register_model(LinearModel)  # the same class again: fine (a module imported twice)
    with pytest.raises(KeyError, match="no model class 'Nope' is registered"):
        model_class("Nope")


def test_sizes_that_contradict_the_env_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^model: model config input_size=5 contradicts"):
        build_model(MLPConfig(input_size=5), *SPACES)


def test_the_old_form_of_register_model_says_what_it_takes_now() -> None:
    with pytest.raises(TypeError, match=r"register_model takes the model class now"):
        register_model("Mine", lambda description: None)  # type: ignore[arg-type, type-var]
