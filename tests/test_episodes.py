"""EpisodeTracker: returns and lengths summed per agent row, across rollouts."""

from __future__ import annotations

import numpy as np

from coltra.episodes import EpisodeTracker, FinishedEpisodes, TeamReturns


def test_episodes_end_per_row_and_keep_their_row() -> None:
    tracker = EpisodeTracker(rows=3)
    acted = np.array([True, True, False])
    tracker.step(np.array([1.0, 2.0, 0.0]), acted, np.array([False, False, False]))
    tracker.step(np.array([1.0, 2.0, 0.0]), acted, np.array([True, False, False]))
    first = tracker.drain()
    np.testing.assert_array_equal(first.rows, [0])
    np.testing.assert_array_equal(first.returns, [2.0])
    np.testing.assert_array_equal(first.lengths, [2])
    assert len(tracker.drain()) == 0  # drained
    # Row 1's episode runs on across the drain; row 0 starts afresh.
    tracker.step(np.array([5.0, 2.0, 0.0]), acted, np.array([True, True, False]))
    second = tracker.drain()
    np.testing.assert_array_equal(second.rows, [0, 1])
    np.testing.assert_array_equal(second.returns, [5.0, 6.0])
    np.testing.assert_array_equal(second.lengths, [1, 3])
    both = FinishedEpisodes.concat([first, second])
    np.testing.assert_array_equal(both.select(np.array([0])).returns, [2.0, 5.0])


def test_a_done_flag_of_a_row_that_did_not_act_ends_nothing() -> None:
    tracker = EpisodeTracker(rows=2)
    tracker.step(np.zeros(2), np.array([True, False]), np.array([False, True]))
    assert len(tracker.drain()) == 0


def test_a_team_total_sums_a_copys_agents_of_a_policy_once_all_have_ended() -> None:
    names = ["a_0&env=0", "a_1&env=0", "b_0&env=0", "a_0&env=1", "a_1&env=1", "b_0&env=1"]
    teams = TeamReturns(names, {"a": np.array([0, 1, 3, 4]), "b": np.array([2, 5])})
    # b has one agent per copy: no team of its own.
    assert teams.policy_of_team == ["a", "a"]

    def ended(rows: list[int], returns: list[float]) -> FinishedEpisodes:
        return FinishedEpisodes(
            np.array(rows, np.int64), np.array(returns), np.ones(len(rows), np.int64)
        )

    # Copy 0's a_0 ends first, then a_1 with copy 1's a_0: copy 0's team is complete.
    assert teams.add(ended([0, 2], [1.0, 7.0])) == {}
    assert teams.add(ended([1, 3], [2.5, 4.0])) == {"a": [3.5]}
    # The next episode of copy 0 starts from nothing; copy 1 completes with its a_1.
    assert teams.add(ended([4, 0, 1], [0.5, 2.0, 2.0])) == {"a": [4.5, 4.0]}
