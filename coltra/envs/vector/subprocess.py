"""Env copies in worker processes, several copies per worker.

Each worker runs an ``InProcessVecEnv`` over its slice of the copies; the main process
sends every worker its actions first and then gathers the results, so workers step in
parallel. A worker that raises, dies or (with ``step_timeout``) hangs turns into an
``EnvCrashedError`` naming the copy, with the worker's traceback; all workers are then
shut down, so nothing is left running. A copy that cannot be built raises its own error
(e.g. ``TypeError`` for a PettingZoo AEC env) in the main process, with the worker's
traceback attached as a note.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Sequence
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

import cloudpickle
import numpy as np

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
from coltra.envs.vector.shared_memory import SLOTS, SharedRows, SlotCall

__all__ = ["SubprocVecEnv", "default_start_method"]

#: How long a worker may take to build its env copies before we give up.
STARTUP_TIMEOUT = 120.0
#: How long close() waits for workers to shut down cleanly before killing them.
CLOSE_TIMEOUT = 5.0
#: How often an idle worker checks that the main process is still alive.
PARENT_CHECK_INTERVAL = 1.0


def default_start_method() -> str:
    """``fork`` on Linux: fast, and scripts without a ``__main__`` guard still work.

    Workers never touch torch, so forking a process that has loaded torch is safe here.
    Elsewhere ``spawn`` (macOS and Windows cannot fork safely).
    """
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _worker(
    conn: Connection, payload: bytes, first_index: int, seed: int | None, parent_pid: int
) -> None:
    # Ctrl-C goes to the whole process group: the main process decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    venv: InProcessVecEnv | None = None
    shared: SharedRows | None = None
    rows: slice = slice(0)
    part_rows: list[slice] = []
    phase = "construction"
    try:
        env_fns = cloudpickle.loads(payload)
        venv = InProcessVecEnv(env_fns, seed=seed, first_index=first_index)
        copy_names = [venv.envs[copy].agent_names for copy in range(venv.num_envs)]
        conn.send(("ok", (copy_names, [env.layout for env in venv.envs])))
        while True:
            if not conn.poll(PARENT_CHECK_INTERVAL):
                # Orphaned (the main process was killed): stop instead of waiting forever.
                if os.getppid() != parent_pid:
                    return
                continue
            command, argument = conn.recv()
            phase = command
            if command == "close":
                venv.close()
                conn.send(("ok", None))
                return
            if command == "attach":  # results go to shared memory from now on
                spec, rows, part_rows = argument
                shared = SharedRows.attach(spec)
                conn.send(("ok", None))
                continue
            if isinstance(argument, SlotCall):
                assert shared is not None  # attached before the first such call
                result = run_command(venv, command, argument.argument)
                target = part_rows[argument.argument[0]] if command == "step_part" else rows
                conn.send(("ok", shared.write(argument.slot, target, result)))
                continue
            conn.send(("ok", run_command(venv, command, argument)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    except BaseException as exc:
        report = error_report(exc, phase)
        try:
            conn.send(("error", report))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if venv is not None:
            venv.close()
        if shared is not None:
            shared.close()


class SubprocVecEnv(VecEnv):
    """``len(env_fns)`` copies spread over worker processes, ``envs_per_worker`` each."""

    def __init__(
        self,
        env_fns: Sequence[EnvCreator],
        envs_per_worker: int = 1,
        seed: int | None = None,
        start_method: str | None = None,
        step_timeout: float | None = None,
        shared_memory: bool = False,
    ) -> None:
        if len(env_fns) == 0:
            raise ValueError("a vectorised env needs at least one env copy")
        self.first_index = 0
        self.step_timeout = step_timeout
        #: Results through shared memory (:mod:`coltra.envs.vector.shared_memory`), set up
        #: at the first reset; the pipes then carry small replies only.
        self.shared_memory = shared_memory
        self._shared: SharedRows | None = None
        self._next_slot = 0
        self._part_slots: list[int] = []  # slots of the parts sent and not yet received
        self._conns: list[Connection] = []
        # Replies each worker owes (its construction report, then one per command sent);
        # one left unread by an interrupted call is read and dropped before the next command.
        self._awaiting: list[int] = []
        self._processes: list[BaseProcess] = []
        self._worker_copies: list[range] = []
        starts = range(0, len(env_fns), envs_per_worker)
        try:
            # Pickle everything before starting anyone, so a bad creator leaves no process.
            payloads = [
                cloudpickle.dumps(list(env_fns[start : start + envs_per_worker]))
                for start in starts
            ]
        except Exception as exc:
            raise TypeError(
                f"the env creator cannot be sent to worker processes (it must pickle with "
                f"cloudpickle): {type(exc).__name__}: {exc}"
            ) from exc
        context: Any = mp.get_context(start_method or default_start_method())
        if shared_memory:
            # The main process's resource tracker runs before any worker starts, so forked
            # workers share it (the block stays registered once, by its owner); a worker
            # forked before it would start a tracker of its own at attach, which at exit
            # "cleans up" the block the owner already removed, with warnings.
            resource_tracker.ensure_running()
        for start, payload in zip(starts, payloads):
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(child, payload, start, seed, os.getpid()),
                daemon=True,
                name=f"coltra-env-worker-{len(self._processes)}",
            )
            self._conns.append(parent)
            self._awaiting.append(1)
            self._processes.append(process)
            self._worker_copies.append(range(start, min(start + envs_per_worker, len(env_fns))))
            process.start()
            child.close()
        names_per_copy: list[list[str]] = []
        layouts: list[BlockLayout] = []
        for worker in range(len(self._conns)):
            copy_names, copy_layouts = self._receive(worker, "construction", STARTUP_TIMEOUT)
            names_per_copy.extend(copy_names)
            layouts.extend(copy_layouts)
        try:
            self._set_layout(names_per_copy, layouts)
        except ValueError:  # copies whose agents' spaces differ
            self.close()
            raise
        self._worker_rows = [
            slice(
                self.rows_of_copy(copies[0]).start,
                self.rows_of_copy(copies[-1]).stop,
            )
            for copies in self._worker_copies
        ]

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for monitoring and tests)."""
        return [process.pid for process in self._processes if process.pid is not None]

    # ------------------------------------------------------------------ messaging
    def _describe(self, worker: int) -> str:
        pid = self._processes[worker].pid
        return describe_worker("env worker", worker, self._worker_copies[worker], pid)

    def _fail(
        self, message: str, env_index: int | None, phase: str | None = None
    ) -> EnvCrashedError:
        """Record the crash, stop every worker, and return the error to raise."""
        error = EnvCrashedError(message, env_index, phase)
        self._crash = error
        self._shutdown(graceful=False)
        return error

    def _send(self, worker: int, command: str, argument: Any) -> None:
        try:
            self._conns[worker].send((command, argument))
            self._awaiting[worker] += 1
        except (BrokenPipeError, OSError) as exc:
            process = self._processes[worker]
            process.join(timeout=1.0)
            raise self._fail(
                f"{self._describe(worker)} is gone (exit code {process.exitcode}) before "
                f"{command}: {exc}",
                self._worker_copies[worker][0],
            ) from None

    def _receive(self, worker: int, phase: str, timeout: float | None) -> Any:
        conn, process = self._conns[worker], self._processes[worker]
        deadline = None if timeout is None else time.monotonic() + timeout
        while not conn.poll(0.2):
            if not process.is_alive():
                break
            if deadline is not None and time.monotonic() > deadline:
                raise self._fail(
                    f"{self._describe(worker)} did not answer {phase} within {timeout} s "
                    "(step_timeout); it is presumed hung and every worker was stopped",
                    self._worker_copies[worker][0],
                )
        try:
            status, payload = conn.recv()
            self._awaiting[worker] -= 1
        except (EOFError, OSError):
            process.join(timeout=1.0)
            raise self._fail(
                f"{self._describe(worker)} died during {phase} (exit code "
                f"{process.exitcode}; negative means killed by that signal); its env copies "
                "are lost and every worker was stopped",
                self._worker_copies[worker][0],
            ) from None
        if status == "error":
            self._raise_worker_error(worker, payload)
        return payload

    def _raise_worker_error(self, worker: int, report: ErrorReport) -> NoReturn:
        raise_report(
            report,
            self._describe(worker),
            self._worker_copies[worker][0],
            self._fail,
            lambda: self._shutdown(graceful=False),
        )

    def _drain(self) -> None:
        """Read and drop the replies of an interrupted call (a KeyboardInterrupt while
        waiting for them), so that the next reply read belongs to the next command."""
        for worker in range(len(self._conns)):
            while self._awaiting[worker] > 0:
                self._receive(worker, "a call that was interrupted", self.step_timeout)
        self._part_slots.clear()

    def _gather(self, phase: str) -> list[Any]:
        timeout = self.step_timeout
        return [self._receive(worker, phase, timeout) for worker in range(len(self._conns))]

    # ------------------------------------------------------------------ env API
    def reset_batch(self, seed: int | None = None) -> StepBatch:
        self._check_open()
        self._drain()
        # Each worker adds its copies' indices to the seed itself.
        batch = self._command("reset", [seed] * len(self._conns))
        if self.shared_memory and self._shared is None:
            self._attach_shared(batch)
        return self._remember(batch)

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_open()
        values = self._check_actions(actions)
        self._drain()
        parts = worker_actions(values, self._worker_rows, self._actions.single)
        return self._remember(self._command("step", parts))

    def _command(self, command: str, arguments: Sequence[Any]) -> StepBatch:
        """Send each worker its argument and join the steps they return (from shared memory
        once it is set up)."""
        shared = self._shared
        slot = self._take_slot()
        for worker, argument in enumerate(arguments):
            self._send(worker, command, argument if shared is None else SlotCall(argument, slot))
        replies = self._gather(command)
        if shared is None:
            return StepBatch.concat(replies)
        return shared.batch(slot, replies)

    def _take_slot(self) -> int:
        slot = self._next_slot
        self._next_slot = (slot + 1) % SLOTS
        return slot

    def _attach_shared(self, batch: StepBatch) -> None:
        """Set up the shared block shaped like ``batch`` and have every worker attach it."""
        self._shared = shared = SharedRows.create(batch)
        for worker, copies in enumerate(self._worker_copies):
            half = (len(copies) + 1) // 2  # the parts of InProcessVecEnv.part_copies
            parts = [copies[:half], copies[half:]] if len(copies) > 1 else [copies, copies]
            part_rows = [
                slice(self.rows_of_copy(part[0]).start, self.rows_of_copy(part[-1]).stop)
                for part in parts
            ]
            self._send(worker, "attach", (shared.spec, self._worker_rows[worker], part_rows))
        self._gather("attach")

    # ------------------------------------------------------------------ overlapped stepping
    def part_rows(self) -> list[np.ndarray] | None:
        """The rows of the two parts of the copies (each worker's first and second half of
        its copies), for stepping one part while the policy acts for the other; None when a
        worker holds a single copy or the env has several blocks of spaces."""
        if min(len(c) for c in self._worker_copies) < 2 or self._actions.single is None:
            return None
        parts: list[list[np.ndarray]] = [[], []]
        for worker in self._worker_copies:
            half = (len(worker) + 1) // 2  # as InProcessVecEnv.part_copies
            for part, local in enumerate((worker[:half], worker[half:])):
                first, last = self.rows_of_copy(local[0]), self.rows_of_copy(local[-1])
                parts[part].append(np.arange(first.start, last.stop))
        # Each worker's share of a part's rows, in order.
        self._part_shares = [[len(rows) for rows in part] for part in parts]
        return [np.concatenate(rows) for rows in parts]

    def send_part(self, part: int, actions: Action, rows: np.ndarray) -> None:
        """Send the actions of part ``part`` (``rows``, as ``part_rows()`` gives them, one
        action row each) to every worker; :meth:`receive_part` collects the results."""
        self._check_open()
        active = self._check_ready()
        single = self._actions.single
        assert single is not None  # part_rows() is None otherwise
        values = single.check_batch(actions, len(rows), active[rows])
        slot = self._take_slot()
        self._part_slots.append(slot)
        start = 0
        for worker, count in enumerate(self._part_shares[part]):
            share = np.ascontiguousarray(values[start : start + count])
            argument = (part, Action(**{single.field: share}))
            self._send(
                worker, "step_part", argument if self._shared is None else SlotCall(argument, slot)
            )
            start += count

    def receive_part(self, rows: np.ndarray) -> StepBatch:
        """The results of the part sent first of those not received yet (its ``rows``, in
        ``part_rows()`` order); a copy, never a view of shared memory."""
        replies = self._gather("step")
        slot = self._part_slots.pop(0)
        if self._shared is None:
            batch = StepBatch.concat(replies)
        else:
            batch = self._shared.batch(slot, replies, rows)
        active = self._check_ready().copy()
        active[rows] = batch.active
        self._active_rows = active
        return batch

    def render(self) -> Any:
        self._check_open()
        self._drain()
        self._send(0, "render", None)
        return self._receive(0, "render", self.step_timeout)

    def close(self, force: bool = False) -> None:
        """Stop every worker; with ``force`` without asking them to close their envs first."""
        if self._closed:
            return
        self._closed = True
        self._shutdown(graceful=not force and self._crash is None)

    def _shutdown(self, graceful: bool) -> None:
        """Ask workers to close (if ``graceful``), then terminate and reap whoever is left."""
        self._closed = True
        if graceful:
            for conn in self._conns:
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
            # One deadline for all workers, so close() never takes workers x timeout.
            deadline = time.monotonic() + CLOSE_TIMEOUT
            for conn, process in zip(self._conns, self._processes):
                try:
                    if conn.poll(max(0.0, deadline - time.monotonic())):
                        conn.recv()
                except (EOFError, OSError):
                    pass
                process.join(timeout=max(0.0, deadline - time.monotonic()))
        for process in self._processes:
            if process.pid is None:
                continue
            if process.is_alive():
                process.terminate()
                process.join(timeout=1.0)
            if process.is_alive():
                process.kill()
            process.join(timeout=1.0)
        for conn in self._conns:
            conn.close()
        if self._shared is not None:
            self._shared.close()
            self._shared = None

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False and hasattr(self, "_processes"):
            self._shutdown(graceful=False)
