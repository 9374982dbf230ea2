"""Fixtures shared by the test suite."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

import psutil
import pytest

from coltra.envs import MultiAgentEnv

BACKENDS = ("inprocess", "subprocess")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once per vectorisation backend."""
    return str(request.param)


def _alive(pid: int) -> bool:
    """True for a running process; a zombie (dead, not yet reaped) does not count."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def assert_gone() -> Callable[[Iterable[int]], None]:
    """``assert_gone(pids)``: every process in ``pids`` has stopped (waits up to 5 s)."""

    def check(pids: Iterable[int]) -> None:
        pids = list(pids)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if not any(_alive(pid) for pid in pids):
                return
            time.sleep(0.05)
        still = [pid for pid in pids if _alive(pid)]
        raise AssertionError(f"worker processes still running: {still}")

    return check


E = TypeVar("E", bound=MultiAgentEnv)


class Closing(Protocol):
    def __call__(self, env: E) -> E: ...


@pytest.fixture
def closing() -> Iterator[Closing]:
    """``env = closing(make_env())`` closes the env after the test, whatever happens."""
    envs: list[MultiAgentEnv] = []

    def register(env: E) -> E:
        envs.append(env)
        return env

    yield register
    for env in envs:
        env.close()
