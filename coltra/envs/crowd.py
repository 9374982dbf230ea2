"""A crowd env that implements the batch view directly: numpy over all agents, no dicts.

Why: simulation users (crowds, traffic, swarms) already hold their agents in arrays. Going
through per-agent dicts (PettingZoo's API) costs more per agent than their dynamics do;
an env that fills the stacked rows itself pays nothing per agent in Python. This module is
the example to copy: :class:`CrowdEnv` writes its rows straight into the collector's
buffers (``step_into``), so collection is bounded by the policy's forward pass.

The task: each agent moves on a plane towards its own goal. Action 0 coasts, 1-4
accelerate left / right / down / up. Observation (8 floats): position, velocity, offset to
the goal and offset to the crowd's centroid. Reward: progress towards the goal this step
(distance units). Episodes last exactly ``episode_length`` steps and end by truncation, for
all agents at once. :class:`Crowd` holds the dynamics alone, so the same crowd can be given
a dict view too (``benchmarks/crowd_env.py`` wraps it as a PettingZoo env for the peers).
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np

from coltra.buffers import Action, Observation
from coltra.envs.base import MultiAgentEnv, StepBatch, StepBuffers
from coltra.envs.probe_envs import check_count
from coltra.envs.spaces import ActionCodec

__all__ = ["OBS_SIZE", "Crowd", "CrowdEnv"]

#: Acceleration of each action: coast, left, right, down, up.  # [actions, 2]
ACCELERATION = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.float32)
OBS_SIZE = 8


class Crowd:
    """The dynamics of ``n_agents`` point agents, as arrays (no names, no dicts)."""

    def __init__(
        self, n_agents: int, dt: float = 0.1, arena: float = 5.0, drag: float = 0.9
    ) -> None:
        check_count("n_agents", n_agents)
        for name, value in (("dt", dt), ("arena", arena)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not isinstance(drag, int | float) or isinstance(drag, bool) or not 0 <= drag <= 1:
            raise ValueError(f"drag must be a number in [0, 1], got {drag!r}")
        self.n_agents = n_agents
        self.dt = float(dt)
        self.arena = float(arena)
        self.drag = float(drag)
        shape = (n_agents, 2)
        self.pos = np.zeros(shape, np.float32)  # [agents, 2]
        self.vel = np.zeros(shape, np.float32)  # [agents, 2]
        self.goal = np.zeros(shape, np.float32)  # [agents, 2]
        self._distance = np.zeros(n_agents, np.float32)  # [agents] to the goal

    def reset(self, rng: np.random.Generator) -> None:
        """Random positions and goals in the arena, at rest."""
        shape = (self.n_agents, 2)
        self.pos[:] = rng.uniform(-self.arena, self.arena, shape)
        self.goal[:] = rng.uniform(-self.arena, self.arena, shape)
        self.vel[:] = 0.0
        self._distance = np.linalg.norm(self.goal - self.pos, axis=1)

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Move every agent by its action (``[agents]`` ints in 0..4); returns each one's
        progress towards its goal (``[agents]`` float32, distance units)."""
        self.vel *= self.drag
        self.vel += self.dt * ACCELERATION[actions]
        self.pos += self.dt * self.vel
        np.clip(self.pos, -self.arena, self.arena, out=self.pos)
        distance = np.linalg.norm(self.goal - self.pos, axis=1)
        progress = (self._distance - distance).astype(np.float32)
        self._distance = distance
        return progress

    def observe(self, out: np.ndarray) -> np.ndarray:
        """Write every agent's observation into ``out`` (``[agents, 8]``) and return it."""
        out[:, 0:2] = self.pos
        out[:, 2:4] = self.vel
        np.subtract(self.goal, self.pos, out=out[:, 4:6])
        np.subtract(self.pos.mean(axis=0), self.pos, out=out[:, 6:8])
        return out


class CrowdEnv(MultiAgentEnv):
    """``n_agents`` agents of a :class:`Crowd`, batch view only.

    Steps in place: ``step_into`` writes observations, rewards and flags into the rows the
    vectorised env gives it, with no intermediate objects. Episodes are truncated after
    ``episode_length`` steps; ``e_episode_reward`` / ``e_episode_length`` are logged then.
    """

    default_backend: ClassVar[str] = "inprocess"

    def __init__(
        self,
        n_agents: int = 64,
        episode_length: int = 200,
        dt: float = 0.1,
        arena: float = 5.0,
    ) -> None:
        check_count("episode_length", episode_length)
        self.crowd = Crowd(n_agents, dt=dt, arena=arena)
        self.episode_length = episode_length
        self.agent_names = [f"agent_{i}" for i in range(n_agents)]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_SIZE,), np.float32)
        self.action_space = gym.spaces.Discrete(len(ACCELERATION))
        self._action_codec = ActionCodec(self.action_space)
        self._rng = np.random.default_rng()
        self._t = 0
        self._episode_reward = np.zeros(n_agents, np.float32)  # [agents]

    def _start(self, seed: int | None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.crowd.reset(self._rng)
        self._t = 0
        self._episode_reward[:] = 0.0
        self._active_rows = np.ones(self.num_agents, dtype=bool)

    def _advance(self, actions: np.ndarray) -> tuple[np.ndarray, bool]:
        """One step of the crowd: rewards ``[agents]`` and whether the episode ended."""
        reward = self.crowd.step(actions)
        self._episode_reward += reward
        self._t += 1
        return reward, self._t >= self.episode_length

    def _episode_metrics(self) -> dict[str, np.ndarray]:
        return {
            "e_episode_reward": self._episode_reward.copy(),
            "e_episode_length": np.full(self.num_agents, self._t, dtype=np.float32),
        }

    # ------------------------------------------------------------------ batch view
    def reset_batch(self, seed: int | None = None) -> StepBatch:
        self._start(seed)
        obs = self.crowd.observe(np.empty((self.num_agents, OBS_SIZE), np.float32))
        return StepBatch.first(Observation(vector=obs))

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_ready()
        values = self._action_codec.check_batch(actions, self.num_agents)
        reward, ended = self._advance(values)
        obs = self.crowd.observe(np.empty((self.num_agents, OBS_SIZE), np.float32))
        rows = self.num_agents
        batch = StepBatch(
            obs=Observation(vector=obs),
            reward=reward,
            terminated=np.zeros(rows, dtype=bool),
            truncated=np.full(rows, ended),
            active=np.full(rows, not ended),
        )
        if ended:
            batch.final_obs = Observation(vector=obs)
            batch.metrics = self._episode_metrics()
        return self._remember(batch)

    # ------------------------------------------------------------------ fast path
    def step_into(self, values: np.ndarray, out: StepBuffers, rows: slice) -> None:
        """``step_batch`` written straight into ``out[rows]`` (actions already checked)."""
        reward, ended = self._advance(values)
        self.crowd.observe(out.obs["vector"][rows])
        out.reward[rows] = reward
        out.terminated[rows] = False
        out.truncated[rows] = ended
        out.active[rows] = not ended
        if ended:
            out.save_final(rows)
            out.add_metrics(self._episode_metrics())

    def reset_into(self, out: StepBuffers, rows: slice, seed: int | None = None) -> None:
        self._start(seed)
        self.crowd.observe(out.obs["vector"][rows])
        out.active[rows] = True
