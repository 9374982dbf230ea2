"""collect_crowd_data / CrowdCollector: layout, episode continuity, truncation, masking."""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch

from coltra.agents import CAgent, ConstantAgent, DAgent
from coltra.buffers import Action, Observation
from coltra.collectors import CrowdCollector, collect_crowd_data
from coltra.envs import MultiAgentEnv, MultiGymEnv, StepBatch
from coltra.envs.probe_envs import ConstantRewardEnv, ObservedRewardEnv
from coltra.groups import HomogeneousGroup, MultiPolicyGroup
from coltra.models import MLPModel


def make_group(env: MultiAgentEnv, seed: int = 0) -> HomogeneousGroup:
    torch.manual_seed(seed)
    model = MLPModel({}, observation_space=env.observation_space, action_space=env.action_space)
    return HomogeneousGroup(DAgent(model) if model.discrete else CAgent(model))


class CountingReset(ConstantRewardEnv):
    resets: ClassVar[list[int]] = []

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        CountingReset.resets.append(1)
        return super().reset_batch(seed)


class DyingAgentEnv(MultiAgentEnv):
    """Two agents for 4 steps; ``agent_1`` terminates after its 2nd step and is gone."""

    def __init__(self) -> None:
        self.agent_names = ["agent_0", "agent_1"]
        self.observation_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> Observation:
        return Observation(vector=np.full((2, 1), self.t / 4, dtype=np.float32))

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        self.t = 0
        return StepBatch.first(self._obs())

    def step_batch(self, actions: Action) -> StepBatch:
        self.t += 1
        alive_before = np.array([True, self.t <= 2])
        terminated = np.array([self.t == 4, self.t == 2])
        return StepBatch(
            obs=self._obs(),
            reward=np.where(alive_before, 1.0, 0.0).astype(np.float32),
            terminated=terminated & alive_before,
            truncated=np.zeros(2, bool),
            active=np.array([self.t < 4, self.t < 2]),
            final_obs=self._obs(),
        )


def test_record_layout_on_cartpole() -> None:
    env = MultiGymEnv.get_venv(4, env_name="CartPole-v1", seed=0)
    agents = make_group(env)
    data, metrics, shape = collect_crowd_data(agents, env, num_steps=10)
    assert shape == (4, 10)
    record = data["crowd"]
    assert record.shape == (4, 10)
    assert record.obs.vector.shape == (4, 10, 4)
    assert record.action.discrete.shape == (4, 10)
    assert record.logprob.shape == record.value.shape == record.reward.shape == (4, 10)
    assert record.mask.all()
    assert record.last_value.shape == (4,)
    assert record.agent_names == [f"agent&env={i}" for i in range(4)]
    np.testing.assert_array_equal(record.reward, 1.0)
    # log-probabilities of a 2-action categorical are at most 0 and above log(1e-3)
    assert (record.logprob <= 0).all() and (record.logprob > np.log(1e-3)).all()
    assert set(metrics) >= {"episode_return", "episode_length"}
    env.close()


def test_episodes_continue_across_calls() -> None:
    """Episodes longer than one rollout still end and are counted; the env resets once."""
    CountingReset.resets.clear()
    env = CountingReset(num_agents=3, episode_length=7)
    agents = make_group(env)
    returns = []
    for _ in range(6):
        _, metrics, _ = collect_crowd_data(agents, env, num_steps=3)
        returns.extend(metrics["episode_return"].tolist())
    # 18 steps: episodes end after steps 7 and 14, for each of the 3 agents
    assert returns == [7.0] * 6
    # one reset by the first call, then one per ended episode (the collector's autoreset)
    assert len(CountingReset.resets) == 1 + 2


def test_truncation_bootstraps_from_the_final_observation() -> None:
    env = ConstantRewardEnv(num_agents=2, episode_length=3, truncate=True)
    agents = make_group(env)
    data, _, _ = collect_crowd_data(agents, env, num_steps=6)
    record = data["crowd"]
    np.testing.assert_array_equal(record.truncated[0], [False, False, True, False, False, True])
    assert not record.terminated.any()
    final_value = agents.agent.value(Observation(vector=np.ones((1, 1), np.float32)))
    expected = np.zeros((2, 6), np.float32)
    expected[:, [2, 5]] = float(final_value.detach()[0])
    np.testing.assert_allclose(record.bootstrap_value, expected, rtol=1e-6)


def test_termination_does_not_bootstrap() -> None:
    env = ConstantRewardEnv(num_agents=2, episode_length=3)
    data, _, _ = collect_crowd_data(make_group(env), env, num_steps=6)
    record = data["crowd"]
    np.testing.assert_array_equal(record.terminated[1], [False, False, True, False, False, True])
    np.testing.assert_array_equal(record.bootstrap_value, 0.0)


