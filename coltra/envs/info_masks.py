"""Action masks given in ``info``, moved into the observation where policies read them.

PettingZoo envs give an agent's legal actions one of two ways: an ``action_mask`` entry of a
Dict observation (Coltra reads it as it is) or an ``action_mask`` entry of the agent's
``info``. :class:`InfoActionMasks` (``env.info_action_masks: true``) turns the second into
the first, so a mask always travels as an observation field: stored in the rollout, used
again in the update, checked for a legal action before acting.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from coltra.buffers import ACTION_MASK_FIELD
from coltra.envs.critic_inputs import AddedPart

__all__ = ["InfoActionMasks", "mask_space"]


def mask_space(action_space: gym.Space) -> gym.spaces.Box:
    """The space of an action mask for ``action_space``: one 0/1 entry per action of a
    Discrete space, per choice of each dimension (concatenated) of a MultiDiscrete one."""
    if isinstance(action_space, gym.spaces.Discrete):
        entries = int(action_space.n)
    elif isinstance(action_space, gym.spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        entries = int(action_space.nvec.sum())
    else:
        raise TypeError(
            f"action masks are for Discrete and (1-D) MultiDiscrete actions, got {action_space}"
        )
    return gym.spaces.Box(0, 1, (entries,), np.int8)


class InfoActionMasks(AddedPart):
    """``env`` whose agents' ``info["action_mask"]`` is also an ``action_mask`` part of their
    (Dict) observations, as int8. Every agent that observes must have one: a missing or
    misshapen mask is an error naming the agent, the step and what was expected."""

    field = ACTION_MASK_FIELD

    def __init__(self, env: Any) -> None:
        self._masks = {agent: mask_space(env.action_space(agent)) for agent in env.possible_agents}
        super().__init__(env, self._masks.__getitem__)

    def _part(self, observations: dict[Any, Any], infos: dict[Any, Any]) -> dict[Any, np.ndarray]:
        masks = {}
        for agent in observations:
            info = infos.get(agent) or {}
            if ACTION_MASK_FIELD not in info:
                raise ValueError(
                    f"agent {agent!r} has no '{ACTION_MASK_FIELD}' in its info at step "
                    f"{self._steps} (info keys {sorted(info)}); env.info_action_masks needs "
                    "one for every agent that observes"
                )
            mask = np.asarray(info[ACTION_MASK_FIELD])
            expected = self._masks[agent].shape
            if mask.shape != expected:
                raise ValueError(
                    f"agent {agent!r}'s info action mask at step {self._steps} has shape "
                    f"{list(mask.shape)}, its action space {self.env.action_space(agent)} "
                    f"needs {list(expected)}"
                )
            masks[agent] = mask.astype(np.int8)
        return masks
