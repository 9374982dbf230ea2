"""metrics.csv and the reduction of episodes and env metrics into a logged row."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from coltra.episodes import FinishedEpisodes
from coltra.logs import EpisodeLog, MetricsCSV


def test_metrics_csv_widens_its_header_when_a_metric_appears(tmp_path: Path) -> None:
    log = MetricsCSV(tmp_path / "metrics.csv")
    log.write({"iteration": 1, "a": 0.5})
    log.write({"iteration": 2, "a": 0.25, "b": 3})
    log.write({"iteration": 3, "b": 4})
    with (tmp_path / "metrics.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows == [
        ["iteration", "a", "b"],
        ["1.0", "0.5", ""],
        ["2.0", "0.25", "3.0"],
        ["3.0", "", "4.0"],
    ]
    MetricsCSV(tmp_path / "metrics.csv", keep_until_iteration=2)  # a resume drops row 3
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1] == "2.0,0.25,3.0"


def episodes(rows: list[int], returns: list[float], lengths: list[int]) -> FinishedEpisodes:
    return FinishedEpisodes(np.array(rows), np.array(returns), np.array(lengths))


def test_episodes_between_two_rows_are_reduced_per_policy() -> None:
    log = EpisodeLog()
    log.add(episodes([0, 2], [1.0, 3.0], [5, 7]), {"e_episode_reward": np.array([1.0, 3.0])})
    log.add(episodes([1], [-2.0], [2]), {"m_speed": np.array([0.5]), "other": np.array([9.0])})
    row = log.reduce({"pursuer": np.array([0, 1]), "evader": np.array([2])})
    assert row["charts/episode_return_mean"] == pytest.approx(2 / 3)
    assert (row["charts/episode_return_min"], row["charts/episode_return_max"]) == (-2.0, 3.0)
    assert row["charts/episode_length_mean"] == pytest.approx(14 / 3)
    assert row["pursuer/charts/episode_return_mean"] == -0.5
    assert row["evader/charts/episode_return_mean"] == 3.0
    assert row["env/e_episode_reward_mean"] == 2.0 and row["env/m_speed_mean"] == 0.5
    assert "env/other_mean" not in row  # only m_* and e_* are env metrics
    assert log.reduce({"crowd": np.arange(3)}) == {}  # emptied
    log.add(episodes([0], [1.0], [1]), {})
    assert "crowd/charts/episode_return_mean" not in log.reduce({"crowd": np.arange(3)})
