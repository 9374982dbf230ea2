"""Env copies in Ray actors, several copies per actor: the subprocess backend on a cluster.

Each actor runs an ``InProcessVecEnv`` over its slice of the copies, exactly as a
subprocess worker does (same seeds, same rows, same autoreset), so a run gives the same
records on either backend. The main process sends every actor its actions first and then
gathers the results, so actors step in parallel. One Ray call per actor per step: a call
costs about a millisecond here (``benchmarks/throughput.py`` measures it), so put many copies
in each actor (``envs_per_worker``) and use Ray for envs whose step costs more than that, or
to reach the cores of other machines.

Failures look as they do with subprocesses: a copy that raises, an actor that dies, or (with
``step_timeout``) one that hangs gives an ``EnvCrashedError`` naming the copy, with the
actor's traceback when there is one; every actor is then stopped. A copy that cannot be
built raises its own error. Ray is imported only when this backend is used
(``pip install 'coltra[ray]'``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NoReturn

import cloudpickle

from coltra.buffers import Action
from coltra.envs.base import EnvCrashedError, StepBatch
from coltra.envs.blocks import BlockLayout
from coltra.envs.vector.base import EnvCreator, VecEnv
from coltra.envs.vector.inprocess import InProcessVecEnv
from coltra.envs.vector.remote import (
    ErrorReport,
    describe_worker,
    error_report,
    raise_report,
    run_command,
    worker_actions,
)

__all__ = ["RayVecEnv", "import_ray"]

#: How long actors may take to start and build their env copies before we give up.
STARTUP_TIMEOUT = 120.0
#: How long close() waits for actors to close their envs before killing them.
CLOSE_TIMEOUT = 5.0

#: Ray sessions this module started (``ray.init`` without an address): shut down when the
#: last env using it closes. A session the user started is never shut down here.
_owned_session = {"users": 0}


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            f"env.backend 'ray' needs Ray, which is not installed ({exc}); install it with "
            "pip install 'coltra[ray]'"
        ) from None
    return ray


class EnvActor:
    """What runs inside each Ray actor: its copies, and the commands of the main process.
    Every method answers ``("ok", result)`` or ``("error", report)``, never raises."""

    def __init__(self, payload: bytes, first_index: int, seed: int | None) -> None:
        self.venv: InProcessVecEnv | None = None
        self.failure: ErrorReport | None = None
        try:
            env_fns = cloudpickle.loads(payload)
            self.venv = InProcessVecEnv(env_fns, seed=seed, first_index=first_index)
        except BaseException as exc:
            self.failure = error_report(exc, "construction")

    def describe(self) -> tuple[str, Any]:
        if self.failure is not None or self.venv is None:
            return "error", self.failure
        venv = self.venv
        names = [venv.envs[copy].agent_names for copy in range(venv.num_envs)]
        return "ok", (names, [env.layout for env in venv.envs], os.getpid())

    def call(self, command: str, argument: Any) -> tuple[str, Any]:
        assert self.venv is not None  # describe() reported the construction error
        try:
            if command == "close":
                self.venv.close()
                return "ok", None
            return "ok", run_command(self.venv, command, argument)
        except BaseException as exc:
            return "error", error_report(exc, command)


def _connect(ray: Any, address: str | None) -> bool:
    """Make sure this process is connected to Ray; True if it started a local session."""
    if ray.is_initialized():
        return False
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        return True
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConnectionError(
            f"cannot connect to the Ray cluster at env.ray_address={address!r}: {exc} (start "
            "one with `ray start --head`, or leave ray_address null for a local one)"
        ) from None
    return False


class RayVecEnv(VecEnv):
    """``len(env_fns)`` copies over ``len(env_fns) / envs_per_worker`` Ray actors.

    ``address`` is a running cluster's (``"127.0.0.1:6379"``, ``"auto"``); None starts a
    local Ray session on first use (and shuts it down when the last env closes). Each actor
    reserves ``num_cpus`` of the cluster's CPUs for scheduling.
    """

    def __init__(
        self,
        env_fns: Sequence[EnvCreator],
        envs_per_worker: int = 1,
        seed: int | None = None,
        step_timeout: float | None = None,
        address: str | None = None,
        num_cpus: float = 1.0,
    ) -> None:
        if len(env_fns) == 0:
            raise ValueError("a vectorised env needs at least one env copy")
        if isinstance(num_cpus, bool) or not isinstance(num_cpus, int | float) or num_cpus < 0:
            raise ValueError(f"num_cpus per Ray actor must be a number >= 0, got {num_cpus!r}")
        ray = self._ray = import_ray()
        self.first_index = 0
        self.step_timeout = step_timeout
        self._actors: list[Any] = []
        self._pending: list[Any] = []  # replies of an interrupted call, to drop
        starts = range(0, len(env_fns), envs_per_worker)
        try:
            payloads = [
                cloudpickle.dumps(list(env_fns[start : start + envs_per_worker]))
                for start in starts
            ]
        except Exception as exc:
            raise TypeError(
                f"the env creator cannot be sent to Ray actors (it must pickle with "
                f"cloudpickle): {type(exc).__name__}: {exc}"
            ) from exc
        self._owns_session = _connect(ray, address)
        if self._owns_session:
            _owned_session["users"] += 1
        self._worker_copies = [
            range(start, min(start + envs_per_worker, len(env_fns))) for start in starts
        ]
        self._check_capacity(len(payloads), num_cpus)
        actor_class = ray.remote(EnvActor).options(num_cpus=num_cpus, max_restarts=0)
        self._actors = [
            actor_class.remote(payload, start, seed) for start, payload in zip(starts, payloads)
        ]
        self.pids: list[int] = []
        names_per_copy: list[list[str]] = []
        layouts: list[BlockLayout] = []
        replies = self._gather([actor.describe.remote() for actor in self._actors], "construction")
        for copy_names, copy_layouts, pid in replies:
            names_per_copy.extend(copy_names)
            layouts.extend(copy_layouts)
            self.pids.append(pid)
        try:
            self._set_layout(names_per_copy, layouts)
        except ValueError:  # copies whose agents' spaces differ
            self.close()
            raise
        self._worker_rows = [
            slice(self.rows_of_copy(copies[0]).start, self.rows_of_copy(copies[-1]).stop)
            for copies in self._worker_copies
        ]

    def _check_capacity(self, actors: int, num_cpus: float) -> None:
        """Refuse up front what Ray would leave pending forever: more CPUs than it has."""
        total = float(self._ray.cluster_resources().get("CPU", 0.0))
        if actors * num_cpus > total:
            self._release_session()
            raise ValueError(
                f"{actors} Ray actors x {num_cpus} CPUs each need {actors * num_cpus:g} CPUs, "
                f"the Ray cluster has {total:g}: use fewer workers (more envs_per_worker) or "
                "a smaller env.ray_num_cpus"
            )

    # ------------------------------------------------------------------ messaging
    def _describe(self, worker: int) -> str:
        pid = self.pids[worker] if worker < len(self.pids) else None
        return describe_worker("Ray env actor", worker, self._worker_copies[worker], pid)

    def _fail(self, message: str, env_index: int | None, phase: str | None) -> EnvCrashedError:
        """Record the crash, stop every actor, and return the error to raise."""
        error = EnvCrashedError(message, env_index, phase)
        self._crash = error
        self._shutdown(graceful=False)
        return error

    def _gather(self, refs: list[Any], phase: str) -> list[Any]:
        """Every actor's answer to one command, in actor order; failures become errors."""
        ray = self._ray
        exceptions = ray.exceptions
        timeout = STARTUP_TIMEOUT if phase == "construction" else self.step_timeout
        self._pending = list(refs)
        try:  # the common case in one call; the slow path below finds who failed
            replies = ray.get(refs, timeout=timeout)
        except (exceptions.GetTimeoutError, exceptions.RayActorError, exceptions.ObjectLostError):
            replies = self._find_failure(refs, phase, timeout)
        answers = []
        for worker, (status, payload) in enumerate(replies):
            if status == "error":
                self._raise_worker_error(worker, payload)
            answers.append(payload)
        self._pending = []
        return answers

    def _find_failure(self, refs: list[Any], phase: str, timeout: float | None) -> list[Any]:
        """After a failed ``ray.get``: actor by actor, the error naming the one that is late
        or dead (the answers, if the failure went away)."""
        exceptions = self._ray.exceptions
        replies = []
        for worker, ref in enumerate(refs):
            try:
                replies.append(self._ray.get(ref, timeout=timeout))
            except exceptions.GetTimeoutError:
                limit = "the startup limit" if phase == "construction" else "step_timeout"
                raise self._fail(
                    f"{self._describe(worker)} did not answer {phase} within {timeout} s "
                    f"({limit}); it is presumed hung (or, at startup, the cluster could not "
                    "place it) and every actor was stopped",
                    self._worker_copies[worker][0],
                    phase,
                ) from None
            except (exceptions.RayActorError, exceptions.ObjectLostError) as exc:
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise self._fail(
                    f"{self._describe(worker)} died during {phase} ({type(exc).__name__}: "
                    f"{first_line}); its env copies are lost and every actor was stopped",
                    self._worker_copies[worker][0],
                    phase,
                ) from None
        return replies

    def _raise_worker_error(self, worker: int, report: ErrorReport) -> NoReturn:
        raise_report(
            report,
            self._describe(worker),
            self._worker_copies[worker][0],
            self._fail,
            lambda: self._shutdown(graceful=False),
        )

    def _drain(self) -> None:
        """Wait out the replies of an interrupted call, so that actors are idle again."""
        if self._pending:
            self._gather(self._pending, "a call that was interrupted")

    def _command(self, command: str, arguments: Sequence[Any]) -> list[Any]:
        self._check_open()
        self._drain()
        refs = [
            actor.call.remote(command, argument) for actor, argument in zip(self._actors, arguments)
        ]
        return self._gather(refs, command)

    # ------------------------------------------------------------------ env API
    def reset_batch(self, seed: int | None = None) -> StepBatch:
        # Each actor adds its copies' indices to the seed itself.
        parts = self._command("reset", [seed] * len(self._actors))
        return self._remember(StepBatch.concat(parts))

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_open()
        values = self._check_actions(actions)
        parts = worker_actions(values, self._worker_rows, self._actions.single)
        return self._remember(StepBatch.concat(self._command("step", parts)))

    def render(self) -> Any:
        self._check_open()
        self._drain()
        return self._gather([self._actors[0].call.remote("render", None)], "render")[0]

    def close(self, force: bool = False) -> None:
        """Stop every actor; with ``force`` without asking them to close their envs first."""
        if self._closed:
            return
        self._closed = True
        self._shutdown(graceful=not force and self._crash is None)

    def _shutdown(self, graceful: bool) -> None:
        """Ask actors to close their envs (if ``graceful``), then kill them."""
        self._closed = True
        ray = self._ray
        actors, self._actors = self._actors, []
        if graceful and actors:
            refs = [actor.call.remote("close", None) for actor in actors]
            ray.wait(refs, num_returns=len(refs), timeout=CLOSE_TIMEOUT)
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self._release_session()

    def _release_session(self) -> None:
        """Shut down the local Ray session this env started, once no env uses it."""
        if getattr(self, "_owns_session", False):
            self._owns_session = False
            _owned_session["users"] -= 1
            if _owned_session["users"] == 0:
                self._ray.shutdown()

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False and getattr(self, "_actors", None):
            try:
                self._shutdown(graceful=False)
            except Exception:  # interpreter shutdown: Ray may be gone already
                pass
