"""The counters of a run, in one object that a checkpoint saves and loads whole."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RunCounters"]


@dataclass
class RunCounters:
    """How far a run has come, over every session of it (a resumed run continues them).

    ``recent_returns`` holds the returns of the last ``return_window`` finished episodes:
    their mean is the run's reported return, ``best_return`` the best such mean so far.
    With several policies, ``policy_returns`` holds the same window for each policy's
    agents.
    """

    return_window: int
    iteration: int = 0
    env_steps: int = 0
    agent_steps: int = 0
    episodes: int = 0
    train_time: float = 0.0  # seconds spent in train()
    env_restarts: int = 0  # envs rebuilt after a crash
    best_return: float = -math.inf
    recent_returns: deque[float] = field(default_factory=deque)
    policy_returns: dict[str, deque[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.recent_returns = deque(self.recent_returns, maxlen=self.return_window)
        self.policy_returns = {
            policy: deque(values, maxlen=self.return_window)
            for policy, values in self.policy_returns.items()
        }

    def add_iteration(
        self,
        env_steps: int,
        agent_steps: int,
        returns: Iterable[float],
        policy_returns: Mapping[str, Iterable[float]] | None = None,
    ) -> None:
        """Count one iteration: its env and agent steps, and the returns of its episodes
        (of every agent, and by policy when there are several)."""
        finished = [float(value) for value in returns]
        self.iteration += 1
        self.env_steps += env_steps
        self.agent_steps += agent_steps
        self.episodes += len(finished)
        self.recent_returns.extend(finished)
        for policy, values in (policy_returns or {}).items():
            window = self.policy_returns.setdefault(policy, deque(maxlen=self.return_window))
            window.extend(float(value) for value in values)
        if self.recent_returns:
            self.best_return = max(self.best_return, self.window_return)

    @property
    def window_return(self) -> float:
        """Mean return of the last ``return_window`` finished episodes (nan before any)."""
        if not self.recent_returns:
            return math.nan
        return float(np.mean(self.recent_returns))

    def policy_window_return(self, policy: str) -> float:
        """The same mean over ``policy``'s agents' episodes (nan before any)."""
        window = self.policy_returns.get(policy)
        return float(np.mean(window)) if window else math.nan

    def reached(self, target: float | Mapping[str, float] | None) -> bool:
        """A full window of episodes whose mean return is at least ``target``; for a
        mapping, a full window of each named policy's episodes reaching its target."""
        if target is None:
            return False
        if isinstance(target, Mapping):
            return bool(target) and all(
                len(self.policy_returns.get(policy, ())) >= self.return_window
                and self.policy_window_return(policy) >= value
                for policy, value in target.items()
            )
        return len(self.recent_returns) >= self.return_window and self.window_return >= target

    def summary(self) -> dict[str, float]:
        """The counters as a ``train()`` summary reports them."""
        summary = {
            "iterations": float(self.iteration),
            "env_steps": float(self.env_steps),
            "agent_steps": float(self.agent_steps),
            "episodes": float(self.episodes),
            "return_mean": self.window_return,
            "best_return": self.best_return if self.best_return > -math.inf else math.nan,
        }
        for policy in self.policy_returns:
            summary[f"{policy}/return_mean"] = self.policy_window_return(policy)
        return summary

    def log_row(self) -> dict[str, float]:
        """The counters as a row of logged metrics (CleanRL's x axes: env steps)."""
        row = {
            "iteration": float(self.iteration),
            "charts/env_steps": float(self.env_steps),
            "charts/agent_steps": float(self.agent_steps),
            "charts/episodes": float(self.episodes),
        }
        if self.recent_returns:
            row["charts/episode_return_window"] = self.window_return
        for policy, window in self.policy_returns.items():
            if window:
                row[f"{policy}/charts/episode_return_window"] = self.policy_window_return(policy)
        return row

    def progress_fields(self, sps: float) -> dict[str, str]:
        """What the progress line shows: steps, speed, the window's return and the best."""
        fields = {"steps": f"{self.env_steps:,}", "SPS": f"{sps:,.0f}"}
        if self.policy_returns:  # several policies: each one's return, not a mix of teams
            for policy in self.policy_returns:
                fields[f"{policy} return"] = _shown(self.policy_window_return(policy))
            return fields
        fields["return"] = _shown(self.window_return)
        if self.best_return > -math.inf:
            fields["best"] = f"{self.best_return:.1f}"
        return fields

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "agent_steps": self.agent_steps,
            "episodes": self.episodes,
            "train_time": self.train_time,
            "env_restarts": self.env_restarts,
            "best_return": self.best_return,
            "recent_returns": list(self.recent_returns),
            "policy_returns": {
                policy: list(values) for policy, values in self.policy_returns.items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Counters saved by :meth:`state_dict` (KeyError/TypeError/ValueError if not)."""
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.agent_steps = int(state["agent_steps"])
        self.episodes = int(state["episodes"])
        self.train_time = float(state["train_time"])
        self.env_restarts = int(state.get("env_restarts", 0))
        self.best_return = float(state["best_return"])
        self.recent_returns = deque(
            (float(value) for value in state["recent_returns"]), maxlen=self.return_window
        )
        self.policy_returns = {
            str(policy): deque((float(value) for value in values), maxlen=self.return_window)
            for policy, values in state.get("policy_returns", {}).items()
        }


def _shown(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"