def test_absent_agents_are_masked_not_padded() -> None:
    env = DyingAgentEnv()
    data, metrics, _ = collect_crowd_data(make_group(env), env, num_steps=4)
    record = data["crowd"]
    np.testing.assert_array_equal(record.mask[0], [True, True, True, True])
    np.testing.assert_array_equal(record.mask[1], [True, True, False, False])
    np.testing.assert_array_equal(record.reward[1], [1, 1, 0, 0])
    np.testing.assert_array_equal(record.terminated[1], [False, True, False, False])
    assert sorted(metrics["episode_return"].tolist()) == [2.0, 4.0]


def test_non_vectorised_env_is_reset_by_the_collector() -> None:
    env = MultiGymEnv(env_name="CartPole-v1", max_episode_steps=5)
    data, metrics, shape = collect_crowd_data(make_group(env), env, num_steps=12)
    assert shape == (1, 12)
    np.testing.assert_array_equal(metrics["episode_length"][:2], [5, 5])
    assert data["crowd"].truncated[0, 4] and data["crowd"].truncated[0, 9]


def test_one_forward_pass_per_policy_per_step() -> None:
    env = ObservedRewardEnv(num_agents=6)
    torch.manual_seed(0)
    models = {
        name: MLPModel({}, observation_space=env.observation_space, action_space=env.action_space)
        for name in ("first", "second")
    }
    calls = dict.fromkeys(models, 0)
    for name, model in models.items():

        def count(*_: object, name: str = name) -> None:
            calls[name] += 1

        model.register_forward_hook(count)
    agents = MultiPolicyGroup(
        {name: DAgent(model) for name, model in models.items()},
        {"agent_0": "first", "agent_1": "first", "": "second"},
    )
    data, _, shape = collect_crowd_data(agents, env, num_steps=5)
    assert calls == {"first": 5, "second": 5}
    assert data["first"].shape == (2, 5) and data["second"].shape == (4, 5)
    assert shape == (2, 5)
    assert data["second"].agent_names == ["agent_2", "agent_3", "agent_4", "agent_5"]


def test_bad_num_steps() -> None:
    env = ConstantRewardEnv()
    agents = make_group(env)
    with pytest.raises(ValueError, match="num_steps must be >= 1, got 0"):
        collect_crowd_data(agents, env, num_steps=0)
    with pytest.raises(TypeError, match="num_steps must be a whole number"):
        collect_crowd_data(agents, env, num_steps=2.5)  # type: ignore[arg-type]


def test_agents_that_do_not_fit_the_env_are_refused() -> None:
    cartpole = MultiGymEnv.get_venv(2, env_name="CartPole-v1")
    pendulum = MultiGymEnv.get_venv(2, env_name="Pendulum-v1")
    with pytest.raises(TypeError, match=r"policy 'crowd' is a DAgent \(discrete actions\)"):
        collect_crowd_data(make_group(cartpole), pendulum, num_steps=2)
    other = MultiGymEnv.get_venv(2, env_name="Acrobot-v1")
    with pytest.raises(ValueError, match="built for the observation space"):
        collect_crowd_data(make_group(cartpole), other, num_steps=2)
    for env in (cartpole, pendulum, other):
        env.close()


def test_toy_agents_collect() -> None:
    env = ConstantRewardEnv(num_agents=3)
    agents = HomogeneousGroup(ConstantAgent(Action(discrete=np.int64(1))))
    data, _, _ = collect_crowd_data(agents, env, num_steps=2)
    np.testing.assert_array_equal(data["crowd"].action.discrete, 1)
    np.testing.assert_array_equal(data["crowd"].value, 0.0)


def test_collector_reset_is_seeded() -> None:
    def rollout() -> np.ndarray:
        env = ObservedRewardEnv(num_agents=4)
        torch.manual_seed(0)
        data, _, _ = CrowdCollector(make_group(env), env, seed=3).collect(5)
        return data["crowd"].obs.vector

    np.testing.assert_array_equal(rollout(), rollout())


def test_timing_says_where_the_collection_time_went() -> None:
    env = MultiGymEnv.get_venv(2, env_name="CartPole-v1", seed=0)
    collector = CrowdCollector(make_group(env), env, seed=0)
    collector.collect(16)
    timing = collector.timing
    assert set(timing.seconds) == {"env", "forward", "collect_other"}
    assert timing["env"] > 0.0 and timing["forward"] > 0.0 and timing["collect_other"] > 0.0
    assert list(timing.metrics()) == ["time/env_s", "time/forward_s", "time/collect_other_s"]
    with pytest.raises(KeyError, match="unknown phase 'env_s'"):
        timing["env_s"]
