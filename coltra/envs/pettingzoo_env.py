"""Any PettingZoo parallel environment as a MultiAgentEnv."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from coltra.buffers import Action, Observation
from coltra.envs.base import MultiAgentEnv, StepBatch
from coltra.envs.spaces import LayoutActions, ObservationCodec

__all__ = ["PettingZooEnv"]


class PettingZooEnv(MultiAgentEnv):
    """A PettingZoo ``ParallelEnv`` built by ``env_fn(**env_kwargs)``.

    Rows follow ``possible_agents``. Agents that leave the episode (terminated or truncated
    while others go on) become inactive and disappear from the dict view; the copy is over
    when no agent is left. An agent that joins mid-episode appears (active) from the step
    it is in the env's ``agents`` list. Image observations (3-D Box) become
    ``Observation.image``, others ``Observation.vector``. Agents may have their own spaces
    (``observation_space(agent)``, PettingZoo's model): those with equal spaces form a block
    (:mod:`coltra.envs.blocks`), whose fields the batch view names ``<block>/vector`` ....
    Each agent's return and length are reported as ``e_episode_reward`` and
    ``e_episode_length`` when its episode ends.
    """

    default_backend: ClassVar[str] = "subprocess"

    def __init__(self, env_fn: Callable[..., Any], **env_kwargs: Any) -> None:
        try:
            from pettingzoo import AECEnv, ParallelEnv
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "PettingZooEnv needs PettingZoo: pip install 'coltra[pettingzoo]'"
            ) from exc
        _check_env_fn(env_fn)
        env = env_fn(**env_kwargs)
        if isinstance(env, AECEnv):
            raise TypeError(
                f"env_fn={_describe(env_fn)} built an AEC env ({type(env).__name__}), "
                "expected a PettingZoo parallel env: pass the module's parallel_env "
                "(e.g. pursuit_v5.parallel_env) or wrap it with "
                "pettingzoo.utils.conversions.aec_to_parallel"
            )
        if not isinstance(env, ParallelEnv):
            raise TypeError(
                f"env_fn={_describe(env_fn)} returned {type(env).__name__}, expected a "
                "PettingZoo ParallelEnv (e.g. pursuit_v5.parallel_env); for Gymnasium envs "
                "use MultiGymEnv"
            )
        if not env.possible_agents:
            raise ValueError(f"env_fn={_describe(env_fn)} built an env with no possible_agents")
        self.env = env
        self.agent_names = list(env.possible_agents)
        self.set_agent_spaces(
            {name: env.observation_space(name) for name in self.agent_names},
            {name: env.action_space(name) for name in self.agent_names},
        )
        self._row = {name: row for row, name in enumerate(self.agent_names)}
        layout = self.layout
        self._obs_codecs = [ObservationCodec(b.observation_space, b.prefix) for b in layout.blocks]
        self._actions = LayoutActions(layout)
        rows = len(self.agent_names)
        self._obs = {
            name: buffer for codec in self._obs_codecs for name, buffer in codec.zeros(rows).items()
        }
        self._active = np.zeros(rows, dtype=bool)
        self._episode_reward = np.zeros(rows, dtype=np.float64)
        self._episode_length = np.zeros(rows, dtype=np.int64)

    @classmethod
    def get_env_creator(cls, **kwargs: Any) -> Callable[[], MultiAgentEnv]:
        """As the base class, but a bad ``env_fn`` fails here, not in a worker process."""
        if "env_fn" not in kwargs:
            raise TypeError(
                "PettingZooEnv needs env_fn=, a function that builds a PettingZoo parallel "
                "env (e.g. env_fn=pursuit_v5.parallel_env)"
            )
        _check_env_fn(kwargs["env_fn"])
        return super().get_env_creator(**kwargs)

    def _write_obs(self, observations: dict[str, Any]) -> None:
        names = list(observations)
        if names == self.agent_names and len(self._obs_codecs) == 1:
            # Every agent in row order (a full crowd): no lookups.
            self._obs_codecs[0].write_rows(self._obs, slice(None), list(observations.values()))
            return
        found = np.array([self._row.get(name, -1) for name in names], dtype=np.intp)
        if (found < 0).any():
            raise ValueError(
                f"PettingZoo env returned an observation for '{names[int(np.argmin(found))]}', "
                f"which is not in possible_agents {self.agent_names}"
            )
        raws = list(observations.values())
        block_of = self.layout.block_of_row[found]
        for k, codec in enumerate(self._obs_codecs):
            mine = np.flatnonzero(block_of == k)
            if len(mine):
                codec.write_rows(self._obs, found[mine], [raws[i] for i in mine])

    def _per_row(self, values: dict[str, Any], dtype: type, what: str) -> np.ndarray:
        """One value per row, zero/False for agents missing from ``values``."""
        if list(values) == self.agent_names:
            # Every agent in row order: one conversion instead of a lookup per agent.
            return np.fromiter(values.values(), dtype=dtype, count=len(self.agent_names))
        out: np.ndarray = np.zeros(len(self.agent_names), dtype=dtype)
        for name, value in values.items():
            row = self._row.get(name)
            if row is None:
                raise ValueError(
                    f"PettingZoo env returned a {what} for '{name}', which is not in "
                    f"possible_agents {self.agent_names}"
                )
            out[row] = bool(value) if dtype is bool else value
        return out

    def _present(self) -> np.ndarray:
        """Which rows are in the env's ``agents`` list now."""
        agents = self.env.agents
        if isinstance(agents, list) and (not agents or agents == self.agent_names):
            return np.full(len(self.agent_names), bool(agents))  # nobody or everyone
        present = set(agents)
        unknown = present.difference(self._row)
        if unknown:
            raise ValueError(
                f"PettingZoo env lists agents {sorted(unknown)} in env.agents, which are not "
                f"in possible_agents {self.agent_names}"
            )
        return np.array([name in present for name in self.agent_names])

    def _observation(self) -> Observation:
        return Observation(**{name: buffer.copy() for name, buffer in self._obs.items()})

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        observations, _ = self.env.reset(seed=seed)
        for buffer in self._obs.values():
            buffer.fill(0)
        self._write_obs(observations)
        self._active[:] = self._present()
        self._episode_reward[:] = 0.0
        self._episode_length[:] = 0
        return self._remember(StepBatch.first(self._observation(), self._active.copy()))

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_ready()
        acting = np.flatnonzero(self._active)
        single = self._actions.single
        if single is not None:
            values = single.check_batch(actions, len(self.agent_names), self._active)
            if len(acting) == len(self.agent_names):  # everyone acts: no per-row indexing
                names, acting_values = self.agent_names, values
            else:
                names, acting_values = [self.agent_names[row] for row in acting], values[acting]
            action_dict = dict(zip(names, single.to_env_rows(acting_values)))
        else:
            checked = self._actions.check_batch(actions, len(self.agent_names), self._active)
            action_dict = {}
            block_of = self.layout.block_of_row[acting]
            for k, codec in enumerate(self._actions.codecs):
                rows = acting[block_of == k]
                names = [self.agent_names[row] for row in rows]
                action_dict.update(zip(names, codec.to_env_rows(checked[codec.field][rows])))
        observations, rewards, terminations, truncations, _ = self.env.step(action_dict)
        self._write_obs(observations)
        reward = self._per_row(rewards, np.float32, "reward")
        terminated = self._per_row(terminations, bool, "termination flag")
        truncated = self._per_row(truncations, bool, "truncation flag")
        truncated &= ~terminated
        # Only rows that acted can be rewarded or end in this step.
        acted = self._active
        reward[~acted] = 0.0
        terminated &= acted
        truncated &= acted
        still_here = self._present()
        # An agent that is done is gone, whatever the env's agent list says; one that
        # vanished without a flag has left the episode, which we count as terminated.
        active = still_here & ~(terminated | truncated)
        terminated |= acted & ~still_here & ~truncated
        # Rows that did not act have reward 0, so adding every row changes only those acting.
        self._episode_reward += reward
        self._episode_length += acted
        # An agent that joined mid-episode (or came back) starts its own episode now.
        joined = active & ~acted
        self._episode_reward[joined] = 0.0
        self._episode_length[joined] = 0
        obs = self._observation()
        batch = StepBatch(
            obs=obs,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            active=active,
        )
        ended = acting[~active[acting]]
        if len(ended):
            batch.final_obs = obs
            batch.metrics = {
                "e_episode_reward": self._episode_reward[ended].astype(np.float32),
                "e_episode_length": self._episode_length[ended].astype(np.float32),
            }
        self._active = active
        return self._remember(batch)

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def _describe(env_fn: object) -> str:
    module = getattr(env_fn, "__module__", None)
    name = getattr(env_fn, "__qualname__", None)
    return f"{module}.{name}" if module and name else repr(env_fn)


def _check_env_fn(env_fn: object) -> None:
    if not callable(env_fn):
        raise TypeError(
            "env_fn must be a function that builds a PettingZoo parallel env "
            f"(e.g. pursuit_v5.parallel_env), got {type(env_fn).__name__} {env_fn!r}"
        )
