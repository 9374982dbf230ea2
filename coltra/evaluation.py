"""Evaluation: run a group in an env for whole episodes and report their returns."""

from __future__ import annotations

import numpy as np

from coltra.collectors import check_agents_fit_env, join_policy_actions, step_env
from coltra.envs.base import MultiAgentEnv
from coltra.groups import MacroAgent

__all__ = ["evaluate"]


def evaluate(
    agents: MacroAgent,
    env: MultiAgentEnv,
    num_episodes: int,
    deterministic: bool = True,
    seed: int | None = None,
    max_steps: int = 1_000_000,
) -> np.ndarray:
    """Returns of the first ``num_episodes`` agent-episodes that end in ``env``.

    The env is reset (with ``seed``) first, so pass an env that is not being collected
    from. Each agent of each copy counts as one episode; with several copies, the episodes
    that end first are the ones counted. ``[num_episodes]``
    """
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(f"num_episodes must be a whole number >= 1, got {num_episodes!r}")
    field_name = check_agents_fit_env(agents, env)
    policy_rows = agents.policy_rows(env.agent_names)
    rows = len(env.agent_names)
    running = np.zeros(rows, dtype=np.float64)
    finished: list[float] = []
    batch = env.reset_batch(seed=seed)
    for _ in range(max_steps):
        outputs = agents.act_batch(batch.obs, policy_rows, deterministic=deterministic)
        acted = batch.active
        batch = step_env(env, join_policy_actions(outputs, policy_rows, rows, field_name))
        running += np.where(acted, batch.reward, 0.0)
        for row in np.flatnonzero(acted & batch.done):
            finished.append(float(running[row]))
            running[row] = 0.0
        if len(finished) >= num_episodes:
            return np.asarray(finished[:num_episodes], dtype=np.float32)
    raise RuntimeError(
        f"evaluation saw only {len(finished)} of {num_episodes} episodes end in {max_steps} steps"
    )
