"""The team's reward for every agent: training a fully cooperative team on what the team
achieves, not on each agent's own share of it.

In the particle envs MAPPO was measured on (Yu et al. 2022; multiagent-particle-envs'
``shared_reward`` for collaborative worlds) every agent is rewarded with the sum of all the
agents' rewards of the step. Where each agent's reward is its own (KAZ: +1 for each zombie
it kills), an agent gains nothing from a zombie another agent kills and loses only its own
future kills when one slips through and ends the game; with the team's reward each agent
is trained on the team's kills. :class:`SharedReward` does this for a PettingZoo parallel
env (``env.shared_reward: true``). The episode returns it reports (``e_episode_reward``,
the evaluation's) are then the team's too: evaluate on the env without it to read each
agent's own return.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pettingzoo.utils.wrappers import BaseParallelWrapper

__all__ = ["SharedReward"]


class SharedReward(BaseParallelWrapper):
    """``env`` where every agent rewarded at a step gets the sum of that step's rewards
    (of every agent in the step's reward dict: those present, including any that leave
    with this step). Every agent of the env, whatever its name, team or policy: for fully
    cooperative envs only (with opponents, each side would be paid for the other's
    points)."""

    def step(self, actions: dict[Any, Any]) -> tuple[Any, Any, Any, Any, Any]:
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        team = float(sum(np.sum(reward) for reward in rewards.values()))
        return observations, dict.fromkeys(rewards, team), terminations, truncations, infos
