"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import psutil
import pytest

from coltra.envs import MultiAgentEnv

BACKENDS = ("inprocess", "subprocess")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once per vectorisation backend."""
    return str(request.param)


TESTS = Path(__file__).resolve().parent
#: Seconds a fresh Ray head may take to accept a driver on a slow, busy machine.
RAY_START_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A real Ray cluster for the session: ``ray start --head`` on 127.0.0.1 (a free port,
    token authentication with a fresh token, 8 logical CPUs), this process connected to it
    by address. Stopped, with every process it started, at the end of the session. Skipped
    only when Ray is not installed."""
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    saved = {key: os.environ.get(key) for key in token}
    # Ray reads the token when it is imported: set it first. No test imports Ray in this
    # process before (a check that Ray is installed uses importlib.util.find_spec).
    os.environ.update(token)
    try:
        import ray
    except ImportError:
        _restore(saved)
        pytest.skip("Ray is not installed: pip install 'coltra[ray]'")
    ray_cli = Path(sys.executable).with_name("ray")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp_dir = tempfile.mkdtemp(prefix="coltra-ray-")
    log = open(Path(temp_dir) / "ray-start.log", "w")  # closed at teardown
    head = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=8",
            "--object-store-memory=200000000",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ],
        env={**os.environ, **token},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as one at teardown
    )
    # Test modules define env classes that actors must import, as the workers of the
    # subprocess backend do (they are forked with this process's sys.path).
    paths = [str(TESTS / "envs"), str(TESTS / "reliability"), str(TESTS), str(TESTS.parent)]
    try:
        deadline = time.monotonic() + RAY_START_TIMEOUT
        while True:
            if head.poll() is not None:
                log.flush()
                raise RuntimeError(
                    f"ray start --head exited with {head.returncode}: "
                    f"{(Path(temp_dir) / 'ray-start.log').read_text()[-2000:]}"
                )
            try:
                ray.init(
                    address=address,
                    log_to_driver=False,
                    runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
                )
                break
            except (ConnectionError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        # Killed outright, the whole process group: `ray start --block` takes ~30 s to
        # stop on SIGTERM, and the cluster holds nothing worth a clean shutdown.
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(timeout=10)
        log.close()
        _restore(saved)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _restore(saved: dict[str, str | None]) -> None:
    """Put environment variables back as they were."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
