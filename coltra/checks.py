"""Guards at the boundary between an environment and training: NaN and inf from the env.

An env that returns NaN or inf in an observation or a reward poisons training quietly: the
network's outputs turn NaN and the failure surfaces later, as a NaN loss far from its cause.
:class:`FiniteCheckedEnv` wraps the env the trainer's collector steps and looks at every
step as it comes out of the env. In ``"raise"`` mode (the default) the first non-finite
value is a :class:`NonFiniteError` naming the agent, the step and the value. In ``"drop"``
mode the value is replaced by 0 before any network sees it and the step is remembered, so
the trainer can leave the affected entries out of training (:func:`drop_entries`) and count
them.

Only values that matter are checked: observations of rows that act next, rewards of rows
that acted, and final observations of rows whose episode ended (other rows of a step may
hold anything, see :class:`~coltra.envs.base.StepBatch`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from coltra.buffers import MemoryRecord, Observation, to_numpy
from coltra.envs.base import MultiAgentEnv, StepBatch

__all__ = ["FiniteCheckedEnv", "NonFinite", "NonFiniteError", "drop_entries"]

NonFiniteMode = Literal["raise", "drop"]


class NonFiniteError(FloatingPointError):
    """An env returned NaN or inf in an observation or a reward; the message names the agent,
    the step and the value."""


@dataclass(frozen=True)
class NonFinite:
    """One non-finite value an env returned.

    ``position`` counts the env's ``step_batch`` calls since it was wrapped: a reward (or a
    final observation) came from call ``position``; an observation was returned after
    ``position`` calls, so it is what the agents act on in call ``position``.
    """

    position: int
    row: int
    agent: str
    kind: Literal["observation", "reward", "final observation"]
    part: str  # the Observation field, or "" for a reward
    value: float

    def entries(self) -> tuple[int, ...]:
        """The rollout entries (in ``step_batch`` call numbers) this value spoils: the entry
        of its reward or final observation, or for an observation the entry that acts on it
        and the one before, whose value target reads V(this observation)."""
        if self.kind == "observation":
            return (self.position - 1, self.position)
        return (self.position,)


class FiniteCheckedEnv(MultiAgentEnv):
    """``env`` with every step checked for NaN and inf; everything else is ``env``'s own.

    ``context`` (e.g. ``"iteration 3"``) is added to error messages; ``steps_taken`` counts
    ``step_batch`` calls. In ``"drop"`` mode the non-finite values found are replaced by 0
    and kept in ``found`` until :meth:`take` hands them over.
    """

    def __init__(self, env: MultiAgentEnv, mode: NonFiniteMode = "raise") -> None:
        if mode not in ("raise", "drop"):
            raise ValueError(f"mode must be 'raise' or 'drop', got {mode!r}")
        self.env = env
        self.mode: NonFiniteMode = mode
        self.context = ""
        self.steps_taken = 0
        self.found: list[NonFinite] = []
        self._acting: np.ndarray | None = None
        self._rollout_start = 0

    # Everything the collector (or anyone) asks of the env comes from the env itself.
    @property
    def agent_names(self) -> list[str]:  # type: ignore[override]
        return self.env.agent_names

    @property
    def observation_space(self) -> gym.Space:  # type: ignore[override]
        return self.env.observation_space

    @property
    def action_space(self) -> gym.Space:  # type: ignore[override]
        return self.env.action_space

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not set yet (during unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)

    def start_rollout(self, context: str) -> int:
        """Mark the start of a rollout (for messages); returns ``steps_taken``."""
        self.context = context
        self._rollout_start = self.steps_taken
        return self.steps_taken

    # ------------------------------------------------------------------ the env API
    def reset_batch(self, seed: int | None = None) -> StepBatch:
        batch = self.env.reset_batch(seed=seed)
        return self._checked(batch, acted=None)

    def step_batch(self, actions: Any) -> StepBatch:
        acted = self._acting
        batch = self.env.step_batch(actions)
        self.steps_taken += 1
        return self._checked(batch, acted=acted)

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ checks
    def take(self, before: int) -> list[NonFinite]:
        """The values found that spoil an entry before call ``before``. Those that also
        spoil a later entry stay for the next call (an observation returned by a rollout's
        last step spoils that step's entry and the next rollout's first)."""
        taken = [item for item in self.found if min(item.entries()) < before]
        self.found = [item for item in self.found if max(item.entries()) >= before]
        return taken

    def _checked(self, batch: StepBatch, acted: np.ndarray | None) -> StepBatch:
        """``batch`` if all is finite (the fast path: one ``isfinite`` per array); else an
        error, or in "drop" mode the batch with zeros in place of the bad values."""
        self._acting = batch.active
        finite_obs = all(_all_finite(value) for _, value in batch.obs.items())
        if finite_obs and _all_finite(batch.reward) and batch.final_obs is None:
            return batch
        step = self.steps_taken - 1  # the call that produced rewards and final observations
        found: list[NonFinite] = []
        reward = np.asarray(batch.reward)
        for row in _bad_rows(reward, acted):
            found.append(self._item(step, row, "reward", "", reward[row]))
        if batch.final_obs is not None and acted is not None:
            ended = acted & np.asarray(batch.done, dtype=bool)
            if ended.any():
                for part, row, value in _bad_obs(batch.final_obs, ended):
                    found.append(self._item(step, row, "final observation", part, value))
        if not finite_obs:
            for part, row, value in _bad_obs(batch.obs, np.asarray(batch.active, dtype=bool)):
                found.append(self._item(self.steps_taken, row, "observation", part, value))
        if not found:
            return batch
        if self.mode == "raise":
            raise NonFiniteError(self._message(found[0], len(found)))
        self.found.extend(found)
        return _zeroed(batch)

    def _item(self, position: int, row: int, kind: Any, part: str, value: Any) -> NonFinite:
        names = self.env.agent_names
        agent = names[row] if row < len(names) else f"row {row}"
        return NonFinite(position, int(row), agent, kind, part, float(value))

    def _message(self, item: NonFinite, count: int) -> str:
        what = item.kind if not item.part else f"{item.kind} ('{item.part}')"
        step = item.position - self._rollout_start  # steps of this rollout before it
        if item.kind != "observation":
            when = f"in step {step + 1}"
        elif step == 0:
            when = "returned by reset"
        else:
            when = f"returned by step {step}"
        context = f" of the rollout of {self.context}" if self.context else ""
        others = f" ({count - 1} more non-finite values in this step)" if count > 1 else ""
        return (
            f"the env returned {item.value} in the {what} of agent '{item.agent}' {when}"
            f"{context}{others}; environments must return finite numbers. Fix the env, or "
            "set trainer.on_nonfinite=drop to leave such steps out of training"
        )


def _all_finite(values: Any) -> bool:
    """No NaN or inf in ``values`` (integer arrays never hold any)."""
    array = to_numpy(values)
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def _bad_rows(values: np.ndarray, rows: np.ndarray | None) -> list[int]:
    """Rows of ``values`` (``[rows, ...]``) holding NaN or inf, among ``rows`` if given."""
    if values.size == 0 or _all_finite(values):
        return []
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if rows is not None:
        bad &= rows
    return [int(row) for row in np.flatnonzero(bad)]


def _bad_obs(obs: Observation, rows: np.ndarray) -> Iterable[tuple[str, int, Any]]:
    """``(field, row, first bad value)`` for every row of ``obs`` with a NaN or inf."""
    for part, raw in obs.items():
        values = to_numpy(raw)
        for row in _bad_rows(values, rows):
            flat = values[row].reshape(-1)
            yield part, row, flat[~np.isfinite(flat)][0]


def _zeroed(batch: StepBatch) -> StepBatch:
    """The batch with every NaN and inf replaced by 0 (new arrays; the env's stay)."""

    def clean(values: Any) -> Any:
        array = to_numpy(values)
        if array.dtype.kind not in "fc":
            return array
        return np.where(np.isfinite(array), array, np.zeros((), dtype=array.dtype))

    return StepBatch(
        obs=batch.obs.map(clean),
        reward=clean(batch.reward),
        terminated=batch.terminated,
        truncated=batch.truncated,
        active=batch.active,
        final_obs=None if batch.final_obs is None else batch.final_obs.map(clean),
        metrics=batch.metrics,
    )


def drop_entries(
    records: Mapping[str, MemoryRecord],
    found: Iterable[NonFinite],
    start: int,
) -> int:
    """Leave the rollout entries spoiled by ``found`` out of training; returns how many.

    ``start`` is the ``step_batch`` call number of the rollout's first entry. A dropped entry
    gets ``mask`` False (so GAE and the loss skip it, as for an absent agent); the kept entry
    just before it, unless its episode ended there, is bootstrapped from the value of the
    dropped entry's observation, which is finite (an entry whose observation is not finite
    is dropped together with the one before it).
    """
    where: dict[str, tuple[MemoryRecord, int]] = {}
    for record in records.values():
        for index, name in enumerate(record.agent_names):
            where[name] = (record, index)
    spoiled: dict[tuple[str, int], None] = {}
    for item in found:
        for entry in item.entries():
            spoiled[(item.agent, entry - start)] = None
    dropped = 0
    for agent, step in spoiled:
        if agent not in where:
            continue
        record, index = where[agent]
        if 0 <= step < record.shape[1] and record.mask[index, step]:
            record.mask[index, step] = False
            dropped += 1
    for agent, step in spoiled:
        if agent not in where:
            continue
        record, index = where[agent]
        before = step - 1
        if (
            0 <= before
            and step < record.shape[1]
            and record.mask[index, before]
            and not record.done[index, before]
        ):
            record.bootstrap_value[index, before] = record.value[index, step]
    return dropped
