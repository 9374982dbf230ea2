"""Every env copy in this process: the right backend for cheap envs such as CartPole."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from coltra.buffers import Action
from coltra.envs.base import EnvCrashedError, MultiAgentEnv, StepBatch, StepBuffers
from coltra.envs.vector.base import EnvCreator, VecEnv, add_note, copy_seed

__all__ = ["InProcessVecEnv"]

T = TypeVar("T")


class InProcessVecEnv(VecEnv):
    """Steps its copies one after another in this process.

    ``seed`` seeds copy ``i`` with ``seed + first_index + i`` at the first reset.

    A copy that cannot be built raises its own error (e.g. a ``ValueError`` for an unknown
    Gymnasium id), with a note naming the copy. A copy that raises in reset, step or render
    raises ``EnvCrashedError`` naming the copy (the original error is its ``__cause__``);
    after that every copy is closed and the env refuses further use, as the subprocess
    backend does.
    """

    def __init__(
        self,
        env_fns: Sequence[EnvCreator],
        seed: int | None = None,
        first_index: int = 0,
    ) -> None:
        if len(env_fns) == 0:
            raise ValueError("a vectorised env needs at least one env copy")
        self.first_index = first_index
        self._seed = seed
        self.envs: list[MultiAgentEnv] = []
        for copy, env_fn in enumerate(env_fns):
            index = first_index + copy
            try:
                env = env_fn()
            except Exception as exc:
                # Not a crash but a setup mistake (bad id, wrong env type): keep its type.
                add_note(exc, f"(raised while building env copy {index})")
                self._close_copies()
                raise
            if not isinstance(env, MultiAgentEnv):
                self._close_copies()
                raise TypeError(
                    f"env copy {index}: the env creator returned {type(env).__name__}, "
                    "expected a coltra MultiAgentEnv (wrap Gymnasium envs in MultiGymEnv)"
                )
            if any(env is built for built in self.envs):
                self._close_copies()
                raise ValueError(
                    f"env copy {index}: the env creator returned an env object it had returned "
                    "for an earlier copy; it must build a new env on every call (copies of one "
                    "object would all step the same env)"
                )
            self.envs.append(env)
        for copy, env in enumerate(self.envs):
            if len(env.agent_names) == 0:
                self._close_copies()
                raise ValueError(
                    f"env copy {first_index + copy} has no agents (empty agent_names); a "
                    "vectorised env needs at least one agent per copy"
                )
        try:
            self._set_layout(
                [env.agent_names for env in self.envs], [env.layout for env in self.envs]
            )
        except ValueError as exc:  # copies whose agents' spaces differ
            self._close_copies()
            raise ValueError(f"env copies {first_index}..: {exc}") from None
        self._copy_starts = np.array([rows.start for rows in self._copy_slices], dtype=np.int64)

    def _call(self, copy: int, phase: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` for copy ``copy``, turning any failure into an error naming the copy."""
        try:
            return fn(*args)
        except Exception as exc:
            index = self.first_index + copy
            error = EnvCrashedError(
                f"env copy {index} raised in {phase}: {type(exc).__name__}: {exc}", index, phase
            )
            self._crash = error
            self._close_copies()
            raise error from exc

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        self._check_open()
        if seed is None:
            seed, self._seed = self._seed, None
        parts = [
            self._call(copy, "reset", env.reset_batch, copy_seed(seed, self.first_index + copy))
            for copy, env in enumerate(self.envs)
        ]
        batch = StepBatch.concat(parts)
        self._obs_layout = {
            name: (tuple(value.shape[1:]), value.dtype) for name, value in batch.obs.items()
        }
        return self._remember(batch)

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_open()
        values = self._check_actions(actions)  # checked once for all copies
        return self._remember(self._step_copies(range(self.num_envs), values))

    def part_copies(self) -> list[range]:
        """This env's copies in two parts (first half, second half), for stepping one part
        while the policy acts for the other (overlapped collection); needs two copies."""
        half = (self.num_envs + 1) // 2
        return [range(0, half), range(half, self.num_envs)]

    def step_part(self, part: int, actions: Action) -> StepBatch:
        """Step only the copies of ``part_copies()[part]`` with actions for their rows; the
        other copies wait. Returns those rows (single-block envs only)."""
        self._check_open()
        copies = self.part_copies()[part]
        rows = slice(self._copy_slices[copies[0]].start, self._copy_slices[copies[-1]].stop)
        active = self._check_ready()
        single = self._actions.single
        if single is None:
            raise TypeError("stepping part of the copies needs an env with one block of spaces")
        values = single.check_batch(actions, rows.stop - rows.start, active[rows])
        batch = self._step_copies(copies, values)
        self._active_rows = active.copy()
        self._active_rows[rows] = batch.active
        return batch

    def _step_copies(self, copies: range, values: np.ndarray | Action) -> StepBatch:
        """Step ``copies`` (consecutive) with checked ``values`` for their rows (``[their
        rows, ...]``), resetting those that end; returns their rows."""
        offset = self._copy_slices[copies[0]].start
        out = StepBuffers.like(self._obs_layout, self._copy_slices[copies[-1]].stop - offset)
        for copy in copies:
            rows = self._copy_slices[copy]
            local = slice(rows.start - offset, rows.stop - offset)
            if isinstance(values, Action):  # several blocks: no fast path
                self._call(
                    copy, "step", _step_and_write, self.envs[copy], values[local], out, local
                )
            else:
                self._call(copy, "step", self.envs[copy].step_into, values[local], out, local)
        # Same-step autoreset: a copy whose agents are all done starts its next episode now.
        # Most steps nobody is done; otherwise one reduction over the rows finds the copies.
        if not out.active.all():
            starts = self._copy_starts[copies.start : copies.stop] - offset
            copy_active = np.logical_or.reduceat(out.active, starts)
            for index in np.flatnonzero(~copy_active).tolist():
                copy = copies[index]
                rows = self._copy_slices[copy]
                local = slice(rows.start - offset, rows.stop - offset)
                self._call(copy, "reset", self.envs[copy].reset_into, out, local, None)
        return out.batch()

    def render(self) -> Any:
        self._check_open()
        return self._call(0, "render", self.envs[0].render)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_copies()

    def _close_copies(self) -> None:
        """Close every copy built so far; one failing close does not stop the others."""
        for env in getattr(self, "envs", []):
            try:
                env.close()
            except Exception:  # best effort while shutting down
                pass


def _step_and_write(env: MultiAgentEnv, actions: Action, out: StepBuffers, rows: slice) -> None:
    """One copy's step through ``step_batch``, written into its rows of ``out``."""
    out.write(rows, env.step_batch(actions))
