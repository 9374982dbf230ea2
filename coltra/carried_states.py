"""The recurrent state of every agent row, carried from one step to the next.

Collection and evaluation step all rows of an env at once; a recurrent policy's forward pass
takes the state of its rows and returns the next one. Between steps the state of a row is
zeroed where its episode ended (the next step starts a new episode) and where the row was
absent (a dead agent, or one that joins mid-episode, starts from zeros). ``starts`` records
which rows were reset, for the training sequences (:mod:`coltra.sequences`) to reset the
state at the same steps. Feed-forward policies have no state and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from coltra.groups import MacroAgent
from coltra.models.base import State

__all__ = ["CarriedStates"]


class CarriedStates:
    """Each recurrent policy's state over its rows (``plans``: policy ->
    :class:`~coltra.collectors.PolicyRows`), what its next forward pass starts from."""

    def __init__(self, group: MacroAgent, plans: Mapping[str, Any]) -> None:
        self.plans = plans
        #: policy -> state, every part ``[policy rows, ...]`` on the model's device.
        self.states: dict[str, State] = {}
        #: policy -> ``[policy rows]`` bool: the state was reset before the next step.
        self.starts: dict[str, np.ndarray] = {}
        for policy, plan in plans.items():
            state = group.policies[policy].get_initial_state(len(plan.rows))
            if state:
                self.states[policy] = state
                self.starts[policy] = np.ones(len(plan.rows), dtype=bool)

    def __bool__(self) -> bool:
        return bool(self.states)

    def advance(
        self,
        outputs: Mapping[str, tuple[Any, State, Any]],
        done: np.ndarray,  # [rows] bool: the step ended the row's episode
        acted: np.ndarray,  # [rows] bool: the row was present for the step
    ) -> None:
        """Take the states the step's forward passes returned (``outputs[policy][1]``),
        zeroed on the rows that are done or were absent."""
        for policy in self.states:
            selector = self.plans[policy].selector
            reset = done[selector] | ~acted[selector]
            state = outputs[policy][1]
            if reset.any():
                where = torch.as_tensor(reset, device=state[0].device).unsqueeze(-1)
                state = tuple(part.masked_fill(where, 0.0) for part in state)
            self.states[policy] = state
            self.starts[policy] = reset
