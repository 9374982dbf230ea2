"""Plain-data descriptions of spaces, as checkpoints save them (coltra.models.base)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from coltra.models.base import space_from_dict, space_to_dict


@pytest.mark.parametrize(
    "space",
    [
        gym.spaces.Box(-1.0, 2.0, (3,), np.float32),
        gym.spaces.Box(0, 255, (4, 4, 3), np.uint8),
        gym.spaces.Discrete(5, start=-2),
        gym.spaces.MultiDiscrete([3, 2], start=[1, 0]),
        gym.spaces.MultiDiscrete([3, 4], dtype=np.int32),
        gym.spaces.MultiBinary(4),
        gym.spaces.MultiBinary((2, 3)),
        gym.spaces.Tuple(
            [gym.spaces.Discrete(32), gym.spaces.Discrete(11), gym.spaces.Discrete(2)]
        ),
        gym.spaces.Dict(
            {
                "goal": gym.spaces.Dict({"xy": gym.spaces.Box(-1, 1, (2,), np.float32)}),
                "sensors": gym.spaces.Tuple([gym.spaces.MultiBinary(3)]),
            }
        ),
    ],
    ids=str,
)
def test_every_supported_space_survives_a_round_trip_through_json(space: gym.Space) -> None:
    """Issue 17: MultiBinary(4) came back as MultiBinary((4,)), which Gymnasium counts as
    another space, and a MultiDiscrete lost its start."""
    described = json.loads(json.dumps(space_to_dict(space)))
    assert space_from_dict(described) == space


def test_a_space_without_a_description_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="cannot describe space Text"):
        space_to_dict(gym.spaces.Text(3))
    with pytest.raises(ValueError, match="unknown space type 'Graph'"):
        space_from_dict({"type": "Graph"})
