"""The batch-native crowd: exact dynamics, the fast path equal to the batch view, episodes
that end by truncation, clear errors, and a config that trains on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from coltra.buffers import Action
from coltra.envs.base import StepBuffers
from coltra.envs.crowd import ACCELERATION, Crowd, CrowdEnv
from coltra.envs.vector import InProcessVecEnv


def test_one_step_moves_and_pays_exactly() -> None:
    crowd = Crowd(2, dt=0.5, arena=5.0, drag=0.5)
    crowd.pos[:] = [[0.0, 0.0], [4.9, 1.0]]
    crowd.vel[:] = [[2.0, 0.0], [1.0, 0.0]]
    crowd.goal[:] = [[3.0, 4.0], [4.0, 1.0]]
    crowd._distance = np.linalg.norm(crowd.goal - crowd.pos, axis=1)  # 5.0 and 0.9
    progress = crowd.step(np.array([4, 2]))  # accelerate up; accelerate right
    # vel = 0.5 * vel + 0.5 * acc: (1, 0.5) and (1, 0); pos += 0.5 * vel, clipped to +-5
    np.testing.assert_allclose(crowd.vel, [[1.0, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(crowd.pos, [[0.5, 0.25], [5.0, 1.0]])
    np.testing.assert_allclose(
        progress, [5.0 - np.hypot(2.5, 3.75), 0.9 - 1.0], rtol=1e-6, atol=1e-6
    )
    obs = crowd.observe(np.empty((2, 8), np.float32))
    centroid = crowd.pos.mean(axis=0)
    np.testing.assert_allclose(obs[0], [0.5, 0.25, 1.0, 0.5, 2.5, 3.75, *(centroid - [0.5, 0.25])])
    assert ACCELERATION.shape == (5, 2)


def test_episodes_end_by_truncation_with_metrics_and_final_obs() -> None:
    env = CrowdEnv(3, episode_length=2)
    first = env.reset_batch(seed=0)
    assert first.obs["vector"].shape == (3, 8) and first.active.all()
    total = np.zeros(3, np.float32)
    for step in range(2):
        batch = env.step_batch(Action(discrete=np.array([1, 2, 3])))
        total += batch.reward
        assert not batch.terminated.any()
        assert batch.truncated.all() == (step == 1)
    assert batch.final_obs is not None and not batch.active.any()
    np.testing.assert_allclose(batch.metrics["e_episode_reward"], total)
    np.testing.assert_array_equal(batch.metrics["e_episode_length"], [2, 2, 2])
    with pytest.raises(RuntimeError, match="reset"):
        env.step_batch(Action(discrete=np.zeros(3, np.int64)))


def test_dict_view_is_derived_from_the_batch_view() -> None:
    env = CrowdEnv(2, episode_length=5)
    obs = env.reset(seed=1)
    assert sorted(obs) == ["agent_0", "agent_1"]
    _, reward, done, info = env.step(
        {"agent_0": Action(discrete=np.array(0)), "agent_1": Action(discrete=np.array(4))}
    )
    assert set(reward) == {"agent_0", "agent_1"} and not any(done.values())
    assert "final_obs" not in info


def _rollout(fast: bool, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Three copies of 4 agents for 7 steps (episodes of 3: autoresets inside), through
    the in-process fast path (``step_into``) or each copy's own ``step_batch``."""
    venv = InProcessVecEnv([lambda: CrowdEnv(4, episode_length=3) for _ in range(3)], seed=seed)
    if not fast:  # the same copies, forced through the generic path
        for env in venv.envs:
            env.step_into = lambda values, out, rows, env=env: out.write(  # type: ignore[method-assign]
                rows, env.step_batch(Action(discrete=values))
            )
    rng = np.random.default_rng(seed)
    batch = venv.reset_batch()
    records = [(batch.obs["vector"].copy(), batch.reward.copy(), batch.active.copy())]
    for _ in range(7):
        batch = venv.step_batch(Action(discrete=rng.integers(0, 5, 12)))
        records.append((batch.obs["vector"].copy(), batch.reward.copy(), batch.truncated.copy()))
    venv.close()
    return records


def test_fast_path_writes_exactly_what_the_batch_view_returns() -> None:
    for (obs_a, rew_a, flag_a), (obs_b, rew_b, flag_b) in zip(
        _rollout(True, 3), _rollout(False, 3), strict=True
    ):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(rew_a, rew_b)
        np.testing.assert_array_equal(flag_a, flag_b)


def test_copies_are_seeded_apart_and_reproducibly() -> None:
    first = _rollout(True, 5)
    again = _rollout(True, 5)
    np.testing.assert_array_equal(first[-1][0], again[-1][0])
    obs = first[0][0]
    assert not np.array_equal(obs[0:4], obs[4:8])  # copy 0 and copy 1 differ


def test_step_into_fills_final_obs_only_when_the_episode_ends() -> None:
    env = CrowdEnv(2, episode_length=1)
    env.reset_batch(seed=0)
    out = StepBuffers.like({"vector": ((8,), np.dtype(np.float32))}, 2)
    env.step_into(np.array([1, 1]), out, slice(0, 2))
    assert out.final_obs is not None and out.truncated.all() and not out.active.any()
    np.testing.assert_array_equal(out.final_obs["vector"], out.obs["vector"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_agents": 0}, "n_agents must be a whole number"),
        ({"n_agents": 2.5}, "n_agents must be a whole number"),
        ({"episode_length": 0}, "episode_length must be a whole number"),
        ({"dt": -0.1}, "dt must be a positive number, got -0.1"),
        ({"arena": "big"}, "arena must be a positive number, got 'big'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CrowdEnv(**kwargs)  # type: ignore[arg-type]


def test_an_action_out_of_range_is_refused_with_its_value() -> None:
    env = CrowdEnv(2)
    env.reset_batch(seed=0)
    with pytest.raises(ValueError, match="7"):
        env.step_batch(Action(discrete=np.array([0, 7])))


def test_a_config_trains_on_it(tmp_path: Path) -> None:
    """``env.kind: coltra`` names the class; the crowd learns to head for its goals."""
    from coltra.cli import main

    config = {
        "trainer": {
            "name": "crowd",
            "steps": 50,
            "iterations": 30,
            "run_dir": str(tmp_path / "run"),
        },
        "env": {
            "kind": "coltra",
            "env_name": "coltra.envs.crowd:CrowdEnv",
            "env_kwargs": {"n_agents": 32, "episode_length": 50},
            "workers": 1,
            "envs_per_worker": 2,
        },
        "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 4},
    }
    path = tmp_path / "crowd.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "-c", str(path)]) == 0
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("charts/episode_return_mean")
    returns = [float(row.split(",")[column]) for row in lines[1:] if row.split(",")[column]]
    # random play drifts nowhere (~0 progress per episode); heading for the goal pays.
    assert np.mean(returns[:3]) < 0.5 < np.mean(returns[-3:]), returns
