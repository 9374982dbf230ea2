"""PettingZooEnv: pursuit_v5, a tiny parallel env of our own where agents leave early, and
the fast path (every agent present, dicts in row order) pinned to the general one."""

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
from coltra.envs.base import StepBatch
from coltra.envs.spaces import ActionCodec, ObservationCodec

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


def test_agents_with_their_own_spaces_form_blocks() -> None:
    """Issue 13 item 1: agents may have their own spaces (mpe2's simple_tag, speaker_listener)."""

    class Mixed(LeavingEnv):
        def action_space(self, agent: str) -> gym.Space:
            return gym.spaces.Discrete(3 if agent == "early" else 4)

    env = PettingZooEnv(Mixed)
    layout = env.layout
    assert [block.name for block in layout.blocks] == ["early", "block1"]  # late & slow: no stem
    assert env.observation_space is None and env.action_space is None
    assert env.agent_action_space("early") == gym.spaces.Discrete(3)
    assert env.agent_action_space("slow") == gym.spaces.Discrete(4)
    batch = env.reset_batch(seed=0)
    assert sorted(batch.obs.keys()) == ["block1/vector", "early/vector"]
    np.testing.assert_array_equal(batch.obs["early/vector"][1:], 0.0)  # other blocks' rows
    bad = {"early/discrete": np.array([3, 0, 0]), "block1/discrete": np.zeros(3, np.int64)}
    with pytest.raises(ValueError, match=r"action value\(s\) \[3\] outside Discrete\(3\)"):
        env.step_batch(Action(**bad))  # early's block has 3 actions; the other rows unread
    good = {"early/discrete": np.array([2, 0, 0]), "block1/discrete": np.array([0, 3, 3])}
    step = env.step_batch(Action(**good))
    assert step.reward.shape == (3,)
    assert env.env.received[-1] == {"early": 2, "late": 3, "slow": 3}  # type: ignore[attr-defined]
    # The dict view speaks each agent's own fields.
    obs = env.reset(seed=0)
    assert obs["early"].keys() == ["vector"] and obs["late"].keys() == ["vector"]
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step({name: Action(discrete=3) for name in obs})  # 3 is too big for early
    env.step({"early": Action(discrete=2), "late": Action(discrete=3), "slow": Action(discrete=3)})
    assert env.env.received[-1] == {"early": 2, "late": 3, "slow": 3}  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- fast path
# PettingZooEnv's fast path (every agent present, dicts in row order) gives exactly what
# its general path (agents missing, leaving, joining, or dicts in another order) gives.
#
# ``ScriptedEnv`` returns the same values whatever order it lists its agents in, so running
# one script with ``order="rows"`` and ``order="reversed"`` pins one path to the other.


