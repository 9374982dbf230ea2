"""EpisodeTracker: returns and lengths summed per agent row, across rollouts."""

from __future__ import annotations

import numpy as np

from coltra.episodes import EpisodeTracker, FinishedEpisodes


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
