"""Tiny deterministic environments with known answers, for testing learning code.

Each probe isolates one thing a learner must get right (after Andy Jones, "Debugging RL,
without the agonizing pain"). All support any number of agents, step every agent as one
array operation, and vectorise like any other env.

| env | obs | reward | what a correct learner finds |
| --- | --- | --- | --- |
| ConstantRewardEnv | [1] | 1 every step | V = 1 (one-step episodes) |
| ObservedRewardEnv | random sign s | s | V(s) = s |
| ActionRewardEnv | [1] | 1 if action is 1 else 0 | always pick action 1 |
| ObsActionRewardEnv | random sign s | 1 if action matches s else 0 | action 1 for s > 0 |
| DelayedRewardEnv | one-hot time t | 1 at the last (third) step | V(t) = gamma ** (2 - t) |

With ``continuous=True`` the action-dependent envs take a Box(-1, 1, (1,)) action and pay
``1 - (a - target) ** 2`` with target ``+0.5`` (or ``0.5 * s``).
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np

from coltra.buffers import Action, Observation
from coltra.envs.base import MultiAgentEnv, StepBatch
from coltra.envs.spaces import ActionCodec

__all__ = [
    "PROBE_ENVS",
    "ActionRewardEnv",
    "ConstantRewardEnv",
    "DelayedRewardEnv",
    "ObsActionRewardEnv",
    "ObservedRewardEnv",
    "ProbeEnv",
]


class ProbeEnv(MultiAgentEnv):
    """Shared machinery: ``num_agents`` agents in lockstep, episodes of ``episode_length``
    steps that end by termination (or by truncation with ``truncate=True``)."""

    default_backend: ClassVar[str] = "inprocess"
    episode_length: int = 1
    obs_size: int = 1

    def __init__(
        self,
        num_agents: int = 1,
        *,
        episode_length: int | None = None,
        truncate: bool = False,
        continuous: bool = False,
    ) -> None:
        if isinstance(num_agents, bool) or not isinstance(num_agents, int) or num_agents < 1:
            raise ValueError(f"num_agents must be a whole number >= 1, got {num_agents!r}")
        if episode_length is not None:
            if (
                isinstance(episode_length, bool)
                or not isinstance(episode_length, int)
                or episode_length < 1
            ):
                raise ValueError(
                    f"episode_length must be a whole number >= 1, got {episode_length!r}"
                )
            self.episode_length = episode_length
        self.truncate = truncate
        self.continuous = continuous
        self.agent_names = [f"agent_{i}" for i in range(num_agents)]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)
        self.action_space: gym.Space = (
            gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2)
        )
        self._action_codec = ActionCodec(self.action_space)
        self._rng = np.random.default_rng()
        self._t = 0
        self._obs = np.zeros((num_agents, self.obs_size), dtype=np.float32)
        self._episode_reward = np.zeros(num_agents, dtype=np.float32)

    # Subclasses define what agents see and what they are paid.
    def _observe(self) -> np.ndarray:
        """Observation of every agent at time ``self._t``. ``[agents, obs_size]``"""
        return np.ones((self.num_agents, self.obs_size), dtype=np.float32)

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Reward of every agent for ``actions`` taken on ``obs``. ``[agents]``"""
        raise NotImplementedError

    def _action_values(self, actions: Action) -> np.ndarray:
        """Checked actions, one value per agent. ``[agents]``"""
        values = self._action_codec.check_batch(actions, self.num_agents)
        return values[:, 0].astype(np.float32) if self.continuous else values

    def _signs(self) -> np.ndarray:
        return self._rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=self.num_agents)

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        self._episode_reward[:] = 0.0
        self._obs = self._observe()
        return self._remember(StepBatch.first(Observation(vector=self._obs.copy())))

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_ready()
        reward = self._reward(self._obs, self._action_values(actions)).astype(np.float32)
        self._episode_reward += reward
        self._t += 1
        ended = self._t >= self.episode_length
        final = self._obs
        self._obs = final if ended else self._observe()
        rows = self.num_agents
        batch = StepBatch(
            obs=Observation(vector=self._obs.copy()),
            reward=reward,
            terminated=np.full(rows, ended and not self.truncate),
            truncated=np.full(rows, ended and self.truncate),
            active=np.full(rows, not ended),
        )
        if ended:
            batch.final_obs = Observation(vector=final.copy())
            batch.metrics = {
                "e_episode_reward": self._episode_reward.copy(),
                "e_episode_length": np.full(rows, self._t, dtype=np.float32),
            }
        return self._remember(batch)


class ConstantRewardEnv(ProbeEnv):
    """Reward 1 every step, observation [1]: the value must learn the constant."""

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.ones(self.num_agents, dtype=np.float32)


class ObservedRewardEnv(ProbeEnv):
    """Observation is a random sign s, reward is s: the value must read the observation."""

    def _observe(self) -> np.ndarray:
        return self._signs()[:, None]

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return obs[:, 0].copy()


def _match_reward(actions: np.ndarray, target_sign: np.ndarray, continuous: bool) -> np.ndarray:
    if continuous:
        return 1.0 - (actions - 0.5 * target_sign) ** 2
    return (actions == (target_sign > 0)).astype(np.float32)


class ActionRewardEnv(ProbeEnv):
    """Reward 1 for action 1, 0 for action 0: the policy must learn to prefer action 1."""

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return _match_reward(actions, np.ones(self.num_agents, np.float32), self.continuous)


class ObsActionRewardEnv(ProbeEnv):
    """Reward 1 when the action follows the observed sign (1 for +1, 0 for -1)."""

    def _observe(self) -> np.ndarray:
        return self._signs()[:, None]

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return _match_reward(actions, obs[:, 0], self.continuous)


class DelayedRewardEnv(ProbeEnv):
    """Three steps (or ``episode_length`` L) with a one-hot clock; reward 1 arrives only at
    the last step, so the value of the first step is gamma ** (L - 1): discounting must be
    right."""

    episode_length = 3
    obs_size = 3

    def __init__(
        self,
        num_agents: int = 1,
        *,
        episode_length: int | None = None,
        truncate: bool = False,
        continuous: bool = False,
    ) -> None:
        # One clock position per step, so every step has its own observation.
        if isinstance(episode_length, int) and not isinstance(episode_length, bool):
            self.obs_size = max(episode_length, 1)
        super().__init__(
            num_agents, episode_length=episode_length, truncate=truncate, continuous=continuous
        )

    def _observe(self) -> np.ndarray:
        obs = np.zeros((self.num_agents, self.obs_size), dtype=np.float32)
        obs[:, min(self._t, self.obs_size - 1)] = 1.0
        return obs

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        paid = self._t == self.episode_length - 1
        return np.full(self.num_agents, 1.0 if paid else 0.0, dtype=np.float32)


PROBE_ENVS: dict[str, type[ProbeEnv]] = {
    "constant": ConstantRewardEnv,
    "observed": ObservedRewardEnv,
    "action": ActionRewardEnv,
    "obs_action": ObsActionRewardEnv,
    "delayed": DelayedRewardEnv,
}
