"""What a centralised critic (or a per-agent network) needs, added to every agent's
observation.

MAPPO's value network (Yu et al. 2022) sees more than the agent it values while each policy
acts on its own observation. Two PettingZoo parallel-env wrappers add that input as one
more observation part next to the agent's own ones (``vector``, ``image``, or a Dict's
keys), so the batch view has one more field per agent row, which rides through the vector
backends, rollouts and ``final_obs`` like any other:

- :class:`GlobalState` adds ``state``: the env's ``state()`` (``critic: state``);
- :class:`TeamObservations` adds ``team``: the observations of the agent's whole team in a
  fixed order, each followed by a 1 if that agent is present and 0 (with zeros for its
  observation) if it is not (``critic: team``), for envs without a ``state()`` or when the
  team's view is what should be valued;
- :class:`AgentIds` adds ``agent_id``: a one-hot of the agent's place in ``possible_agents``
  (``env.agent_ids``), a feature telling apart agents of one shared policy, and what a model
  with ``share_actor`` or ``share_critic`` off picks each row's own network by.

A model with ``critic: state`` or ``critic: team`` feeds that field to its value network
only (:class:`~coltra.models.MLPModel`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo.utils.wrappers import BaseParallelWrapper

from coltra.buffers import ACTION_MASK_FIELD, AGENT_ID_FIELD, STATE_FIELD, TEAM_FIELD
from coltra.envs.spaces import own_field, without_parts

__all__ = ["AddedPart", "AgentIds", "GlobalState", "TeamObservations", "team_by_name"]


class AddedPart(BaseParallelWrapper):
    """``env`` with one more part, ``field``, in each agent's (Dict) observation, computed
    by ``_part`` from the raw observations and infos of each reset and step (``_steps``
    counts the steps since the reset)."""

    field: str
    _steps = 0

    def __init__(self, env: Any, part_space: Callable[[Any], gym.Space]) -> None:
        super().__init__(env)
        own = {agent: env.observation_space(agent) for agent in env.possible_agents}
        for agent, space in own.items():
            if isinstance(space, gym.spaces.Dict) and self.field in space.spaces:
                raise ValueError(
                    f"agent {agent!r} already has a '{self.field}' part in its observation "
                    f"space {space}; {type(self).__name__} would hide it"
                )
        # The field of each agent's own observation; None where it is a Dict already.
        self._own_fields = {
            agent: None if isinstance(space, gym.spaces.Dict) else own_field(space)
            for agent, space in own.items()
        }
        self._spaces = {
            agent: gym.spaces.Dict(
                {
                    **(
                        space.spaces
                        if isinstance(space, gym.spaces.Dict)
                        else {own_field(space): space}
                    ),
                    self.field: part_space(agent),
                }
            )
            for agent, space in own.items()
        }

    def observation_space(self, agent: Any) -> gym.spaces.Dict:
        return self._spaces[agent]

    def _part(self, observations: dict[Any, Any], infos: dict[Any, Any]) -> dict[Any, np.ndarray]:
        """The added part of every agent in ``observations`` (the raw ones; ``infos`` of the
        same step or reset)."""
        raise NotImplementedError

    def _with_part(
        self, observations: dict[Any, Any], infos: dict[Any, Any]
    ) -> dict[Any, dict[str, Any]]:
        parts = self._part(observations, infos)
        out = {}
        for agent, own in observations.items():
            field = self._own_fields[agent]
            merged = dict(own) if field is None else {field: own}
            merged[self.field] = parts[agent]
            out[agent] = merged
        return out

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[Any, Any], dict[Any, Any]]:
        observations, infos = self.env.reset(seed=seed, options=options)
        self._steps = 0
        return self._with_part(observations, infos), infos

    def step(self, actions: dict[Any, Any]) -> tuple[Any, Any, Any, Any, Any]:
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        self._steps += 1
        return self._with_part(observations, infos), rewards, terminations, truncations, infos


class GlobalState(AddedPart):
    """``env`` with ``state``, the env's ``state()`` after the step (or reset) that produced
    the observation, in every agent's observation: the same array for every agent of the
    copy. Refuses envs without a Box ``state_space``."""

    field = STATE_FIELD

    def __init__(self, env: Any) -> None:
        try:
            state_space = env.state_space
        except (AttributeError, NotImplementedError):
            state_space = None
        if not isinstance(state_space, gym.spaces.Box):
            raise TypeError(
                f"{type(env.unwrapped).__name__} gives no global state (its state_space is "
                f"{state_space!r}, expected a Box): critic: state needs an env with state() "
                "(PettingZoo's MPE, SISL and magent2 envs have one); critic: team needs none"
            )
        self.state_space = state_space
        super().__init__(env, lambda agent: state_space)

    def _part(self, observations: dict[Any, Any], infos: dict[Any, Any]) -> dict[Any, np.ndarray]:
        state = self.env.state()
        return dict.fromkeys(observations, state)


def team_by_name(agent: str) -> str:
    """The team of an agent named ``<team>_<number>`` (PettingZoo's naming): ``<team>``;
    any other name is a team of its own."""
    match = re.fullmatch(r"(.+)_\d+", agent)
    return match[1] if match else agent


class TeamObservations(AddedPart):
    """``env`` with ``team`` in every agent's observation: for each member of its team, in
    ``possible_agents`` order, the member's own observation flattened (without an action
    mask) and a 1, or zeros and a 0 while the member is absent (dead or not yet there).
    ``team_of(agent)`` names an agent's team (default :func:`team_by_name`:
    ``adversary_0`` and ``adversary_1`` are team ``adversary``)."""

    field = TEAM_FIELD

    def __init__(self, env: Any, team_of: Callable[[str], str] = team_by_name) -> None:
        agents = list(env.possible_agents)
        self._own = {
            agent: without_parts(env.observation_space(agent), [ACTION_MASK_FIELD])
            for agent in agents
        }
        self._members = {
            agent: [other for other in agents if team_of(other) == team_of(agent)]
            for agent in agents
        }
        self._sizes = {agent: int(gym.spaces.flatdim(space)) for agent, space in self._own.items()}
        super().__init__(env, self._team_space)

    def _team_space(self, agent: Any) -> gym.spaces.Box:
        size = sum(self._sizes[member] + 1 for member in self._members[agent])
        return gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def _part(self, observations: dict[Any, Any], infos: dict[Any, Any]) -> dict[Any, np.ndarray]:
        flat = {}
        for agent, own in observations.items():
            if isinstance(own, dict) and ACTION_MASK_FIELD in own:
                own = {key: value for key, value in own.items() if key != ACTION_MASK_FIELD}
            flat[agent] = np.asarray(gym.spaces.flatten(self._own[agent], own), np.float32)
        views: dict[tuple[Any, ...], np.ndarray] = {}
        out = {}
        for agent in observations:
            members = tuple(self._members[agent])
            if members not in views:  # one array per team, shared by its members
                pieces = []
                for member in members:
                    seen = flat.get(member)
                    if seen is None:
                        pieces += [
                            np.zeros(self._sizes[member], np.float32),
                            np.zeros(1, np.float32),
                        ]
                    else:
                        pieces += [seen, np.ones(1, np.float32)]
                views[members] = np.concatenate(pieces)
            out[agent] = views[members]
        return out


class AgentIds(AddedPart):
    """``env`` with ``agent_id`` in every agent's observation: a one-hot float32 vector of
    length ``len(possible_agents)``, 1 at the agent's place in ``possible_agents``. Fixed for
    the whole run, so a checkpoint's per-agent networks keep meaning the same agents."""

    field = AGENT_ID_FIELD

    def __init__(self, env: Any) -> None:
        agents = list(env.possible_agents)
        eye = np.eye(len(agents), dtype=np.float32)
        self._ids = {agent: eye[i] for i, agent in enumerate(agents)}
        space = gym.spaces.Box(0.0, 1.0, (len(agents),), np.float32)
        super().__init__(env, lambda agent: space)

    def _part(self, observations: dict[Any, Any], infos: dict[Any, Any]) -> dict[Any, np.ndarray]:
        return {agent: self._ids[agent] for agent in observations}
