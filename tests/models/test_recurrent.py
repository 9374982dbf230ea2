"""Recurrent cores (issue 17): one step per row for acting, whole sequences with resets for
backpropagation through time, and MLPModel's ``recurrent`` option."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from coltra.buffers import Observation
from coltra.models import MLPModel
from coltra.models.recurrent import RecurrentCore

BOX = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
DISCRETE = gym.spaces.Discrete(2)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_sequence_with_resets_equals_stepping_each_row_and_zeroing_where_flagged(
    kind: str,
) -> None:
    torch.manual_seed(0)
    core = RecurrentCore(kind, 4, 6)
    sequences, length = 3, 5
    x = torch.randn(sequences * length, 4)
    starts = torch.zeros(sequences, length, dtype=torch.bool)
    starts[0, 2] = starts[2, 0] = starts[2, 4] = True
    first = tuple(torch.randn(sequences, 6) for _ in range(core.parts))
    out, last = core(x, first, starts)

    state = first
    steps = x.reshape(sequences, length, 4)
    expected = []
    for t in range(length):
        state = tuple(torch.where(starts[:, t, None], 0.0, part) for part in state)
        y, state = core(steps[:, t], state)
        expected.append(y)
    assert torch.equal(out, torch.stack(expected, 1).reshape(sequences * length, 6))
    assert all(torch.equal(a, b) for a, b in zip(last, state))


def test_a_core_has_two_state_tensors_for_an_lstm_and_one_for_a_gru() -> None:
    assert RecurrentCore("lstm", 2, 3).parts == 2
    assert RecurrentCore("gru", 2, 3).parts == 1
    with pytest.raises(ValueError, match="'lstm' or 'gru', got 'rnn'"):
        RecurrentCore("rnn", 2, 3)
    with pytest.raises(ValueError, match="LSTM core's state has 2 tensors, got 1"):
        RecurrentCore("lstm", 2, 3)(torch.zeros(1, 2), (torch.zeros(1, 3),))


@pytest.mark.parametrize(
    ("settings", "parts"),
    [
        ({"recurrent": "lstm"}, 4),  # (h, c) of the policy core, then of the value core
        ({"recurrent": "gru"}, 2),
        ({"recurrent": "lstm", "shared_backbone": True}, 2),  # one core under both heads
        ({"recurrent": "gru", "hidden_sizes": []}, 2),  # the cores read the features
    ],
)
def test_the_initial_state_is_zeros_per_core_part(settings: dict[str, object], parts: int) -> None:
    model = MLPModel({"recurrent_size": 8, **settings}, BOX, DISCRETE)
    state = model.get_initial_state(5)
    assert model.recurrent and len(state) == parts
    assert all(part.shape == (5, 8) and not part.any() for part in state)


def test_a_feed_forward_model_has_no_state() -> None:
    model = MLPModel({}, BOX, DISCRETE)
    assert not model.recurrent and model.get_initial_state(3) == ()


def test_the_state_carries_memory_and_the_value_matches_the_forward_pass() -> None:
    torch.manual_seed(0)
    model = MLPModel({"recurrent": "lstm", "recurrent_size": 8}, BOX, DISCRETE)
    obs = Observation(vector=np.full((2, 3), 0.5, np.float32)).tensor()
    with torch.no_grad():
        first, state, extra = model(obs, (), get_value=True)
        second, _, _ = model(obs, state)
        value = model.value(obs, ())
    assert not torch.equal(first.logits, second.logits)  # same input, other memory
    assert any(part.abs().sum() > 0 for part in state)
    assert torch.equal(value, extra["value"])


def test_forward_sequences_gives_the_steps_of_forward() -> None:
    """Acting step by step and scoring the same steps as one sequence agree: the sequence
    path is what PPO trains on, the step path what collection acted with."""
    torch.manual_seed(1)
    model = MLPModel({"recurrent": "gru", "recurrent_size": 8, "value_norm": True}, BOX, DISCRETE)
    rows, length = 2, 4
    x = torch.randn(length, rows, 3)
    starts = torch.zeros(rows, length, dtype=torch.bool)
    starts[1, 2] = True
    state = model.get_initial_state(rows)
    logits, values = [], []
    with torch.no_grad():
        for t in range(length):
            keep = (~starts[:, t]).float()[:, None]
            state = tuple(part * keep for part in state)
            dist, state, extra = model(Observation(vector=x[t]), state, get_value=True)
            logits.append(dist.logits)
            values.append(extra["value"])
        sequence_obs = Observation(vector=x.transpose(0, 1).reshape(rows * length, 3))
        dist, _, extra = model.forward_sequences(
            sequence_obs, model.get_initial_state(rows), starts
        )
    torch.testing.assert_close(dist.logits, torch.stack(logits, 1).reshape(rows * length, 2))
    torch.testing.assert_close(extra["value"], torch.stack(values, 1).reshape(-1))


def test_a_state_of_the_wrong_shape_is_a_clear_error() -> None:
    model = MLPModel({"recurrent": "lstm", "recurrent_size": 8}, BOX, DISCRETE)
    obs = Observation(vector=np.zeros((2, 3), np.float32)).tensor()
    with pytest.raises(ValueError) as error:
        model(obs, model.get_initial_state(3))
    assert str(error.value) == (
        "recurrent state has tensors of shapes [[3, 8], [3, 8], [3, 8], [3, 8]]; this LSTM "
        "model needs 4 tensors of shape [2, 8] (get_initial_state(2))"
    )


def test_networks_per_agent_cannot_be_recurrent() -> None:
    space = gym.spaces.Dict({"vector": BOX, "agent_id": gym.spaces.Box(0, 1, (2,), np.float32)})
    with pytest.raises(ValueError, match="share_actor and share_critic must both be true"):
        MLPModel({"recurrent": "gru", "share_actor": False}, space, DISCRETE)


def test_a_recurrent_state_critic_reads_the_state_field() -> None:
    space = gym.spaces.Dict({"vector": BOX, "state": gym.spaces.Box(-1.0, 1.0, (5,), np.float32)})
    model = MLPModel({"recurrent": "gru", "critic": "state", "recurrent_size": 4}, space, DISCRETE)
    obs = Observation(
        vector=np.zeros((2, 3), np.float32), state=np.ones((2, 5), np.float32)
    ).tensor()
    other = Observation(
        vector=np.zeros((2, 3), np.float32), state=-np.ones((2, 5), np.float32)
    ).tensor()
    with torch.no_grad():
        assert not torch.equal(model.value(obs), model.value(other))
        assert torch.equal(model(obs)[0].logits, model(other)[0].logits)  # decentralised


def test_starts_must_be_a_bool_grid_that_fits_the_input() -> None:
    core = RecurrentCore("gru", 3, 4)
    state = core.initial_state(2, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"bool tensor, got torch.uint8 of shape \[2, 3\]"):
        core(torch.zeros(6, 3), state, torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"5 rows of input for 2 sequences of 3 steps"):
        core(torch.zeros(5, 3), state, torch.zeros(2, 3, dtype=torch.bool))
