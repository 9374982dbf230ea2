"""coltra.factory: the env and agents a config describes, and the errors of bad configs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from coltra.agents import CAgent, DAgent
from coltra.buffers import Observation
from coltra.configs import ConfigError, EnvConfig, MLPConfig
from coltra.envs import MultiAgentEnv, StepBatch
from coltra.envs.vector import SubprocVecEnv
from coltra.factory import make_agents, make_env, pettingzoo_env_fn
from coltra.groups import HomogeneousGroup


def config_error(env_cfg: EnvConfig) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        make_env(env_cfg, seed=0)
    return info.value


def test_gym_env_has_the_configured_copies_and_a_discrete_agent() -> None:
    env = make_env(EnvConfig(env_name="CartPole-v1", workers=3, backend="auto"), seed=0)
    try:
        assert env.num_envs == 3  # type: ignore[attr-defined]
        assert env.agent_names == [f"agent&env={i}" for i in range(3)]
        agents = make_agents(MLPConfig(hidden_sizes=[8]), env)
        assert isinstance(agents, HomogeneousGroup)
        assert isinstance(agents.agent, DAgent)
        assert agents.agent.model is not None
        assert agents.agent.model.config.input_size == 4
    finally:
        env.close()


def test_gym_env_kwargs_reach_gymnasium_make() -> None:
    env = make_env(
        EnvConfig(env_name="Pendulum-v1", workers=1, env_kwargs={"max_episode_steps": 7}), seed=0
    )
    try:
        assert isinstance(make_agents(MLPConfig(), env).agent, CAgent)  # Box actions
        batch = env.reset_batch(seed=0)
        for _ in range(7):
            batch = env.step_batch(make_agents(MLPConfig(), env).agent.act(batch.obs)[0])
        assert batch.truncated.all()  # the 7-step time limit of the kwargs
    finally:
        env.close()


def test_seeded_envs_reset_alike() -> None:
    first, second = (make_env(EnvConfig(workers=2), seed=5) for _ in range(2))
    try:
        a, b = first.reset_batch(), second.reset_batch()
        np.testing.assert_array_equal(a.obs.vector, b.obs.vector)
    finally:
        first.close()
        second.close()


def test_probe_env_takes_its_kwargs() -> None:
    env = make_env(
        EnvConfig(kind="probe", env_name="delayed", workers=2, env_kwargs={"num_agents": 3}),
        seed=0,
    )
    assert env.num_agents == 6
    assert env.observation_space.shape == (3,)


def test_pettingzoo_module_path_builds_pursuit() -> None:
    env = make_env(
        EnvConfig(
            kind="pettingzoo",
            env_name="pettingzoo.sisl.pursuit_v5",
            env_kwargs={"max_cycles": 5, "n_pursuers": 2, "n_evaders": 2},
            workers=1,
            backend="subprocess",
        ),
        seed=0,
    )
    try:
        assert isinstance(env, SubprocVecEnv)
        assert env.agent_names == ["pursuer_0&env=0", "pursuer_1&env=0"]
        assert isinstance(make_agents(MLPConfig(), env).agent, DAgent)
    finally:
        env.close()


def test_unknown_gym_id_is_a_config_error_with_a_suggestion() -> None:
    error = config_error(EnvConfig(env_name="CartPol-v1"))
    assert error.key == "env.env_name"
    assert "unknown Gymnasium env id 'CartPol-v1'" in str(error)
    assert "CartPole" in str(error)


@pytest.mark.parametrize(
    "module",
    ["os", "subprocess", "pettingzoo_evil.x", "pettingzoo.sisl; import os", "pettingzoo", ""],
)
def test_only_pettingzoo_modules_may_be_imported(module: str) -> None:
    with pytest.raises(ConfigError, match="only modules inside the pettingzoo package"):
        pettingzoo_env_fn(module)


def test_missing_or_retired_pettingzoo_module_is_a_config_error() -> None:
    error = config_error(EnvConfig(kind="pettingzoo", env_name="pettingzoo.sisl.pursuit_v4"))
    assert error.key == "env.env_name"
    assert "no PettingZoo environment module 'pettingzoo.sisl.pursuit_v4'" in str(error)
    error = config_error(EnvConfig(kind="pettingzoo", env_name="pettingzoo.sisl"))
    assert "has no parallel_env function" in str(error)


def test_unknown_probe_env_lists_the_known_ones() -> None:
    error = config_error(EnvConfig(kind="probe", env_name="nope"))
    assert "unknown probe env 'nope'" in str(error)
    assert "'action'" in str(error)


def test_env_kwargs_the_env_does_not_take_name_the_key() -> None:
    error = config_error(EnvConfig(workers=1, env_kwargs={"bogus": 1}))
    assert error.key == "env.env_kwargs"
    assert "bogus" in str(error)
    error = config_error(EnvConfig(kind="probe", env_name="action", env_kwargs={"bogus": 1}))
    assert error.key == "env.env_kwargs"
    error = config_error(EnvConfig(kind="pettingzoo", env_kwargs={"env_fn": "x"}))
    assert "env_fn cannot be set from a config" in str(error)


def test_model_sizes_that_contradict_the_env_are_a_config_error() -> None:
    env = make_env(EnvConfig(workers=1), seed=0)
    try:
        with pytest.raises(ConfigError, match=r"^model: model config input_size=3"):
            make_agents(MLPConfig(input_size=3), env)
    finally:
        env.close()


class _TupleActionEnv(MultiAgentEnv):
    """An env whose action space no agent class handles."""

    def __init__(self) -> None:
        self.agent_names = ["a"]
        self.observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2)))

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        return StepBatch.first(Observation(vector=np.zeros((1, 2), np.float32)))

    def step_batch(self, actions: object) -> StepBatch:  # type: ignore[override]
        raise NotImplementedError


def test_an_action_space_without_an_agent_class_is_refused() -> None:
    with pytest.raises(ConfigError, match="no agent for the action space Tuple"):
        make_agents(MLPConfig(), _TupleActionEnv())