class ScriptedEnv(ParallelEnv):
    """``n_agents`` agents ``a0``, ``a1``, ... whose outputs depend only on (step, agent).

    ``leave`` maps a name to ``(step, how)``: after that step the agent is terminated,
    truncated, or (``"vanish"``) just gone from the agent list and from every dict.
    ``join`` maps a name to the step after which it (re)appears; ``absent`` agents are not
    there at reset. Everybody left is truncated after step ``length``. ``order`` is the
    order of every returned dict: ``"rows"`` (possible_agents) or ``"reversed"``. ``obs``
    picks float64 vectors of 3 (converted to float32) or uint8 images of shape (2, 2, 3).
    """

    metadata = {"name": "scripted_v0"}

    def __init__(
        self,
        n_agents: int = 5,
        length: int = 4,
        leave: dict[str, tuple[int, str]] | None = None,
        join: dict[str, int] | None = None,
        absent: tuple[str, ...] = (),
        order: str = "rows",
        obs: str = "vector",
    ) -> None:
        self.possible_agents = [f"a{k}" for k in range(n_agents)]
        self.length = length
        self.leave = leave or {}
        self.join = join or {}
        self.absent = absent
        self.order = order
        self.obs_kind = obs
        self.agents: list[str] = []
        self.t = 0
        self.received: list[list[tuple[str, Any]]] = []
        if obs == "vector":
            self._space: gym.Space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
        else:
            self._space = gym.spaces.Box(0, 255, (2, 2, 3), np.uint8)

    def observation_space(self, agent: str) -> gym.Space:
        return self._space

    def action_space(self, agent: str) -> gym.Space:
        return gym.spaces.Discrete(4)

    def _ordered(self, names: list[str]) -> list[str]:
        rows = sorted(names, key=self.possible_agents.index)
        return rows if self.order == "rows" else rows[::-1]

    def _obs(self, name: str) -> np.ndarray:
        k = self.possible_agents.index(name)
        if self.obs_kind == "vector":
            return np.array([self.t, k, k * self.t + 0.1], np.float64)
        return ((np.arange(12) + 7 * self.t + 3 * k) % 256).astype(np.uint8).reshape(2, 2, 3)

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
        self.t = 0
        self.agents = self._ordered([n for n in self.possible_agents if n not in self.absent])
        return {n: self._obs(n) for n in self.agents}, {n: {} for n in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.received.append(list(actions.items()))
        self.t += 1
        vanished = {n for n in self.agents if self.leave.get(n) == (self.t, "vanish")}
        acting = self._ordered([n for n in self.agents if n not in vanished])
        end = self.t >= self.length
        terminated = {n: self.leave.get(n) == (self.t, "terminated") for n in acting}
        truncated = {n: end or self.leave.get(n) == (self.t, "truncated") for n in acting}
        rewards = {n: self.possible_agents.index(n) + self.t / 10 for n in acting}
        staying = [n for n in acting if not (terminated[n] or truncated[n])]
        joining = [n for n, step in self.join.items() if step == self.t and not end]
        self.agents = self._ordered(staying + joining)
        # The last observation of those done, the first of those joining.
        obs = {n: self._obs(n) for n in self._ordered(acting + joining)}
        return obs, rewards, terminated, truncated, {n: {} for n in acting}


def run(steps: int, seed: int = 0, **kwargs: Any) -> tuple[list[StepBatch], ScriptedEnv]:
    """Reset, then ``steps`` random actions (junk in inactive rows), resetting when all
    are done; returns every StepBatch (reset ones included)."""
    env = PettingZooEnv(ScriptedEnv, **kwargs)
    rng = np.random.default_rng(seed)
    batches = [env.reset_batch(seed=0)]
    for _ in range(steps):
        values = np.where(batches[-1].active, rng.integers(0, 4, env.num_agents), 99)
        batch = env.step_batch(Action(discrete=values))
        batches.append(batch)
        if not batch.active.any():
            batches.append(env.reset_batch())
    inner = env.env
    assert isinstance(inner, ScriptedEnv)
    return batches, inner


def assert_same_batch(got: StepBatch, expected: StepBatch) -> None:
    assert got.obs.keys() == expected.obs.keys()
    for name in expected.obs.keys():
        assert got.obs[name].dtype == expected.obs[name].dtype
        np.testing.assert_array_equal(got.obs[name], expected.obs[name])
    for name in ("reward", "terminated", "truncated", "active"):
        assert getattr(got, name).dtype == getattr(expected, name).dtype, name
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), name)
    assert (got.final_obs is None) == (expected.final_obs is None)
    if expected.final_obs is not None and got.final_obs is not None:
        done = expected.done
        for name in expected.final_obs.keys():
            np.testing.assert_array_equal(got.final_obs[name][done], expected.final_obs[name][done])
    assert got.metrics.keys() == expected.metrics.keys()
    for key, value in expected.metrics.items():
        assert got.metrics[key].dtype == value.dtype
        np.testing.assert_array_equal(got.metrics[key], value)


SCRIPTS = {
    "all_present": {},
    "leave_and_join": {
        "leave": {"a0": (1, "terminated"), "a2": (2, "truncated"), "a4": (2, "vanish")},
        "join": {"a3": 1},
        "absent": ("a3",),
    },
    "come_back": {"leave": {"a1": (1, "vanish"), "a0": (2, "terminated")}, "join": {"a1": 2}},
}


@pytest.mark.parametrize("obs", ["vector", "image"])
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_row_order_and_any_order_give_the_same_batches(script: str, obs: str) -> None:
    kwargs: dict[str, Any] = {**SCRIPTS[script], "obs": obs, "length": 4}
    fast, fast_env = run(10, order="rows", **kwargs)
    general, general_env = run(10, order="reversed", **kwargs)
    assert len(fast) == len(general)
    for got, expected in zip(fast, general):
        assert_same_batch(got, expected)
    # The env gets the same actions, as Python ints, listed in row order.
    assert fast_env.received == general_env.received
    for actions in fast_env.received:
        assert all(type(value) is int for _, value in actions)
        names = [name for name, _ in actions]
        assert names == sorted(names, key=fast_env.possible_agents.index)


