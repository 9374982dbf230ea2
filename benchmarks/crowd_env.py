"""The crowd of ``coltra.envs.crowd`` as a PettingZoo ParallelEnv, for the throughput benchmark.

Why: pursuit's own cost (~1-2k agent steps/s per core) hides what a training library adds
per agent. Here the dynamics are a few numpy operations over all agents at once
(:class:`coltra.envs.crowd.Crowd`), so the env's own cost per agent is tiny and what the
benchmark measures is the library's overhead. This dict view is what every PettingZoo user
(and SB3 + SuperSuit) pays; ``coltra.envs.crowd.CrowdEnv`` is the same crowd without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from coltra.envs.crowd import ACCELERATION, OBS_SIZE, Crowd

__all__ = ["CrowdEnv", "parallel_env"]


class CrowdEnv(ParallelEnv):
    """``n_agents`` agents stepped as arrays; fixed-length episodes of ``episode_length``."""

    metadata: dict[str, Any] = {"name": "crowd_v0", "render_modes": []}

    def __init__(
        self, n_agents: int = 16, episode_length: int = 200, dt: float = 0.1, arena: float = 5.0
    ) -> None:
        if isinstance(episode_length, bool) or not isinstance(episode_length, int):
            raise ValueError(f"episode_length must be a whole number >= 1, got {episode_length!r}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length!r}")
        self.crowd = Crowd(n_agents, dt=dt, arena=arena)
        self.n_agents = n_agents
        self.episode_length = episode_length
        self.render_mode = None
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self._observation_space = spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
        self._action_space = spaces.Discrete(len(ACCELERATION))
        self._rng = np.random.default_rng()
        self._t = 0

    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_space

    def _obs(self) -> np.ndarray:
        """``[agents, 8]``, a fresh array each step (the dict's rows are views of it)."""
        return self.crowd.observe(np.empty((self.n_agents, OBS_SIZE), np.float32))

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = self.possible_agents[:]
        self._t = 0
        self.crowd.reset(self._rng)
        return dict(zip(self.agents, self._obs())), {agent: {} for agent in self.agents}

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if not self.agents:
            raise RuntimeError("step() after the episode ended: call reset() first")
        action = np.fromiter(
            (actions[agent] for agent in self.agents), dtype=np.int64, count=self.n_agents
        )
        progress = self.crowd.step(action)
        self._t += 1
        agents = self.agents
        truncated = self._t >= self.episode_length
        observations = dict(zip(agents, self._obs()))
        rewards = dict(zip(agents, progress.tolist()))
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        infos: dict[str, dict[str, Any]] = {agent: {} for agent in agents}
        if truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        pass


#: PettingZoo's usual constructor name: ``PettingZooEnv(env_fn=parallel_env, n_agents=64)``.
parallel_env = CrowdEnv
