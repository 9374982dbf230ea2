"""Agents: the bridge between Observations and a model's action distribution.

An agent holds a model, turns a batch of Observations into a batch of Actions (``act``,
no gradients), and scores given actions for training (``evaluate``, with gradients).
``DAgent`` serves categorical actions, ``CAgent`` continuous ones; ``RandomAgent`` and
``ConstantAgent`` are untrained baselines. Agents save to a directory of plain JSON and
tensors, which loads without unpickling anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from coltra.buffers import ACTION_MASK_FIELD, Action, Observation
from coltra.envs.spaces import JOINT_FIELD, ActionCodec
from coltra.models import BaseModel, register_model
from coltra.models.base import State, space_from_dict, space_to_dict
from coltra.models.distributions import distribution_mode
from coltra.models.registry import model_class, model_name, registered_models
from coltra.serialization import CheckpointError, load_json, load_tensors, save_json, save_tensors

__all__ = [
    "Agent",
    "CAgent",
    "ConstantAgent",
    "DAgent",
    "JointAgent",
    "RandomAgent",
    "action_item",
    "check_observation",
    "register_model",
]

AGENT_FORMAT = "coltra-agent"
AGENT_FILE = "agent.json"
WEIGHTS_FILE = "weights.pt"
AGENT_VERSION = 1

#: Agent classes a checkpoint may name (every Agent subclass registers itself); model
#: classes are looked up in coltra.models.registry. Loading never imports anything.
AGENT_CLASSES: dict[str, type[Agent]] = {}

Extra = dict[str, np.ndarray]


def action_item(actions: Action, index: int) -> Action:
    """Row ``index`` of a batch of actions, with 0-d arrays where indexing gives numpy
    scalars (``np.int64`` has no array methods; an Action should hold arrays)."""
    return actions[index].map(np.asarray)


def check_observation(obs: object, where: str) -> Observation:
    """``obs`` if it is an Observation; otherwise a TypeError that names what was passed
    and the call that works (a StepBatch's observations, a dict for a group...)."""
    if isinstance(obs, Observation):
        return obs
    kind = type(obs).__name__
    if isinstance(getattr(obs, "obs", None), Observation):  # a StepBatch of the batch view
        hint = f"pass its observations: {where}(batch.obs)"
    elif isinstance(obs, dict) and obs and all(isinstance(v, Observation) for v in obs.values()):
        hint = (
            "a dict of observations by agent name is for a group: "
            "HomogeneousGroup(agent).act(obs_dict), or stack them with "
            "Observation.stack(list(obs_dict.values()))"
        )
    elif isinstance(obs, np.ndarray | torch.Tensor):
        hint = f"wrap the array: {where}(Observation(vector=array))"
    else:
        hint = "build one with coltra.buffers.Observation"
    raise TypeError(f"{where} takes an Observation, got a {kind}; {hint}")


def agent_class_name(cls: type) -> str:
    """The name a checkpoint records for an agent class: the bare name for Coltra's own
    classes, ``module.QualName`` for others, so a user's class that happens to be called
    ``DAgent`` can neither replace Coltra's on load nor be mistaken for it."""
    if cls.__module__.split(".")[0] == "coltra":
        return cls.__name__
    return f"{cls.__module__}.{cls.__qualname__}"


def _agent_class(name: object) -> type[Agent] | None:
    """The registered class a checkpoint names. Checkpoints written before classes outside
    Coltra were recorded by their full name hold a bare name: it is accepted when exactly
    one registered class has it."""
    if not isinstance(name, str):
        return None
    if name in AGENT_CLASSES:
        return AGENT_CLASSES[name]
    matches = [cls for cls in AGENT_CLASSES.values() if cls.__name__ == name]
    return matches[0] if len(matches) == 1 else None


class Agent:
    """Acts with a model on batches of Observations. Subclasses say how a sampled tensor
    becomes an Action (``field``) and which models they accept."""

    #: The Action field this agent fills (``discrete`` or ``continuous``).
    field: str = ""
    #: None for the toy agents, which act without a network and cannot be trained.
    model: BaseModel | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        AGENT_CLASSES[agent_class_name(cls)] = cls

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
        check_observation(obs, f"{type(self).__name__}.act")
        model = self._trainable_model()
        single = not obs.is_batch
        batch = Observation.stack([obs]) if single else obs
        fast = None if state else model.act_numpy(batch, deterministic, get_value)
        if fast is not None:  # a few rows of a plain model: numpy (coltra.models.numpy_acting)
            actions, logprob, value = fast
        else:
            actions, logprob, value, state = self._act_torch(
                model, batch, state, deterministic, get_value
            )
        extra: Extra = {"logprob": logprob}
        if get_value:
            assert value is not None
            extra["value"] = value
        # trusted: one numpy field of the batch's size, made here (the checks cost more
        # than the rest of this block)
        action = Action._trusted_from({self.field: self._env_values(actions)})
        if single:
            return action_item(action, 0), state, {key: v[0] for key, v in extra.items()}
        return action, state, extra

    @staticmethod
    def _act_torch(
        model: BaseModel, batch: Observation, state: State, deterministic: bool, get_value: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, State]:
        """``forward``'s actions, log-probabilities and values (numpy) and next state."""
        # inference_mode: cheaper per op than no_grad, and nothing computed here needs
        # autograd; only a recurrent state must stay usable in a later evaluate() with
        # gradients, and cloning outside inference mode makes it a normal tensor.
        with torch.inference_mode():
            distribution, state, model_extra = model(
                batch.tensor(model.device), state, get_value=get_value
            )
            sample = distribution_mode(distribution) if deterministic else distribution.sample()
            logprob = distribution.log_prob(sample)
        state = tuple(part.clone() for part in state)
        value = model_extra["value"].cpu().numpy() if get_value else None
        return sample.cpu().numpy(), logprob.cpu().numpy(), value, state

    def evaluate(
        self,
        obs: Observation,
        action: Action,
        state: State = (),
        starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logprobs, values, entropies)`` of ``action`` under the current policy, each
        ``[batch]``, with gradients. For a recurrent model, ``starts`` (``[sequences,
        length]`` bool) says the batch is sequences (see
        :meth:`~coltra.models.BaseModel.forward_sequences`) and ``state`` their first states."""
        check_observation(obs, f"{type(self).__name__}.evaluate")
        model = self._trainable_model()
        device = model.device
        if not obs.is_batch or not action.is_batch:
            single = "observation" if not obs.is_batch else "action"
            raise ValueError(
                f"{type(self).__name__}.evaluate takes batches (one row per item), but the "
                f"{single} holds a single item: obs {obs!r}, action {action!r}"
            )
        if starts is None:
            distribution, _, extra = model(obs.tensor(device), state, get_value=True)
        else:
            distribution, _, extra = model.forward_sequences(
                obs.tensor(device), state, starts.to(device), get_value=True
            )
        taken = self._action_tensor(action, device)
        # A wrong shape would broadcast silently (e.g. [batch] against [batch, 1] gives a
        # [batch, batch] log-prob), so compare with the shape of the policy's own actions.
        expected = tuple(distribution.batch_shape + distribution.event_shape)
        if tuple(taken.shape) != expected:
            raise ValueError(
                f"{type(self).__name__}.evaluate: action '{self.field}' has shape "
                f"{list(taken.shape)}, expected {list(expected)} for {obs.batch_size} "
                "observations"
            )
        return distribution.log_prob(taken), extra["value"], distribution.entropy()

    def value(self, obs: Observation, state: State = ()) -> torch.Tensor:
        """Value estimates ``[batch]`` (with gradients); zeros for a toy agent. A single
        observation gives a 0-d tensor."""
        check_observation(obs, f"{type(self).__name__}.value")
        single = not obs.is_batch
        batch = Observation.stack([obs]) if single else obs
        if self.model is None:
            values = torch.zeros(batch.batch_size)
        else:
            values = self.model.value(batch.tensor(self.model.device), state)
        return values[0] if single else values

    def _trainable_model(self) -> BaseModel:
        if self.model is None:
            raise TypeError(f"{type(self).__name__} has no model: it acts but cannot be trained")
        return self.model

    def _action_tensor(self, action: Action, device: torch.device) -> torch.Tensor:
        """The model's view of ``action`` (the inverse of ``_env_values``)."""
        if self.field not in action:
            raise ValueError(
                f"{type(self).__name__} evaluates Action({self.field}=...), got {action!r}"
            )
        return torch.as_tensor(action[self.field], device=device)

    def _env_values(self, sample: np.ndarray) -> np.ndarray:
        """A model sample as the action values the env takes (identity by default)."""
        return sample

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
            meta = {
                "format": AGENT_FORMAT,
                "version": AGENT_VERSION,
                "agent": agent_class_name(type(self)),
            }
            save_json(directory / AGENT_FILE, {**meta, **self._meta()})
            return
        save_tensors(directory / WEIGHTS_FILE, self.model.state_dict())
        save_json(
            directory / AGENT_FILE,
            {
                "format": AGENT_FORMAT,
                "version": AGENT_VERSION,
                "agent": agent_class_name(type(self)),
                "model": model_name(self.model),
                "model_description": self.model.describe(),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Agent:
        """Rebuild an agent saved with ``save``; refuses unknown classes and pickled code."""
        directory = Path(path)
        meta = _read_agent_meta(directory)
        agent_class = _agent_class(meta["agent"])
        assert agent_class is not None  # _read_agent_meta checked it
        if meta.get("model") is None:
            try:
                agent = agent_class.from_meta(meta)
            except CheckpointError:
                raise
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise CheckpointError(
                    f"{directory / AGENT_FILE} does not describe a valid {meta['agent']}: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
        else:
            name = meta.get("model")
            if not isinstance(name, str) or name not in registered_models():
                raise CheckpointError(
                    f"{directory / AGENT_FILE} names model class {name!r}, which is not "
                    f"registered (registered: {', '.join(registered_models())}; register yours "
                    "with coltra.agents.register_model)"
                )
            cls_of_model = model_class(name)
            try:
                model = cls_of_model.from_description(meta["model_description"])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise CheckpointError(
                    f"{directory / AGENT_FILE} has an invalid model description: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            state_dict = load_tensors(directory / WEIGHTS_FILE)
            load_weights(model, state_dict, directory / WEIGHTS_FILE)
            try:
                agent = agent_class(model)
            except TypeError as exc:  # e.g. a DAgent over a continuous model
                raise CheckpointError(f"{directory / AGENT_FILE}: {exc}") from None
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
        raise CheckpointError(
            f"{directory / AGENT_FILE} is not a Coltra agent file (expected a JSON object "
            f"with format '{AGENT_FORMAT}')"
        )
    if meta.get("version") != AGENT_VERSION:
        raise CheckpointError(
            f"{directory / AGENT_FILE} has format version {meta.get('version')!r}; this Coltra "
            f"reads version {AGENT_VERSION}"
        )
    if _agent_class(meta.get("agent")) is None:
        raise CheckpointError(
            f"{directory / AGENT_FILE} names agent class {meta.get('agent')!r}; known: "
            f"{sorted(AGENT_CLASSES)}"
        )
    return meta


def load_weights(model: torch.nn.Module, state_dict: Any, source: object) -> None:
    """``load_state_dict`` with an error that names what does not fit."""
    if not isinstance(state_dict, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor)
        for key, value in state_dict.items()
    ):
        raise CheckpointError(f"{source} does not hold a state dict (names -> tensors)")
    if isinstance(model, BaseModel):
        state_dict = model.upgrade_state_dict(state_dict)
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
    """Categorical actions (Discrete, MultiDiscrete) and yes/no ones (MultiBinary);
    deterministic acting takes the most likely."""

    field = "discrete"

    def __init__(self, model: BaseModel) -> None:
        super().__init__(model)
        if not model.discrete:
            raise TypeError(
                f"DAgent needs a model with discrete actions; this {type(model).__name__} is "
                f"continuous (action space {model.action_space}): use CAgent"
            )
        # The model picks indices 0..n-1; the env's actions run from the space's ``start``
        # (e.g. Discrete(3, start=-1) takes -1, 0, 1).
        space = model.action_space
        start = (
            np.asarray(space.start, dtype=np.int64)
            if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete)
            else np.zeros((), dtype=np.int64)
        )
        self._start: np.ndarray | None = start if np.any(start != 0) else None

    def _env_values(self, sample: np.ndarray) -> np.ndarray:
        return sample if self._start is None else sample + self._start

    def _action_tensor(self, action: Action, device: torch.device) -> torch.Tensor:
        taken = super()._action_tensor(action, device).long()
        if self._start is None:
            return taken
        return taken - torch.as_tensor(self._start, device=device)


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


class JointAgent(Agent):
    """Dict and Tuple actions: one distribution per part (``MLPModel`` builds them), one
    float32 ``joint`` row per agent holding every part's values side by side (see
    :class:`~coltra.envs.spaces.ActionCodec`); deterministic acting takes each part's
    most likely value (argmax, mean)."""

    field = JOINT_FIELD

    def __init__(self, model: BaseModel) -> None:
        super().__init__(model)
        space = model.action_space
        if not isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
            raise TypeError(
                f"JointAgent needs a model with a Dict or Tuple action space, got {space}: use "
                "DAgent or CAgent"
            )
        # The model picks categories from 0; the env's run from each part's ``start``.
        self._offsets = ActionCodec(space).starts

    def _env_values(self, sample: np.ndarray) -> np.ndarray:
        return sample + self._offsets

    def _action_tensor(self, action: Action, device: torch.device) -> torch.Tensor:
        taken = super()._action_tensor(action, device).float()
        return taken - torch.as_tensor(self._offsets, device=device)


def _toy_result(
    field: str, values: np.ndarray, logprob: np.ndarray, single: bool, get_value: bool
) -> tuple[Action, State, Extra]:
    """Package a toy agent's actions like ``Agent.act`` does; values are zero."""
    action = Action(**{field: values})
    extra: Extra = {"logprob": logprob}
    if get_value:
        extra["value"] = np.zeros(len(logprob), dtype=np.float32)
    if single:
        return action_item(action, 0), (), {key: value[0] for key, value in extra.items()}
    return action, (), extra


class RandomAgent(Agent):
    """Uniformly random actions from ``action_space``, from its own seeded generator; with
    an ``action_mask`` observation field, uniformly random legal ones (per dimension for
    MultiDiscrete)."""

    def __init__(self, action_space: gym.Space, seed: int | None = None) -> None:
        if isinstance(action_space, gym.spaces.Dict | gym.spaces.Tuple):
            ActionCodec(action_space)  # every part supported, or a clear error
        elif not isinstance(
            action_space,
            gym.spaces.Discrete
            | gym.spaces.MultiDiscrete
            | gym.spaces.MultiBinary
            | gym.spaces.Box,
        ):
            raise TypeError(
                f"RandomAgent supports Discrete, MultiDiscrete, MultiBinary, Box, and Dict or "
                f"Tuple of those, got {action_space}"
            )
        if isinstance(action_space, gym.spaces.Box) and not action_space.is_bounded("both"):
            raise ValueError(
                f"RandomAgent samples uniformly, which needs finite Box bounds; got "
                f"{action_space} (low {action_space.low}, high {action_space.high})"
            )
        self.model = None
        self.action_space = action_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.field = "continuous" if isinstance(action_space, gym.spaces.Box) else "discrete"
        # A Dict or Tuple: a random agent per part, drawing from this agent's generator.
        self._parts: list[RandomAgent] = []
        if isinstance(action_space, gym.spaces.Dict | gym.spaces.Tuple):
            self.field = JOINT_FIELD
            for _, codec, _ in ActionCodec(action_space).parts:
                part = RandomAgent(codec.space)
                part.rng = self.rng
                self._parts.append(part)

    def act(
        self,
        obs: Observation,
        state: State = (),
        deterministic: bool = False,
        get_value: bool = False,
    ) -> tuple[Action, State, Extra]:
        check_observation(obs, f"{type(self).__name__}.act")
        single = not obs.is_batch
        size = 1 if single else obs.batch_size
        space = self.action_space
        if self._parts:  # each part drawn on its own; the log-probabilities add up
            batch = Observation(vector=np.zeros((size, 1), np.float32))
            drawn = [part.act(batch) for part in self._parts]
            joint = np.concatenate(
                [next(iter(a.as_dict().values())).reshape(size, -1) for a, _, _ in drawn], 1
            ).astype(np.float32)
            total = np.sum([extra["logprob"] for _, _, extra in drawn], 0).astype(np.float32)
            return _toy_result(self.field, joint, total, single, get_value)
        if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete) and (
            ACTION_MASK_FIELD in obs
        ):
            legal = np.asarray(obs[ACTION_MASK_FIELD]).reshape(size, -1) > 0.5
            nvec = [int(space.n)] if isinstance(space, gym.spaces.Discrete) else space.nvec.tolist()
            choices, logprob = [], np.zeros(size, np.float32)
            for part in np.split(legal, np.cumsum(nvec)[:-1], axis=1):
                part[~part.any(1)] = True  # no legal action: an absent agent's row
                # A uniform legal choice: the argmax of uniform noise over the legal ones.
                choices.append(np.where(part, self.rng.random(part.shape), -1.0).argmax(1))
                logprob -= np.log(part.sum(1)).astype(np.float32)
            values = space.start + (
                choices[0] if isinstance(space, gym.spaces.Discrete) else np.stack(choices, 1)
            )
        elif isinstance(space, gym.spaces.Discrete):
            values = self.rng.integers(space.start, space.start + space.n, size=size)
            logprob = np.full(size, -np.log(space.n), dtype=np.float32)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            values = self.rng.integers(0, space.nvec, size=(size, *space.nvec.shape)) + space.start
            logprob = np.full(size, -np.log(space.nvec).sum(), dtype=np.float32)
        elif isinstance(space, gym.spaces.MultiBinary):
            values = self.rng.integers(0, 2, size=(size, *space.shape))
            logprob = np.full(size, -np.log(2.0) * np.prod(space.shape), dtype=np.float32)
        else:
            assert isinstance(space, gym.spaces.Box)
            low, high = space.low.reshape(-1), space.high.reshape(-1)
            values = self.rng.uniform(low, high, size=(size, low.size)).astype(np.float32)
            # Density of the uniform distribution on the box: 1 / volume.
            log_volume = np.log(high.astype(np.float64) - low).sum()
            logprob = np.full(size, -log_volume, dtype=np.float32)
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
        if not isinstance(action, Action) or action.is_batch or len(action.keys()) != 1:
            raise TypeError(
                f"ConstantAgent needs a single Action with one field (e.g. "
                f"Action(discrete=1)), got {action!r}"
            )
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
        check_observation(obs, f"{type(self).__name__}.act")
        single = not obs.is_batch
        size = 1 if single else obs.batch_size
        values = np.stack([self.action[self.field]] * size)
        return _toy_result(self.field, values, np.zeros(size, dtype=np.float32), single, get_value)

    def _meta(self) -> dict[str, Any]:
        value = np.asarray(self.action[self.field])
        return {"action": {self.field: value.tolist()}, "dtype": str(value.dtype)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Agent:
        # Only numeric dtypes: np.dtype of an arbitrary string could mean an object array.
        dtype = np.dtype(meta.get("dtype", "float64"))
        if dtype.kind not in "biuf":
            raise CheckpointError(f"ConstantAgent action dtype must be numeric, got {dtype}")
        ((field, value),) = meta["action"].items()
        return cls(Action(**{field: np.asarray(value, dtype=dtype)}))
