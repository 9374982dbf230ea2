"""Subprocess workers that return their steps through shared memory: the same rows as the
pipes give, for one block or several, with overlapped collection too; the same errors for a
copy that raises, a worker that dies or hangs; and no shared block left behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from pettingzoo.sisl import pursuit_v5
from test_env_faults import BAD_COPY, check_stopped, faulty_venv, step_twice

from coltra.buffers import Action
from coltra.configs import ConfigError, RunConfig
from coltra.envs import EnvCrashedError, MultiAgentEnv, PettingZooEnv, SubprocVecEnv
from coltra.envs.probe_envs import TwoTeamsEnv
from coltra.envs.spaces import LayoutActions
from coltra.envs.vector import make_vec_env
from coltra.factory import make_env

AssertGone = Callable[[Iterable[int]], None]


def shared_blocks() -> set[str]:
    """Names of the shared memory blocks Python made on this machine."""
    return {path.name for path in Path("/dev/shm").glob("psm_*")}


def rollout(env: MultiAgentEnv, steps: int) -> list[list[np.ndarray]]:
    """Copies of every array of every step (random actions, autoresets included)."""
    rng = np.random.default_rng(0)
    codecs = LayoutActions(env.layout).codecs
    first = env.reset_batch()
    records = [[value.copy() for _, value in first.obs.items()]]
    for _ in range(steps):
        actions = Action(
            **{
                codec.field: rng.integers(0, int(block.action_space.n), len(env.agent_names))  # type: ignore[attr-defined]
                for codec, block in zip(codecs, env.layout.blocks, strict=True)
            }
        )
        batch = env.step_batch(actions)
        record = [value.copy() for _, value in batch.obs.items()]
        record += [batch.reward.copy(), batch.terminated.copy(), batch.truncated.copy()]
        if batch.final_obs is not None:
            record += [value[batch.done].copy() for _, value in batch.final_obs.items()]
        records.append(record)
    env.close()
    return records


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("build", "steps"),
    [
        (
            lambda shared: PettingZooEnv.get_venv(
                2, 2, seed=3, env_fn=pursuit_v5.parallel_env, max_cycles=15, shared_memory=shared
            ),
            40,
        ),
        (
            lambda shared: TwoTeamsEnv.get_venv(
                2, 2, backend="subprocess", seed=1, team_a=2, episode_length=3, shared_memory=shared
            ),
            10,
        ),
    ],
    ids=["pursuit", "two-teams"],
)
def test_the_same_rows_as_through_pipes(build: Callable[[bool], MultiAgentEnv], steps: int) -> None:
    before = shared_blocks()
    shared = build(True)
    assert isinstance(shared, SubprocVecEnv) and shared.shared_memory
    through_shared = rollout(shared, steps)
    assert shared_blocks() == before  # close() removed the block
    for a, b in zip(through_shared, rollout(build(False), steps), strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.timeout(60)
def test_a_batch_stays_valid_until_the_step_after_next() -> None:
    env = PettingZooEnv.get_venv(
        1, 2, seed=0, env_fn=pursuit_v5.parallel_env, max_cycles=50, shared_memory=True
    )
    try:
        env.reset_batch()
        actions = Action(discrete=np.ones(len(env.agent_names), dtype=np.int64))
        kept = env.step_batch(actions)
        snapshot = kept.obs["image"].copy()
        env.step_batch(actions)
        np.testing.assert_array_equal(kept.obs["image"], snapshot)  # the next step: intact
        env.step_batch(actions)  # the step after: written into the same slot
        assert not np.array_equal(kept.obs["image"], snapshot)
    finally:
        env.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fault", ["step", "exit", "hang"])
def test_failures_are_those_of_the_pipes(fault: str, assert_gone: AssertGone) -> None:
    before = shared_blocks()
    env = faulty_venv(
        fault,
        "subprocess",
        workers=2,
        envs_per_worker=2,
        shared_memory=True,
        step_timeout=1.0 if fault == "hang" else None,
    )
    pids = env.pids  # type: ignore[attr-defined]
    env.reset()
    with pytest.raises(EnvCrashedError) as caught:
        step_twice(env)
    expected = {
        "step": "env copy 2 raised in step: ValueError: step failure in the bad copy",
        "exit": "died during step (exit code 3",
        "hang": "did not answer step within 1.0 s (step_timeout)",
    }[fault]
    assert expected in str(caught.value)
    assert caught.value.env_index == BAD_COPY
    check_stopped(env, pids, assert_gone)
    assert shared_blocks() == before


def test_shared_memory_outside_the_subprocess_backend_is_refused(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict(
        {"env": {"kind": "gym", "env_name": "CartPole-v1", "shared_memory": True}}
    )
    with pytest.raises(ConfigError, match=r"env\.shared_memory: shared memory carries"):
        make_env(cfg.env)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared_memory=True is for the subprocess backend"):
        make_vec_env(lambda: TwoTeamsEnv(), 2, backend="inprocess", shared_memory=True)


@pytest.mark.timeout(120)
def test_a_run_with_shared_memory_exits_without_resource_tracker_warnings() -> None:
    """In a fresh interpreter (no resource tracker running yet, as in a user's script):
    forked workers share the main process's tracker, so the block is cleaned up once."""
    script = (
        "from coltra.envs.probe_envs import TwoTeamsEnv\n"
        "env = TwoTeamsEnv.get_venv(2, 2, backend='subprocess', seed=1, team_a=2,\n"
        "                           episode_length=3, shared_memory=True)\n"
        "env.reset_batch()\n"  # the workers attach the block
        "env.close()\n"
    )
    before = shared_blocks()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=110, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resource_tracker" not in result.stderr, result.stderr[-3000:]
    assert shared_blocks() == before
