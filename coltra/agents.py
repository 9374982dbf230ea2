"""Agents: the bridge between Observations and a model's action distribution.

An agent holds a model, turns a batch of Observations into a batch of Actions (``act``,
no gradients), and scores given actions for training (``evaluate``, with gradients).
``DAgent`` serves categorical actions, ``CAgent`` continuous ones; ``RandomAgent`` and
``ConstantAgent`` are untrained baselines. Agents save to a directory of plain JSON and
tensors, which loads without unpickling anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from coltra.buffers import Action, Observation
from coltra.models import BaseModel, MLPModel
from coltra.models.base import State, space_from_dict, space_to_dict
from coltra.models.distributions import distribution_mode
from coltra.serialization import CheckpointError, load_json, load_tensors, save_json, save_tensors

__all__ = [
    "Agent",
    "CAgent",
    "ConstantAgent",
    "DAgent",
    "RandomAgent",
    "register_model",
]

AGENT_FORMAT = "coltra-agent"
AGENT_FILE = "agent.json"
WEIGHTS_FILE = "weights.pt"

#: Model classes a checkpoint may name; loading never imports anything else.
MODEL_CLASSES: dict[str, Callable[[dict[str, Any]], BaseModel]] = {
    "MLPModel": MLPModel.from_description,
}
AGENT_CLASSES: dict[str, type[Agent]] = {}

Extra = dict[str, np.ndarray]


def register_model(name: str, from_description: Callable[[dict[str, Any]], BaseModel]) -> None:
    """Allow checkpoints of a custom model class to load (by its ``describe()`` output)."""
    MODEL_CLASSES[name] = from_description


class Agent:
    """Acts with a model on batches of Observations. Subclasses say how a sampled tensor
    becomes an Action (``field``) and which models they accept."""

    #: The Action field this agent fills (``discrete`` or ``continuous``).
    field: str = ""
    #: None for the toy agents, which act without a network and cannot be trained.
    model: BaseModel | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        AGENT_CLASSES[cls.__name__] = cls

    def __init__(self, model: BaseModel) -> None:
        if not isinstance(model, BaseModel):
            raise TypeError(
                f"{type(self).__name__} needs a coltra.models.BaseModel, got {type(model).__name__}"
            )
        self.model = model

    # ------------------------------------------------------------------ acting
    def act(
        self,
        obs: Observation,
        state: State = (),
        deterministic: bool = False,
        get_value: bool = False,
    ) -> tuple[Action, State, Extra]:
        """Actions for a batch (or one item) of observations, without gradients.

        ``extra["logprob"]`` (``[batch]``) is the log-probability of each action, and
        ``extra["value"]`` the value estimate when ``get_value``. Everything is numpy.
        """
        model = self._trainable_model()
        single = not obs.is_batch
        batch = Observation.stack([obs]) if single else obs
        with torch.inference_mode():
            distribution, state, model_extra = model(
                batch.tensor(model.device), state, get_value=get_value
            )
            sample = distribution_mode(distribution) if deterministic else distribution.sample()
            logprob = distribution.log_prob(sample)
        extra: Extra = {"logprob": logprob.cpu().numpy()}
        if get_value:
            extra["value"] = model_extra["value"].cpu().numpy()
        action = Action(**{self.field: sample.cpu().numpy()})
        if single:
            return action[0], state, {key: value[0] for key, value in extra.items()}
        return action, state, extra

    def evaluate(
        self, obs: Observation, action: Action, state: State = ()
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logprobs, values, entropies)`` of ``action`` under the current policy, each
        ``[batch]``, with gradients."""
        model = self._trainable_model()
        device = model.device
        distribution, _, extra = model(obs.tensor(device), state, get_value=True)
        taken = self._action_tensor(action, device)
        return distribution.log_prob(taken), extra["value"], distribution.entropy()

    def value(self, obs: Observation, state: State = ()) -> torch.Tensor:
        """Value estimates ``[batch]`` (with gradients); zeros for a toy agent."""
        if self.model is None:
            return torch.zeros(obs.batch_size)
        return self.model.value(obs.tensor(self.model.device), state)

    def _trainable_model(self) -> BaseModel:
        if self.model is None:
            raise TypeError(f"{type(self).__name__} has no model: it acts but cannot be trained")
        return self.model

    def _action_tensor(self, action: Action, device: torch.device) -> torch.Tensor:
        if self.field not in action:
            raise ValueError(
                f"{type(self).__name__} evaluates Action({self.field}=...), got {action!r}"
            )
        return torch.as_tensor(action[self.field], device=device)

    # ------------------------------------------------------------------ plumbing
    def parameters(self) -> list[torch.nn.Parameter]:
        return [] if self.model is None else list(self.model.parameters())

    def to(self, device: str | torch.device) -> Agent:
        if self.model is not None:
            self.model.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu") if self.model is None else self.model.device

    def get_initial_state(self, batch_size: int) -> State:
        return () if self.model is None else self.model.get_initial_state(batch_size)

    # ------------------------------------------------------------------ disk
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``agent.json`` (classes and model description) and ``weights.pt``."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        if self.model is None:
            meta = {"format": AGENT_FORMAT, "version": 1, "agent": type(self).__name__}
            save_json(directory / AGENT_FILE, {**meta, **self._meta()})
            return
        save_tensors(directory / WEIGHTS_FILE, self.model.state_dict())
        save_json(
            directory / AGENT_FILE,
            {
                "format": AGENT_FORMAT,
                "version": 1,
                "agent": type(self).__name__,
                "model": type(self.model).__name__,
                "model_description": self.model.describe(),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Agent:
        """Rebuild an agent saved with ``save``; refuses unknown classes and pickled code."""
        directory = Path(path)
        meta = _read_agent_meta(directory)
        agent_class = AGENT_CLASSES[meta["agent"]]
        if meta.get("model") is None:
            agent = agent_class.from_meta(meta)
        else:
            model_name = meta.get("model")
            if model_name not in MODEL_CLASSES:
                raise CheckpointError(
                    f"{directory / AGENT_FILE} names model class {model_name!r}; known model "
                    f"classes are {sorted(MODEL_CLASSES)} (register custom ones with "
                    "coltra.agents.register_model)"
                )
            try:
                model = MODEL_CLASSES[model_name](meta["model_description"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(
                    f"{directory / AGENT_FILE} has an invalid model description: {exc}"
                ) from None
            state_dict = load_tensors(directory / WEIGHTS_FILE)
            load_weights(model, state_dict, directory / WEIGHTS_FILE)
            agent = agent_class(model)
            agent.to(device)
        if not isinstance(agent, cls):
            raise CheckpointError(
                f"{directory} holds a {type(agent).__name__}, not a {cls.__name__}"
            )
        return agent

    def _meta(self) -> dict[str, Any]:
        """What a toy agent (no model) needs in ``agent.json`` to be rebuilt."""
        raise NotImplementedError

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Agent:
        raise CheckpointError(f"{cls.__name__} checkpoints need a model description")


def _read_agent_meta(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise CheckpointError(f"no agent checkpoint at {directory} (not a directory)")
    meta = load_json(directory / AGENT_FILE)
    if not isinstance(meta, dict) or meta.get("format") != AGENT_FORMAT:
        raise CheckpointError(f"{directory / AGENT_FILE} is not a Coltra agent file")
    if meta.get("agent") not in AGENT_CLASSES:
        raise CheckpointError(
            f"{directory / AGENT_FILE} names agent class {meta.get('agent')!r}; known: "
            f"{sorted(AGENT_CLASSES)}"
        )
    return meta


def load_weights(model: torch.nn.Module, state_dict: Any, source: object) -> None:
    """``load_state_dict`` with an error that names what does not fit."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{source} does not hold a state dict of tensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict
        and isinstance(state_dict[key], torch.Tensor)
        and state_dict[key].shape != value.shape
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"weights in {source} do not fit the {type(model).__name__}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state_dict)


class DAgent(Agent):
    """Categorical actions (Discrete, MultiDiscrete); deterministic acting takes the argmax."""

    field = "discrete"

    def __init__(self, model: BaseModel) -> None:
        super().__init__(model)
        if not model.discrete:
            raise TypeError(
                f"DAgent needs a model with discrete actions; this {type(model).__name__} is "
                f"continuous (action space {model.action_space}): use CAgent"
            )

    def _action_tensor(self, action: Action, device: torch.device) -> torch.Tensor:
        return super()._action_tensor(action, device).long()


class CAgent(Agent):
    """Continuous actions (Box); deterministic acting takes the mean.

    Actions are the raw samples, kept for log-probabilities; the environment adapters clip
    them to the Box bounds when they send them to the env.
    """

    field = "continuous"

    def __init__(self, model: BaseModel) -> None:
        super().__init__(model)
        if model.discrete:
            raise TypeError(
                f"CAgent needs a model with continuous actions; this {type(model).__name__} is "
                f"discrete (action space {model.action_space}): use DAgent"
            )

    def _action_tensor(self, action: Action, device: torch.device) -> torch.Tensor:
        return super()._action_tensor(action, device).float()


def _toy_result(
    field: str, values: np.ndarray, logprob: np.ndarray, single: bool, get_value: bool
) -> tuple[Action, State, Extra]:
    """Package a toy agent's actions like ``Agent.act`` does; values are zero."""
    action = Action(**{field: values})
    extra: Extra = {"logprob": logprob}
    if get_value:
        extra["value"] = np.zeros(len(logprob), dtype=np.float32)
    if single:
        return action[0], (), {key: value[0] for key, value in extra.items()}
    return action, (), extra


class RandomAgent(Agent):
    """Uniformly random actions from ``action_space``, from its own seeded generator."""

    def __init__(self, action_space: gym.Space, seed: int | None = None) -> None:
        if not isinstance(
            action_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.Box
        ):
            raise TypeError(
                f"RandomAgent supports Discrete, MultiDiscrete and Box, got {action_space}"
            )
        self.model = None
        self.action_space = action_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.field = "continuous" if isinstance(action_space, gym.spaces.Box) else "discrete"

    def act(
        self,
        obs: Observation,
        state: State = (),
        deterministic: bool = False,
        get_value: bool = False,
    ) -> tuple[Action, State, Extra]:
        single = not obs.is_batch
        size = 1 if single else obs.batch_size
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            values = self.rng.integers(space.start, space.start + space.n, size=size)
            logprob = np.full(size, -np.log(space.n), dtype=np.float32)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            values = self.rng.integers(0, space.nvec, size=(size, *space.nvec.shape)) + space.start
            logprob = np.full(size, -np.log(space.nvec).sum(), dtype=np.float32)
        else:
            assert isinstance(space, gym.spaces.Box)
            low, high = space.low.reshape(-1), space.high.reshape(-1)
            values = self.rng.uniform(low, high, size=(size, low.size)).astype(np.float32)
            width = np.log(high - low).sum()
            logprob = np.full(size, -width if np.isfinite(width) else 0.0, dtype=np.float32)
        return _toy_result(self.field, values, logprob, single, get_value)

    def _meta(self) -> dict[str, Any]:
        return {"action_space": space_to_dict(self.action_space), "seed": self.seed}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Agent:
        space = space_from_dict(meta["action_space"])
        assert space is not None
        return cls(space, seed=meta.get("seed"))


class ConstantAgent(Agent):
    """Always takes ``action`` (one item), for every agent in the batch."""

    def __init__(self, action: Action) -> None:
        if not isinstance(action, Action) or action.is_batch:
            raise TypeError(f"ConstantAgent needs a single Action, got {action!r}")
        self.model = None
        self.action = action.numpy()
        self.field = action.keys()[0]

    def act(
        self,
        obs: Observation,
        state: State = (),
        deterministic: bool = False,
        get_value: bool = False,
    ) -> tuple[Action, State, Extra]:
        single = not obs.is_batch
        size = 1 if single else obs.batch_size
        values = np.stack([self.action[self.field]] * size)
        return _toy_result(self.field, values, np.zeros(size, dtype=np.float32), single, get_value)

    def _meta(self) -> dict[str, Any]:
        return {"action": {key: np.asarray(value).tolist() for key, value in self.action.items()}}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Agent:
        return cls(Action(**{key: np.asarray(value) for key, value in meta["action"].items()}))
