"""coltra.factory: the env and agents a config describes, and the errors of bad configs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from coltra.agents import CAgent, DAgent
from coltra.buffers import Action, Observation
from coltra.configs import ConfigError, EnvConfig, MLPConfig
from coltra.envs import MultiAgentEnv, MultiGymEnv, StepBatch, registry
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
    "module", ["os", "subprocess", "pettingzoo_evil.x", "pettingzoo.sisl; import os", ""]
)
def test_a_config_imports_only_from_allowed_packages(module: str) -> None:
    """Issue 13 item 5: a config from a stranger cannot make Coltra import code."""
    with pytest.raises(ConfigError, match=r"not in an allowed package|expected a module path"):
        pettingzoo_env_fn(module)
    assert "os" not in registry.allowed_modules()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"kind": "pettingzoo", "env_name": "os"}, "allow it with --allow-module os"),
        ({"kind": "gym", "env_name": "os:Anything-v0"}, "module 'os' is not in an allowed"),
        ({"kind": "coltra", "env_name": "subprocess:Popen"}, "module 'subprocess' is not in"),
        ({"env_name": "CartPole-v1", "wrappers": ["os.system"]}, "module 'os' is not in"),
        ({"env_name": "CartPole-v1", "wrappers": ["coltra.files:os"]}, "defined in None"),
        (
            {"env_name": "CartPole-v1", "wrappers": ["coltra.configs.finish:datetime"]},
            "defined in 'datetime'",
        ),
        ({"kind": "registered", "env_name": "nobody"}, "no env is registered as 'nobody'"),
        (
            {"kind": "probe", "env_name": "action", "wrappers": ["gymnasium.wrappers.TimeLimit"]},
            "wrappers apply to gym and pettingzoo envs",
        ),
    ],
)
def test_names_a_config_may_not_use_are_config_errors(env: dict[str, Any], message: str) -> None:
    assert message in str(config_error(EnvConfig(**env)))


def test_missing_or_retired_pettingzoo_module_is_a_config_error() -> None:
    error = config_error(EnvConfig(kind="pettingzoo", env_name="pettingzoo.sisl.pursuit_v4"))
    assert error.key == "env.env_name"
    assert "no environment module 'pettingzoo.sisl.pursuit_v4'" in str(error)
    error = config_error(EnvConfig(kind="pettingzoo", env_name="pettingzoo.sisl"))
    assert "has no parallel_env function" in str(error)


def test_mpe2_and_magent2_modules_may_be_named() -> None:
    env = make_env(
        EnvConfig(
            kind="pettingzoo", env_name="mpe2.simple_spread_v3", workers=2, backend="inprocess"
        ),
        seed=0,
    )
    try:
        assert env.agent_names[:3] == ["agent_0&env=0", "agent_1&env=0", "agent_2&env=0"]
        assert env.observation_space.shape == (18,)
    finally:
        env.close()
    battle = {"kind": "pettingzoo", "env_name": "magent2.environments.battle_v4", "workers": 1}
    env = make_env(EnvConfig(**battle, backend="inprocess", env_kwargs={"map_size": 12}), seed=0)
    try:
        assert env.agent_names[0] == "red_0&env=0" and env.action_space.n == 21  # type: ignore[attr-defined]
        assert env.reset_batch().obs.image.shape[1:] == (13, 13, 5)
    finally:
        env.close()


def test_allowed_packages_registered_envs_and_wrappers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_allowed", list(registry.DEFAULT_ALLOWED_MODULES))
    monkeypatch.setattr(registry, "_registry", {})
    # A Gymnasium wrapper with keywords, by name: episodes of 5 steps.
    limited = EnvConfig(
        workers=1,
        wrappers=[{"name": "gymnasium.wrappers.TimeLimit", "kwargs": {"max_episode_steps": 5}}],
    )
    env = make_env(limited, seed=0)
    try:
        env.reset_batch()
        steps = [env.step_batch(Action(discrete=np.zeros(1, np.int64))) for _ in range(5)]
        assert steps[-1].truncated.all() or steps[-1].terminated.all()
    finally:
        env.close()
    # A SuperSuit wrapper of a PettingZoo env, by name (a plain string).
    clipped = EnvConfig(
        kind="pettingzoo",
        env_name="mpe2.simple_spread_v3",
        workers=1,
        backend="subprocess",
        wrappers=[
            {
                "name": "supersuit.clip_reward_v0",
                "kwargs": {"lower_bound": -0.01, "upper_bound": 0.01},
            }
        ],
    )
    env = make_env(clipped, seed=0)
    try:
        env.reset_batch()
        step = env.step_batch(Action(discrete=np.zeros(3, np.int64)))
        assert np.abs(step.reward).max() <= 0.01
    finally:
        env.close()
    # Your own env class: only once its package is allowed (--allow-module).
    own = EnvConfig(kind="coltra", env_name="coltra.envs.probe_envs:ActionRewardEnv", workers=1)
    assert make_env(own).agent_names == ["agent_0&env=0"]  # Coltra's own are allowed
    with pytest.raises(ConfigError, match="allow it with --allow-module tests"):
        make_env(EnvConfig(kind="coltra", env_name="tests.test_factory:_TupleActionEnv"))
    registry.allow_module("tests")
    assert "tests" in registry.allowed_modules()
    # Registered: a function returning a Gymnasium env (wrapped in MultiGymEnv).
    registry.register(
        "short_cartpole", lambda steps: gym.make("CartPole-v1", max_episode_steps=steps)
    )
    env = make_env(
        EnvConfig(kind="registered", env_name="short_cartpole", workers=2, env_kwargs={"steps": 3}),
        seed=0,
    )
    try:
        assert env.num_envs == 2 and isinstance(env.envs[0], MultiGymEnv)  # type: ignore[attr-defined]
    finally:
        env.close()


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
    assert "['env_fn'] cannot be set from a config" in str(error)


def test_model_sizes_that_contradict_the_env_are_a_config_error() -> None:
    env = make_env(EnvConfig(workers=1), seed=0)
    try:
        with pytest.raises(ConfigError, match=r"^model: model config input_size=3"):
            make_agents(MLPConfig(input_size=3), env)
    finally:
        env.close()


class _TextActionEnv(MultiAgentEnv):
    """An env whose action space no agent class handles."""

    def __init__(self) -> None:
        self.agent_names = ["a"]
        self.observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = gym.spaces.Text(4)

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        return StepBatch.first(Observation(vector=np.zeros((1, 2), np.float32)))

    def step_batch(self, actions: object) -> StepBatch:  # type: ignore[override]
        raise NotImplementedError


def test_an_action_space_without_an_agent_class_is_refused() -> None:
    with pytest.raises(ConfigError, match="no agent for the action space Text"):
        make_agents(MLPConfig(), _TextActionEnv())
