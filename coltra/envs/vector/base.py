"""What every vectorised env shares: rows of all copies joined in copy order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import gymnasium as gym
import numpy as np

from coltra.buffers import Action
from coltra.envs.base import MultiAgentEnv, StepBatch, vec_agent_name
from coltra.envs.spaces import ActionCodec

__all__ = ["EnvCreator", "VecEnv", "check_copy_count"]

EnvCreator = Callable[[], MultiAgentEnv]


def check_copy_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be a whole number >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


class VecEnv(MultiAgentEnv):
    """Several copies of one env seen as one MultiAgentEnv.

    Agent ``a`` of copy ``i`` is row ``name&env=i``; rows are ordered copy by copy, each
    copy in its own ``agent_names`` order, so ``rows_of_copy(i)`` is a contiguous slice.
    A copy whose agents are all done is reset in the same step: ``obs`` then holds its new
    first observation and ``final_obs`` the last one of the ended episode.
    """

    default_backend: ClassVar[str] = "inprocess"
    num_envs: int
    #: Index of this env's first copy (a subprocess worker holds a slice of the copies).
    first_index: int

    def _set_layout(
        self,
        names_per_copy: Sequence[Sequence[str]],
        observation_space: gym.Space,
        action_space: gym.Space,
    ) -> None:
        self.num_envs = len(names_per_copy)
        self.observation_space = observation_space
        self.action_space = action_space
        self.base_agent_names = list(names_per_copy[0])
        self.agent_names = [
            vec_agent_name(name, self.first_index + copy)
            for copy, names in enumerate(names_per_copy)
            for name in names
        ]
        self._copy_slices: list[slice] = []
        start = 0
        for names in names_per_copy:
            self._copy_slices.append(slice(start, start + len(names)))
            start += len(names)
        self._action_codec = ActionCodec(action_space)

    def rows_of_copy(self, copy: int) -> slice:
        """The rows that belong to env copy ``copy`` (counted within this env)."""
        return self._copy_slices[copy]

    def copy_of_row(self) -> np.ndarray:
        """For every row, the index of its env copy. ``[rows]``"""
        copies = np.empty(len(self.agent_names), dtype=np.int64)
        for copy, rows in enumerate(self._copy_slices):
            copies[rows] = self.first_index + copy
        return copies

    def _check_actions(self, actions: Action) -> np.ndarray:
        return self._action_codec.check_batch(actions, len(self.agent_names))

    def _remember(self, batch: StepBatch) -> StepBatch:
        self._active_rows = batch.active
        return batch


def copy_seed(seed: int | None, copy: int) -> int | None:
    return None if seed is None else seed + copy


def autoreset(step: StepBatch, reset: StepBatch) -> StepBatch:
    """A copy's finished step with its next episode's first observation in place."""
    return StepBatch(
        obs=reset.obs,
        reward=step.reward,
        terminated=step.terminated,
        truncated=step.truncated,
        active=reset.active,
        final_obs=step.obs if step.final_obs is None else step.final_obs,
        metrics=step.metrics,
    )
