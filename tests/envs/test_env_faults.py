"""Env copies that raise, die or hang: a clear error naming the copy, quickly, and no
worker process left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import numpy as np
import pytest

from coltra.buffers import Action
from coltra.envs import EnvCrashedError, VecEnv
from coltra.envs.base import StepBatch
from coltra.envs.probe_envs import ConstantRewardEnv

AssertGone = Callable[[Iterable[int]], None]

BAD_COPY = 2  # the faulty copy in every test
SEED = 100  # copy i is seeded SEED + i, which is how a copy knows it is the bad one


class FaultyEnv(ConstantRewardEnv):
    """A constant-reward probe whose copy BAD_COPY misbehaves: ``fault`` is "step" (raises
    at the second step), "reset" (raises when its first episode ends and it resets),
    "first_reset" (raises at once), "exit" (the process dies at the second step) or "hang"
    (sleeps at the second step). Episodes last two steps."""

    def __init__(self, fault: str) -> None:
        super().__init__(episode_length=2)
        self.fault = fault
        self.bad = False
        self.resets = 0

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        if seed is not None:
            self.bad = seed == SEED + BAD_COPY
        self.resets += 1
        if self.bad and (
            (self.fault == "first_reset") or (self.fault == "reset" and self.resets == 2)
        ):
            raise ValueError(f"reset failure number {self.resets} in the bad copy")
        return super().reset_batch(seed)

    def step_batch(self, actions: Action) -> StepBatch:
        if self.bad and self._t == 1:
            if self.fault == "step":
                raise ValueError("step failure in the bad copy")
            if self.fault == "exit":
                os._exit(3)
            if self.fault == "hang":
                time.sleep(60)
        return super().step_batch(actions)


class BrokenBuild(ConstantRewardEnv):
    def __init__(self) -> None:
        raise ValueError("cannot build this env")


def faulty_venv(fault: str, backend: str, workers: int = 4, **kwargs: object) -> VecEnv:
    return FaultyEnv.get_venv(workers, backend=backend, seed=SEED, fault=fault, **kwargs)


def step_twice(env: VecEnv) -> None:
    actions = Action(discrete=np.zeros(len(env.agent_names), dtype=np.int64))
    env.step_batch(actions)
    env.step_batch(actions)


def check_stopped(env: VecEnv, pids: list[int], assert_gone: AssertGone) -> None:
    """The env refuses further use with the same kind of error and has no process left."""
    assert_gone(pids)
    with pytest.raises(EnvCrashedError, match=f"copy {BAD_COPY}|copies 2-3"):
        env.reset()
    env.close()  # still fine to call


@pytest.mark.timeout(30)
@pytest.mark.parametrize("envs_per_worker", [1, 2])
def test_raise_in_step(backend: str, envs_per_worker: int, assert_gone: AssertGone) -> None:
    env = faulty_venv(
        "step", backend, workers=4 // envs_per_worker, envs_per_worker=envs_per_worker
    )
    pids = list(getattr(env, "pids", []))
    env.reset()
    with pytest.raises(EnvCrashedError) as caught:
        step_twice(env)
    message = str(caught.value)
    assert "env copy 2 raised in step" in message
    assert "ValueError: step failure in the bad copy" in message
    assert caught.value.env_index == BAD_COPY
    if backend == "subprocess":
        assert "Traceback (most recent call last)" in message
        assert "test_env_faults.py" in message and "in step_batch" in message
    else:
        assert isinstance(caught.value.__cause__, ValueError)
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(30)
def test_raise_in_autoreset(backend: str, assert_gone: AssertGone) -> None:
    env = faulty_venv("reset", backend)
    pids = list(getattr(env, "pids", []))
    env.reset()
    with pytest.raises(EnvCrashedError, match="env copy 2 raised in reset") as caught:
        step_twice(env)  # the second step ends the episode, and the reset raises
    assert "reset failure number 2 in the bad copy" in str(caught.value)
    assert (caught.value.env_index, caught.value.phase) == (2, "reset")
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(30)
def test_raise_in_first_reset(backend: str, assert_gone: AssertGone) -> None:
    env = faulty_venv("first_reset", backend)
    pids = list(getattr(env, "pids", []))
    with pytest.raises(EnvCrashedError, match="env copy 2 raised in reset") as caught:
        env.reset()
    assert "reset failure number 1" in str(caught.value)
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("envs_per_worker", "named"), [(1, "copy 2"), (2, "copies 2-3")])
def test_worker_process_dies(envs_per_worker: int, named: str, assert_gone: AssertGone) -> None:
    env = faulty_venv(
        "exit", "subprocess", workers=4 // envs_per_worker, envs_per_worker=envs_per_worker
    )
    pids = env.pids
    env.reset()
    with pytest.raises(EnvCrashedError) as caught:
        step_twice(env)  # the timeout mark guards against waiting forever
    message = str(caught.value)
    assert named in message
    assert "died during step" in message and "exit code 3" in message
    assert caught.value.env_index == BAD_COPY
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(30)
def test_hung_worker_times_out(assert_gone: AssertGone) -> None:
    env = faulty_venv("hang", "subprocess", step_timeout=1.0)
    pids = env.pids
    env.reset()
    with pytest.raises(EnvCrashedError) as caught:
        step_twice(env)
    message = str(caught.value)
    assert "copy 2" in message
    assert "did not answer step within 1.0 s (step_timeout)" in message
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(30)
def test_copy_that_cannot_be_built_keeps_its_error(backend: str) -> None:
    with pytest.raises(ValueError, match="cannot build this env") as caught:
        BrokenBuild.get_venv(2, backend=backend)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "env copy 0" in notes


@pytest.mark.timeout(30)
def test_unpicklable_creator_starts_no_worker() -> None:
    import threading

    lock = threading.Lock()
    from coltra.envs import make_vec_env

    with pytest.raises(TypeError, match="cannot be sent to worker processes"):
        make_vec_env(lambda: ConstantRewardEnv() if lock else None, backend="subprocess")  # type: ignore[arg-type, return-value]


ORPHAN_SCRIPT = """
import time
from coltra.envs import MultiGymEnv
env = MultiGymEnv.get_venv(2, env_name="CartPole-v1", backend="subprocess")
env.reset()
print(" ".join(map(str, env.pids)), flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(30)
def test_workers_stop_when_the_main_process_is_killed(assert_gone: AssertGone) -> None:
    import signal
    import subprocess
    import sys

    main = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert main.stdout is not None
        pids = [int(pid) for pid in main.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    assert_gone(pids)  # they notice within PARENT_CHECK_INTERVAL and exit
