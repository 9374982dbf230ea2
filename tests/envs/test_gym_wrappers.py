"""Gymnasium wrappers a config can name (coltra.envs.gym_wrappers)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from coltra.envs.gym_wrappers import SelectObservation


def test_cartpole_without_its_velocities() -> None:
    env = SelectObservation(gym.make("CartPole-v1"), indices=[0, 2])
    full = env.unwrapped.observation_space
    assert isinstance(full, gym.spaces.Box)
    assert env.observation_space == gym.spaces.Box(full.low[[0, 2]], full.high[[0, 2]])
    obs, _ = env.reset(seed=0)
    state = np.asarray(env.unwrapped.state, dtype=np.float32)  # x, x_dot, theta, theta_dot
    assert obs.tolist() == state[[0, 2]].tolist()
    obs, *_ = env.step(1)
    assert obs.tolist() == np.asarray(env.unwrapped.state, np.float32)[[0, 2]].tolist()


@pytest.mark.parametrize("indices", [[], [0, 4], [1, 1], [True], "02"])
def test_bad_indices_are_named(indices: object) -> None:
    with pytest.raises(ValueError, match=r"distinct whole numbers in \[0, 4\)"):
        SelectObservation(gym.make("CartPole-v1"), indices=indices)  # type: ignore[arg-type]


def test_only_flat_boxes() -> None:
    with pytest.raises(ValueError, match="takes a 1-D Box observation, got Discrete"):
        SelectObservation(gym.make("FrozenLake-v1"), indices=[0])
