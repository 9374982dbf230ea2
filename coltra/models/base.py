"""The model interface, and plain-data descriptions of spaces for safe checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution

from coltra.buffers import Observation
from coltra.configs import ModelConfig
from coltra.models.normalization import RunningMeanStd
from coltra.models.sde import ExplorationNoise

__all__ = ["BaseModel", "State", "space_from_dict", "space_to_dict"]

#: Recurrent state carried between steps; an empty tuple for feed-forward models.
State = tuple[torch.Tensor, ...]


class BaseModel(nn.Module):
    """A policy and a value function over batched Observations.

    ``forward(obs, state, get_value)`` returns the action distribution for the batch, the
    next recurrent state, and ``extra`` (``extra["value"]``, shape ``[batch]``, when
    ``get_value``). ``value(obs, state)`` returns values alone, ``[batch]``.

    A model that a config can name (``model.class``) sets ``config_class`` to its
    :class:`~coltra.configs.ModelConfig`, takes ``(config, observation_space=...,
    action_space=...)`` and keeps the config it was built with as ``self.config``; it is then
    registered with :func:`coltra.agents.register_model`, and :meth:`describe` /
    :meth:`from_description` save and rebuild it for checkpoints.
    """

    #: The config section of this model class (``model:`` in a run config).
    config_class: ClassVar[type[ModelConfig] | None] = None
    #: True for categorical actions (Discrete / MultiDiscrete), False for continuous ones.
    discrete: bool
    observation_space: gym.Space | None
    action_space: gym.Space | None
    #: True when the model carries a state between steps (``get_initial_state`` is not
    #: empty); PPO then trains it on sequences (:meth:`forward_sequences`).
    recurrent: bool = False

    def forward(
        self, obs: Observation, state: State = (), get_value: bool = False
    ) -> tuple[Distribution, State, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def value(self, obs: Observation, state: State = ()) -> torch.Tensor:
        raise NotImplementedError

    def forward_sequences(
        self, obs: Observation, state: State, starts: torch.Tensor, get_value: bool = True
    ) -> tuple[Distribution, State, dict[str, torch.Tensor]]:
        """``forward`` over training sequences: ``obs`` holds ``[sequences * length]`` rows,
        sequence-major; ``state`` is each sequence's state at its first step (``[sequences,
        ...]`` per part) and ``starts`` ``[sequences, length]`` flags the steps before which
        the state was reset (an episode began). A feed-forward model ignores both."""
        if self.recurrent or self.get_initial_state(1):
            raise NotImplementedError(
                f"{type(self).__name__} carries a state between steps, so PPO trains it on "
                "sequences: it must implement forward_sequences"
            )
        return self(obs, (), get_value)

    def act_numpy(
        self, obs: Observation, deterministic: bool, get_value: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """A faster acting pass for a feed-forward model, if it has one for this batch:
        ``(actions, log-probabilities, values or None)``, numpy, each ``[batch]``, the same
        numbers as ``forward`` and a sample of its distribution. None (the default): the
        agent runs ``forward``. See :mod:`coltra.models.numpy_acting`."""
        return None

    def value_normalizer(self) -> RunningMeanStd | None:
        """The running statistics the value network's targets are normalised with
        (``value_norm``): the PPO update updates them with each batch of returns and compares
        normalised values with normalised targets. None (the default): raw returns."""
        return None

    def observe(self, obs: Observation) -> None:
        """Update input statistics (``obs_norm``) with a rollout's observations
        (``[batch, ...]``); the PPO update calls this after each update of the model, so
        acting between updates, evaluation and loaded models use frozen statistics. Does
        nothing by default."""

    def get_initial_state(self, batch_size: int) -> State:
        """State before the first step of ``batch_size`` agents; ``()`` for feed-forward."""
        return ()

    def explore(self, rows: int | None) -> ExplorationNoise | None:
        """Start (``rows``: the rows collection acts for) or end (None) state-dependent
        exploration; returns the noise the collector advances before each step
        (:class:`~coltra.models.sde.ExplorationNoise`). None by default: the policy
        explores by sampling its distribution."""
        return None

    @property
    def device(self) -> torch.device:
        """Where the parameters live. Cached: every act and forward asks, and finding it
        walks submodules; ``to()``, ``cuda()``, ``cpu()`` (all through ``_apply``) clear it."""
        cached: torch.device | None = self.__dict__.get("_device")
        if cached is None:
            cached = self.__dict__["_device"] = self.find_device()
        return cached

    def find_device(self) -> torch.device:
        """The device of the parameters (uncached); CPU for a model without any."""
        for parameter in self.parameters():
            return parameter.device
        return torch.device("cpu")

    def _apply(self, fn: Any, recurse: bool = True) -> BaseModel:
        self.__dict__.pop("_device", None)
        return super()._apply(fn, recurse)

    def describe(self) -> dict[str, Any]:
        """Plain data (JSON-safe) that :meth:`from_description` rebuilds this model from:
        its config and its spaces."""
        config = getattr(self, "config", None)
        if not isinstance(config, ModelConfig):
            raise NotImplementedError(
                f"{type(self).__name__} keeps no ModelConfig in self.config: override describe() "
                "and from_description() to save it in checkpoints"
            )
        return {
            "config": config.to_dict(),
            "observation_space": space_to_dict(self.observation_space),
            "action_space": space_to_dict(self.action_space),
        }

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> BaseModel:
        """The model :meth:`describe` described (weights are loaded separately)."""
        if cls.config_class is None:
            raise NotImplementedError(f"{cls.__name__} has no config_class to rebuild it from")
        return cls(
            cls.config_class.from_dict(description["config"]),
            observation_space=space_from_dict(description.get("observation_space")),
            action_space=space_from_dict(description.get("action_space")),
        )

    def upgrade_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Weights saved by an older layout of this model, renamed to the current one (the
        default: unchanged)."""
        return state_dict


