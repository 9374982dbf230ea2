"""Self-play, the simplest loop: a frozen opponent that is now and then a copy of a learner.

A learning policy plays against a frozen one, and every ``every`` iterations the frozen one
gets the learner's current weights (``trainer.snapshot_every`` and
``policies.<frozen>.snapshot_of: <learner>`` in a config). Between snapshots the opponent
is a fixed target, which keeps PPO's on-policy data stationary; at a snapshot the learner
faces its own recent self. The frozen policy acts with the snapshot's weights and is saved
with every checkpoint, so a resumed run goes on against the same opponent.
"""

from __future__ import annotations

from collections.abc import Mapping

from coltra.checkpoints import copy_agent_weights, weights_mismatch
from coltra.groups import MacroAgent

__all__ = ["Snapshots"]


class Snapshots:
    """Copies ``pairs`` (frozen policy -> learning policy it copies) every ``every``
    iterations, counted from the start of the run."""

    def __init__(self, group: MacroAgent, pairs: Mapping[str, str], every: int) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"snapshots need every >= 1 iterations, got {every!r}")
        for target, source in pairs.items():
            for name in (target, source):
                if name not in group.policies:
                    raise ValueError(
                        f"snapshot {source!r} -> {target!r}: no policy {name!r} in the group "
                        f"({group.policy_names})"
                    )
            if target not in group.frozen:
                raise ValueError(
                    f"snapshot target {target!r} must be frozen (otherwise it learns, and each "
                    "snapshot overwrites what it learned)"
                )
            if source in group.frozen:
                raise ValueError(f"snapshot source {source!r} is frozen: it never changes")
            problem = weights_mismatch(group.policies[source], group.policies[target])
            if problem:
                raise ValueError(
                    f"policy {source!r} cannot be copied into {target!r}: its agent {problem}"
                )
        self.group = group
        self.pairs = dict(pairs)
        self.every = every

    def take(self, targets: list[str] | None = None) -> None:
        """Copy each learner into its frozen policy now (``targets``: only those)."""
        for target, source in self.pairs.items():
            if targets is None or target in targets:
                copy_agent_weights(self.group.policies[source], self.group.policies[target])

    def after_iteration(self, iteration: int) -> dict[str, float]:
        """Take the snapshots that are due after ``iteration``; metrics say which iteration's
        weights each frozen policy acts with from now on."""
        if iteration % self.every == 0:
            self.take()
        last = iteration - iteration % self.every
        return {f"{target}/charts/snapshot_iteration": float(last) for target in self.pairs}
