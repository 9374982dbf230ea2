"""Gymnasium wrappers a config can name (``env.wrappers``), for tasks built from standard
envs.

``SelectObservation`` keeps some entries of a flat Box observation and drops the rest:
CartPole-v1 with only the cart's position and the pole's angle (``indices: [0, 2]``, the
velocities hidden) is the standard partially observed task for recurrent policies
(SB3-zoo's "NoVel" envs)::

    env:
      env_name: CartPole-v1
      wrappers:
        - name: coltra.envs.gym_wrappers.SelectObservation
          kwargs: {indices: [0, 2]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["SelectObservation"]


class SelectObservation(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """The entries ``indices`` (in that order) of a 1-D Box observation."""

    def __init__(self, env: gym.Env[Any, Any], indices: Sequence[int]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"SelectObservation takes a 1-D Box observation, got {space} (flatten it "
                "first with gymnasium.wrappers.FlattenObservation)"
            )
        size = space.shape[0]
        if (
            isinstance(indices, str | bytes)
            or not indices
            or any(isinstance(i, bool) or not isinstance(i, int) for i in indices)
            or any(not 0 <= i < size for i in indices)
            or len(set(indices)) != len(indices)
        ):
            raise ValueError(
                f"indices must be distinct whole numbers in [0, {size}) for the observation "
                f"space {space}, got {indices!r}"
            )
        self.indices = np.asarray(list(indices), dtype=np.int64)
        self.observation_space = gym.spaces.Box(
            space.low[self.indices], space.high[self.indices], dtype=space.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation)[self.indices]