def space_to_dict(space: gym.Space | None) -> dict[str, Any] | None:
    """A JSON-safe description of a space (Box, Discrete, MultiDiscrete, MultiBinary, Dict,
    Tuple)."""
    if space is None:
        return None
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": np.asarray(space.start).tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        n = space.n  # an int, or a shape: MultiBinary(4) != MultiBinary((4,)) in Gymnasium
        return {
            "type": "MultiBinary",
            "n": int(n) if isinstance(n, int | np.integer) else [int(k) for k in n],
        }
    if isinstance(space, gym.spaces.Dict):
        return {
            "type": "Dict",
            "spaces": {key: space_to_dict(sub) for key, sub in space.spaces.items()},
        }
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(sub) for sub in space.spaces]}
    raise TypeError(f"cannot describe space {space} for a checkpoint")


def space_from_dict(data: dict[str, Any] | None) -> gym.Space | None:
    """The inverse of ``space_to_dict``; a clear error for anything else."""
    if data is None:
        return None
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"not a space description: {data!r}")
    kind = data["type"]
    try:
        if kind == "Box":
            dtype = np.dtype(data["dtype"])
            low = np.array(data["low"], dtype=dtype).reshape(data["shape"])
            high = np.array(data["high"], dtype=dtype).reshape(data["shape"])
            return gym.spaces.Box(low, high, tuple(data["shape"]), dtype)
        if kind == "Discrete":
            return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
        if kind == "MultiDiscrete":
            return gym.spaces.MultiDiscrete(
                data["nvec"], dtype=np.dtype(data.get("dtype", "int64")), start=data.get("start")
            )
        if kind == "MultiBinary":
            n = data["n"]
            return gym.spaces.MultiBinary(n if isinstance(n, int) else tuple(n))
        if kind == "Dict":
            parts = {key: space_from_dict(sub) for key, sub in data["spaces"].items()}
            return gym.spaces.Dict({key: sub for key, sub in parts.items() if sub is not None})
        if kind == "Tuple":
            items = [space_from_dict(sub) for sub in data["spaces"]]
            return gym.spaces.Tuple([sub for sub in items if sub is not None])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid {kind} space description {data!r}: {exc}") from None
    raise ValueError(f"unknown space type {kind!r} in {data!r}")
