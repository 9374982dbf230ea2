"""MultiGymEnv: a Gymnasium env as a one-agent MultiAgentEnv (CartPole-v1, Pendulum-v1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from coltra.buffers import Action, Observation
from coltra.envs import MultiGymEnv

Closer = Callable[[Any], Any]

PUSH_RIGHT = {"agent": Action(discrete=1)}


def test_one_agent_named_agent_with_the_gym_spaces() -> None:
    env = MultiGymEnv("CartPole-v1")
    assert env.agent_names == ["agent"]
    assert env.num_agents == 1
    assert env.observation_space == gym.spaces.Box(
        env.observation_space.low, env.observation_space.high, (4,), np.float32
    )
    assert env.action_space == gym.spaces.Discrete(2)
    obs = env.reset(seed=0)
    assert list(obs) == ["agent"]
    assert obs["agent"].keys() == ["vector"]
    assert obs["agent"].vector.shape == (4,)
    assert obs["agent"].vector.dtype == np.float32
    env.close()


def test_observations_and_rewards_match_plain_gymnasium() -> None:
    env = MultiGymEnv("Pendulum-v1")
    reference = gym.make("Pendulum-v1")
    obs = env.reset(seed=3)
    raw, _ = reference.reset(seed=3)
    np.testing.assert_array_equal(obs["agent"].vector, raw)
    for torque in (-2.0, 0.5, 1.5):
        obs, reward, done, info = env.step({"agent": Action(np.array([torque], np.float32))})
        raw, raw_reward, *_ = reference.step(np.array([torque], np.float32))
        np.testing.assert_array_equal(obs["agent"].vector, raw)
        assert reward == {"agent": pytest.approx(float(raw_reward), abs=1e-6)}
        assert done == {"agent": False}
        assert "truncated" not in info and "final_obs" not in info


def test_time_limit_is_truncation_with_episode_metrics() -> None:
    env = MultiGymEnv("CartPole-v1", max_episode_steps=3)
    env.reset(seed=0)
    for _ in range(2):
        obs, reward, done, info = env.step({"agent": Action(discrete=0)})
        assert reward == {"agent": 1.0} and done == {"agent": False}
    obs, reward, done, info = env.step({"agent": Action(discrete=0)})
    assert done == {"agent": True}
    assert info["truncated"] == {"agent": True}
    assert isinstance(info["final_obs"]["agent"], Observation)
    assert info["final_obs"]["agent"].vector.shape == (4,)
    np.testing.assert_array_equal(info["e_episode_reward"], [3.0])
    np.testing.assert_array_equal(info["e_episode_length"], [3.0])
    # The agent's episode is over: it no longer appears, and stepping again needs a reset.
    assert obs == {}
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step({"agent": Action(discrete=0)})
    assert list(env.reset()) == ["agent"]


def test_falling_pole_is_termination_not_truncation() -> None:
    env = MultiGymEnv("CartPole-v1")
    env.reset(seed=0)
    steps, done, info = 0, {"agent": False}, {}
    while not done["agent"]:
        _, _, done, info = env.step(PUSH_RIGHT)
        steps += 1
    assert steps == 8  # pushing right from seed 0 tips the pole over at step 8
    assert info["truncated"] == {"agent": False}
    np.testing.assert_array_equal(info["e_episode_length"], [8.0])
    np.testing.assert_array_equal(info["e_episode_reward"], [8.0])


def test_pendulum_truncates_at_200_steps() -> None:
    env = MultiGymEnv("Pendulum-v1")
    env.reset(seed=0)
    action = {"agent": Action(np.zeros(1, dtype=np.float32))}
    for step in range(1, 201):
        _, _, done, info = env.step(action)
        assert done["agent"] is (step == 200)
    assert info["truncated"] == {"agent": True}
    np.testing.assert_array_equal(info["e_episode_length"], [200.0])


def test_batch_view_of_a_single_env() -> None:
    env = MultiGymEnv("Pendulum-v1", max_episode_steps=2)
    first = env.reset_batch(seed=1)
    assert first.obs.vector.shape == (1, 3)
    assert first.active.tolist() == [True]
    step = env.step_batch(Action(np.array([[0.5]], dtype=np.float32)))
    assert step.reward.shape == (1,) and step.reward.dtype == np.float32
    assert step.active.tolist() == [True] and step.final_obs is None
    step = env.step_batch(Action(np.array([[0.5]], dtype=np.float32)))
    assert step.truncated.tolist() == [True] and step.terminated.tolist() == [False]
    assert step.active.tolist() == [False]
    assert step.final_obs is not None


def test_make_kwargs_wrappers_and_a_ready_env() -> None:
    wrapped = MultiGymEnv(
        "CartPole-v1", wrappers=[lambda e: gym.wrappers.TimeLimit(e, max_episode_steps=2)]
    )
    wrapped.reset(seed=0)
    wrapped.step(PUSH_RIGHT)
    _, _, done, info = wrapped.step(PUSH_RIGHT)
    assert done == {"agent": True} and info["truncated"] == {"agent": True}

    ready = MultiGymEnv(env=gym.make("CartPole-v1"), agent_name="cart")
    assert list(ready.reset(seed=0)) == ["cart"]


def test_render_with_rgb_array() -> None:
    env = MultiGymEnv("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.shape == (400, 600, 3)
    env.close()


def test_unknown_id_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="unknown Gymnasium env id 'NoSuchEnv-v0'"):
        MultiGymEnv("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="'CartPole-v99'"):
        MultiGymEnv("CartPole-v99")


def test_needs_exactly_one_of_name_and_env() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MultiGymEnv()
    with pytest.raises(ValueError, match="exactly one"):
        MultiGymEnv("CartPole-v1", env=gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match=r"gymnasium\.Env"):
        MultiGymEnv(env="CartPole-v1")  # type: ignore[arg-type]


def test_step_before_reset_is_an_error() -> None:
    env = MultiGymEnv("CartPole-v1")
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step(PUSH_RIGHT)
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step_batch(Action(discrete=np.array([1])))


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        ({"agent": Action(discrete=1.0)}, TypeError, "must be integers.*float64"),
        ({"agent": Action(discrete=2)}, ValueError, r"\[2\] outside Discrete\(2\)"),
        ({"agent": Action(discrete=-1)}, ValueError, r"\[-1\] outside"),
        ({"agent": Action(discrete=np.array([1]))}, ValueError, r"shape \(1,\), expected \(\)"),
        ({"agent": Action(np.array([1.0]))}, ValueError, "expected Action\\(discrete=...\\)"),
        ({"agent": 1}, TypeError, "expected a coltra.buffers.Action, got int"),
        ({"agent": np.int64(1)}, TypeError, "got int64"),
        ({"robot": Action(discrete=1)}, ValueError, r"unknown agents \['robot'\]"),
        ({}, ValueError, r"no action for live agents \['agent'\]"),
        ([Action(discrete=1)], TypeError, "expects a dict of agent name -> Action, got list"),
    ],
    ids=[
        "float",
        "too-big",
        "negative",
        "wrong-shape",
        "wrong-field",
        "int",
        "numpy-int",
        "unknown-name",
        "missing",
        "not-a-dict",
    ],
)
def test_bad_discrete_actions(action: Any, error: type[Exception], message: str) -> None:
    env = MultiGymEnv("CartPole-v1")
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.step(action)
    env.step(PUSH_RIGHT)  # a refused action leaves the env usable


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (Action(np.zeros(2, np.float32)), ValueError, r"shape \(2,\), expected \(1,\)"),
        (Action(np.float32(0.5)), ValueError, r"shape \(\), expected \(1,\)"),
        (Action(discrete=1), ValueError, "expected Action\\(continuous=...\\)"),
        (Action(np.array([True])), TypeError, "must be numbers.*bool"),
    ],
    ids=["wrong-size", "scalar", "discrete", "bool"],
)
def test_bad_box_actions(action: Action, error: type[Exception], message: str) -> None:
    env = MultiGymEnv("Pendulum-v1")
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.step({"agent": action})


def test_bad_batch_actions() -> None:
    env = MultiGymEnv("CartPole-v1")
    env.reset_batch(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(1,\)"):
        env.step_batch(Action(discrete=np.array([1, 0])))
    with pytest.raises(TypeError, match="got dict"):
        env.step_batch({"agent": Action(discrete=1)})  # type: ignore[arg-type]


def test_get_venv_as_in_the_seed(closing: Closer) -> None:
    env = closing(MultiGymEnv.get_venv(8, env_name="CartPole-v1"))
    assert env.agent_names == [f"agent&env={i}" for i in range(8)]
    assert env.observation_space.shape == (4,)
    assert env.action_space.n == 2
    obs = env.reset()
    assert sorted(obs) == sorted(env.agent_names)
    obs, reward, done, info = env.step(
        {name: Action(discrete=env.action_space.sample()) for name in obs}
    )
    assert len(obs) == 8 and set(reward.values()) == {1.0}
    assert not any(done.values()) and "final_obs" not in info


def test_unknown_id_through_get_venv_is_still_a_value_error(backend: str) -> None:
    with pytest.raises(ValueError, match="'NoSuchEnv-v0'"):
        MultiGymEnv.get_venv(2, env_name="NoSuchEnv-v0", backend=backend)


@pytest.mark.parametrize(("workers", "envs_per_worker"), [(3, 1), (1, 2)])
@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_copies_of_one_ready_made_env_are_refused(
    workers: int, envs_per_worker: int, backend: str
) -> None:
    """Issue 12 (a): get_venv(3, env=gym.make(...)) stepped one env object three times."""
    shared = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match=r"would make all \d copies step that one env object"):
        MultiGymEnv.get_venv(workers, envs_per_worker, env=shared, backend=backend)
    shared.close()


def test_env_fn_builds_independent_copies(closing: Closer) -> None:
    env = closing(MultiGymEnv.get_venv(3, env_fn=lambda: gym.make("CartPole-v1"), seed=0))
    reference = closing(MultiGymEnv.get_venv(3, env_name="CartPole-v1", seed=0))
    first = env.reset_batch()
    np.testing.assert_array_equal(first.obs.vector, reference.reset_batch().obs.vector)
    assert len({row.tobytes() for row in first.obs.vector}) == 3  # seeds 0, 1, 2: three envs
    one = closing(MultiGymEnv.get_venv(1, env=gym.make("CartPole-v1")))  # one copy is fine
    assert one.num_envs == 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="exactly one of env_name='CartPole-v1', env_fn="):
        MultiGymEnv("CartPole-v1", env_fn=lambda: gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="env_fn must be a function"):
        MultiGymEnv(env_fn=3)  # type: ignore[arg-type]
