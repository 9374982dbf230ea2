"""Overlapped collection: the policy acts for one part of the env copies while the other
part steps (Sample Factory's double-buffered sampling), so env workers and the learner work
at the same time.

The copies of every worker are split in two parts, A and B. One step of the rollout:

1. the actions of part A at step ``t`` are already with the workers (sent in step ``t-1``);
2. act for part B at step ``t`` and send (the workers are stepping part A meanwhile);
3. receive part A's step; act for part A at step ``t+1`` and send (the workers step part B
   meanwhile), unless ``t`` is the rollout's last step;
4. receive part B's step; the two parts join into the step's ``StepBatch``.

The data stays exactly on-policy (one set of weights for the whole rollout; nothing is sent
past its last step) and deterministic for a seed: the forward passes run in the same order,
part A then part B at every step, as ``PartSteps(overlap=False)`` does without the overlap,
so the two give the same records; with ``deterministic`` actions both give the records of plain
lock-step collection (to within float rounding where a part acts on up to
``NUMPY_MAX_ROWS`` rows of a policy and the whole step on more: the parts then act through
numpy, the whole through torch, :mod:`coltra.models.numpy_acting`). Part A's next forward
is held back, and the step then runs without overlap, when its observations are not all
finite or a masked agent has no legal action: the collector's checks on the joined step
must see them first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from coltra.buffers import Action, Observation
from coltra.checks import find_no_legal_action
from coltra.envs.base import StepBatch
from coltra.envs.blocks import block_view
from coltra.envs.vector import SubprocVecEnv
from coltra.groups import MacroAgent

__all__ = ["PartSteps", "can_overlap"]

PolicyOutputs = dict[str, tuple[Action, Any, dict[str, np.ndarray]]]


def can_overlap(env: object) -> bool:
    """Whether ``env`` can step part of its copies: a subprocess env whose workers hold two
    copies or more, with one block of spaces."""
    return isinstance(env, SubprocVecEnv) and env.part_rows() is not None


@dataclass(frozen=True)
class _PolicyPart:
    """One policy's rows within one part: where they are among the part's rows and among
    the policy's own rows (both ``[rows of the policy in the part]``)."""

    in_part: np.ndarray | slice
    in_policy: np.ndarray


