"""NaN and inf from the env: found as each step comes out of it, before any network sees it.

An env that returns NaN or inf in an observation or a reward poisons training quietly: the
network's outputs turn NaN and the failure surfaces later, as a NaN loss far from its cause.
The collector (and evaluation) look at every step with :func:`find_nonfinite`; in
``"raise"`` mode the first bad value is a :class:`NonFiniteError` naming the agent, the step
and the value (:func:`nonfinite_message`). In ``"drop"`` mode the collector replaces the bad
values by 0 (:func:`zero_nonfinite`) and leaves the entries they spoil out of training.

Only values that matter are checked: observations of rows that act next, rewards of rows
that acted, and final observations of rows whose episode ended (other rows of a step may
hold anything, see :class:`~coltra.envs.base.StepBatch`).

Action masks get one more check (:func:`find_no_legal_action`): an agent that acts next
whose ``action_mask`` allows no action (in some dimension) is a :class:`NoLegalActionError`
naming it, never a silent pick of an illegal action.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from coltra.buffers import ACTION_MASK_FIELD, Observation, to_numpy
from coltra.envs.base import StepBatch
from coltra.envs.blocks import SEPARATOR, BlockLayout

__all__ = [
    "NoLegalActionError",
    "NonFinite",
    "NonFiniteError",
    "NonFiniteMode",
    "check_legal_actions",
    "find_no_legal_action",
    "find_nonfinite",
    "nonfinite_message",
    "zero_nonfinite",
]

NonFiniteMode = Literal["raise", "drop"]


class NonFiniteError(FloatingPointError):
    """An env returned NaN or inf in an observation or a reward; the message names the agent,
    the step and the value."""


@dataclass(frozen=True)
class NonFinite:
    """One non-finite value in a step. An ``observation`` is what the row acts on next; a
    ``reward`` or ``final observation`` belongs to the step the row just took."""

    row: int
    agent: str
    kind: Literal["observation", "reward", "final observation"]
    part: str  # the Observation field, or "" for a reward
    value: float


def find_nonfinite(
    batch: StepBatch,
    acted: np.ndarray | None,
    agent_names: Sequence[str],
    layout: BlockLayout | None = None,
) -> list[NonFinite]:
    """The NaN and inf values of ``batch`` that matter; ``acted`` marks the rows that took
    the step (None for a reset). With the env's ``layout``, a block's fields are checked in
    that block's rows only (the other rows hold zeros nobody reads). The common case costs
    one ``isfinite`` per array."""
    finite_obs = all(_all_finite(value) for _, value in batch.obs.items())
    if finite_obs and _all_finite(batch.reward) and batch.final_obs is None:
        return []

    def item(row: int, kind: Any, part: str, value: Any) -> NonFinite:
        agent = agent_names[row] if row < len(agent_names) else f"row {row}"
        return NonFinite(int(row), agent, kind, part, float(value))

    found: list[NonFinite] = []
    reward = np.asarray(batch.reward)
    for row in _bad_rows(reward, acted):
        found.append(item(row, "reward", "", reward[row]))
    if batch.final_obs is not None and acted is not None:
        ended = acted & np.asarray(batch.done, dtype=bool)
        if ended.any():
            for part, row, value in _bad_obs(batch.final_obs, ended, layout):
                found.append(item(row, "final observation", part, value))
    if not finite_obs:
        active = np.asarray(batch.active, dtype=bool)
        for part, row, value in _bad_obs(batch.obs, active, layout):
            found.append(item(row, "observation", part, value))
    return found


class NoLegalActionError(ValueError):
    """An env gave an agent that acts next an action mask with no legal action."""


def find_no_legal_action(
    obs: Observation,
    active: np.ndarray,
    agent_names: Sequence[str],
    layout: BlockLayout | None = None,
) -> str | None:
    """What is wrong when an active row's ``action_mask`` field (or ``<block>/action_mask``)
    allows no action, per dimension for MultiDiscrete: the agent and its mask; None when every
    agent can act (and at no cost without a mask field)."""
    for part, raw in obs.items():
        if part != ACTION_MASK_FIELD and not part.endswith(SEPARATOR + ACTION_MASK_FIELD):
            continue
        rows = np.asarray(active, dtype=bool)
        space = layout.blocks[0].action_space if layout is not None else None
        if layout is not None and SEPARATOR in part:
            block = layout.block(part.split(SEPARATOR)[0])
            mine = np.zeros(len(rows), dtype=bool)
            mine[block.rows] = True
            rows, space = rows & mine, block.action_space
        legal = to_numpy(raw).reshape(len(rows), -1) > 0.5
        if isinstance(space, gym.spaces.MultiDiscrete) and legal.shape[1] == space.nvec.sum():
            splits = np.cumsum(space.nvec)[:-1]
            playable = np.all([p.any(1) for p in np.split(legal, splits, axis=1)], axis=0)
        else:
            playable = legal.any(1)
        bad = np.flatnonzero(rows & ~playable)
        if len(bad):
            row = int(bad[0])
            agent = agent_names[row] if row < len(agent_names) else f"row {row}"
            mask = to_numpy(raw)[row].reshape(-1).tolist()
            return f"agent '{agent}' has no legal action: its {part} is {mask}" + (
                f" ({len(bad) - 1} more agents without one)" if len(bad) > 1 else ""
            )
    return None


def check_legal_actions(
    obs: Observation,
    active: np.ndarray,
    agent_names: Sequence[str],
    layout: BlockLayout | None,
    step: int | None,
    where: str = "",
) -> None:
    """A :class:`NoLegalActionError` for an agent that acts next with no legal action in
    the observations returned by ``step`` (1-based; None: the reset) of ``where`` ("iteration
    3"). The message is built only then: the collector calls this every step."""
    problem = find_no_legal_action(obs, active, agent_names, layout)
    if problem is not None:
        when = "returned by reset" if step is None else f"returned by step {step}"
        of = f" of {where}" if where else ""
        raise NoLegalActionError(
            f"{problem} ({when}{of}); a masked env must leave every agent that acts a legal action"
        )


def nonfinite_message(item: NonFinite, count: int, step: int | None, where: str = "") -> str:
    """What :class:`NonFiniteError` says: ``step`` is the 1-based step that returned the
    value (None: the reset), ``where`` what the steps were ("the rollout of iteration 3")."""
    what = item.kind if not item.part else f"{item.kind} ('{item.part}')"
    if step is None:
        when = "returned by reset"
    elif item.kind == "observation":
        when = f"returned by step {step}"
    else:
        when = f"in step {step}"
    context = f" of {where}" if where and step is not None else ""
    others = f" ({count - 1} more non-finite values in this step)" if count > 1 else ""
    return (
        f"the env returned {item.value} in the {what} of agent '{item.agent}' {when}"
        f"{context}{others}; environments must return finite numbers. Fix the env, or "
        "set trainer.on_nonfinite=drop to leave such steps out of training"
    )


def zero_nonfinite(batch: StepBatch) -> StepBatch:
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


def _bad_obs(
    obs: Observation, rows: np.ndarray, layout: BlockLayout | None
) -> Iterable[tuple[str, int, Any]]:
    """``(field, row, first bad value)`` for every row of ``obs`` with a NaN or inf, among
    ``rows`` and, for a block's field, that block's rows."""
    for part, raw in obs.items():
        values = to_numpy(raw)
        checked = rows
        if layout is not None and not layout.is_single and SEPARATOR in part:
            mine = np.zeros(len(rows), dtype=bool)
            mine[layout.block(part.split(SEPARATOR)[0]).rows] = True
            checked = rows & mine
        for row in _bad_rows(values, checked):
            flat = values[row].reshape(-1)
            yield part, row, flat[~np.isfinite(flat)][0]
