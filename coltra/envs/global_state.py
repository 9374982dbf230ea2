"""The env's global state in every agent's observation, for centralised critics.

MAPPO's value network (Yu et al. 2022) sees the whole env's state while each policy acts on
its own observation. :class:`GlobalState` wraps a PettingZoo parallel env so that every
observation carries the env's ``state()`` as a ``state`` part next to the agent's own ones
(``vector``, ``image``, or a Dict's keys); the batch view then has a ``state`` field per
agent row, which rides through the vector backends, rollouts and ``final_obs`` like any
other field. A model with ``critic: state`` feeds it to the value network only.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from pettingzoo.utils.wrappers import BaseParallelWrapper

from coltra.buffers import STATE_FIELD

__all__ = ["GlobalState"]


class GlobalState(BaseParallelWrapper):
    """``env`` with ``{<own parts>, "state": env.state()}`` as each agent's observation.

    The agent's own observation keeps its field name: a Dict's keys, ``image`` for a 3-D Box,
    ``vector`` otherwise. The state is the one after the step (or reset) that produced the
    observation, the same array for every agent of the copy. Refuses envs without a
    ``state_space`` and observation Dicts that already have a ``state`` key.
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        try:
            state_space = env.state_space
        except (AttributeError, NotImplementedError):
            state_space = None
        if not isinstance(state_space, gym.spaces.Box):
            raise TypeError(
                f"{type(env.unwrapped).__name__} gives no global state (its state_space is "
                f"{state_space!r}, expected a Box): critic: state needs an env with state() "
                "(PettingZoo's MPE, SISL and magent2 envs have one)"
            )
        self.state_space = state_space
        self._spaces = {agent: self._space(agent) for agent in env.possible_agents}
        # The field of each agent's own observation; None where it is a Dict already.
        self._own_fields = {
            agent: None if isinstance(space, gym.spaces.Dict) else _own_field(space)
            for agent, space in (
                (agent, env.observation_space(agent)) for agent in env.possible_agents
            )
        }

    def _space(self, agent: Any) -> gym.spaces.Dict:
        own = self.env.observation_space(agent)
        if isinstance(own, gym.spaces.Dict):
            if STATE_FIELD in own.spaces:
                raise ValueError(
                    f"agent {agent!r} already has a '{STATE_FIELD}' part in its observation "
                    f"space {own}; GlobalState would hide it"
                )
            parts = dict(own.spaces)
        else:
            parts = {_own_field(own): own}
        return gym.spaces.Dict({**parts, STATE_FIELD: self.state_space})

    def observation_space(self, agent: Any) -> gym.spaces.Dict:
        return self._spaces[agent]

    def _with_state(self, observations: dict[Any, Any]) -> dict[Any, dict[str, Any]]:
        state = self.env.state()
        out = {}
        for agent, own in observations.items():
            field = self._own_fields[agent]
            parts = dict(own) if field is None else {field: own}
            parts[STATE_FIELD] = state
            out[agent] = parts
        return out

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[Any, Any], dict[Any, Any]]:
        observations, infos = self.env.reset(seed=seed, options=options)
        return self._with_state(observations), infos

    def step(self, actions: dict[Any, Any]) -> tuple[Any, Any, Any, Any, Any]:
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        return self._with_state(observations), rewards, terminations, truncations, infos


def _own_field(space: gym.Space) -> str:
    """The field name ``ObservationCodec`` gives a non-Dict observation."""
    return "image" if isinstance(space, gym.spaces.Box) and len(space.shape) == 3 else "vector"
