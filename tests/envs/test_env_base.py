"""The MultiAgentEnv base: one view implemented, the other derived; names; StepBatch."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from coltra.buffers import Action, Observation
from coltra.envs import MultiAgentEnv, StepBatch, parse_agent_name, vec_agent_name

Closer = Callable[[Any], Any]


class CountingEnv(MultiAgentEnv):
    """A dict-view env: agents ``a`` and ``b`` see [t]; reward is the action taken plus t.
    ``b`` leaves after step 1; the episode ends (``a`` truncated) after step 2. When
    ``keep_done_obs`` is set, the final step still returns an observation for ``a``, as
    some envs do; it must not count as acting next."""

    def __init__(self, keep_done_obs: bool = False) -> None:
        self.agent_names = ["a", "b"]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.keep_done_obs = keep_done_obs
        self.t = 0

    def _obs(self, *names: str) -> dict[str, Observation]:
        return {name: Observation(np.array([self.t], np.float32)) for name in names}

    def reset(self, seed: int | None = None) -> dict[str, Observation]:
        self.t = 0
        return self._obs("a", "b")

    def step(self, actions: dict[str, Action]) -> tuple[dict, dict, dict, dict]:
        self.t += 1
        reward = {name: float(action.discrete) + self.t for name, action in actions.items()}
        if self.t == 1:
            return self._obs("a"), reward, {"a": False, "b": True}, {"m_speed": 2.0}
        obs = self._obs("a") if self.keep_done_obs else {}
        return obs, reward, {"a": True}, {"truncated": {"a": True}, "e_score": 5.0}


def test_derived_batch_view_of_a_dict_env() -> None:
    env = CountingEnv()
    first = env.reset_batch()
    assert first.obs.vector.tolist() == [[0.0], [0.0]]
    assert first.active.tolist() == [True, True]
    step = env.step_batch(Action(discrete=np.array([2, 1])))
    assert step.reward.tolist() == [3.0, 2.0]
    assert step.terminated.tolist() == [False, True]
    assert step.active.tolist() == [True, False]
    assert step.metrics == {"m_speed": np.array([2.0])}
    # Row b is inactive: its value is ignored, even out of range.
    step = env.step_batch(Action(discrete=np.array([0, 99])))
    assert step.reward.tolist() == [2.0, 0.0]
    assert step.truncated.tolist() == [True, False] and step.terminated.tolist() == [False] * 2
    assert step.active.tolist() == [False, False]
    assert step.metrics["e_score"].tolist() == [5.0]


def test_a_done_agent_never_acts_next_even_with_an_observation() -> None:
    env = CountingEnv(keep_done_obs=True)
    env.reset_batch()
    env.step_batch(Action(discrete=np.array([0, 0])))
    step = env.step_batch(Action(discrete=np.array([0, 0])))
    assert step.active.tolist() == [False, False]
    assert step.final_obs is not None
    assert step.final_obs.vector.tolist() == [[2.0], [0.0]]  # b: last obs it was given


def test_dict_env_vectorises(backend: str, closing: Closer) -> None:
    env = closing(CountingEnv.get_venv(2, backend=backend))
    assert env.agent_names == ["a&env=0", "b&env=0", "a&env=1", "b&env=1"]
    obs = env.reset()
    assert len(obs) == 4
    obs, reward, done, info = env.step({name: Action(discrete=1) for name in obs})
    assert sorted(obs) == ["a&env=0", "a&env=1"]
    assert reward == {"a&env=0": 2.0, "b&env=0": 2.0, "a&env=1": 2.0, "b&env=1": 2.0}
    assert info["truncated"] == {"b&env=0": False, "b&env=1": False}
    np.testing.assert_array_equal(info["m_speed"], [2.0, 2.0])
    obs, reward, done, info = env.step({name: Action(discrete=0) for name in obs})
    assert done == {"a&env=0": True, "a&env=1": True}
    assert info["truncated"] == {"a&env=0": True, "a&env=1": True}
    assert sorted(obs) == sorted(env.agent_names)  # restarted with both agents
    # The env gave no final observation: the last one it gave stands in.
    assert info["final_obs"]["a&env=1"].vector.tolist() == [1.0]


def test_a_subclass_must_implement_a_whole_view() -> None:
    with pytest.raises(TypeError, match=r"must implement reset\(\) and step\(\).*\['reset'\]"):

        class HalfEnv(MultiAgentEnv):
            def reset(self, seed: int | None = None) -> dict[str, Observation]:
                return {}

    class NoView(MultiAgentEnv):
        pass

    with pytest.raises(NotImplementedError, match="implements neither"):
        NoView().reset()


def test_get_env_creator_is_a_picklable_zero_argument_constructor() -> None:
    creator = CountingEnv.get_env_creator(keep_done_obs=True)
    env = pickle.loads(pickle.dumps(creator))()
    assert isinstance(env, CountingEnv) and env.keep_done_obs


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("pursuer_0&env=3", ("pursuer_0", 3)),
        ("agent&env=12", ("agent", 12)),
        ("agent", ("agent", None)),
        ("a&b&env=1", ("a&b", 1)),
        ("agent&env=x", ("agent&env=x", None)),
    ],
)
def test_parse_agent_name(name: str, parsed: tuple[str, int | None]) -> None:
    assert parse_agent_name(name) == parsed


def test_vec_agent_name_round_trip() -> None:
    assert vec_agent_name("pursuer_0", 3) == "pursuer_0&env=3"
    assert parse_agent_name(vec_agent_name("x", 7)) == ("x", 7)


def test_step_batch_first_and_concat() -> None:
    first = StepBatch.first(Observation(np.zeros((2, 3))))
    assert first.reward.tolist() == [0.0, 0.0] and first.active.all() and not first.done.any()
    other = StepBatch(
        obs=Observation(np.ones((1, 3))),
        reward=np.array([5.0], np.float32),
        terminated=np.array([True]),
        truncated=np.array([False]),
        active=np.array([True]),
        final_obs=Observation(np.full((1, 3), 9.0)),
        metrics={"e_episode_reward": np.array([5.0])},
    )
    joined = StepBatch.concat([first, other])
    assert joined.reward.tolist() == [0.0, 0.0, 5.0]
    assert joined.done.tolist() == [False, False, True]
    assert joined.final_obs is not None
    assert joined.final_obs.vector[:, 0].tolist() == [0.0, 0.0, 9.0]
    assert joined.metrics == {"e_episode_reward": np.array([5.0])}
