"""PettingZooEnv: pursuit_v5, and a tiny parallel env of our own where agents leave early."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo import ParallelEnv
from pettingzoo.sisl import pursuit_v5

from coltra.buffers import Action
from coltra.envs import PettingZooEnv

Closer = Callable[[Any], Any]
AssertGone = Callable[[Iterable[int]], None]

pytestmark = pytest.mark.timeout(60)

PURSUERS = [f"pursuer_{i}" for i in range(8)]


class LeavingEnv(ParallelEnv):
    """Three agents; ``early`` terminates after step 1, ``late`` after step 3 and ``slow``
    is truncated at step 3. Observation of every agent: [step, seed]. Reward of agent k at
    step t: 10 * k + t.
    """

    metadata = {"name": "leaving_v0"}
    possible_agents = ["early", "late", "slow"]
    ends = {"early": (1, "terminated"), "late": (3, "terminated"), "slow": (3, "truncated")}

    def __init__(self) -> None:
        self.agents: list[str] = []
        self.seed = -1.0
        self.t = 0
        self.received: list[dict[str, int]] = []

    def observation_space(self, agent: str) -> gym.Space:
        return gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def action_space(self, agent: str) -> gym.Space:
        return gym.spaces.Discrete(3)

    def _obs(self, agents: list[str]) -> dict[str, np.ndarray]:
        return {name: np.array([self.t, self.seed], np.float32) for name in agents}

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self.agents = list(self.possible_agents)
        self.t = 0
        self.seed = -1.0 if seed is None else float(seed)
        return self._obs(self.agents), {name: {} for name in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.received.append({name: int(value) for name, value in actions.items()})
        self.t += 1
        acting = list(self.agents)
        rewards = {name: 10.0 * self.possible_agents.index(name) + self.t for name in acting}
        terminations = {name: self.ends[name] == (self.t, "terminated") for name in acting}
        truncations = {name: self.ends[name] == (self.t, "truncated") for name in acting}
        self.agents = [name for name in acting if not (terminations[name] or truncations[name])]
        infos: dict[str, dict] = {name: {} for name in acting}
        return self._obs(acting), rewards, terminations, truncations, infos


def leaving_env() -> LeavingEnv:
    return LeavingEnv()


class JoiningEnv(LeavingEnv):
    """Only ``early`` and ``late`` at first; ``slow`` joins after step 1 and everybody is
    truncated at step 3."""

    ends = {"early": (3, "truncated"), "late": (3, "truncated"), "slow": (3, "truncated")}

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        obs, _ = super().reset(seed, options)
        self.agents = ["early", "late"]
        return {name: obs[name] for name in self.agents}, {name: {} for name in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terminations, truncations, infos = super().step(actions)
        if self.t == 1:
            self.agents.append("slow")
            obs.update(self._obs(["slow"]))
        return obs, rewards, terminations, truncations, infos


def act(names: Iterable[str], value: int = 1) -> dict[str, Action]:
    return {name: Action(discrete=value) for name in names}


# ---------------------------------------------------------------------------- pursuit


def test_pursuit_spaces_and_observations() -> None:
    env = PettingZooEnv(pursuit_v5.parallel_env, max_cycles=5)
    assert env.agent_names == PURSUERS
    assert env.action_space == gym.spaces.Discrete(5)
    assert env.observation_space.shape == (7, 7, 3)
    obs = env.reset(seed=0)
    assert list(obs) == PURSUERS
    for observation in obs.values():
        assert observation.keys() == ["image"]
        assert observation.image.shape == (7, 7, 3)
        assert observation.image.dtype == np.float32
    obs, reward, done, info = env.step(act(PURSUERS, 0))
    assert list(obs) == PURSUERS and list(reward) == PURSUERS
    assert all(isinstance(value, float) for value in reward.values())
    assert not any(done.values()) and "truncated" not in info
    env.close()


def test_pursuit_max_cycles_truncates_every_agent() -> None:
    env = PettingZooEnv(pursuit_v5.parallel_env, max_cycles=3)
    env.reset(seed=0)
    for _ in range(2):
        env.step(act(PURSUERS, 4))
    obs, _, done, info = env.step(act(PURSUERS, 4))
    assert obs == {}
    assert done == dict.fromkeys(PURSUERS, True)
    assert info["truncated"] == dict.fromkeys(PURSUERS, True)
    assert sorted(info["final_obs"]) == PURSUERS
    np.testing.assert_array_equal(info["e_episode_length"], [3.0] * 8)
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(act(PURSUERS))


def test_pursuit_venv_resets_truncated_copies(backend: str, closing: Closer) -> None:
    env = closing(
        PettingZooEnv.get_venv(
            2, backend=backend, seed=0, env_fn=pursuit_v5.parallel_env, max_cycles=2
        )
    )
    assert env.agent_names == [f"{p}&env={c}" for c in range(2) for p in PURSUERS]
    obs = env.reset()
    obs, _, done, _ = env.step(act(obs, 0))
    assert not any(done.values())
    obs, _, done, info = env.step(act(obs, 0))
    assert all(done.values()) and all(info["truncated"].values())
    assert sorted(obs) == sorted(env.agent_names)
    assert len(info["e_episode_reward"]) == 16


def test_pursuit_venv_is_seeded(backend: str, closing: Closer) -> None:
    def make() -> Any:
        return PettingZooEnv.get_venv(
            2, backend=backend, seed=3, env_fn=pursuit_v5.parallel_env, max_cycles=4
        )

    first, second = closing(make()), closing(make())
    assert first.reset() == second.reset()
    actions = {name: Action(discrete=row % 5) for row, name in enumerate(first.agent_names)}
    for _ in range(3):
        assert first.step(actions) == second.step(actions)


@pytest.mark.timeout(60)
def test_try_it_program_from_the_readme(assert_gone: AssertGone) -> None:
    from pettingzoo.sisl import pursuit_v5

    from coltra.buffers import Action
    from coltra.envs import MultiGymEnv, PettingZooEnv

    env = PettingZooEnv.get_venv(workers=8, env_fn=pursuit_v5.parallel_env)
    obs = env.reset()
    obs, reward, done, info = env.step(
        {agent_id: Action(discrete=env.action_space.sample()) for agent_id in obs}
    )

    assert MultiGymEnv is not None  # imported by the program, unused there too
    try:
        assert len(env.agent_names) == 64 and len(obs) == 64 and len(reward) == 64
        assert not any(done.values()) and "truncated" not in info
        assert "pursuer_0&env=3" in obs
        assert obs["pursuer_0&env=3"].image.shape == (7, 7, 3)
        assert len(env.pids) == 8
    finally:
        pids = env.pids
        env.close()
    assert_gone(pids)


# ---------------------------------------------------------------------------- bad env_fn


@pytest.mark.parametrize(
    ("env_fn", "message"),
    [
        (pursuit_v5.env, r"AEC env.*parallel_env"),
        (lambda: gym.make("CartPole-v1"), "expected a PettingZoo ParallelEnv.*MultiGymEnv"),
        ("pursuit_v5", "env_fn must be a function.*got str 'pursuit_v5'"),
        (pursuit_v5, "env_fn must be a function.*got module"),
    ],
    ids=["aec", "gym", "string", "module"],
)
def test_bad_env_fn_is_a_type_error(env_fn: Any, message: str, backend: str) -> None:
    with pytest.raises(TypeError, match=message):
        PettingZooEnv(env_fn)
    with pytest.raises(TypeError, match=message):
        PettingZooEnv.get_venv(1, env_fn=env_fn, backend=backend)


def test_get_venv_without_env_fn() -> None:
    with pytest.raises(TypeError, match="needs env_fn="):
        PettingZooEnv.get_venv(1)


# ---------------------------------------------------------------------------- agents leave


def test_agent_that_leaves_disappears_and_is_done_once() -> None:
    env = PettingZooEnv(leaving_env)
    inner = env.env
    assert isinstance(inner, LeavingEnv)
    obs = env.reset(seed=4)
    assert list(obs) == ["early", "late", "slow"]
    np.testing.assert_array_equal(obs["late"].vector, [0.0, 4.0])

    obs, reward, done, info = env.step(act(["early", "late", "slow"], 2))
    assert list(obs) == ["late", "slow"]
    assert reward == {"early": 1.0, "late": 11.0, "slow": 21.0}
    assert done == {"early": True, "late": False, "slow": False}
    assert info["truncated"] == {"early": False}
    np.testing.assert_array_equal(info["final_obs"]["early"].vector, [1.0, 4.0])
    np.testing.assert_array_equal(info["e_episode_reward"], [1.0])
    np.testing.assert_array_equal(info["e_episode_length"], [1.0])

    with pytest.raises(ValueError, match=r"\['early'\] that are not acting now"):
        env.step(act(["early", "late", "slow"]))
    with pytest.raises(ValueError, match=r"no action for live agents \['slow'\]"):
        env.step(act(["late"]))

    obs, reward, done, info = env.step(act(["late", "slow"], 0))
    assert list(obs) == ["late", "slow"]
    assert reward == {"late": 12.0, "slow": 22.0}
    assert done == {"late": False, "slow": False}  # 'early' is not reported again
    assert inner.received[-1] == {"late": 0, "slow": 0}

    obs, reward, done, info = env.step(act(["late", "slow"], 1))
    assert obs == {}
    assert done == {"late": True, "slow": True}
    assert info["truncated"] == {"late": False, "slow": True}
    np.testing.assert_array_equal(info["e_episode_reward"], [36.0, 66.0])
    np.testing.assert_array_equal(info["e_episode_length"], [3.0, 3.0])


def test_agent_that_leaves_is_masked_in_the_batch_view() -> None:
    env = PettingZooEnv(leaving_env)
    first = env.reset_batch(seed=0)
    assert first.active.tolist() == [True, True, True]
    step = env.step_batch(Action(discrete=np.array([1, 1, 1])))
    assert step.active.tolist() == [False, True, True]
    assert step.terminated.tolist() == [True, False, False]
    assert step.reward.tolist() == [1.0, 11.0, 21.0]
    # Whatever stands in the row of an agent that left is ignored, even out of range.
    step = env.step_batch(Action(discrete=np.array([99, 2, 0])))
    assert step.active.tolist() == [False, True, True]
    assert step.reward.tolist() == [0.0, 12.0, 22.0]
    assert env.env.received[-1] == {"late": 2, "slow": 0}  # type: ignore[attr-defined]
    step = env.step_batch(Action(discrete=np.array([0, 0, 0])))
    assert step.active.tolist() == [False, False, False]
    assert step.terminated.tolist() == [False, True, False]
    assert step.truncated.tolist() == [False, False, True]


def test_copy_resets_only_when_all_its_agents_are_done(backend: str, closing: Closer) -> None:
    env = closing(PettingZooEnv.get_venv(2, backend=backend, seed=10, env_fn=leaving_env))
    names = env.agent_names
    assert names == [f"{a}&env={c}" for c in range(2) for a in ("early", "late", "slow")]
    obs = env.reset()
    np.testing.assert_array_equal(obs["slow&env=1"].vector, [0.0, 11.0])  # seed 10 + 1

    obs, _, done, info = env.step(act(obs))
    assert sorted(obs) == sorted(n for n in names if not n.startswith("early"))
    assert [n for n, d in done.items() if d] == ["early&env=0", "early&env=1"]
    batch_active = env._active_rows  # the batch view's mask for the dict view
    assert batch_active.tolist() == [False, True, True, False, True, True]
    with pytest.raises(ValueError, match="not acting now"):
        env.step(act(names))

    obs, _, done, _ = env.step(act(obs))
    assert "early&env=0" not in obs and "early&env=0" not in done

    obs, reward, done, info = env.step(act(obs))
    assert sorted(obs) == sorted(names)  # both copies restarted in the same step
    assert reward["late&env=1"] == 13.0
    assert set(done) == {n for n in names if not n.startswith("early")}
    assert all(done.values())
    assert info["truncated"] == {
        "late&env=0": False,
        "slow&env=0": True,
        "late&env=1": False,
        "slow&env=1": True,
    }
    np.testing.assert_array_equal(info["final_obs"]["slow&env=0"].vector, [3.0, 10.0])
    # After an unseeded autoreset the copy starts again at t = 0.
    np.testing.assert_array_equal(obs["early&env=0"].vector, [0.0, -1.0])


def test_agent_that_joins_mid_episode_appears() -> None:
    env = PettingZooEnv(JoiningEnv)
    obs = env.reset(seed=0)
    assert list(obs) == ["early", "late"]
    obs, reward, done, _ = env.step(act(["early", "late"]))
    assert list(obs) == ["early", "late", "slow"]
    assert list(reward) == ["early", "late"] and list(done) == ["early", "late"]
    np.testing.assert_array_equal(obs["slow"].vector, [1.0, 0.0])
    obs, reward, done, _ = env.step(act(["early", "late", "slow"]))
    assert reward == {"early": 2.0, "late": 12.0, "slow": 22.0}
    _, _, done, info = env.step(act(["early", "late", "slow"]))
    assert all(done.values()) and all(info["truncated"].values())
    # slow's episode started when it joined: two steps, rewards 22 + 23.
    np.testing.assert_array_equal(info["e_episode_length"], [3.0, 3.0, 2.0])
    np.testing.assert_array_equal(info["e_episode_reward"], [6.0, 36.0, 45.0])


def test_step_before_reset() -> None:
    env = PettingZooEnv(leaving_env)
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step(act(["early", "late", "slow"]))


def test_all_agents_must_share_spaces() -> None:
    class Mixed(LeavingEnv):
        def action_space(self, agent: str) -> gym.Space:
            return gym.spaces.Discrete(3 if agent == "early" else 4)

    with pytest.raises(ValueError, match="agent 'late' has spaces"):
        PettingZooEnv(Mixed)
