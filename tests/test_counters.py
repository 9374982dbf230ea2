"""RunCounters: one object for a run's counters, saved and loaded whole."""

from __future__ import annotations

import math

import pytest

from coltra.counters import RunCounters


def test_iterations_count_steps_episodes_and_the_return_window() -> None:
    counters = RunCounters(return_window=3)
    assert math.isnan(counters.window_return) and not counters.reached(0.0)
    counters.add_iteration(env_steps=10, agent_steps=20, returns=[1.0, 2.0])
    counters.add_iteration(env_steps=10, agent_steps=15, returns=[3.0, 6.0])
    assert (counters.iteration, counters.env_steps, counters.agent_steps) == (2, 20, 35)
    assert counters.episodes == 4
    assert list(counters.recent_returns) == [2.0, 3.0, 6.0]  # the last three
    assert counters.window_return == pytest.approx(11 / 3)
    assert counters.best_return == pytest.approx(11 / 3)  # after iteration 1: 1.5
    assert counters.reached(11 / 3) and not counters.reached(4.0) and not counters.reached(None)
    assert counters.summary()["return_mean"] == pytest.approx(11 / 3)
    assert counters.progress_fields(1234.5) == {
        "steps": "20",
        "SPS": "1,234",
        "return": "3.7",
        "best": "3.7",
    }


def test_the_state_round_trips_whole() -> None:
    counters = RunCounters(return_window=2, train_time=1.5, env_restarts=1)
    counters.add_iteration(8, 8, [0.5, 1.5, 2.5])
    restored = RunCounters(return_window=2)
    restored.load_state_dict(counters.state_dict())
    assert restored == counters
    with pytest.raises(KeyError):
        restored.load_state_dict({"iteration": 1})


def test_several_policies_have_their_own_windows_and_stop_targets() -> None:
    counters = RunCounters(return_window=2)
    counters.add_iteration(4, 8, [1.0, 3.0, 0.0], {"red": [1.0, 3.0], "blue": [0.0]})
    assert counters.policy_window_return("red") == 2.0
    assert counters.policy_window_return("blue") == 0.0
    assert math.isnan(counters.policy_window_return("green"))
    # Each named policy needs a full window reaching its target.
    assert counters.reached({"red": 2.0})
    assert not counters.reached({"red": 2.0, "blue": 0.0})  # blue's window is not full
    counters.add_iteration(4, 8, [5.0], {"blue": [5.0]})
    assert counters.reached({"red": 2.0, "blue": 2.5}) and not counters.reached({"blue": 2.6})
    assert counters.summary()["red/return_mean"] == 2.0
    assert counters.log_row()["blue/charts/episode_return_window"] == 2.5
    # The progress line shows each policy's return, not a mean over teams.
    assert counters.progress_fields(10.0) == {
        "steps": "8",
        "SPS": "10",
        "red return": "2.0",
        "blue return": "2.5",
    }
    restored = RunCounters(return_window=2)
    restored.load_state_dict(counters.state_dict())
    assert restored == counters
