"""What every remote worker (a process, a Ray actor) shares: it runs the main process's
commands on an ``InProcessVecEnv`` of its copies, and reports a failure in one format that
the main process turns back into an error."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import cloudpickle
import numpy as np

from coltra.buffers import Action
from coltra.envs.base import EnvCrashedError
from coltra.envs.spaces import ActionCodec
from coltra.envs.vector.base import add_note
from coltra.envs.vector.inprocess import InProcessVecEnv

__all__ = [
    "ErrorReport",
    "describe_worker",
    "error_report",
    "raise_construction_error",
    "raise_report",
    "run_command",
    "worker_actions",
]

#: (phase, copy index or None, "Type: message", the worker's traceback, the pickled
#: exception for a copy that could not be built, else None)
ErrorReport = tuple[str, int | None, str, str, bytes | None]


def run_command(venv: InProcessVecEnv, command: str, argument: Any) -> Any:
    """A worker's answer to ``command``: "reset" (a seed), "step" (actions), "step_part"
    ((part, actions)) or "render"."""
    if command == "reset":
        return venv.reset_batch(argument)
    if command == "step":
        return venv.step_batch(argument)
    if command == "step_part":  # (part, actions): one part of the copies (overlapped collection)
        part, actions = argument
        return venv.step_part(part, actions)
    if command == "render":
        return venv.render()
    raise ValueError(f"unknown worker command {command!r}")


def error_report(exc: BaseException, phase: str) -> ErrorReport:
    """The report of ``exc``, raised by a worker while in ``phase``; call it inside the
    ``except`` block (it takes the traceback being handled)."""
    index = exc.env_index if isinstance(exc, EnvCrashedError) else None
    # An autoreset runs inside the "step" command: report the phase the copy was in.
    if isinstance(exc, EnvCrashedError) and exc.phase:
        phase = exc.phase
    # The in-process layer wraps the env's own error; report that one.
    cause = exc.__cause__ if isinstance(exc, EnvCrashedError) and exc.__cause__ else exc
    pickled = None
    if phase == "construction":
        try:
            pickled = cloudpickle.dumps(exc)
        except Exception:
            pickled = None
    return phase, index, f"{type(cause).__name__}: {cause}", traceback.format_exc(), pickled


def raise_construction_error(report: ErrorReport, where: str) -> None:
    """Re-raise a copy's construction error as its own type (a TypeError for a wrong env,
    a ValueError for a bad id), with the worker's traceback as a note; returns if the
    report holds none."""
    pickled, worker_traceback = report[4], report[3]
    if pickled is None:
        return
    try:
        original: Any = cloudpickle.loads(pickled)
    except Exception:
        return
    if isinstance(original, Exception):
        add_note(original, f"--- traceback in {where} ---\n{worker_traceback}")
        raise original


def describe_worker(kind: str, worker: int, copies: range, pid: int | None) -> str:
    """How errors name a worker: ``env worker 1 (copies 2-3, pid 4711)``."""
    shown = f"copy {copies[0]}" if len(copies) == 1 else f"copies {copies[0]}-{copies[-1]}"
    return f"{kind} {worker} ({shown}" + ("" if pid is None else f", pid {pid}") + ")"


def raise_report(
    report: ErrorReport,
    worker: str,
    first_copy: int,
    fail: Callable[[str, int | None, str | None], EnvCrashedError],
    stop: Callable[[], None],
) -> NoReturn:
    """Raise what a worker's ``report`` says: a copy's construction error as its own type
    (after ``stop()``), else the ``EnvCrashedError`` that ``fail`` records (naming the copy
    when known, else the ``worker``, with the worker's traceback)."""
    phase, index, summary, worker_traceback, pickled = report
    if pickled is not None:
        stop()
        raise_construction_error(report, worker)
    where = f"env copy {index}" if index is not None else worker
    raise fail(
        f"{where} raised in {phase}: {summary}\n--- traceback in {worker} ---\n{worker_traceback}",
        index if index is not None else first_copy,
        phase,
    )


def worker_actions(
    values: np.ndarray | Action, rows: Sequence[slice], single: ActionCodec | None
) -> list[Action]:
    """Each worker's share of checked actions (``rows[w]`` are worker ``w``'s), contiguous
    so that they travel without copies of the whole batch."""
    if isinstance(values, Action):
        return [values[part].map(np.ascontiguousarray) for part in rows]
    assert single is not None  # one block: plain arrays
    return [Action(**{single.field: np.ascontiguousarray(values[part])}) for part in rows]
