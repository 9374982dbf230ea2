"""A PettingZoo parallel probe that gives its action masks in ``info``, and enforces them.

The PettingZoo twin of :class:`coltra.envs.probe_envs.MaskedActionEnv`: each agent picks one
of 4 actions paying 1, 0.75, 0.5 and 0.25; action 0 is never legal and each other one is
legal with probability 1/2 (at least one is), drawn anew every step and given as
``infos[agent]["action_mask"]`` (int8, 1 = legal). An illegal action raises. Episodes last
``max_cycles`` steps; the best legal play earns 4.25 / 7 ~ 0.607 per step.

In a config: ``env: {kind: pettingzoo, env_name: coltra.envs.info_mask_probe,
info_action_masks: true}``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from coltra.envs.probe_envs import check_count

__all__ = ["PAYOFF", "InfoMaskedEnv", "parallel_env"]

PAYOFF = np.array([1.0, 0.75, 0.5, 0.25], np.float32)


class InfoMaskedEnv(ParallelEnv):
    """``num_agents`` agents, masks in ``info``, illegal actions raise (module docstring)."""

    metadata: dict[str, Any] = {"name": "info_mask_probe_v0"}

    def __init__(self, num_agents: int = 2, max_cycles: int = 5) -> None:
        check_count("num_agents", num_agents)
        check_count("max_cycles", max_cycles)
        self.possible_agents = [f"agent_{i}" for i in range(num_agents)]
        self.agents: list[str] = []
        self.max_cycles = max_cycles
        self._rng = np.random.default_rng()
        self._legal: dict[str, np.ndarray] = {}
        self._t = 0

    def observation_space(self, agent: str) -> gym.Space:
        return gym.spaces.Box(1.0, 1.0, (1,), np.float32)

    def action_space(self, agent: str) -> gym.Space:
        return gym.spaces.Discrete(len(PAYOFF))

    def _draw(self) -> dict[str, dict[str, np.ndarray]]:
        """New masks for every agent, as infos."""
        for agent in self.agents:
            legal = np.zeros(len(PAYOFF), np.int8)
            while not legal.any():
                legal[1:] = self._rng.random(len(PAYOFF) - 1) < 0.5
            self._legal[agent] = legal
        return {agent: {"action_mask": self._legal[agent].copy()} for agent in self.agents}

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: np.ones(1, np.float32) for agent in self.agents}

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._t = 0
        return self._observations(), self._draw()

    def step(self, actions: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
        rewards = {}
        for agent in self.agents:
            action = int(actions[agent])
            if not self._legal[agent][action]:
                raise ValueError(
                    f"agent {agent!r} took action {action}, which its action mask "
                    f"{self._legal[agent].tolist()} forbids"
                )
            rewards[agent] = float(PAYOFF[action])
        self._t += 1
        done = self._t >= self.max_cycles
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, done)
        observations, infos = self._observations(), self._draw()
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


def parallel_env(**kwargs: Any) -> InfoMaskedEnv:
    return InfoMaskedEnv(**kwargs)
