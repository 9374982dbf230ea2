"""Advantage estimation: truncation-aware GAE(lambda) on plain numpy arrays.

Every array is laid out ``[agents, steps]``: one row per agent (or env copy), one column per
time step of the rollout. The work is vectorised over agents; only the GAE recursion itself
loops (once, in reverse) over steps. Inputs may be any real dtype; outputs are float32.

Done flags follow Coltra's vocabulary: ``terminated`` (the task ended, the future is worth 0),
``truncated`` (time ran out, the future is worth V(final observation)), ``done`` (either).
"""

from __future__ import annotations

import numpy as np

__all__ = ["compute_gae", "explained_variance"]


def compute_gae(
    reward: np.ndarray,
    value: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    bootstrap_value: np.ndarray,
    last_value: np.ndarray,
    gamma: float = 0.99,
    gae_lambda: float = 0.95,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and value targets (Schulman et al. 2016, "GAE").

    Args:
        reward: ``[agents, steps]`` reward for the action taken at step t.
        value: ``[agents, steps]`` critic estimate V(s_t).
        terminated: ``[agents, steps]`` bool, the task ended after step t.
        truncated: ``[agents, steps]`` bool, a time limit ended the episode after step t.
        bootstrap_value: ``[agents, steps]`` V(final observation), read only where
            ``truncated`` (and not ``terminated``) or where the next step is masked.
        last_value: ``[agents]`` V(observation after the last step), for rollouts that end
            mid-episode.
        gamma: discount factor in [0, 1].
        gae_lambda: GAE lambda in [0, 1]; 0 gives one-step TD errors, 1 Monte Carlo returns
            minus the value baseline.
        mask: optional ``[agents, steps]`` bool, False where the agent was absent.

    Returns:
        ``(advantages, returns)``, both float32 ``[agents, steps]``, with
        ``returns = advantages + value`` (zero at masked entries).

    Rules, for step t:

    - next value is 0 if ``terminated[t]``; ``bootstrap_value[t]`` if ``truncated[t]`` (a time
      limit is not part of the task, so the return is bootstrapped from the final observation,
      see Pardo et al. 2018, "Time Limits in Reinforcement Learning"); ``last_value`` if t is
      the last step; ``value[t + 1]`` otherwise. ``terminated`` wins when both flags are set.
    - ``delta_t = r_t + gamma * next_value - V(s_t)`` and
      ``A_t = delta_t + gamma * lambda * A_{t+1}``, where the ``A_{t+1}`` term is dropped after
      a done step and after the last step: nothing leaks across an episode boundary.
    - Masked (absent) entries get advantage 0 and return 0 and never influence other entries:
      when step t + 1 is masked and t is not done, t is treated as the end of a rollout, with
      next value ``bootstrap_value[t]`` and no ``A_{t+1}`` term.

    Values at entries that are never read (masked steps, ``bootstrap_value`` away from a
    truncation) may be anything, NaN included.
    """
    _check_unit_interval("gamma", gamma)
    _check_unit_interval("gae_lambda", gae_lambda)
    reward = _as_float32("reward", reward)
    if reward.ndim != 2:
        raise ValueError(
            f"compute_gae: 'reward' must be 2-D [agents, steps], got shape {reward.shape}"
        )
    shape = reward.shape
    value = _as_float32("value", value, shape)
    bootstrap_value = _as_float32("bootstrap_value", bootstrap_value, shape)
    terminated = _as_bool("terminated", terminated, shape)
    truncated = _as_bool("truncated", truncated, shape)
    last_value = _as_float32("last_value", last_value, shape[:1])
    present = np.ones(shape, dtype=bool) if mask is None else _as_bool("mask", mask, shape)
    if shape[1] == 0:
        return np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32)

    # Whether step t + 1 can be read (present); the last step reads last_value instead.
    next_present = np.ones(shape, dtype=bool)  # [agents, steps]
    next_present[:, :-1] = present[:, 1:]
    following_value = np.empty(shape, dtype=np.float32)  # [agents, steps]
    following_value[:, :-1] = value[:, 1:]
    following_value[:, -1:] = last_value[:, None]

    # Truncated steps and steps before an absence bootstrap; terminated steps do not.
    bootstrap = truncated | ~next_present
    next_value = np.where(bootstrap, bootstrap_value, following_value)
    next_value = np.where(terminated, np.float32(0.0), next_value)
    delta = reward + np.float32(gamma) * next_value - value  # [agents, steps]
    delta = np.where(present, delta, np.float32(0.0))
    # Carry A_{t+1} into A_t only within one uninterrupted stretch of an episode.
    carry = present & ~(terminated | bootstrap)
    carry[:, -1] = False
    carry_discount = np.where(carry, np.float32(gamma * gae_lambda), np.float32(0.0))

    # The loop runs over steps, so lay steps out as rows: contiguous slices are faster.
    delta_by_step = np.ascontiguousarray(delta.T)  # [steps, agents]
    carry_by_step = np.ascontiguousarray(carry_discount.T)  # [steps, agents]
    advantages_by_step = np.empty_like(delta_by_step)  # [steps, agents]
    next_advantage = np.zeros(shape[0], dtype=np.float32)  # [agents]
    for t in reversed(range(shape[1])):
        next_advantage = delta_by_step[t] + carry_by_step[t] * next_advantage
        advantages_by_step[t] = next_advantage
    advantages = np.ascontiguousarray(advantages_by_step.T)  # [agents, steps]
    returns = np.where(present, advantages + value, np.float32(0.0))
    return advantages, returns


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """``1 - Var[target - pred] / Var[target]``: 1 is a perfect critic, <= 0 no better than
    predicting the mean; NaN when ``target`` has no variance. Arrays of any equal shape."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(
            f"explained_variance: 'pred' has shape {pred.shape} but 'target' has shape "
            f"{target.shape}"
        )
    target_variance = float(np.var(target)) if target.size else 0.0
    if target_variance == 0.0:
        return float("nan")
    return 1.0 - float(np.var(target - pred)) / target_variance


def _check_unit_interval(name: str, number: float) -> None:
    """Raise a ValueError naming ``name`` unless ``number`` is a real number in [0, 1]."""
    if isinstance(number, bool) or not isinstance(number, int | float | np.floating | np.integer):
        raise ValueError(f"compute_gae: '{name}' must be a number in [0, 1], got {number!r}")
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise ValueError(f"compute_gae: '{name}' must be in [0, 1], got {number!r}")


def _as_float32(name: str, array: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``array`` as float32, checked against the expected shape."""
    result = np.asarray(array)
    if result.dtype.kind not in "fiub":
        raise ValueError(f"compute_gae: '{name}' must hold real numbers, got dtype {result.dtype}")
    _check_shape(name, result, shape)
    return result.astype(np.float32, copy=False)


def _as_bool(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` as bool, checked against the expected shape."""
    result = np.asarray(array)
    if result.dtype.kind not in "biu":
        raise ValueError(f"compute_gae: '{name}' must be boolean, got dtype {result.dtype}")
    _check_shape(name, result, shape)
    return result.astype(bool, copy=False)


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, ...] | None) -> None:
    if shape is not None and array.shape != shape:
        expected = "[agents]" if len(shape) == 1 else "[agents, steps]"
        raise ValueError(
            f"compute_gae: '{name}' must have shape {shape} ({expected}, from 'reward'), "
            f"got {array.shape}"
        )
