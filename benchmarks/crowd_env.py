"""A cheap crowd of N agents as a PettingZoo ParallelEnv, for the throughput benchmark.

Why: pursuit's own cost (~1-2k agent steps/s per core) hides what a training library adds
per agent. Here the dynamics are a few numpy operations over all agents at once, so the
env's own cost per agent is tiny and what the benchmark measures is the library's overhead
(the dict round trip is still there: it is what every PettingZoo user pays).

Each agent moves on a plane towards its own goal: action 0 coasts, 1-4 accelerate
left/right/down/up. Observation (8 floats): position, velocity, offset to the goal and
offset to the crowd's centroid. Reward: progress towards the goal this step. Episodes last
exactly ``episode_length`` steps and end by truncation (all agents at once).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

__all__ = ["CrowdEnv", "parallel_env"]

#: Acceleration of each action: coast, left, right, down, up.
_ACCELERATION = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float32)
OBS_SIZE = 8


class CrowdEnv(ParallelEnv):
    """``n_agents`` agents stepped as arrays; fixed-length episodes of ``episode_length``."""

    metadata: dict[str, Any] = {"name": "crowd_v0", "render_modes": []}

    def __init__(
        self, n_agents: int = 16, episode_length: int = 200, dt: float = 0.1, arena: float = 5.0
    ) -> None:
        if isinstance(n_agents, bool) or not isinstance(n_agents, int) or n_agents < 1:
            raise ValueError(f"n_agents must be a whole number >= 1, got {n_agents!r}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length!r}")
        self.n_agents = n_agents
        self.episode_length = episode_length
        self.dt = dt
        self.arena = arena
        self.render_mode = None
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.agents: list[str] = []
        self._observation_space = spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
        self._action_space = spaces.Discrete(len(_ACCELERATION))
        self._rng = np.random.default_rng()
        self._t = 0
        self._pos = np.zeros((n_agents, 2), np.float32)
        self._vel = np.zeros((n_agents, 2), np.float32)
        self._goal = np.zeros((n_agents, 2), np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_space

    def _obs(self) -> np.ndarray:
        """``[agents, 8]``, a fresh array each step (the dict's rows are views of it)."""
        obs = np.empty((self.n_agents, OBS_SIZE), np.float32)
        obs[:, 0:2] = self._pos
        obs[:, 2:4] = self._vel
        obs[:, 4:6] = self._goal - self._pos
        obs[:, 6:8] = self._pos.mean(axis=0) - self._pos
        return obs

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = self.possible_agents[:]
        self._t = 0
        shape = (self.n_agents, 2)
        self._pos = self._rng.uniform(-self.arena, self.arena, shape).astype(np.float32)
        self._goal = self._rng.uniform(-self.arena, self.arena, shape).astype(np.float32)
        self._vel = np.zeros(shape, np.float32)
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
        before = np.linalg.norm(self._goal - self._pos, axis=1)
        self._vel = 0.9 * self._vel + self.dt * _ACCELERATION[action]
        self._pos = np.clip(self._pos + self.dt * self._vel, -self.arena, self.arena)
        after = np.linalg.norm(self._goal - self._pos, axis=1)
        self._t += 1
        agents = self.agents
        truncated = self._t >= self.episode_length
        observations = dict(zip(agents, self._obs()))
        rewards = dict(zip(agents, (before - after).tolist()))
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