def test_a_full_crowd_takes_the_stacked_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every agent present in row order, no observation is encoded one by one."""
    env = PettingZooEnv(ScriptedEnv, n_agents=6, length=3)
    env.reset_batch(seed=0)

    def one_by_one(*args: Any) -> None:
        raise AssertionError("ObservationCodec.write called on the fast path")

    monkeypatch.setattr(ObservationCodec, "write", one_by_one)
    for _ in range(3):
        batch = env.step_batch(Action(discrete=np.zeros(6, np.int64)))
    assert not batch.active.any() and batch.truncated.all()
    np.testing.assert_array_equal(batch.metrics["e_episode_length"], [3.0] * 6)


def test_leave_and_join_values() -> None:
    """What the leave_and_join script gives (either path): who is done how, and when."""
    batches, _ = run(4, order="rows", **SCRIPTS["leave_and_join"])  # type: ignore[arg-type]
    reset, first, second, third = batches[:4]
    assert reset.active.tolist() == [True, True, True, False, True]
    assert first.terminated.tolist() == [True, False, False, False, False]
    assert first.active.tolist() == [False, True, True, True, True]  # a3 joined
    np.testing.assert_array_equal(first.obs.vector[3], np.array([1, 3, 3.1], np.float32))
    np.testing.assert_allclose(first.reward, [0.1, 1.1, 2.1, 0.0, 4.1], rtol=1e-6)
    # a4 vanished without a flag: terminated; a2 truncated.
    assert second.terminated.tolist() == [False, False, False, False, True]
    assert second.truncated.tolist() == [False, False, True, False, False]
    assert second.active.tolist() == [False, True, False, True, False]
    np.testing.assert_array_equal(second.metrics["e_episode_length"], [2.0, 2.0])
    np.testing.assert_allclose(second.metrics["e_episode_reward"], [4.3, 4.1], rtol=1e-6)
    assert second.final_obs is not None
    np.testing.assert_array_equal(second.final_obs.vector[2], np.array([2, 2, 4.1], np.float32))
    # a4 returned nothing in the step it vanished: its last observation is from step 1.
    np.testing.assert_array_equal(second.final_obs.vector[4], np.array([1, 4, 4.1], np.float32))
    assert not third.done.any() and third.active.tolist() == [False, True, False, True, False]


def test_unknown_agent_in_a_full_length_dict_is_an_error() -> None:
    class Renamed(ScriptedEnv):
        def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
            obs, *rest = super().step(actions)
            obs["intruder"] = obs.pop("a4")
            return (obs, *rest)  # type: ignore[return-value]

    env = PettingZooEnv(Renamed)
    env.reset_batch(seed=0)
    with pytest.raises(ValueError, match="'intruder', which is not in possible_agents"):
        env.step_batch(Action(discrete=np.zeros(5, np.int64)))


def test_unknown_agent_in_the_rewards_is_an_error_naming_it() -> None:
    class Renamed(ScriptedEnv):
        def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
            obs, rewards, *rest = super().step(actions)
            rewards["intruder"] = rewards.pop("a4")
            return (obs, rewards, *rest)  # type: ignore[return-value]

    env = PettingZooEnv(Renamed)
    env.reset_batch(seed=0)
    with pytest.raises(ValueError, match="reward for 'intruder', which is not in possible_agents"):
        env.step_batch(Action(discrete=np.zeros(5, np.int64)))


# ---------------------------------------------------------------------------- codecs


IMAGES = list(np.arange(48, dtype=np.uint8).reshape(4, 2, 2, 3))


def write_one_by_one(codec: ObservationCodec, raws: list[Any], rows: Any) -> dict:
    buffers = codec.zeros(6)
    for row, raw in zip(np.arange(6)[rows], raws):
        codec.write(buffers, int(row), raw)
    return buffers


@pytest.mark.parametrize(
    ("space", "raws"),
    [
        (gym.spaces.Box(-1, 1, (3,), np.float32), [np.full(3, 0.1 * k) for k in range(4)]),
        (gym.spaces.Box(-1, 1, (3,), np.float32), [[0.1 * k, k, -k] for k in range(4)]),
        # Broadcast by write, so taken one by one.
        (gym.spaces.Box(-1, 1, (3,), np.float32), [np.array([0.5 * k]) for k in range(4)]),
        (gym.spaces.Box(-1, 1, (2, 3), np.float64), [np.full((2, 3), k) for k in range(4)]),
        (gym.spaces.Box(-1, 1, (2, 3), np.float32), [np.arange(6.0) * k for k in range(4)]),
        (gym.spaces.Box(0, 255, (2, 2, 3), np.uint8), IMAGES),
        (gym.spaces.Box(-1, 1, (), np.float32), [0.25 * k for k in range(4)]),
        (gym.spaces.MultiBinary(3), [np.array([k % 2, 1, 0], np.int8) for k in range(4)]),
        (gym.spaces.Discrete(3, start=1), [1, 2, 3, 1]),
        (
            gym.spaces.Dict(
                {
                    "image": gym.spaces.Box(0, 1, (2, 2, 1), np.float32),
                    "rays": gym.spaces.Box(0, 1, (2, 2), np.float64),
                }
            ),
            [{"image": np.full((2, 2, 1), k), "rays": np.eye(2) * k} for k in range(4)],
        ),
    ],
    ids=[
        "vector", "lists", "broadcast", "box2d", "box2d_flat_raws", "image", "scalar",
        "multibinary", "discrete", "dict",
    ],
)  # fmt: skip
@pytest.mark.parametrize("rows", [slice(1, 5), np.array([4, 0, 5, 2])], ids=["slice", "indices"])
def test_write_rows_is_write_row_by_row(space: gym.Space, raws: list[Any], rows: Any) -> None:
    codec = ObservationCodec(space)
    buffers = codec.zeros(6)
    codec.write_rows(buffers, rows, raws)
    expected = write_one_by_one(codec, raws, rows)
    assert buffers.keys() == expected.keys()
    for name, value in expected.items():
        assert buffers[name].dtype == value.dtype
        np.testing.assert_array_equal(buffers[name], value)


def test_write_rows_fails_as_write_does() -> None:
    codec = ObservationCodec(gym.spaces.Box(-1, 1, (3,), np.float32))
    buffers = codec.zeros(2)
    with pytest.raises(ValueError, match="could not broadcast"):
        codec.write_rows(buffers, slice(None), [np.zeros(3), np.zeros(4)])


@pytest.mark.parametrize(
    ("space", "values"),
    [
        (gym.spaces.Discrete(4), np.array([0, 3, 2], np.int64)),
        (gym.spaces.Discrete(4, start=2), np.array([2, 5, 3], np.uint8)),
        (gym.spaces.Discrete(2), np.array([True, False, True])),
        (gym.spaces.MultiDiscrete([3, 2]), np.array([[2, 1], [0, 0], [1, 1]])),
        (gym.spaces.MultiBinary(2), np.array([[1, 0], [0, 1], [1, 1]], np.int8)),
        (gym.spaces.Box(-1, 1, (2,), np.float32), np.array([[2.0, -0.5], [0, 0], [-3, 1]])),
        (gym.spaces.Box(-1, 1, (2, 2), np.float64), np.linspace(-2, 2, 12).reshape(3, 4)),
        (gym.spaces.Box(-1, 1, (), np.float32), np.array([[0.5], [-2.0], [3.0]], np.float32)),
    ],
    ids=[
        "discrete", "discrete_uint8", "discrete_bool", "multidiscrete", "multibinary", "box",
        "box2d", "box_scalar",
    ],
)  # fmt: skip
def test_to_env_rows_is_to_env_row_by_row(space: gym.Space, values: np.ndarray) -> None:
    codec = ActionCodec(space)
    got = codec.to_env_rows(values)
    expected = [codec.to_env(row) for row in values]
    assert len(got) == len(expected)
    for one, other in zip(got, expected):
        assert type(one) is type(other)
        if isinstance(other, np.ndarray):
            assert one.dtype == other.dtype and one.shape == other.shape
        np.testing.assert_array_equal(one, other)


def test_an_unknown_agent_in_the_env_agents_list_is_an_error_naming_it() -> None:
    class Stranger(ScriptedEnv):
        def reset(self, seed: int | None = None, options: dict | None = None) -> Any:
            out = super().reset(seed=seed, options=options)
            self.agents = [*self.agents, "stranger"]
            return out

    env = PettingZooEnv(Stranger)
    with pytest.raises(ValueError, match=r"\['stranger'\] in env.agents, which are not in"):
        env.reset_batch(seed=0)
