"""What every vectorised env shares: rows of all copies joined in copy order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np

from coltra.buffers import Action
from coltra.envs.base import EnvCrashedError, MultiAgentEnv, StepBatch, vec_agent_name
from coltra.envs.blocks import BlockLayout
from coltra.envs.spaces import LayoutActions

__all__ = ["EnvCreator", "VecEnv", "add_note", "check_copy_count"]

EnvCreator = Callable[[], MultiAgentEnv]


def check_copy_count(name: str, value: object) -> int:
    """``workers`` / ``envs_per_worker`` as a plain int, or an error naming the value."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be a whole number >= 1, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value}")
    return int(value)


def add_note(exc: BaseException, note: str) -> None:
    """Attach context to an exception that keeps its type (a no-op before Python 3.11)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


class VecEnv(MultiAgentEnv):
    """Several copies of one env seen as one MultiAgentEnv.

    Agent ``a`` of copy ``i`` is row ``name&env=i``; rows are ordered copy by copy, each
    copy in its own ``agent_names`` order, so ``rows_of_copy(i)`` is a contiguous slice.
    A copy whose agents are all done is reset in the same step: ``obs`` then holds its new
    first observation and ``final_obs`` the last one of the ended episode.
    """

    default_backend: ClassVar[str] = "inprocess"
    num_envs: int
    #: Index of this env's first copy (a subprocess worker holds a slice of the copies).
    first_index: int
    #: The crash that made this env unusable, if any (both backends stop after a crash).
    _crash: EnvCrashedError | None = None
    _closed: bool = False

    def _set_layout(
        self, names_per_copy: Sequence[Sequence[str]], layouts: Sequence[BlockLayout]
    ) -> None:
        """Rows of every copy, copy after copy; the copies' blocks (which must match) join."""
        self.num_envs = len(names_per_copy)
        self.base_agent_names = list(names_per_copy[0])
        self.agent_names = [
            vec_agent_name(name, self.first_index + copy)
            for copy, names in enumerate(names_per_copy)
            for name in names
        ]
        self._copy_slices: list[slice] = []
        start = 0
        for names in names_per_copy:
            self._copy_slices.append(slice(start, start + len(names)))
            start += len(names)
        self._set_layout_of_agents(BlockLayout.joined(layouts))
        self._actions = LayoutActions(self.layout)

    def rows_of_copy(self, copy: int) -> slice:
        """The rows that belong to env copy ``copy`` (counted within this env)."""
        return self._copy_slices[copy]

    def copy_of_row(self) -> np.ndarray:
        """For every row, the index of its env copy. ``[rows]``"""
        copies = np.empty(len(self.agent_names), dtype=np.int64)
        for copy, rows in enumerate(self._copy_slices):
            copies[rows] = self.first_index + copy
        return copies

    def _check_open(self) -> None:
        """Refuse to run after a crash or close(): the copies are gone."""
        if self._crash is not None:
            raise EnvCrashedError(
                f"this vectorised env stopped after a crash and cannot be used again; "
                f"the crash was: {self._crash}",
                self._crash.env_index,
            )
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed")

    def _check_actions(self, actions: Action) -> np.ndarray | Action:
        """The checked action values: an array for one block (the fast path), an Action of
        the blocks' fields for several."""
        active = self._check_ready()
        single = self._actions.single
        if single is not None:
            return single.check_batch(actions, len(self.agent_names), active)
        return self._actions.check_batch(actions, len(self.agent_names), active)


def copy_seed(seed: int | None, copy: int) -> int | None:
    return None if seed is None else seed + copy


def autoreset(step: StepBatch, reset: StepBatch) -> StepBatch:
    """A copy's finished step with its next episode's first observation in place."""
    return StepBatch(
        obs=reset.obs,
        reward=step.reward,
        terminated=step.terminated,
        truncated=step.truncated,
        active=reset.active,
        final_obs=step.obs if step.final_obs is None else step.final_obs,
        metrics=step.metrics,
    )
