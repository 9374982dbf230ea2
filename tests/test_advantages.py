"""GAE on hand-worked examples, against a slow reference, and on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from coltra.advantages import compute_gae, explained_variance


def _flags(steps: int, at: list[int], agents: int = 1) -> np.ndarray:
    """A ``[agents, steps]`` bool array, True at the given step indices."""
    flags = np.zeros((agents, steps), dtype=bool)
    flags[:, at] = True
    return flags


def _gae(
    reward: np.ndarray,
    value: np.ndarray | None = None,
    terminated: np.ndarray | None = None,
    truncated: np.ndarray | None = None,
    bootstrap_value: np.ndarray | None = None,
    last_value: np.ndarray | None = None,
    gamma: float = 1.0,
    gae_lambda: float = 1.0,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """compute_gae with zeros / False for whatever a test does not care about."""
    zeros = np.zeros_like(reward)
    no = np.zeros(reward.shape, dtype=bool)
    return compute_gae(
        reward,
        zeros if value is None else value,
        no if terminated is None else terminated,
        no if truncated is None else truncated,
        zeros if bootstrap_value is None else bootstrap_value,
        np.zeros(reward.shape[0], dtype=np.float32) if last_value is None else last_value,
        gamma=gamma,
        gae_lambda=gae_lambda,
        mask=mask,
    )


def _reference_gae(
    reward: np.ndarray,
    value: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    bootstrap_value: np.ndarray,
    last_value: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """Slow, unmasked: A_t as the explicit sum of (gamma lambda)^k delta_{t+k} over the rest
    of the episode, one agent and one step at a time."""
    agents, steps = reward.shape
    advantages = np.zeros((agents, steps))
    for agent in range(agents):
        delta = []
        for t in range(steps):
            if terminated[agent, t]:
                next_value = 0.0
            elif truncated[agent, t]:
                next_value = bootstrap_value[agent, t]
            elif t == steps - 1:
                next_value = last_value[agent]
            else:
                next_value = value[agent, t + 1]
            delta.append(reward[agent, t] + gamma * next_value - value[agent, t])
        for t in range(steps):
            total, weight, k = 0.0, 1.0, t
            while True:
                total += weight * delta[k]
                if terminated[agent, k] or truncated[agent, k] or k == steps - 1:
                    break
                weight *= gamma * gae_lambda
                k += 1
            advantages[agent, t] = total
    return advantages


Rollout = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _random_rollout(rng: np.random.Generator, agents: int, steps: int) -> Rollout:
    """reward, value, terminated, truncated, bootstrap_value, last_value."""
    reward = rng.normal(size=(agents, steps)).astype(np.float32)
    value = rng.normal(size=(agents, steps)).astype(np.float32)
    terminated = rng.random((agents, steps)) < 0.1
    truncated = rng.random((agents, steps)) < 0.1
    bootstrap_value = rng.normal(size=(agents, steps)).astype(np.float32)
    last_value = rng.normal(size=agents).astype(np.float32)
    return reward, value, terminated, truncated, bootstrap_value, last_value


# Hand-worked examples


def test_terminated_episodes_count_down_to_their_end() -> None:
    reward = np.ones((1, 10), dtype=np.float32)
    advantages, returns = _gae(reward, terminated=_flags(10, [4, 9]), last_value=np.array([99.0]))
    expected = np.array([[5, 4, 3, 2, 1, 5, 4, 3, 2, 1]], dtype=np.float32)
    assert_array_equal(returns, expected)
    assert_array_equal(advantages, expected)


def test_truncation_bootstraps_from_the_final_observation() -> None:
    reward = np.ones((1, 10), dtype=np.float32)
    bootstrap_value = np.full((1, 10), np.nan, dtype=np.float32)  # read only where truncated
    bootstrap_value[0, 4] = 10.0
    _, returns = _gae(
        reward,
        terminated=_flags(10, [9]),
        truncated=_flags(10, [4]),
        bootstrap_value=bootstrap_value,
    )
    assert_array_equal(returns, [[15, 14, 13, 12, 11, 5, 4, 3, 2, 1]])


def test_rollout_ending_mid_episode_bootstraps_from_last_value() -> None:
    reward = np.zeros((1, 3), dtype=np.float32)
    advantages, returns = _gae(reward, last_value=np.array([7.0]), gamma=0.5)
    # The last step's return is r + gamma * last_value = 3.5: last_value is discounted too.
    assert_array_equal(returns, [[0.875, 1.75, 3.5]])
    assert_array_equal(advantages, returns)  # value is 0
    _, returns = _gae(reward, last_value=np.array([14.0]), gamma=0.5)
    assert_array_equal(returns, [[1.75, 3.5, 7.0]])


def test_terminated_and_truncated_together_count_as_terminated() -> None:
    reward = np.ones((1, 4), dtype=np.float32)
    both = _flags(4, [1])
    _, returns = _gae(
        reward,
        terminated=both,
        truncated=both,
        bootstrap_value=np.full((1, 4), 100.0, dtype=np.float32),
        last_value=np.array([0.0]),
    )
    assert_array_equal(returns, [[2, 1, 2, 1]])


def test_value_baseline_is_subtracted() -> None:
    reward = np.array([[1.0, 2.0]], dtype=np.float32)
    value = np.array([[0.5, 4.0]], dtype=np.float32)
    advantages, returns = _gae(reward, value, last_value=np.array([8.0]), gamma=0.5)
    # returns: [1 + 0.5 * (2 + 0.5 * 8), 2 + 0.5 * 8] = [4, 6]
    assert_array_equal(returns, [[4.0, 6.0]])
    assert_array_equal(advantages, [[3.5, 2.0]])


# General case


def test_matches_slow_reference_on_random_rollouts() -> None:
    rng = np.random.default_rng(0)
    rollout = _random_rollout(rng, agents=5, steps=64)
    advantages, returns = compute_gae(*rollout, gamma=0.97, gae_lambda=0.9)
    expected = _reference_gae(*rollout, gamma=0.97, gae_lambda=0.9)
    assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)
    assert_allclose(returns, expected + rollout[1], rtol=1e-5, atol=1e-5)
    assert advantages.dtype == np.float32
    assert returns.dtype == np.float32


def test_agents_are_independent_rows() -> None:
    rng = np.random.default_rng(1)
    rollout = _random_rollout(rng, agents=4, steps=20)
    advantages, _ = compute_gae(*rollout, gamma=0.9, gae_lambda=0.8)
    for agent in range(4):
        reward, value, terminated, truncated, bootstrap_value, last_value = (
            array[agent : agent + 1] for array in rollout
        )
        single, _ = compute_gae(
            reward, value, terminated, truncated, bootstrap_value, last_value, 0.9, 0.8
        )
        assert_array_equal(single, advantages[agent : agent + 1])


def test_lambda_zero_gives_one_step_td_errors() -> None:
    rng = np.random.default_rng(2)
    reward, value, terminated, truncated, bootstrap_value, last_value = _random_rollout(
        rng, agents=3, steps=16
    )
    advantages, _ = compute_gae(
        reward, value, terminated, truncated, bootstrap_value, last_value, 0.9, 0.0
    )
    next_value = np.concatenate([value[:, 1:], last_value[:, None]], axis=1)
    next_value = np.where(truncated, bootstrap_value, next_value)
    next_value = np.where(terminated, 0.0, next_value).astype(np.float32)
    assert_array_equal(advantages, reward + np.float32(0.9) * next_value - value)


def test_float64_and_integer_inputs_give_float32() -> None:
    advantages, returns = compute_gae(
        np.ones((2, 3)),
        np.zeros((2, 3), dtype=np.int64),
        np.zeros((2, 3), dtype=np.int8),
        np.zeros((2, 3), dtype=bool),
        np.zeros((2, 3)),
        np.zeros(2),
        gamma=1,
        gae_lambda=1,
    )
    assert advantages.dtype == returns.dtype == np.float32
    assert_array_equal(returns, [[3, 2, 1], [3, 2, 1]])


def test_empty_rollout() -> None:
    advantages, returns = _gae(np.zeros((3, 0), dtype=np.float32))
    assert advantages.shape == returns.shape == (3, 0)


# Masks


def test_masked_steps_are_zero_and_split_the_rollout() -> None:
    rng = np.random.default_rng(3)
    reward, value, terminated, truncated, bootstrap_value, last_value = _random_rollout(
        rng, agents=1, steps=12
    )
    terminated[:] = False
    truncated[:] = False
    terminated[0, 1] = True
    mask = np.ones((1, 12), dtype=bool)
    mask[0, 5:8] = False  # absent at steps 5, 6, 7
    # Garbage where the agent was absent must not leak anywhere.
    for array in (reward, value, bootstrap_value):
        array[0, 5:8] = np.nan
    advantages, returns = compute_gae(
        reward, value, terminated, truncated, bootstrap_value, last_value, 0.95, 0.9, mask
    )

    def segment(start: int, stop: int, final_value: np.ndarray) -> tuple[np.ndarray, ...]:
        return compute_gae(
            reward[:, start:stop],
            value[:, start:stop],
            terminated[:, start:stop],
            truncated[:, start:stop],
            bootstrap_value[:, start:stop],
            final_value,
            0.95,
            0.9,
        )

    first_advantages, first_returns = segment(0, 5, bootstrap_value[:, 4])
    second_advantages, second_returns = segment(8, 12, last_value)
    assert_array_equal(advantages[:, :5], first_advantages)
    assert_array_equal(returns[:, :5], first_returns)
    assert_array_equal(advantages[:, 5:8], 0.0)
    assert_array_equal(returns[:, 5:8], 0.0)
    assert_array_equal(advantages[:, 8:], second_advantages)
    assert_array_equal(returns[:, 8:], second_returns)


def test_mask_of_one_agent_does_not_touch_the_others() -> None:
    rng = np.random.default_rng(4)
    rollout = _random_rollout(rng, agents=3, steps=10)
    mask = np.ones((3, 10), dtype=bool)
    mask[1, ::2] = False
    masked, _ = compute_gae(*rollout, gamma=0.9, gae_lambda=0.9, mask=mask)
    unmasked, _ = compute_gae(*rollout, gamma=0.9, gae_lambda=0.9)
    assert_array_equal(masked[[0, 2]], unmasked[[0, 2]])
    assert_array_equal(masked[1, ::2], 0.0)


def test_masked_last_step_ignores_last_value() -> None:
    mask = np.array([[True, True, False]])
    _, returns = _gae(
        np.ones((1, 3), dtype=np.float32),
        bootstrap_value=np.array([[0.0, 5.0, 0.0]], dtype=np.float32),
        last_value=np.array([np.nan]),
        mask=mask,
    )
    assert_array_equal(returns, [[7.0, 6.0, 0.0]])


# Bad input


@pytest.mark.parametrize("name", ["value", "terminated", "truncated", "bootstrap_value", "mask"])
def test_shape_mismatch_names_the_array_and_both_shapes(name: str) -> None:
    arrays = {
        "reward": np.zeros((2, 5)),
        "value": np.zeros((2, 5)),
        "terminated": np.zeros((2, 5), dtype=bool),
        "truncated": np.zeros((2, 5), dtype=bool),
        "bootstrap_value": np.zeros((2, 5)),
        "last_value": np.zeros(2),
        "mask": np.ones((2, 5), dtype=bool),
    }
    arrays[name] = arrays[name][:, :4]
    with pytest.raises(ValueError, match=rf"'{name}'.*\(2, 5\).*\(2, 4\)"):
        compute_gae(**arrays)  # type: ignore[arg-type]


def test_last_value_must_have_one_entry_per_agent() -> None:
    with pytest.raises(ValueError, match=r"'last_value'.*\(2,\).*\(2, 1\)"):
        _gae(np.zeros((2, 5)), last_value=np.zeros((2, 1)))


def test_reward_must_be_two_dimensional() -> None:
    with pytest.raises(ValueError, match=r"'reward'.*2-D.*\(5,\)"):
        _gae(np.zeros(5), last_value=np.zeros(5))


@pytest.mark.parametrize("name", ["gamma", "gae_lambda"])
@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_discounts_must_lie_in_the_unit_interval(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=rf"'{name}'.*\[0, 1\].*{bad}"):
        _gae(np.zeros((1, 3)), **{name: bad})  # type: ignore[arg-type]


def test_non_numeric_arrays_are_rejected() -> None:
    with pytest.raises(ValueError, match="'terminated' must be boolean"):
        _gae(np.zeros((1, 2)), terminated=np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="'value' must hold real numbers"):
        _gae(np.zeros((1, 2)), value=np.array([["a", "b"]]))


# Property: with gamma = lambda = 1 a return is the plain sum of rewards to the episode's end
# plus whatever bootstraps it there.


@settings(max_examples=60, deadline=None)
@given(
    steps=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
    done_rate=st.floats(0.0, 0.5),
)
def test_undiscounted_returns_are_reward_sums_to_the_episode_end(
    steps: int, seed: int, done_rate: float
) -> None:
    rng = np.random.default_rng(seed)
    reward = rng.integers(-3, 4, size=(2, steps)).astype(np.float32)
    value = rng.integers(-3, 4, size=(2, steps)).astype(np.float32)
    terminated = rng.random((2, steps)) < done_rate
    truncated = rng.random((2, steps)) < done_rate
    bootstrap_value = rng.integers(-9, 10, size=(2, steps)).astype(np.float32)
    last_value = rng.integers(-9, 10, size=2).astype(np.float32)
    _, returns = compute_gae(
        reward, value, terminated, truncated, bootstrap_value, last_value, 1.0, 1.0
    )
    for agent in range(2):
        for t in range(steps):
            total, k = 0.0, t
            while True:
                total += reward[agent, k]
                if terminated[agent, k]:
                    break
                if truncated[agent, k]:
                    total += bootstrap_value[agent, k]
                    break
                if k == steps - 1:
                    total += last_value[agent]
                    break
                k += 1
            assert returns[agent, t] == total


# explained_variance


def test_explained_variance() -> None:
    target = np.array([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(target, target) == 1.0
    assert explained_variance(np.full(4, target.mean()), target) == 0.0
    assert explained_variance(target + 1.0, target) == 1.0  # a constant offset is not variance
    assert explained_variance(-target, target) == pytest.approx(-3.0)
    assert math.isnan(explained_variance(np.zeros(3), np.ones(3)))
    with pytest.raises(ValueError, match=r"'pred'.*'target'"):
        explained_variance(np.zeros(3), np.zeros(4))
