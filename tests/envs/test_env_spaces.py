"""ObservationCodec / ActionCodec: how Gymnasium spaces become Observation / Action fields."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from coltra.buffers import Action
from coltra.envs.spaces import ActionCodec, ObservationCodec, action_batch_from_dict


def test_box_1d_is_a_vector_3d_is_an_image() -> None:
    vector = ObservationCodec(gym.spaces.Box(-1, 1, (4,), np.float64))
    assert vector.fields == {"vector": ((4,), np.dtype(np.float32))}
    image = ObservationCodec(gym.spaces.Box(0, 255, (7, 7, 3), np.uint8))
    assert image.fields == {"image": ((7, 7, 3), np.dtype(np.uint8))}
    encoded = image.encode(np.full((7, 7, 3), 200, np.uint8))
    assert encoded["image"].dtype == np.uint8 and encoded["image"][0, 0, 0] == 200


def test_box_2d_is_flattened_to_a_vector() -> None:
    codec = ObservationCodec(gym.spaces.Box(-1, 1, (2, 3), np.float32))
    assert codec.fields == {"vector": ((6,), np.dtype(np.float32))}
    raw = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert codec.encode(raw)["vector"].tolist() == [0, 1, 2, 3, 4, 5]


def test_discrete_observation_is_one_hot() -> None:
    codec = ObservationCodec(gym.spaces.Discrete(4, start=1))
    assert codec.encode(3)["vector"].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_dict_space_gives_one_field_per_key() -> None:
    space = gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 1, (5, 5, 2), np.float32),
            "rays": gym.spaces.Box(0, 1, (2, 4), np.float32),
            "goal": gym.spaces.Discrete(3),
        }
    )
    codec = ObservationCodec(space)
    batch = codec.encode_batch([space.sample(), space.sample(), space.sample()])
    assert sorted(batch.keys()) == ["goal", "image", "rays"]
    assert batch.image.shape == (3, 5, 5, 2)
    assert batch.rays.shape == (3, 8)
    assert batch.goal.shape == (3, 3) and batch.goal.sum() == 3.0
    assert batch.batch_size == 3


def test_multidiscrete_observation_is_one_hot_per_part() -> None:
    codec = ObservationCodec(gym.spaces.MultiDiscrete([3, 2], start=[1, 0]))
    assert codec.fields == {"vector": ((5,), np.dtype(np.float32))}
    assert codec.encode(np.array([2, 1]))["vector"].tolist() == [0, 1, 0, 0, 1]
    batch = codec.encode_batch([np.array([1, 0]), np.array([3, 1])])
    assert batch.vector.tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]]


def test_tuple_parts_are_named_by_index_and_nested_parts_by_their_path() -> None:
    """Issue 17: Blackjack-v1's Tuple(Discrete(32), Discrete(11), Discrete(2)), and nested
    Dict and Tuple parts flattened into dotted names."""
    blackjack = ObservationCodec(
        gym.spaces.Tuple([gym.spaces.Discrete(32), gym.spaces.Discrete(11), gym.spaces.Discrete(2)])
    )
    assert list(blackjack.fields) == ["0", "1", "2"]
    encoded = blackjack.encode((14, 10, 1))
    assert encoded["0"].argmax() == 14 and encoded["1"].argmax() == 10 and encoded["2"][1] == 1
    space = gym.spaces.Dict(
        {
            "goal": gym.spaces.Dict({"xy": gym.spaces.Box(-1, 1, (2,), np.float32)}),
            "sensors": gym.spaces.Tuple(
                [gym.spaces.MultiBinary(3), gym.spaces.Box(0, 1, (2, 2), np.float32)]
            ),
        }
    )
    codec = ObservationCodec(space)
    assert codec.fields == {
        "goal.xy": ((2,), np.dtype(np.float32)),
        "sensors.0": ((3,), np.dtype(np.float32)),
        "sensors.1": ((4,), np.dtype(np.float32)),
    }
    raw = {"goal": {"xy": np.array([0.5, -0.5])}, "sensors": (np.array([1, 0, 1]), np.eye(2))}
    batch = codec.encode_batch([raw, raw])
    assert batch["goal.xy"].tolist() == [[0.5, -0.5]] * 2
    assert batch["sensors.0"].tolist() == [[1, 0, 1]] * 2
    assert batch["sensors.1"].tolist() == [[1, 0, 0, 1]] * 2
    total = sum(shape[0] for shape, _ in codec.fields.values())
    assert total == gym.spaces.flatdim(space)  # what a model sizes its input from


def test_unsupported_spaces_are_named() -> None:
    with pytest.raises(TypeError) as error:
        ObservationCodec(gym.spaces.Text(5))
    assert str(error.value).startswith("observation space Text(")
    assert str(error.value).endswith(
        "is not supported; expected Box, Discrete, MultiDiscrete, MultiBinary, or a Dict or "
        "Tuple of those"
    )
    with pytest.raises(TypeError, match="action space Text"):
        ActionCodec(gym.spaces.Tuple([gym.spaces.Text(2)]))


def test_a_dict_action_is_one_joint_row_rebuilt_for_the_env() -> None:
    space = gym.spaces.Dict(
        {
            "move": gym.spaces.Discrete(3, start=-1),
            "aim": gym.spaces.Box(-1, 1, (2,), np.float32),
            "more": gym.spaces.Tuple([gym.spaces.MultiBinary(2), gym.spaces.MultiDiscrete([2, 3])]),
        }
    )
    codec = ActionCodec(space)
    assert codec.field == "joint" and codec.item_shape == (7,)  # aim 2, more 2 + 2, move 1
    assert [slots for _, _, slots in codec.parts] == [
        slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 7)
    ]  # fmt: skip
    row = np.array([0.5, 3.0, 1, 0, 1, 2, -1], np.float32)
    values = codec.check_batch(Action(joint=row[None]), 1)
    raw = codec.to_env(values[0])
    assert raw["move"] == -1 and isinstance(raw["move"], int)
    assert raw["aim"].tolist() == [0.5, 1.0]  # clipped on its way to the env
    assert raw["more"][0].tolist() == [1, 0] and raw["more"][1].tolist() == [1, 2]
    assert space.contains(raw)
    assert codec.zeros(2).tolist() == [[0, 0, 0, 0, 0, 0, -1]] * 2
    outside = r"'move' part\): action value\(s\) \[2\] outside Discrete\(3, start=-1\)"
    with pytest.raises(ValueError, match=outside):
        codec.check_batch(Action(joint=np.array([[0, 0, 0, 0, 0, 0, 2]], np.float32)), 1)
    with pytest.raises(ValueError, match=r"the 'more\.1' part of a .* takes whole numbers"):
        codec.check_batch(Action(joint=np.array([[0, 0, 0, 0, 0.5, 0, 0]], np.float32)), 1)


def test_multidiscrete_and_box_actions() -> None:
    codec = ActionCodec(gym.spaces.MultiDiscrete([3, 2]))
    values = codec.check_batch(Action(discrete=np.array([[2, 1], [0, 0]])), 2)
    assert values.shape == (2, 2)
    with pytest.raises(ValueError, match=r"\[3\] outside MultiDiscrete"):
        codec.check_batch(Action(discrete=np.array([[3, 1]])), 1)

    box = ActionCodec(gym.spaces.Box(-1, 1, (2, 2), np.float32))
    assert box.item_shape == (4,)
    raw = box.to_env(np.arange(4, dtype=np.float32))
    assert raw.shape == (2, 2) and raw.dtype == np.float32


def test_filler_rows_are_valid_actions() -> None:
    codec = ActionCodec(gym.spaces.Discrete(3, start=5))
    assert codec.zeros(2).tolist() == [5, 5]
    stacked = action_batch_from_dict(
        {"b": Action(discrete=7)}, ["a", "b"], np.array([False, True]), codec.space
    )
    assert stacked.discrete.tolist() == [5, 7]


def test_tensor_actions_are_accepted() -> None:
    import torch

    codec = ActionCodec(gym.spaces.Discrete(2))
    values = codec.check_batch(Action(discrete=torch.tensor([1, 0])), 2)
    assert isinstance(values, np.ndarray) and values.tolist() == [1, 0]
