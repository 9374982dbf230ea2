"""Evaluation: run a group in an env for whole episodes and report their returns.

Which episodes count matters. Taking "the first N episodes to end" from several env copies
favours short episodes (they end first), so the mean return is biased low for a good policy
and high for a bad one. Here every agent row contributes its episodes in order, and the
evaluation waits for them: with ``rows`` agent rows, row ``r`` gives its episodes 0, 1, ...
until the first ``num_episodes`` of the sequence (episode 0 of every row, then episode 1 of
every row, ...) have ended. With as many rows as episodes, each row plays one episode and
the copies run side by side; with one row, the episodes are simply the first ones in order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from coltra.carried_states import CarriedStates
from coltra.checks import NonFiniteError, check_legal_actions, find_nonfinite, nonfinite_message
from coltra.collectors import join_policy_actions, plan_policies, policy_views, step_env
from coltra.envs.base import MultiAgentEnv, StepBatch
from coltra.envs.blocks import BlockLayout
from coltra.episodes import EpisodeTracker
from coltra.groups import MacroAgent

__all__ = [
    "Episodes",
    "EpisodesDidNotEnd",
    "episodes_per_row",
    "evaluate",
    "evaluate_episodes",
    "evaluation_metrics",
]

#: Env steps (of all copies at once) after which an evaluation gives up waiting.
EVAL_MAX_STEPS = 100_000


class EpisodesDidNotEnd(RuntimeError):
    """An evaluation reached its step limit before the episodes it waits for ended."""


@dataclass(frozen=True)
class Episodes:
    """Returns and lengths (agent steps) of evaluated episodes. ``[episodes]`` each"""

    returns: np.ndarray
    lengths: np.ndarray
    rows: np.ndarray | None = None  # the agent row each was played on

    def select(self, rows: np.ndarray) -> Episodes:
        """The episodes played on ``rows`` (one policy's, say)."""
        if self.rows is None:
            raise ValueError("these episodes do not record their rows")
        keep = np.isin(self.rows, rows)
        return Episodes(self.returns[keep], self.lengths[keep], self.rows[keep])

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Count, mean, std, min and max return, and mean length (``eval/return_mean``...)."""
        return {
            f"{prefix}episodes": float(len(self.returns)),
            f"{prefix}return_mean": float(self.returns.mean()),
            f"{prefix}return_std": float(self.returns.std()),
            f"{prefix}return_min": float(self.returns.min()),
            f"{prefix}return_max": float(self.returns.max()),
            f"{prefix}length_mean": float(self.lengths.mean()),
        }


def episodes_per_row(num_episodes: int, rows: int) -> np.ndarray:
    """How many of ``num_episodes`` each of ``rows`` rows plays when they are dealt out in
    row order: the first ``num_episodes % rows`` rows play one more. ``[rows]``"""
    return np.full(rows, num_episodes // rows, dtype=np.int64) + (
        np.arange(rows) < num_episodes % rows
    )


def evaluate(
    agents: MacroAgent,
    env: MultiAgentEnv,
    num_episodes: int,
    deterministic: bool = True,
    seed: int | None = None,
    max_steps: int = 1_000_000,
) -> np.ndarray:
    """Returns of ``num_episodes`` whole agent-episodes in ``env`` (see the module
    docstring for which ones). The env is reset (with ``seed``) first, so pass an env that
    is not being collected from. ``[num_episodes]``"""
    return evaluate_episodes(agents, env, num_episodes, deterministic, seed, max_steps).returns


def evaluate_episodes(
    agents: MacroAgent,
    env: MultiAgentEnv,
    num_episodes: int,
    deterministic: bool = True,
    seed: int | None = None,
    max_steps: int = 1_000_000,
    *,
    each_agent: bool = False,
    on_step: Callable[[], None] | None = None,
) -> Episodes:
    """``evaluate``, with the episodes' lengths too. ``max_steps`` counts env steps (of
    all copies at once); reaching it before the episodes end is :class:`EpisodesDidNotEnd`.
    ``each_agent``: ``num_episodes`` for every agent present at the start (one env copy's
    episodes, when watching it). ``on_step`` is called after the reset and after every
    step but the last (to render a frame)."""
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(f"num_episodes must be a whole number >= 1, got {num_episodes!r}")
    plans = plan_policies(agents, env)
    names = env.agent_names
    rows = len(names)
    batch = _checked(env.reset_batch(seed=seed), None, names, None, env.layout)
    # The rows present at the start owe the episodes, dealt out over them in row order
    # (agents that join later are not waited for: they might never come).
    players = np.flatnonzero(batch.active)
    if not len(players):
        raise ValueError("evaluation: no agent is active after the env's reset")
    needed = np.zeros(rows, dtype=np.int64)
    total = num_episodes * len(players) if each_agent else num_episodes
    needed[players] = episodes_per_row(total, len(players))
    if on_step is not None:
        on_step()
    tracker = EpisodeTracker(rows)
    returns: list[list[float]] = [[] for _ in range(rows)]
    lengths: list[list[int]] = [[] for _ in range(rows)]
    done_count = np.zeros(rows, dtype=np.int64)
    states = CarriedStates(agents, plans)  # recurrent policies' memory, reset per episode
    for step in range(1, max_steps + 1):
        outputs = agents.act_policies(
            policy_views(batch.obs, plans), deterministic=deterministic, states=states.states
        )
        acted = batch.active
        batch = step_env(env, join_policy_actions(outputs, plans, rows))
        batch = _checked(batch, acted, names, step, env.layout)
        if states:
            states.advance(outputs, batch.done, acted)
        tracker.step(batch.reward, acted, batch.done)
        finished = tracker.drain()
        for row, value, length in zip(finished.rows, finished.returns, finished.lengths):
            returns[row].append(float(value))
            lengths[row].append(int(length))
        np.add.at(done_count, finished.rows, 1)
        if (done_count >= needed).all():
            kept = [(j, row) for j in range(needed.max()) for row in players if j < needed[row]]
            return Episodes(
                returns=np.array([returns[row][j] for j, row in kept], dtype=np.float32),
                lengths=np.array([lengths[row][j] for j, row in kept], dtype=np.int64),
                rows=np.array([row for _, row in kept], dtype=np.int64),
            )
        if on_step is not None:
            on_step()
    finished_count = int(np.minimum(done_count, needed).sum())
    raise EpisodesDidNotEnd(
        f"evaluation saw only {finished_count} of the {total} episodes it waits for end "
        f"in {max_steps} steps"
    )


def _checked(
    batch: StepBatch,
    acted: np.ndarray | None,
    names: list[str],
    step: int | None,
    layout: BlockLayout,
) -> StepBatch:
    """``batch``, or a NonFiniteError for NaN/inf in it (evaluation never drops steps), or
    a NoLegalActionError for an agent that acts next without a legal action."""
    found = find_nonfinite(batch, acted, names, layout)
    if found:
        raise NonFiniteError(nonfinite_message(found[0], len(found), step, "the evaluation"))
    check_legal_actions(batch.obs, batch.active, names, layout, step, "the evaluation")
    return batch


def evaluation_metrics(
    agents: MacroAgent,
    env: MultiAgentEnv | Callable[[], MultiAgentEnv],
    num_episodes: int,
    seed: int | None = None,
) -> dict[str, float]:
    """``eval/*`` metrics (:meth:`Episodes.metrics`) of ``num_episodes`` deterministic
    agent-episodes in ``env``, or in a fresh env from a function that builds one (closed
    afterwards); with several policies, ``<policy>/eval/*`` for each one's agents too.
    Episodes that never end are a warning and ``eval/episodes`` 0, not an
    error: a training run goes on."""
    owned = not isinstance(env, MultiAgentEnv)
    played_in = env() if not isinstance(env, MultiAgentEnv) else env
    max_steps = max(EVAL_MAX_STEPS // int(getattr(played_in, "num_envs", 1)), 1)
    try:
        played = evaluate_episodes(agents, played_in, num_episodes, seed=seed, max_steps=max_steps)
    except EpisodesDidNotEnd as exc:
        warnings.warn(f"{exc}; no evaluation score", stacklevel=2)
        return {"eval/episodes": 0.0}
    finally:
        if owned:
            played_in.close()
    metrics = played.metrics("eval/")
    if len(agents.policies) > 1:  # each team's own score too
        for policy, rows in agents.policy_rows(played_in.agent_names).items():
            mine = played.select(rows)
            if len(mine.returns):
                metrics.update(mine.metrics(f"{policy}/eval/"))
    return metrics
