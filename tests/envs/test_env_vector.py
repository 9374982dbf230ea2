"""Vectorised envs, both backends: names, step contract, seeding, batch view, lifecycle."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from coltra.buffers import Action
from coltra.envs import (
    InProcessVecEnv,
    MultiGymEnv,
    PettingZooEnv,
    SubprocVecEnv,
    VecEnv,
    make_vec_env,
    parse_agent_name,
)
from coltra.envs.probe_envs import ConstantRewardEnv

Closer = Callable[[Any], Any]
AssertGone = Callable[[Iterable[int]], None]

pytestmark = pytest.mark.timeout(60)


def cartpole_venv(backend: str, workers: int = 2, **kwargs: Any) -> VecEnv:
    return MultiGymEnv.get_venv(workers, env_name="CartPole-v1", backend=backend, **kwargs)


def same_actions(env: VecEnv, value: int) -> dict[str, Action]:
    return {name: Action(discrete=value) for name in env.agent_names}


def test_backend_classes_and_names(backend: str, closing: Closer) -> None:
    env = closing(cartpole_venv(backend, workers=2, envs_per_worker=3))
    expected_cls = InProcessVecEnv if backend == "inprocess" else SubprocVecEnv
    assert isinstance(env, expected_cls)
    assert env.num_envs == 6
    assert env.agent_names == [f"agent&env={i}" for i in range(6)]
    assert [parse_agent_name(name) for name in env.agent_names] == [("agent", i) for i in range(6)]
    assert env.copy_of_row().tolist() == list(range(6))
    assert env.rows_of_copy(4) == slice(4, 5)
    if backend == "subprocess":
        assert len(env.pids) == 2  # workers and envs_per_worker are separate knobs


def test_default_backends() -> None:
    assert MultiGymEnv.default_backend == "inprocess"
    assert ConstantRewardEnv.default_backend == "inprocess"
    assert PettingZooEnv.default_backend == "subprocess"  # costly enough to pay for IPC
    venv = ConstantRewardEnv.get_venv(2)
    assert isinstance(venv, InProcessVecEnv)


def test_same_step_autoreset_matches_gymnasium(backend: str, closing: Closer) -> None:
    """Copy i is seeded seed + i; an ended copy restarts in the same step."""
    seed, steps = 10, 3
    env = closing(cartpole_venv(backend, seed=seed, max_episode_steps=steps))
    references = [gym.make("CartPole-v1", max_episode_steps=steps) for _ in range(2)]
    obs = env.reset()
    for copy, reference in enumerate(references):
        raw, _ = reference.reset(seed=seed + copy)
        np.testing.assert_array_equal(obs[f"agent&env={copy}"].vector, raw)
    for step in range(1, steps + 1):
        obs, reward, done, info = env.step(same_actions(env, 1))
        raws = [reference.step(1) for reference in references]
        assert all(reward[name] == 1.0 for name in env.agent_names)
        if step < steps:
            assert not any(done.values()) and "final_obs" not in info
            for copy, raw in enumerate(raws):
                np.testing.assert_array_equal(obs[f"agent&env={copy}"].vector, raw[0])
    # Both copies hit the time limit at the last step and restarted at once.
    assert done == {"agent&env=0": True, "agent&env=1": True}
    assert info["truncated"] == {"agent&env=0": True, "agent&env=1": True}
    np.testing.assert_array_equal(info["e_episode_length"], [3.0, 3.0])
    np.testing.assert_array_equal(info["e_episode_reward"], [3.0, 3.0])
    for copy, (reference, raw) in enumerate(zip(references, raws)):
        name = f"agent&env={copy}"
        np.testing.assert_array_equal(info["final_obs"][name].vector, raw[0])
        first_obs, _ = reference.reset()  # unseeded: the copy's own generator goes on
        np.testing.assert_array_equal(obs[name].vector, first_obs)


def test_truncated_and_final_obs_only_for_agents_that_ended(backend: str, closing: Closer) -> None:
    # Pushing right from seeds 0, 1, 2 tips the pole at steps 8, 9 and 10.
    env = closing(cartpole_venv(backend, workers=3, seed=0))
    env.reset()
    for _ in range(7):
        _, _, done, info = env.step(same_actions(env, 1))
        assert not any(done.values())
    for ended in ("agent&env=0", "agent&env=1", "agent&env=2"):
        obs, _, done, info = env.step(same_actions(env, 1))
        assert [name for name, is_done in done.items() if is_done] == [ended]
        assert info["truncated"] == {ended: False}
        assert list(info["final_obs"]) == [ended]
        copy = int(ended[-1])
        np.testing.assert_array_equal(info["e_episode_length"], [8 + copy])
        assert sorted(obs) == env.agent_names  # the ended copy is back already


def test_same_seed_same_trajectory_and_copies_differ(backend: str, closing: Closer) -> None:
    first = closing(cartpole_venv(backend, seed=7))
    second = closing(cartpole_venv(backend, seed=7))
    other = closing(cartpole_venv(backend, seed=8))
    rng = np.random.default_rng(0)
    obs_a, obs_b, obs_c = first.reset(), second.reset(), other.reset()
    assert obs_a == obs_b and obs_a != obs_c
    assert obs_a["agent&env=0"] != obs_a["agent&env=1"]
    assert obs_c["agent&env=0"] == obs_a["agent&env=1"]  # copy 0 of seed 8 is seed 8
    for _ in range(30):
        actions = {name: Action(discrete=int(rng.integers(2))) for name in first.agent_names}
        assert first.step(actions) == second.step(actions)


def test_both_backends_give_the_same_trajectory(closing: Closer) -> None:
    envs = [
        closing(cartpole_venv(backend, workers=2, envs_per_worker=2, seed=4))
        for backend in ("inprocess", "subprocess")
    ]
    assert envs[0].reset() == envs[1].reset()
    for step in range(12):
        actions = Action(discrete=np.array([step % 2, 1, 0, (step // 3) % 2]))
        first, second = (env.step_batch(actions) for env in envs)
        assert first.obs == second.obs
        np.testing.assert_array_equal(first.reward, second.reward)
        np.testing.assert_array_equal(first.terminated, second.terminated)
        np.testing.assert_array_equal(first.truncated, second.truncated)


def test_box_actions_vectorised(backend: str, closing: Closer) -> None:
    env = closing(MultiGymEnv.get_venv(2, env_name="Pendulum-v1", backend=backend, seed=0))
    assert env.action_space.shape == (1,)
    batch = env.reset_batch()
    assert batch.obs.vector.shape == (2, 3)
    reference = gym.make("Pendulum-v1")
    reference.reset(seed=1)
    raw, raw_reward, *_ = reference.step(np.array([0.7], np.float32))
    step = env.step_batch(Action(np.array([[-0.3], [0.7]], dtype=np.float32)))
    np.testing.assert_array_equal(step.obs.vector[1], raw)
    assert step.reward[1] == pytest.approx(raw_reward, abs=1e-6)
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(2, 1\)"):
        env.step_batch(Action(np.zeros((2, 2), dtype=np.float32)))


def test_reset_with_a_seed_is_reproducible(backend: str, closing: Closer) -> None:
    env = closing(cartpole_venv(backend))
    first = env.reset(seed=123)
    trajectory = [env.step(same_actions(env, 0))[0] for _ in range(3)]
    assert env.reset(seed=123) == first
    assert [env.step(same_actions(env, 0))[0] for _ in range(3)] == trajectory
    assert env.reset(seed=124) != first


def test_render_shows_copy_zero(backend: str, closing: Closer) -> None:
    env = closing(cartpole_venv(backend, seed=5, render_mode="rgb_array"))
    env.reset()
    frames = []
    for copy in range(2):
        reference = gym.make("CartPole-v1", render_mode="rgb_array")
        reference.reset(seed=5 + copy)
        frames.append(reference.render())
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.shape == (400, 600, 3)
    np.testing.assert_array_equal(frame, frames[0])
    assert not np.array_equal(frames[0], frames[1])


def test_batch_view_shapes_and_order(backend: str, closing: Closer) -> None:
    env = closing(ConstantRewardEnv.get_venv(2, envs_per_worker=2, num_agents=3, backend=backend))
    assert env.agent_names == [f"agent_{a}&env={c}" for c in range(4) for a in range(3)]
    first = env.reset_batch(seed=0)
    assert first.obs.vector.shape == (12, 1)
    assert first.reward.tolist() == [0.0] * 12
    assert first.active.all() and not first.done.any()
    step = env.step_batch(Action(discrete=np.zeros(12, dtype=np.int64)))
    assert step.obs.vector.shape == (12, 1)
    assert step.reward.dtype == np.float32 and step.reward.tolist() == [1.0] * 12
    assert step.terminated.all() and not step.truncated.any()
    assert step.active.all()  # every copy ended and restarted in the same step
    assert step.final_obs is not None and step.final_obs.vector.shape == (12, 1)
    assert step.metrics["e_episode_reward"].tolist() == [1.0] * 12


def test_dict_view_and_batch_view_agree(backend: str, closing: Closer) -> None:
    by_dict = closing(cartpole_venv(backend, workers=3, seed=1, max_episode_steps=12))
    by_batch = closing(cartpole_venv(backend, workers=3, seed=1, max_episode_steps=12))
    names = by_dict.agent_names
    obs = by_dict.reset()
    batch = by_batch.reset_batch()
    for row, name in enumerate(names):
        assert obs[name] == batch.obs[row]
    rng = np.random.default_rng(1)
    for _ in range(15):
        values = rng.integers(2, size=len(names))
        obs, reward, done, info = by_dict.step(
            {name: Action(discrete=int(values[row])) for row, name in enumerate(names)}
        )
        batch = by_batch.step_batch(Action(discrete=values))
        for row, name in enumerate(names):
            assert obs[name] == batch.obs[row]
            assert reward[name] == batch.reward[row]
            assert done[name] == batch.done[row]
            if batch.done[row]:
                assert batch.final_obs is not None
                assert info["truncated"][name] == batch.truncated[row]
                assert info["final_obs"][name] == batch.final_obs[row]
        assert set(info.get("truncated", {})) == {n for n, d in done.items() if d}


def test_step_before_reset(backend: str, closing: Closer) -> None:
    env = closing(cartpole_venv(backend))
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step(same_actions(env, 0))
    with pytest.raises(RuntimeError, match=r"before reset\(\)"):
        env.step_batch(Action(discrete=np.zeros(2, dtype=np.int64)))


def test_bad_actions(backend: str, closing: Closer) -> None:
    env = closing(cartpole_venv(backend))
    env.reset(seed=0)
    good = same_actions(env, 0)
    with pytest.raises(ValueError, match=r"unknown agents \['agent&env=5'\]"):
        env.step({**good, "agent&env=5": Action(discrete=0)})
    with pytest.raises(ValueError, match=r"no action for live agents \['agent&env=1'\]"):
        env.step({"agent&env=0": Action(discrete=0)})
    with pytest.raises(TypeError, match="must be integers"):
        env.step({**good, "agent&env=1": Action(discrete=0.5)})
    with pytest.raises(ValueError, match=r"\[7\] outside Discrete\(2\)"):
        env.step_batch(Action(discrete=np.array([0, 7])))
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(2,\)"):
        env.step_batch(Action(discrete=np.zeros(3, dtype=np.int64)))
    env.step(good)  # refused actions never reached the copies


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"workers": 0}, ValueError, "workers must be a whole number >= 1, got 0"),
        ({"workers": -2}, ValueError, "got -2"),
        ({"workers": 1.5}, TypeError, "workers must be a whole number >= 1, got float 1.5"),
        ({"workers": "4"}, TypeError, "got str '4'"),
        ({"workers": True}, TypeError, "got bool True"),
        ({"envs_per_worker": 0}, ValueError, "envs_per_worker must be a whole number >= 1"),
        ({"backend": "threads"}, ValueError, "backend must be one of.*'threads'"),
        ({"step_timeout": 0}, ValueError, "step_timeout must be .* > 0.*got 0"),
    ],
)
def test_bad_vectorisation_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        MultiGymEnv.get_venv(env_name="CartPole-v1", **{"workers": 2, **kwargs})


def test_make_vec_env_takes_any_creator(backend: str, closing: Closer) -> None:
    env = closing(make_vec_env(lambda: ConstantRewardEnv(num_agents=2), workers=2, backend=backend))
    assert env.agent_names == ["agent_0&env=0", "agent_1&env=0", "agent_0&env=1", "agent_1&env=1"]
    with pytest.raises(TypeError, match="returned int, expected a coltra MultiAgentEnv"):
        make_vec_env(lambda: 3, workers=1, backend=backend)  # type: ignore[arg-type, return-value]


def test_get_env_creator_is_picklable_and_takes_no_arguments() -> None:
    import pickle

    creator = MultiGymEnv.get_env_creator(env_name="CartPole-v1", max_episode_steps=5)
    env = pickle.loads(pickle.dumps(creator))()
    assert isinstance(env, MultiGymEnv) and env.agent_names == ["agent"]


@pytest.mark.timeout(30)
def test_close_leaves_no_process(backend: str, assert_gone: AssertGone) -> None:
    env = cartpole_venv(backend, workers=3)
    pids = list(getattr(env, "pids", []))
    assert len(pids) == (3 if backend == "subprocess" else 0)
    env.reset()
    env.close()
    assert_gone(pids)
    env.close()  # closing twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


@pytest.mark.timeout(30)
def test_context_manager_closes(backend: str, assert_gone: AssertGone) -> None:
    with cartpole_venv(backend) as env:
        pids = list(getattr(env, "pids", []))
        env.reset()
    assert_gone(pids)


def test_inprocess_copies_of_several_agents_reset_independently() -> None:
    """Copies end at different steps; each resets (all its rows) exactly when it ends."""
    lengths = [1, 2, 3]
    env = InProcessVecEnv(
        [lambda n=n: ConstantRewardEnv(num_agents=2, episode_length=n) for n in lengths]
    )
    env.reset_batch(seed=0)
    for step in range(1, 7):
        batch = env.step_batch(Action(discrete=np.zeros(6, np.int64)))
        ended = np.repeat([step % n == 0 for n in lengths], 2)
        np.testing.assert_array_equal(batch.terminated, ended)
        assert batch.active.all()  # ended copies already started their next episode
        assert (batch.final_obs is not None) == ended.any()
        if ended.any():
            np.testing.assert_array_equal(
                batch.metrics["e_episode_length"],
                [n for n in lengths if step % n == 0 for _ in range(2)],
            )


def test_inprocess_refuses_a_copy_without_agents() -> None:
    class Empty(ConstantRewardEnv):
        def __init__(self) -> None:
            super().__init__()
            self.agent_names = []

    with pytest.raises(ValueError, match="env copy 1 has no agents"):
        InProcessVecEnv([ConstantRewardEnv, Empty])


def test_a_creator_that_returns_one_env_object_for_every_copy_is_refused() -> None:
    shared = MultiGymEnv("CartPole-v1")
    with pytest.raises(ValueError, match="env copy 1: the env creator returned an env object"):
        make_vec_env(lambda: shared, workers=2)


def test_a_call_interrupted_while_waiting_for_workers_does_not_shift_later_replies(
    closing: Closer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the workers step leaves their replies unread: the next call must not
    take a stale step reply for its own (the trainer resets the env after a Ctrl-C)."""
    env = closing(MultiGymEnv.get_venv(2, env_name="CartPole-v1", backend="subprocess", seed=0))
    reference = closing(MultiGymEnv.get_venv(2, env_name="CartPole-v1", backend="subprocess"))
    env.reset_batch()
    real_gather = env._gather  # type: ignore[attr-defined]

    def interrupted(phase: str) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(env, "_gather", interrupted)
    with pytest.raises(KeyboardInterrupt):
        env.step_batch(Action(discrete=np.ones(2, dtype=np.int64)))  # sent, never read
    monkeypatch.setattr(env, "_gather", real_gather)
    np.testing.assert_array_equal(
        env.reset_batch(seed=5).obs.vector, reference.reset_batch(seed=5).obs.vector
    )
    step = env.step_batch(Action(discrete=np.ones(2, dtype=np.int64)))
    expected = reference.step_batch(Action(discrete=np.ones(2, dtype=np.int64)))
    np.testing.assert_array_equal(step.obs.vector, expected.obs.vector)


def test_the_ray_backend_without_ray_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"needs Ray.*pip install 'coltra\[ray\]'"):
        ConstantRewardEnv.get_venv(2, backend="ray")


def test_an_unknown_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"one of \('inprocess', 'subprocess', 'ray'\), got 'mpi'"):
        ConstantRewardEnv.get_venv(2, backend="mpi")
