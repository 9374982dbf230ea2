"""The run directory: one run's files, and its checkpoints written so that a crash loses none.

::

    config.yaml                 the full RunConfig in force (coltra.configs.finish_run_config)
    metrics.csv                 one row per logged iteration, one column per metric
    events.out.tfevents.*       TensorBoard (``tensorboard --logdir <run dir>``)
    checkpoints/latest          names the newest complete checkpoint
    checkpoints/best            names the best evaluated one and its score (trainer.eval_every)
    checkpoints/iter_000040/    agents/ (the group, MacroAgent.save) + trainer_state.pt
    wandb/                      only with trainer.wandb

A checkpoint is written to a temporary directory and renamed into place, then ``latest`` is
rewritten atomically, so a crash mid-save leaves the previous checkpoint intact. The
directory is probed for writes and free space when the run starts, so a full disk fails
then, not at the first checkpoint an hour later. A run that stopped before its first
checkpoint can be started again in the same directory.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coltra.configs import ConfigError, RunConfig, finish_run_config, resume_run_config
from coltra.groups import MacroAgent
from coltra.serialization import CheckpointError, atomic_write_bytes, load_tensors, save_tensors

__all__ = [
    "BestCheckpoint",
    "RunDirError",
    "RunDirectory",
    "RunPlan",
    "TrainerError",
    "as_run_config",
    "plan_run",
    "restart_command",
    "resume_command",
]

#: Bytes written (and synced) to a new run directory at start-up: a full disk fails here.
WRITE_PROBE_BYTES = 64 * 1024
#: Free space a run needs besides its checkpoints (config, metrics.csv, TensorBoard events).
LOG_SPACE_BYTES = 1 << 20


class TrainerError(RuntimeError):
    """A training run that cannot start or go on; the message says why and what to do."""


class RunDirError(TrainerError):
    """A run directory that cannot be created, written or resumed from."""


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


class RunDirectory:
    """The files of one run: config, metrics CSV, TensorBoard events, checkpoints."""

    CONFIG = "config.yaml"
    METRICS = "metrics.csv"
    CHECKPOINTS = "checkpoints"
    LATEST = "latest"
    BEST = "best"
    STATE = "trainer_state.pt"
    AGENTS = "agents"
    _CHECKPOINT_NAME = re.compile(r"iter_(\d{6,})")

    LOCK = ".lock"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: int | None = None

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    def has_checkpoint(self) -> bool:
        return (self.checkpoints / self.LATEST).is_file()

    @classmethod
    def create(cls, path: str | os.PathLike[str], need_bytes: int = 0) -> RunDirectory:
        """The directory of a new run, checked writable with ``need_bytes`` free. A directory
        that holds a run with a checkpoint is refused (resume it instead); one whose run
        stopped before its first checkpoint is cleared and used again."""
        run = cls(Path(path))
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(
                f"cannot write the run directory {run.path}: {exc.strerror or exc} "
                "(set trainer.run_dir to a writable place)"
            ) from None
        run.lock()
        if (run.path / cls.CONFIG).exists():
            if run.has_checkpoint():
                raise RunDirError(
                    f"{run.path} already holds a run (it has a {cls.CONFIG} and checkpoints); "
                    f"continue it with coltra train --resume {run.path}, or choose another "
                    "trainer.run_dir"
                )
            try:
                run.clear_unsaved_run()
            except OSError as exc:
                raise RunDirError(
                    f"cannot start the run again in {run.path}: {exc.strerror or exc}"
                ) from None
        run.check_writable(need_bytes)
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDirectory:
        """An existing run that has at least one checkpoint."""
        directory = Path(path)
        if not directory.is_dir():
            raise RunDirError(f"cannot resume from {directory}: it is not a directory")
        if not (directory / cls.CONFIG).is_file():
            raise RunDirError(
                f"cannot resume from {directory}: it is not a Coltra run directory "
                f"(no {cls.CONFIG})"
            )
        run = cls(directory)
        if not run.has_checkpoint():
            try:
                again = restart_command(directory, run.read_config())
            except ConfigError:  # a config.yaml that does not load: say so when it is used
                again = f"coltra train -c {directory / cls.CONFIG}"
            raise RunDirError(
                f"cannot resume from {directory}: the run has no checkpoint yet "
                f"({cls.CHECKPOINTS}/{cls.LATEST} is missing); start it again in place with "
                f"{again}"
            )
        return run

    def lock(self) -> None:
        """Hold the run's lock file until :meth:`unlock` (or this process ends): two
        processes training in one directory would overwrite each other's files."""
        if self._lock is not None:
            return
        try:
            fd = os.open(self.path / self.LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunDirError(
                f"cannot write the run directory {self.path}: {exc.strerror or exc} "
                "(set trainer.run_dir to a writable place)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"{self.path} is in use: another process is training in it (wait for it, or "
                "choose another trainer.run_dir)"
            ) from None
        except OSError:  # a file system without locks: go on unguarded
            pass
        self._lock = fd

    def unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the lock
            self._lock = None

    def clear_unsaved_run(self) -> None:
        """Remove what a run that never saved a checkpoint wrote (config, logs, profile)."""
        for name in (self.CONFIG, self.METRICS, "profile.prof", "profile.txt"):
            (self.path / name).unlink(missing_ok=True)
        for events in self.path.glob("events.out.tfevents.*"):
            events.unlink(missing_ok=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.clean_temporary()

    def check_writable(self, need_bytes: int = 0) -> None:
        """Write and sync a small file here, and check that ``need_bytes`` are free: an
        unwritable directory or a full disk fails at start-up, not at the first checkpoint
        an hour later."""
        try:
            with tempfile.NamedTemporaryFile(dir=self.path, prefix=".write-test-") as probe:
                probe.write(b"\0" * WRITE_PROBE_BYTES)
                probe.flush()
                os.fsync(probe.fileno())
            free = shutil.disk_usage(self.path).free
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            hint = "free some space" if full else "set trainer.run_dir to a writable place"
            raise RunDirError(
                f"cannot write the run directory {self.path}: {exc.strerror or exc} ({hint})"
            ) from None
        if free < need_bytes + LOG_SPACE_BYTES:
            raise RunDirError(
                f"not enough free space for the run directory {self.path}: "
                f"{_megabytes(free)} free, the run needs about "
                f"{_megabytes(need_bytes + LOG_SPACE_BYTES)} (its checkpoints and logs); free "
                "some space or set trainer.run_dir elsewhere"
            )

    def read_config(self) -> RunConfig:
        return RunConfig.from_yaml(self.path / self.CONFIG)

    def write_config(self, config: RunConfig) -> None:
        try:
            config.to_yaml(self.path / self.CONFIG)
        except OSError as exc:
            raise RunDirError(f"cannot write {self.path / self.CONFIG}: {exc}") from None

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(
        self, iteration: int, group: MacroAgent, state: dict[str, Any], keep: int
    ) -> Path:
        """Write ``checkpoints/iter_NNNNNN`` via a temporary directory, point ``latest`` at it,
        and delete all but the newest ``keep`` checkpoints."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / f"iter_{iteration:06d}"
        tmp = self.checkpoints / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            group.save(tmp / self.AGENTS)
            save_tensors(tmp / self.STATE, state)
            if final.exists():  # left by a crash after its rename but before `latest` moved
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_bytes(self.checkpoints / self.LATEST, f"{final.name}\n".encode())
        self._prune(keep, final)
        return final

    def latest_checkpoint(self) -> Path:
        latest = self.checkpoints / self.LATEST
        return self._named_checkpoint(latest, self._read_pointer(latest)[0])

    def mark_best(self, checkpoint: Path, metric: str, score: float, keep: int) -> BestCheckpoint:
        """Point ``checkpoints/best`` at ``checkpoint`` (one of this run's), whose evaluation
        gave ``score`` on ``metric``; pruning never deletes it. The previous best goes unless
        it is among the ``keep`` newest."""
        text = f"{checkpoint.name}\n{metric} {score!r}\n"
        atomic_write_bytes(self.checkpoints / self.BEST, text.encode())
        self._prune(keep, self.latest_checkpoint())
        return BestCheckpoint(checkpoint, metric, score)

    def best_checkpoint(self) -> BestCheckpoint | None:
        """The best evaluated checkpoint, or None if no evaluation during training marked one."""
        pointer = self.checkpoints / self.BEST
        if not pointer.is_file():
            return None
        lines = self._read_pointer(pointer)
        path = self._named_checkpoint(pointer, lines[0])
        metric, _, value = (lines[1] if len(lines) > 1 else "").partition(" ")
        try:
            score = float(value)
        except ValueError:
            raise CheckpointError(
                f"{pointer} should give the score on its second line, like "
                f"'eval/return_mean 431.5', got {lines[1:2]}"
            ) from None
        return BestCheckpoint(path, metric, score)

    def _read_pointer(self, pointer: Path) -> list[str]:
        try:
            lines = pointer.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"cannot read {pointer}: {exc}") from None
        return [line.strip() for line in lines if line.strip()] or [""]

    def _named_checkpoint(self, pointer: Path, name: str) -> Path:
        """The checkpoint directory that ``pointer`` (``latest`` or ``best``) names."""
        if not self._CHECKPOINT_NAME.fullmatch(name):
            raise CheckpointError(
                f"{pointer} should name a checkpoint like iter_000010, got {name!r}"
            )
        path = self.checkpoints / name
        if not path.is_dir():
            raise CheckpointError(
                f"{pointer} names {name}, which does not exist in {self.checkpoints}"
            )
        return path

    def load_checkpoint(self) -> tuple[Path, MacroAgent, dict[str, Any]]:
        """The newest checkpoint: its path, its group and its trainer state (a dict of
        tensors and plain data, loaded with ``weights_only``)."""
        path = self.latest_checkpoint()
        group = MacroAgent.load(path / self.AGENTS)
        state = load_tensors(path / self.STATE)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path / self.STATE} is not a Coltra trainer state")
        return path, group, state

    def clean_temporary(self) -> None:
        """Remove what a crash mid-write left: half-written checkpoint directories and the
        temporary files of atomic writes (``latest``, ``config.yaml``, ``metrics.csv``)."""
        leftovers = [
            *self.path.glob(f".{self.CONFIG}.*.tmp"),
            *self.path.glob(f".{self.METRICS}.*.tmp"),
            *self.path.glob(".write-test-*"),
        ]
        if self.checkpoints.is_dir():
            leftovers += [
                *self.checkpoints.glob(".iter_*.tmp"),
                *self.checkpoints.glob(f".{self.LATEST}.*.tmp"),
                *self.checkpoints.glob(f".{self.BEST}.*.tmp"),
            ]
        for leftover in leftovers:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:  # an unwritable run directory is reported by check_writable
                    pass

    def _prune(self, keep: int, newest: Path) -> None:
        """Delete all but the ``keep`` newest checkpoints, never ``newest`` or the best."""
        try:
            best = self.best_checkpoint()
        except CheckpointError:  # a damaged pointer: delete nothing it might have named
            return
        kept = {newest} if best is None else {newest, best.path}
        found = []
        for path in self.checkpoints.iterdir():
            match = self._CHECKPOINT_NAME.fullmatch(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path))
        found.sort()
        for _, path in found[:-keep]:
            if path not in kept:
                shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class BestCheckpoint:
    """``checkpoints/best``: the checkpoint whose evaluation scored best so far."""

    path: Path
    metric: str  # e.g. eval/return_mean
    score: float


@dataclass(frozen=True)
class RunPlan:
    """A run about to be built: its finished config, the directory it resumes (if any) and
    notes for the person starting it."""

    config: RunConfig
    resumed: RunDirectory | None
    notes: list[str]


def plan_run(
    config: RunConfig | Mapping[str, Any] | None,
    seed: int | None,
    resume_from: str | os.PathLike[str] | None,
    built_in_python: bool,
) -> RunPlan:
    """The finished config of a run about to be built (:func:`finish_run_config`), or of
    the run resumed from ``resume_from`` (:func:`resume_run_config`): there ``config`` is
    the saved one, or a RunConfig to use instead, or a mapping of changes to the saved one.
    ``seed`` overrides ``trainer.seed``; ``built_in_python``: the group and env are not
    built from the config."""
    seed_change = {} if seed is None else {"trainer": {"seed": seed}}
    if resume_from is None:
        requested = as_run_config(config).update(seed_change)
        return RunPlan(finish_run_config(requested, built_in_python=built_in_python), None, [])
    run = RunDirectory.open(resume_from)
    saved = run.read_config()
    if config is None or isinstance(config, Mapping):
        requested = saved.update(dict(config or {}))
    else:
        requested = as_run_config(config)
    requested = requested.update(seed_change)
    if built_in_python:  # the group and env are given: the checkpoint checks that they fit
        kept = saved.to_dict()
        requested = requested.update({"model": kept["model"], "env": kept["env"]})
    finished, notes = resume_run_config(saved, requested, run.path)
    return RunPlan(finished, run, notes)


def as_run_config(config: RunConfig | Mapping[str, Any] | None) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if config is None:
        return RunConfig()
    if isinstance(config, Mapping):
        return RunConfig.from_dict(config)
    raise TypeError(f"config must be a RunConfig or a mapping of its keys, got {config!r}")


def resume_command(
    path: Path, config: RunConfig, done: int, solved: bool, more: bool = False
) -> str:
    """How to continue the run in ``path`` after ``done`` iterations, as it works when typed:
    a run that is over (or asked for ``more``) needs more iterations, a solved one also
    drops ``stop_at_return``; a run built in Python resumes in Python."""
    if config.built_in_python:
        return f"PPOCrowdTrainer.resume({str(path)!r}, agents, env) in Python"
    command = f"coltra train --resume {path}"
    if more or done >= config.trainer.iterations:
        command += f" -i {max(2 * done, done + 1)}"
    if solved:
        command += " --set trainer.stop_at_return=null"
    return command


def restart_command(path: Path, config: RunConfig) -> str:
    """How to start a run that saved no checkpoint again, in the same directory."""
    if config.built_in_python:
        return f"the same program, with trainer.run_dir={path} (the run was built in Python)"
    return f"coltra train -c {path / RunDirectory.CONFIG}"
