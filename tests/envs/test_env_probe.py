"""Probe envs: exact rewards, episode lengths, variants, and vectorisation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from coltra.buffers import Action
from coltra.envs.probe_envs import (
    PROBE_ENVS,
    ActionRewardEnv,
    BusyEnv,
    ConstantRewardEnv,
    DelayedRewardEnv,
    MemoryEnv,
    ObsActionRewardEnv,
    ObservedRewardEnv,
    ProbeEnv,
    TeamSumEnv,
)

Closer = Callable[[Any], Any]


def discrete(*values: int) -> Action:
    return Action(discrete=np.array(values, dtype=np.int64))


def continuous(*values: float) -> Action:
    return Action(np.array(values, dtype=np.float32)[:, None])


def test_registry() -> None:
    assert PROBE_ENVS == {
        "constant": ConstantRewardEnv,
        "observed": ObservedRewardEnv,
        "action": ActionRewardEnv,
        "obs_action": ObsActionRewardEnv,
        "delayed": DelayedRewardEnv,
        "busy": BusyEnv,
        "memory": MemoryEnv,
    }


def test_busy_env_spends_its_step_cost_and_pays_as_action_reward() -> None:
    env = BusyEnv(2, step_cost=0.02)
    env.reset_batch(seed=0)
    start = time.process_time()
    batch = env.step_batch(Action(discrete=np.array([1, 0])))
    assert time.process_time() - start >= 0.015  # CPU time: a busy-wait, not a sleep
    assert batch.reward.tolist() == [1.0, 0.0]
    for bad in (-1, "1ms", True):
        with pytest.raises(ValueError, match="step_cost must be a number of seconds"):
            BusyEnv(step_cost=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", list(PROBE_ENVS.values()))
@pytest.mark.parametrize("num_agents", [1, 4])
def test_any_number_of_agents(cls: type[ProbeEnv], num_agents: int) -> None:
    env = cls(num_agents)
    assert env.agent_names == [f"agent_{i}" for i in range(num_agents)]
    assert env.action_space == gym.spaces.Discrete(2)
    obs = env.reset(seed=0)
    assert list(obs) == env.agent_names
    assert obs["agent_0"].vector.shape == env.observation_space.shape
    assert obs["agent_0"].vector.dtype == np.float32


def test_constant_reward() -> None:
    env = ConstantRewardEnv(3)
    first = env.reset_batch(seed=0)
    assert first.obs.vector.tolist() == [[1.0]] * 3
    step = env.step_batch(discrete(0, 1, 0))
    assert step.reward.tolist() == [1.0, 1.0, 1.0]
    assert step.terminated.tolist() == [True] * 3 and not step.truncated.any()
    assert not step.active.any()
    assert step.metrics["e_episode_length"].tolist() == [1.0] * 3


def test_observed_reward_is_the_observed_sign() -> None:
    env = ObservedRewardEnv(64)
    signs = env.reset_batch(seed=0).obs.vector[:, 0]
    assert set(signs.tolist()) == {-1.0, 1.0}
    step = env.step_batch(discrete(*[0] * 64))
    np.testing.assert_array_equal(step.reward, signs)


def test_observed_reward_is_seeded() -> None:
    first, second = ObservedRewardEnv(8), ObservedRewardEnv(8)
    assert first.reset(seed=1) == second.reset(seed=1)
    assert first.reset(seed=1) != first.reset(seed=2)


def test_action_reward() -> None:
    env = ActionRewardEnv(2)
    env.reset()
    assert env.step_batch(discrete(1, 0)).reward.tolist() == [1.0, 0.0]
    obs = env.reset()
    _, reward, done, _ = env.step({"agent_0": Action(discrete=0), "agent_1": Action(discrete=1)})
    assert obs["agent_0"].vector.tolist() == [1.0]
    assert reward == {"agent_0": 0.0, "agent_1": 1.0}
    assert done == {"agent_0": True, "agent_1": True}


def test_obs_action_reward() -> None:
    env = ObsActionRewardEnv(32)
    signs = env.reset_batch(seed=0).obs.vector[:, 0]
    follow = (signs > 0).astype(np.int64)
    assert env.step_batch(Action(discrete=follow)).reward.tolist() == [1.0] * 32
    env.reset_batch(seed=0)
    assert env.step_batch(Action(discrete=1 - follow)).reward.tolist() == [0.0] * 32


def test_delayed_reward_arrives_at_the_third_step() -> None:
    env = DelayedRewardEnv(2)
    assert env.observation_space.shape == (3,)
    obs = env.reset_batch(seed=0).obs.vector
    clocks, rewards, dones = [obs[0].tolist()], [], []
    for _ in range(3):
        step = env.step_batch(discrete(0, 1))
        clocks.append(step.obs.vector[0].tolist())
        rewards.append(step.reward.tolist())
        dones.append(step.done.tolist())
    assert clocks[:3] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert rewards == [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]
    assert dones == [[False, False], [False, False], [True, True]]
    assert step.final_obs is not None
    assert step.final_obs.vector[0].tolist() == [0.0, 0.0, 1.0]
    assert step.metrics["e_episode_reward"].tolist() == [1.0, 1.0]
    assert step.metrics["e_episode_length"].tolist() == [3.0, 3.0]


def test_memory_shows_the_sign_once_and_pays_for_it_at_the_end() -> None:
    env = MemoryEnv(2, delay=2)
    obs = env.reset_batch(seed=3).obs.vector
    sign = obs[:, 0].copy()
    assert set(np.abs(sign).tolist()) == {1.0} and obs[:, 1].tolist() == [0.0, 0.0]
    follow = (sign > 0).astype(np.int64)  # the action that follows each agent's sign
    seen, rewards = [], []
    for _ in range(3):
        step = env.step_batch(Action(discrete=np.array([follow[0], 1 - follow[1]])))
        seen.append(step.obs.vector.tolist())
        rewards.append(step.reward.tolist())
    # Hidden after the first step, the query flag on the last; the end pays the follower.
    assert seen[:2] == [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]]
    assert rewards == [[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    assert step.terminated.tolist() == [True, True]
    with pytest.raises(ValueError, match="delay must be a whole number >= 1, got 0"):
        MemoryEnv(delay=0)
    with pytest.raises(ValueError, match=r"must be a whole number >= 2 .* got 1"):
        MemoryEnv(episode_length=1)
    assert MemoryEnv(episode_length=5).delay == 4


def test_delayed_reward_with_a_longer_episode() -> None:
    env = DelayedRewardEnv(episode_length=5)
    assert env.observation_space.shape == (5,)
    env.reset(seed=0)
    rewards = [env.step_batch(discrete(0)).reward[0] for _ in range(5)]
    assert rewards == [0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("cls", list(PROBE_ENVS.values()))
def test_episode_length_and_truncation(cls: type[ProbeEnv]) -> None:
    env = cls(2, episode_length=4, truncate=True)
    env.reset(seed=0)
    for step_number in range(1, 5):
        step = env.step_batch(discrete(1, 1))
        assert step.truncated.tolist() == [step_number == 4] * 2
        assert not step.terminated.any()
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step_batch(discrete(1, 1))


def test_continuous_variants() -> None:
    env = ActionRewardEnv(3, continuous=True)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    env.reset()
    reward = env.step_batch(continuous(0.5, -0.5, 1.0)).reward
    np.testing.assert_allclose(reward, [1.0, 0.0, 0.75])

    env2 = ObsActionRewardEnv(16, continuous=True)
    signs = env2.reset_batch(seed=3).obs.vector[:, 0]
    reward = env2.step_batch(Action((0.5 * signs)[:, None])).reward
    np.testing.assert_allclose(reward, np.ones(16))
    env2.reset_batch(seed=3)
    reward = env2.step_batch(Action((-0.5 * signs)[:, None])).reward
    np.testing.assert_allclose(reward, np.zeros(16))

    constant = ConstantRewardEnv(continuous=True)
    constant.reset()
    _, reward_dict, _, _ = constant.step({"agent_0": Action(np.array([0.3], np.float32))})
    assert reward_dict == {"agent_0": 1.0}
    with pytest.raises(ValueError, match=r"expected Action\(continuous=\.\.\.\)"):
        constant.reset()
        constant.step({"agent_0": Action(discrete=1)})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_agents": 0}, "num_agents must be a whole number >= 1, got 0"),
        ({"num_agents": 2.0}, "got 2.0"),
        ({"episode_length": 0}, "episode_length must be a whole number >= 1, got 0"),
        ({"episode_length": True}, "got True"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConstantRewardEnv(**kwargs)


def test_bad_actions() -> None:
    env = ActionRewardEnv(2)
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step_batch(discrete(1, 1))
    env.reset()
    with pytest.raises(ValueError, match=r"\[2\] outside Discrete\(2\)"):
        env.step_batch(discrete(1, 2))
    with pytest.raises(TypeError, match="must be integers"):
        env.step_batch(Action(discrete=np.array([1.0, 0.0])))
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(2,\)"):
        env.step_batch(discrete(1, 1, 1))
    with pytest.raises(ValueError, match=r"unknown agents \['agent_9'\]"):
        env.step({"agent_0": Action(discrete=1), "agent_9": Action(discrete=1)})


@pytest.mark.parametrize("name", sorted(PROBE_ENVS))
def test_vectorised_with_both_backends(name: str, backend: str, closing: Closer) -> None:
    cls = PROBE_ENVS[name]
    env = closing(cls.get_venv(2, num_agents=2, backend=backend, seed=0))
    assert env.agent_names == ["agent_0&env=0", "agent_1&env=0", "agent_0&env=1", "agent_1&env=1"]
    reference = [cls(2), cls(2)]
    batch = env.reset_batch()
    expected = np.concatenate(
        [ref.reset_batch(seed=i).obs.vector for i, ref in enumerate(reference)]
    )
    np.testing.assert_array_equal(batch.obs.vector, expected)
    for _ in range(4):
        step = env.step_batch(discrete(1, 0, 1, 0))
        parts = [ref.step_batch(discrete(1, 0)) for ref in reference]
        np.testing.assert_array_equal(step.reward, np.concatenate([p.reward for p in parts]))
        np.testing.assert_array_equal(step.done, np.concatenate([p.done for p in parts]))
        for ref, part in zip(reference, parts):
            if not part.active.any():
                ref.reset_batch()
        assert step.active.all()


def test_team_sum_pays_the_mean_sign_that_only_the_state_shows() -> None:
    env = TeamSumEnv(3)
    batch = env.reset_batch(seed=0)
    signs = batch.obs["vector"][:, 0]
    assert set(signs.tolist()) <= {-1.0, 1.0}
    np.testing.assert_array_equal(batch.obs["state"], np.tile(signs, (3, 1)))
    assert env.observation_space.contains({"vector": signs[:1], "state": signs})
    step = env.step_batch(Action(discrete=np.array([0, 1, 0])))
    np.testing.assert_allclose(step.reward, np.full(3, signs.mean()))
    assert step.terminated.all() and not step.active.any()
    np.testing.assert_array_equal(step.metrics["e_episode_reward"], step.reward)
    with pytest.raises(ValueError, match=r"num_agents must be a whole number >= 1, got 0"):
        TeamSumEnv(0)
