"""Return-based reward scaling: rewards divided by the std of the discounted return.

Engstrom et al. 2020 ("Implementation Matters in Deep Policy Gradients") found this scaling
among the code-level details that matter most for PPO; Gymnasium's ``NormalizeReward`` and
SB3's ``VecNormalize(norm_reward=True)`` do the same per env step. Here it runs on a
policy's rollout just before GAE: for each agent row the discounted return
``G_t = gamma * G_(t-1) + r_t`` (carried across rollouts, restarted after an episode ends)
enters running statistics, and the rollout's rewards are divided by ``sqrt(Var[G] + eps)``
and clipped to +-10 (SB3's defaults). Rewards are not shifted (the mean is not subtracted),
so their sign and the meaning of an episode's end are kept. Episode returns in the logs
stay those of the env.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from coltra.models.normalization import RunningMeanStd

__all__ = ["ReturnScaler"]


class ReturnScaler:
    """The running return of each agent row and the statistics of those returns."""

    CLIP = 10.0  # SB3's VecNormalize clip_reward

    def __init__(self, gamma: float) -> None:
        self.gamma = gamma
        self.returns: np.ndarray | None = None  # [agents] G of the step before the rollout
        self.stats = RunningMeanStd(())

    def scale(
        self,
        reward: np.ndarray,  # [agents, steps]
        done: np.ndarray,  # [agents, steps] the episode ended at this step
        mask: np.ndarray,  # [agents, steps] the agent was there (others: no experience)
    ) -> np.ndarray:
        """``reward`` divided by the std of the discounted returns seen so far, this
        rollout's included, clipped to +-``CLIP``. ``[agents, steps]``, float32."""
        agents, steps = reward.shape
        if self.returns is None or len(self.returns) != agents:
            self.returns = np.zeros(agents, np.float64)
        running = self.returns
        seen = np.zeros((agents, steps), np.float64)
        for t in range(steps):
            running = np.where(mask[:, t], running * self.gamma + reward[:, t], running)
            seen[:, t] = running
            running = np.where(mask[:, t] & done[:, t], 0.0, running)
        self.returns = running
        self.stats.update(torch.from_numpy(seen[mask]))
        std = float(self.stats.std())
        return np.clip(reward / std, -self.CLIP, self.CLIP).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """The statistics, as tensors (a checkpoint loads them with ``weights_only``). Not
        the running returns: a resumed run starts new episodes, so they start from 0."""
        return {"stats": dict(self.stats.state_dict())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict(state["stats"])
        self.returns = None