class PartSteps:
    """Steps of ``env`` by parts of its copies, overlapped with the policy's forward passes
    (``overlap``, see the module docstring) or not (act for A, act for B, step both, wait:
    the reference the overlap must match record for record)."""

    def __init__(
        self,
        group: MacroAgent,
        env: SubprocVecEnv,
        plans: Mapping[str, Any],  # policy -> collectors.PolicyRows
        deterministic: bool,
        overlap: bool = True,
    ) -> None:
        parts = env.part_rows()
        if parts is None:
            raise ValueError("this env cannot step part of its copies (see can_overlap)")
        self.group, self.env, self.plans = group, env, plans
        self.deterministic = deterministic
        self.overlap = overlap
        self.parts = parts
        self.layout: list[dict[str, _PolicyPart]] = []
        for rows in parts:
            per_policy = {}
            for policy, plan in plans.items():
                inside = np.isin(plan.rows, rows)
                if inside.any():
                    in_part = np.searchsorted(rows, plan.rows[inside])
                    whole = len(in_part) == len(rows)
                    per_policy[policy] = _PolicyPart(
                        slice(None) if whole else in_part, np.flatnonzero(inside)
                    )
            self.layout.append(per_policy)
        self._sent: dict[int, PolicyOutputs] = {}
        self.forward_s = 0.0  # totals of the running rollout
        self.env_s = 0.0

    # ------------------------------------------------------------------ parts
    def _send(self, part: int, obs: Observation) -> None:
        """Act for ``part`` on its observations (``[part rows, ...]``) and send the actions."""
        started = time.perf_counter()
        views = {
            policy: block_view(obs[where.in_part], self.plans[policy].block)
            for policy, where in self.layout[part].items()
        }
        outputs = self.group.act_policies(views, self.deterministic, get_value=True)
        rows = self.parts[part]
        joined: dict[str, np.ndarray] = {}
        for policy, where in self.layout[part].items():
            plan = self.plans[policy]
            values = outputs[policy][0][plan.action_field]
            target = joined.get(plan.env_action_field)
            if target is None:
                target = joined[plan.env_action_field] = np.zeros(
                    (len(rows), *values.shape[1:]), dtype=values.dtype
                )
            target[where.in_part] = values
        sent = time.perf_counter()
        self.env.send_part(part, Action(**joined), rows)
        self.env_s += time.perf_counter() - sent
        self.forward_s += sent - started
        self._sent[part] = outputs

    def _receive(self, part: int) -> StepBatch:
        started = time.perf_counter()
        batch = self.env.receive_part(self.parts[part])
        self.env_s += time.perf_counter() - started
        return batch

    def _ready(self, batch: StepBatch) -> bool:
        """Part A's observations may be acted on before the collector checks the step."""
        if not all(
            np.isfinite(value).all() for _, value in batch.obs.items() if value.dtype.kind == "f"
        ):
            return False
        if any(name.endswith("action_mask") for name, _ in batch.obs.items()):
            rows = self.parts[0]
            names = [self.env.agent_names[row] for row in rows]
            return find_no_legal_action(batch.obs, batch.active, names, None) is None
        return True

    # ------------------------------------------------------------------ one step
    def step(self, batch: StepBatch, last: bool) -> tuple[PolicyOutputs, StepBatch]:
        """Act on ``batch`` (every row) and step; returns the step's policy outputs (as one
        forward per policy would give them) and the next batch."""
        a, b = self.parts
        if 0 not in self._sent:
            self._send(0, batch.obs[a])
        self._send(1, batch.obs[b])
        step_a = self._receive(0)
        out_a, out_b = self._sent.pop(0), self._sent.pop(1)
        if self.overlap and not last and self._ready(step_a):
            self._send(0, step_a.obs)  # step t+1 of part A, while the workers step part B
        step_b = self._receive(1)
        return self._join_outputs(out_a, out_b), _join_steps(step_a, step_b, a, b)

    def _join_outputs(self, out_a: PolicyOutputs, out_b: PolicyOutputs) -> PolicyOutputs:
        """Each policy's outputs of both parts, in the policy's row order."""
        joined: PolicyOutputs = {}
        for policy, plan in self.plans.items():
            pieces = [
                (self.layout[part][policy].in_policy, outputs[policy])
                for part, outputs in enumerate((out_a, out_b))
                if policy in self.layout[part]
            ]
            rows = len(plan.rows)
            action = _scatter([(where, out[0][plan.action_field]) for where, out in pieces], rows)
            extra = {
                key: _scatter([(where, out[2][key]) for where, out in pieces], rows)
                for key in pieces[0][1][2]
            }
            joined[policy] = (Action(**{plan.action_field: action}), (), extra)
        return joined


def _scatter(pieces: list[tuple[np.ndarray, np.ndarray]], rows: int) -> np.ndarray:
    """One array of ``rows`` rows from pieces placed at their row indices."""
    first = pieces[0][1]
    out = np.empty((rows, *first.shape[1:]), dtype=first.dtype)
    for where, values in pieces:
        out[where] = values
    return out


def _join_steps(step_a: StepBatch, step_b: StepBatch, a: np.ndarray, b: np.ndarray) -> StepBatch:
    """The two parts' steps as one batch in the env's row order."""
    rows = len(a) + len(b)

    def join(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty((rows, *x.shape[1:]), dtype=x.dtype)
        out[a], out[b] = x, y
        return out

    def join_obs(x: Observation, y: Observation) -> Observation:
        return Observation(**{name: join(value, y[name]) for name, value in x.items()})

    final_obs = None
    if step_a.final_obs is not None or step_b.final_obs is not None:
        final_obs = join_obs(
            step_a.obs if step_a.final_obs is None else step_a.final_obs,
            step_b.obs if step_b.final_obs is None else step_b.final_obs,
        )
    metrics = {
        key: np.concatenate([m[key] for m in (step_a.metrics, step_b.metrics) if key in m])
        for key in {*step_a.metrics, *step_b.metrics}
    }
    return StepBatch(
        obs=join_obs(step_a.obs, step_b.obs),
        reward=join(step_a.reward, step_b.reward),
        terminated=join(step_a.terminated, step_b.terminated),
        truncated=join(step_a.truncated, step_b.truncated),
        active=join(step_a.active, step_b.active),
        final_obs=final_obs,
        metrics=metrics,
    )
