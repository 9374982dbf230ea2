"""Episode bookkeeping: the one place where returns and lengths are summed, per agent row.

The collector owns an :class:`EpisodeTracker` across rollouts (an episode longer than one
rollout still ends and is counted); evaluation runs one of its own. Finished episodes keep
the row they ended on, so they split by policy (:meth:`FinishedEpisodes.select`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from coltra.names import parse_agent_name

__all__ = ["EpisodeTracker", "FinishedEpisodes", "TeamReturns"]


@dataclass(frozen=True)
class FinishedEpisodes:
    """Episodes that ended, in the order they ended. ``[episodes]`` each"""

    rows: np.ndarray  # int64: the agent row each episode was played on
    returns: np.ndarray  # float64: the sum of its rewards
    lengths: np.ndarray  # int64: its agent steps

    @classmethod
    def none(cls) -> FinishedEpisodes:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: list[FinishedEpisodes]) -> FinishedEpisodes:
        """The episodes of several parts, in order."""
        if not parts:
            return cls.none()
        return cls(
            np.concatenate([part.rows for part in parts]),
            np.concatenate([part.returns for part in parts]),
            np.concatenate([part.lengths for part in parts]),
        )

    def __len__(self) -> int:
        return len(self.rows)

    def select(self, rows: np.ndarray) -> FinishedEpisodes:
        """The episodes played on ``rows`` (e.g. one policy's rows)."""
        keep = np.isin(self.rows, rows)
        return FinishedEpisodes(self.rows[keep], self.returns[keep], self.lengths[keep])


class EpisodeTracker:
    """Running return and length of every row's current episode, and the episodes that ended
    since the last :meth:`drain`."""

    def __init__(self, rows: int) -> None:
        self.returns = np.zeros(rows, np.float64)  # [rows]
        self.lengths = np.zeros(rows, np.int64)  # [rows]
        self._finished: list[FinishedEpisodes] = []

    @property
    def rows(self) -> int:
        return len(self.returns)

    def step(self, reward: np.ndarray, acted: np.ndarray, done: np.ndarray) -> None:
        """One env step: ``reward`` of the rows that ``acted`` (others must be 0, as in a
        StepBatch), and ``done`` where their episode ended. ``[rows]`` each"""
        self.returns += reward
        self.lengths += acted
        ended = done & acted
        if ended.any():
            rows = np.flatnonzero(ended)
            self._finished.append(
                FinishedEpisodes(rows, self.returns[rows].copy(), self.lengths[rows].copy())
            )
            self.returns[rows] = 0.0
            self.lengths[rows] = 0

    def drain(self) -> FinishedEpisodes:
        """The episodes that ended since the last call."""
        finished, self._finished = FinishedEpisodes.concat(self._finished), []
        return finished


class TeamReturns:
    """Team totals: the sum of the returns of one env copy's agents of a policy, once each
    of them has ended its episode (the return of the team, where the env rewards each agent
    for what the team does). Policies with one agent per copy have none: that is the
    agent's own return."""

    def __init__(self, agent_names: Sequence[str], policy_rows: Mapping[str, np.ndarray]) -> None:
        copies = np.array([parse_agent_name(name)[1] or 0 for name in agent_names], np.int64)
        self.team_of_row = np.full(len(agent_names), -1, np.int64)  # [rows]
        self.policy_of_team: list[str] = []
        self.team_rows: list[np.ndarray] = []
        for policy, rows in policy_rows.items():
            rows = np.asarray(rows, np.int64)
            for copy in np.unique(copies[rows]):
                members = rows[copies[rows] == copy]
                if len(members) > 1:
                    self.team_of_row[members] = len(self.team_rows)
                    self.policy_of_team.append(policy)
                    self.team_rows.append(members)
        self.sums = np.zeros(len(self.team_rows), np.float64)  # [teams]
        self.ended = np.zeros(len(agent_names), bool)  # [rows] ended since the team's last total

    def add(self, finished: FinishedEpisodes) -> dict[str, list[float]]:
        """The team totals ``finished`` completes, by policy."""
        totals: dict[str, list[float]] = {}
        if not self.team_rows:
            return totals
        teams = self.team_of_row[finished.rows]
        for row, team, value in zip(finished.rows, teams, finished.returns):
            if team < 0:
                continue
            self.sums[team] += value
            self.ended[row] = True
            members = self.team_rows[team]
            if self.ended[members].all():
                totals.setdefault(self.policy_of_team[team], []).append(float(self.sums[team]))
                self.sums[team] = 0.0
                self.ended[members] = False
        return totals
