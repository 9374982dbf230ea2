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

    def __post_init__(self) -> None:
        self.recent_returns = deque(self.recent_returns, maxlen=self.return_window)

    def add_iteration(self, env_steps: int, agent_steps: int, returns: Iterable[float]) -> None:
        """Count one iteration: its env and agent steps, and the returns of its episodes."""
        finished = [float(value) for value in returns]
        self.iteration += 1
        self.env_steps += env_steps
        self.agent_steps += agent_steps
        self.episodes += len(finished)
        self.recent_returns.extend(finished)
        if self.recent_returns:
            self.best_return = max(self.best_return, self.window_return)

    @property
    def window_return(self) -> float:
        """Mean return of the last ``return_window`` finished episodes (nan before any)."""
        if not self.recent_returns:
            return math.nan
        return float(np.mean(self.recent_returns))

    def reached(self, target: float | None) -> bool:
        """A full window of episodes whose mean return is at least ``target``."""
        return (
            target is not None
            and len(self.recent_returns) >= self.return_window
            and self.window_return >= target
        )

    def summary(self) -> dict[str, float]:
        """The counters as a ``train()`` summary reports them."""
        return {
            "iterations": float(self.iteration),
            "env_steps": float(self.env_steps),
            "agent_steps": float(self.agent_steps),
            "episodes": float(self.episodes),
            "return_mean": self.window_return,
            "best_return": self.best_return if self.best_return > -math.inf else math.nan,
        }

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
        return row

    def progress_fields(self, sps: float) -> dict[str, str]:
        """What the progress line shows: steps, speed, the window's return and the best."""
        window = self.window_return
        fields = {
            "steps": f"{self.env_steps:,}",
            "SPS": f"{sps:,.0f}",
            "return": "-" if math.isnan(window) else f"{window:.1f}",
        }
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
