"""Where an iteration's time goes: seconds per phase, under one key scheme.

The collector times ``env`` (stepping and resetting the env copies), ``forward`` (policy
forward passes: acting, and the values that bootstrap) and ``collect_other`` (its own
bookkeeping); the optimizer times ``gae`` (advantage estimation) and ``update`` (the rest of
the PPO update); the trainer adds ``other`` (logging, checkpoints, evaluation) for a whole
run. Each phase is logged as ``time/<phase>_s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["PHASES", "PhaseTimes"]

#: The phases of an iteration in the order they run, with the names the summary gives them.
PHASES = {
    "env": "env stepping",
    "forward": "policy forward",
    "collect_other": "collector bookkeeping",
    "gae": "advantages (GAE)",
    "update": "PPO update",
    "other": "logging, checkpoints, evaluation",
}


@dataclass
class PhaseTimes:
    """Seconds spent in each phase (keys of :data:`PHASES`)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        if phase not in PHASES:
            raise KeyError(f"unknown phase {phase!r}; phases are {list(PHASES)}")
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(seconds, 0.0)

    @contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        """Add the time the ``with`` block takes to ``phase``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)

    def merge(self, other: PhaseTimes) -> PhaseTimes:
        """These seconds plus ``other``'s (a new object)."""
        total = PhaseTimes(dict(self.seconds))
        for phase, seconds in other.seconds.items():
            total.add(phase, seconds)
        return total

    def __getitem__(self, phase: str) -> float:
        """Seconds of ``phase`` (0 when it did not run); a KeyError for a name that is no
        phase."""
        if phase not in PHASES:
            raise KeyError(f"unknown phase {phase!r}; phases are {list(PHASES)}")
        return self.seconds.get(phase, 0.0)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def metrics(self) -> dict[str, float]:
        """``{"time/env_s": ..., ...}`` in phase order."""
        return {f"time/{phase}_s": self.seconds[phase] for phase in PHASES if phase in self.seconds}

    def iteration_metrics(self, env_steps: int, agent_steps: int) -> dict[str, float]:
        """An iteration's time metrics: the phases, collection and the whole iteration
        (their sums), and its speed in env steps and agent steps per second."""
        collect = self["env"] + self["forward"] + self["collect_other"]
        elapsed = max(self.total, 1e-9)
        return {
            **self.metrics(),
            "time/collect_s": collect,
            "time/iteration_s": self.total,
            "charts/SPS": env_steps / elapsed,
            "charts/agent_SPS": agent_steps / elapsed,
        }

    def with_other(self, wall_seconds: float) -> PhaseTimes:
        """These phases plus ``other``: the wall time they do not cover (logging,
        checkpoints, callbacks, evaluation)."""
        times = PhaseTimes(dict(self.seconds))
        if "other" not in times.seconds:
            times.add("other", wall_seconds - times.total)
        return times

    def summary(self, wall_seconds: float) -> str:
        """One line for people, the wall time split by phase (``other`` included)::

        time: 5.4 s = env stepping 1.9 s (35%), policy forward 1.1 s (20%), ...
        """
        seconds = self.with_other(wall_seconds).seconds
        total = max(wall_seconds, 1e-9)
        parts = [
            f"{name} {seconds[phase]:.1f} s ({100 * seconds[phase] / total:.0f}%)"
            for phase, name in PHASES.items()
            if phase in seconds
        ]
        return f"time: {wall_seconds:.1f} s = " + ", ".join(parts)
