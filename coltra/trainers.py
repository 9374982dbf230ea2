"""PPOCrowdTrainer: the training loop around collection and the PPO update.

Each iteration collects ``trainer.steps`` steps from every env copy
(:class:`~coltra.collectors.CrowdCollector`), runs one PPO update
(:class:`~coltra.policy_optimization.CrowdPPOptimizer`) and logs what both returned, in one
place (:meth:`PPOCrowdTrainer._log`). The trainer holds no PPO math.

A run lives in one directory (default ``runs/<name>_<YYYYmmdd-HHMMSS>/``)::

    config.yaml                 the full RunConfig in force (seed and schedules resolved)
    metrics.csv                 one row per logged iteration, one column per metric
    events.out.tfevents.*       TensorBoard (``tensorboard --logdir <run dir>``)
    checkpoints/latest          names the newest complete checkpoint
    checkpoints/iter_000040/    agents/ (the group, MacroAgent.save) + trainer_state.pt
    wandb/                      only with trainer.wandb

A checkpoint is written to a temporary directory and renamed into place, then ``latest`` is
rewritten atomically, so a crash mid-save leaves the previous checkpoint intact.
``trainer_state.pt`` holds tensors and plain data only (optimizer state, counters, RNG
states) and is loaded with ``weights_only=True``.

Ctrl-C (SIGINT) or SIGTERM lets the current iteration finish, saves a checkpoint and
returns; a second signal stops at once. ``PPOCrowdTrainer.resume(run_dir)`` (or
``coltra train --resume RUN_DIR``) continues with the same counters, learning-rate schedule
position, RNG states, TensorBoard run and metrics.csv.

Faults: the run directory is written (and its free space checked) at start-up, so a full
disk or an unwritable place fails before any training. Every env step is checked for NaN
and inf (``trainer.on_nonfinite``, see :mod:`coltra.checks`). An env copy that crashes,
dies or hangs (``env.step_timeout``) stops the run with its ``EnvCrashedError``, noting
which checkpoint is intact; with ``trainer.restart_crashed_envs`` the env is rebuilt with
new seeds and the iteration collected again, with a warning (logger ``coltra.trainers``)
and the count in ``charts/env_restarts``.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import io
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import numpy as np
import torch

from coltra.checks import FiniteCheckedEnv, drop_entries
from coltra.collectors import CrowdCollector
from coltra.configs import ConfigError, RunConfig, load_yaml_mapping
from coltra.envs import EnvCrashedError, MultiAgentEnv
from coltra.evaluation import evaluate_episodes
from coltra.groups import MacroAgent
from coltra.policy_optimization import CrowdPPOptimizer
from coltra.serialization import CheckpointError, atomic_write_bytes, load_tensors, save_tensors

__all__ = [
    "TIME_PARTS",
    "TIMING_METRICS",
    "PPOCrowdTrainer",
    "RunDirError",
    "RunDirectory",
    "TrainerError",
    "load_run_config",
    "resolve_device",
    "seed_everything",
    "timing_summary",
]

#: Metrics that measure wall-clock time: the only ones that differ between two runs with one
#: seed and config on one machine.
TIMING_METRICS = ("charts/SPS", "charts/agent_SPS", "time/")

STATE_FORMAT = "coltra-trainer-state"
PLAIN_LOG_INTERVAL_S = 10.0  # seconds between progress lines when stderr is not a terminal
EVAL_MAX_STEPS = 100_000  # env steps after which an evaluation gives up waiting for episodes
MAX_EVAL_COPIES = 32  # more evaluation episodes than this are played in turns
#: Bytes written (and synced) to a new run directory at start-up: a full disk fails here.
WRITE_PROBE_BYTES = 64 * 1024
#: Free space a run needs besides its checkpoints (config, metrics.csv, TensorBoard events).
LOG_SPACE_BYTES = 1 << 20

logger = logging.getLogger(__name__)


class TrainerError(RuntimeError):
    """A training run that cannot start or go on; the message says why and what to do."""


class RunDirError(TrainerError):
    """A run directory that cannot be created, written or resumed from."""


# ----------------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; other names must be usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but CUDA is not available here (use 'auto' or 'cpu')",
            key="trainer.device",
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' is not available here", key="trainer.device")
    return torch.device(name)


def _capture_rng() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain data (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states is not None and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _derived_seed(seed: int, iteration: int) -> int:
    """The env seed of a run resumed at ``iteration``: new episodes, still reproducible."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0]) % 2**31


def _first_difference(a: Any, b: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first key path where two plain-data trees differ, with both values."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(a) + [key for key in b if key not in a]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                return sub, a.get(key, "<missing>"), b.get(key, "<missing>")
            found = _first_difference(a[key], b[key], sub)
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _add_note(exc: BaseException, note: str) -> None:
    """Context for an error that keeps its type (a no-op before Python 3.11)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


def _one_line(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- run directory


class RunDirectory:
    """The files of one run: config, metrics CSV, TensorBoard events, checkpoints."""

    CONFIG = "config.yaml"
    METRICS = "metrics.csv"
    CHECKPOINTS = "checkpoints"
    LATEST = "latest"
    STATE = "trainer_state.pt"
    AGENTS = "agents"
    _CHECKPOINT_NAME = re.compile(r"iter_(\d{6,})")

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @classmethod
    def create(cls, run_dir: str | None, name: str, need_bytes: int = 0) -> RunDirectory:
        """A new run directory (``runs/<name>_<timestamp>`` when ``run_dir`` is None), checked
        writable, with ``need_bytes`` free, now rather than at the first checkpoint."""
        if run_dir is not None:
            path = Path(run_dir)
            if (path / cls.CONFIG).exists():
                raise RunDirError(
                    f"{path} already holds a run (it has a {cls.CONFIG}); continue it with "
                    f"coltra train --resume {path}, or choose another trainer.run_dir"
                )
        else:
            if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
                raise ConfigError(
                    f"expected a run name usable in a directory name (no '/'), got {name!r}",
                    key="trainer.name",
                )
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = Path("runs") / f"{name}_{stamp}"
            suffix = 2
            while path.exists():  # two runs started in the same second
                path = Path("runs") / f"{name}_{stamp}-{suffix}"
                suffix += 1
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(
                f"cannot write the run directory {path}: {exc.strerror or exc} "
                "(set trainer.run_dir to a writable place)"
            ) from None
        run = cls(path)
        run.check_writable(need_bytes)
        return run

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
        if free < need_bytes:
            raise RunDirError(
                f"not enough free space for the run directory {self.path}: "
                f"{_megabytes(free)} free, the run needs about {_megabytes(need_bytes)} "
                "(its checkpoints and logs); free some space or set trainer.run_dir elsewhere"
            )

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
        if not (directory / cls.CHECKPOINTS / cls.LATEST).is_file():
            raise RunDirError(
                f"cannot resume from {directory}: the run has no checkpoint yet "
                f"({cls.CHECKPOINTS}/{cls.LATEST} is missing)"
            )
        return cls(directory)

    def read_config(self) -> RunConfig:
        return RunConfig.from_yaml(self.path / self.CONFIG)

    def write_config(self, config: RunConfig) -> None:
        try:
            config.to_yaml(self.path / self.CONFIG)
        except OSError as exc:
            raise RunDirError(f"cannot write {self.path / self.CONFIG}: {exc}") from None

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(
        self, iteration: int, agents: MacroAgent, state: dict[str, Any], keep: int
    ) -> Path:
        """Write ``checkpoints/iter_NNNNNN`` via a temporary directory, point ``latest`` at it,
        and delete all but the newest ``keep`` checkpoints."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        final = self.checkpoints / f"iter_{iteration:06d}"
        tmp = self.checkpoints / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            agents.save(tmp / self.AGENTS)
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
        try:
            name = latest.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"cannot read {latest}: {exc}") from None
        if not self._CHECKPOINT_NAME.fullmatch(name):
            raise CheckpointError(
                f"{latest} should name a checkpoint like iter_000010, got {name!r}"
            )
        path = self.checkpoints / name
        if not path.is_dir():
            raise CheckpointError(
                f"{latest} names {name}, which does not exist in {self.checkpoints}"
            )
        return path

    def load_checkpoint(self) -> tuple[Path, MacroAgent, dict[str, Any]]:
        """The newest checkpoint: its path, its group and its trainer state."""
        path = self.latest_checkpoint()
        group = MacroAgent.load(path / self.AGENTS)
        state = load_tensors(path / self.STATE)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
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
        found = []
        for path in self.checkpoints.iterdir():
            match = self._CHECKPOINT_NAME.fullmatch(path.name)
            if match and path.is_dir():
                found.append((int(match.group(1)), path))
        found.sort()
        for _, path in found[:-keep]:
            if path != newest:
                shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- logging


class MetricsCSV:
    """``metrics.csv``: one row per logged iteration, one column per metric ever logged.

    A row with a new key rewrites the file with the wider header (older rows get empty
    cells), so the file is always a valid CSV whatever metrics appear later (the first
    finished episode, an evaluation).
    """

    def __init__(self, path: Path, keep_until_iteration: int | None = None) -> None:
        self.path = path
        self.columns: list[str] = []
        if path.exists():
            rows = self._read()
            if keep_until_iteration is not None:
                # Resuming: rows logged after the checkpoint will be logged again.
                kept = [row for row in rows if float(row["iteration"]) <= keep_until_iteration]
                if len(kept) != len(rows):
                    self._rewrite(kept)

    def _read(self) -> list[dict[str, str]]:
        with self.path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            self.columns = list(reader.fieldnames or [])
            return list(reader)

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.path, buffer.getvalue().encode())

    def write(self, row: Mapping[str, float]) -> None:
        values = {key: repr(float(value)) for key, value in row.items()}
        new = [key for key in values if key not in self.columns]
        if new or not self.path.exists():
            rows = self._read() if self.path.exists() else []
            self.columns += [key for key in new if key not in self.columns]
            self._rewrite([*rows, values])
            return
        with self.path.open("a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, fieldnames=self.columns, restval="").writerow(values)


class _Progress:
    """A tqdm bar when stderr is a terminal; otherwise a plain line every ~10 s."""

    def __init__(self, enabled: bool, total: int, initial: int, stream: TextIO) -> None:
        self.enabled = enabled
        self.stream = stream
        self.total = total
        self.bar: Any = None
        self._last_line = -math.inf
        self._last_iteration = initial
        if enabled and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, initial=initial, file=stream, unit="it", dynamic_ncols=True
            )

    def update(self, iteration: int, fields: Mapping[str, str], last: bool = False) -> None:
        """Show ``iteration``; a plain line only every ~10 s and for the ``last`` one."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(iteration - self.bar.n)
            self.bar.set_postfix(fields, refresh=True)
            return
        now = time.monotonic()
        if now - self._last_line >= PLAIN_LOG_INTERVAL_S or last or iteration >= self.total:
            self._line(iteration, fields)

    def finish(self, iteration: int, fields: Mapping[str, str]) -> None:
        """The last state as a line too, when a signal ended the run."""
        if self.enabled and self.bar is None and iteration != self._last_iteration:
            self._line(iteration, fields)

    def _line(self, iteration: int, fields: Mapping[str, str]) -> None:
        self._last_line = time.monotonic()
        self._last_iteration = iteration
        parts = " | ".join(f"{key} {value}" for key, value in fields.items())
        self.write(f"iteration {iteration}/{self.total} | {parts}")

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


#: The parts of an iteration, in the order they run, as the end-of-run summary names them.
TIME_PARTS = {
    "time/env_s": "env stepping",
    "time/forward_s": "policy forward",
    "time/collect_other_s": "collector bookkeeping",
    "time/gae_s": "advantages (GAE)",
    "time/update_s": "PPO update",
    "time/other_s": "logging, checkpoints, evaluation",
}


def timing_summary(summary: Mapping[str, float]) -> str:
    """Where a ``train()`` call's time went, from its summary's ``time/*`` totals::

    time: 5.4 s = env stepping 1.9 s (35%), policy forward 1.1 s (20%), ...
    """
    total = max(summary["time_s"], 1e-9)
    parts = [
        f"{name} {summary[key]:.1f} s ({100 * summary[key] / total:.0f}%)"
        for key, name in TIME_PARTS.items()
        if key in summary
    ]
    return f"time: {summary['time_s']:.1f} s = " + ", ".join(parts)


def _wait_for_a_new_second(run_dir: Path) -> None:
    """TensorBoard reads a run's event files in name order, and a name starts with the
    second it was created in: make sure a new file sorts after the existing ones (a resume
    within the same second as the previous session, which only a script or test does)."""
    seconds = []
    for path in run_dir.glob("events.out.tfevents.*"):
        part = path.name.split(".")[3]
        if part.isdigit():
            seconds.append(int(part))
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


class _Loggers:
    """TensorBoard, metrics.csv and (opt-in) Weights & Biases, written together."""

    def __init__(
        self, run: RunDirectory, config: RunConfig, resumed_at: int | None, env_steps: int
    ) -> None:
        self.csv = MetricsCSV(run.path / RunDirectory.METRICS, keep_until_iteration=resumed_at)
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn(
                "TensorBoard is not installed (pip install tensorboard): logging to "
                "metrics.csv only",
                stacklevel=3,
            )
        else:
            # On resume, hide events logged after the checkpoint: they are logged again.
            purge = env_steps + 1 if resumed_at is not None else None
            _wait_for_a_new_second(run.path)
            self.writer = SummaryWriter(log_dir=str(run.path), purge_step=purge)
            text = config.to_yaml()
            self.writer.add_text(
                "config", "\n".join("    " + line for line in text.splitlines()), env_steps
            )
        self.wandb_run: Any = None

    def start_wandb(self, config: RunConfig, run: RunDirectory, run_id: str | None) -> str:
        """Start (or, with ``run_id``, continue) the W&B run; returns its id."""
        import wandb  # opt-in: imported only when trainer.wandb is true

        trainer = config.trainer
        try:
            self.wandb_run = wandb.init(
                project=trainer.wandb_project,
                entity=trainer.wandb_entity,
                name=run.path.name,
                config=config.to_dict(),
                dir=str(run.path),
                id=run_id,
                resume="allow" if run_id else None,
                # Leave stdout/stderr alone (no capture): progress lines are not metrics.
                settings=wandb.Settings(console="off"),
            )
        except Exception as exc:
            raise TrainerError(
                f"wandb.init failed: {_one_line(str(exc), 300)} (WANDB_MODE=offline logs "
                "without an account; `wandb sync` uploads later)"
            ) from exc
        return str(self.wandb_run.id)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.csv.write(metrics)
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, global_step=step)
        if self.wandb_run is not None:
            self.wandb_run.log(dict(metrics), step=step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


# ----------------------------------------------------------------------------- the trainer


class PPOCrowdTrainer:
    """Trains ``agents`` on ``env`` with PPO, with a run directory, logs and checkpoints.

    ``config`` is a :class:`RunConfig` or a (partial) mapping of its keys; its ``trainer``
    and ``ppo`` sections drive the run. Its ``env`` and ``model`` sections describe how
    :meth:`from_config` (and the command line) build the env and agents; when you pass your
    own, they are only recorded. ``seed`` overrides ``trainer.seed``.

    ``resume_from`` continues the run in that directory from its newest checkpoint: the
    agents must be the ones the run trained (same policies, same models), and ``config``
    defaults to the run's own. ``eval_env`` is the env of the end-of-run evaluation
    (``trainer.eval_episodes``); :meth:`from_config` builds one itself.

    ``env_factory(seed)`` builds a fresh env like ``env``; with
    ``trainer.restart_crashed_envs`` > 0 it replaces an env whose copy crashed, and training
    goes on (:meth:`from_config` passes one).

    Every step of ``env`` is checked for NaN and inf (:mod:`coltra.checks`): a
    :class:`~coltra.checks.NonFiniteError` naming the agent and step, or with
    ``trainer.on_nonfinite: drop`` the step is left out of training and counted in
    ``charts/nonfinite_dropped``.
    """

    def __init__(
        self,
        agents: MacroAgent,
        env: MultiAgentEnv,
        config: RunConfig | Mapping[str, Any] | None = None,
        seed: int | None = None,
        *,
        resume_from: str | os.PathLike[str] | None = None,
        eval_env: MultiAgentEnv | Callable[[], MultiAgentEnv] | None = None,
        env_factory: Callable[[int | None], MultiAgentEnv] | None = None,
    ) -> None:
        resumed_run = RunDirectory.open(resume_from) if resume_from is not None else None
        if resumed_run is not None:
            saved = resumed_run.read_config()
            run_config = saved if config is None else _as_run_config(config)
            _check_same_setup(saved, run_config, resumed_run.path)
            run_config = run_config.update({"trainer": {"run_dir": str(resumed_run.path)}})
        else:
            run_config = _as_run_config(config)
        if seed is not None:
            run_config = run_config.update({"trainer": {"seed": seed}})
        if run_config.trainer.seed is None:  # draw one and record it: any run can be repeated
            drawn = int(np.random.SeedSequence().generate_state(1)[0]) % 2**31
            run_config = run_config.update({"trainer": {"seed": drawn}})
        # One seed for everything, PPO's minibatch shuffling included.
        run_config = run_config.update({"ppo": {"seed": run_config.trainer.seed}})
        self.config: RunConfig = run_config
        cfg = run_config.trainer
        self.seed: int = int(cfg.seed)  # type: ignore[arg-type]

        self.device = resolve_device(cfg.device)
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        if cfg.wandb:
            import importlib.util

            if importlib.util.find_spec("wandb") is None:
                raise TrainerError(
                    "trainer.wandb is true but Weights & Biases is not installed: "
                    "pip install wandb (or pip install 'coltra[wandb]')"
                )
        if cfg.eval_episodes > 0 and eval_env is None:
            raise TrainerError(
                f"trainer.eval_episodes={cfg.eval_episodes} needs eval_env= (a fresh copy of "
                "the training env) when you pass your own env; or build the trainer with "
                "PPOCrowdTrainer.from_config"
            )
        if cfg.restart_crashed_envs > 0 and env_factory is None:
            raise TrainerError(
                f"trainer.restart_crashed_envs={cfg.restart_crashed_envs} needs env_factory= "
                "(a function of a seed that builds a fresh env) when you pass your own env; "
                "or build the trainer with PPOCrowdTrainer.from_config"
            )

        self.agents = agents.to(self.device)
        self.env = env
        self.eval_env = eval_env
        self.env_factory = env_factory
        self.optimizer = CrowdPPOptimizer(agents, run_config.ppo)
        self.num_envs = int(getattr(env, "num_envs", 1))

        # Counters; a resumed run reads them from its checkpoint.
        self.iteration = 0
        self.env_steps = 0
        self.agent_steps = 0
        self.episodes = 0
        self.train_time = 0.0  # seconds spent in train(), over every session of the run
        self.best_return = -math.inf
        self.recent_returns: deque[float] = deque(maxlen=cfg.return_window)
        self.env_restarts = 0  # envs rebuilt after a crash, over the whole run
        self._session_restarts = 0  # ... in this session (trainer.restart_crashed_envs caps)
        self._nonfinite_dropped = 0  # rollout entries dropped in this iteration
        self.checkpoint_path: Path | None = None
        self.stop_signal: int | None = None
        self._wandb_id: str | None = None
        self._saved_iteration: int | None = None
        self._phase = "idle"
        self._loggers: _Loggers | None = None
        self._pending: dict[str, list[np.ndarray]] = {}
        self.last_eval: dict[str, float] = {}  # of the last train() that evaluated
        self._time_totals: dict[str, float] = {}  # time/* seconds summed over this train()
        self._started_at = time.perf_counter()
        self._owns_env = False

        if resumed_run is not None:
            self.run = resumed_run
            self.run.clean_temporary()
            # A full disk or an unwritable directory fails now, not at the first checkpoint.
            self.run.check_writable(self._space_needed())
            self._load_checkpoint()
            self._resumed_at: int | None = self.iteration
            env_seed = _derived_seed(self.seed, self.iteration)
        else:
            seed_everything(self.seed)
            self.run = RunDirectory.create(cfg.run_dir, cfg.name, self._space_needed())
            self.config = self.config.update({"trainer": {"run_dir": str(self.run.path)}})
            self._resumed_at = None
            env_seed = self.seed
        self.run.write_config(self.config)
        self._new_collector(env_seed)
        self._progress = _Progress(False, 0, 0, sys.stderr)

    def _space_needed(self) -> int:
        """Bytes the run directory needs: the checkpoints kept (and the one being written)
        plus the logs. A checkpoint is about the weights and Adam's two moments."""
        parameters = sum(
            tensor.numel() * tensor.element_size()
            for agent in self.agents.agents.values()
            if agent.model is not None
            for tensor in agent.model.state_dict().values()
        )
        checkpoint = 3 * parameters + 64 * 1024  # weights, Adam moments, JSON and RNG states
        return (self.config.trainer.keep_checkpoints + 1) * checkpoint + LOG_SPACE_BYTES

    def _new_collector(self, seed: int | None) -> None:
        """A collector that starts afresh on ``self.env`` (each step checked for NaN/inf)."""
        self._checked_env = FiniteCheckedEnv(self.env, self.config.trainer.on_nonfinite)
        self.collector = CrowdCollector(self.agents, self._checked_env, seed=seed)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(
        cls,
        config: RunConfig | Mapping[str, Any] | None = None,
        seed: int | None = None,
        *,
        resume_from: str | os.PathLike[str] | None = None,
    ) -> PPOCrowdTrainer:
        """A trainer with the env and agents the config describes (``coltra.factory``);
        the trainer owns the env and closes it in :meth:`close`."""
        from coltra.factory import make_agents, make_env

        if config is None and resume_from is not None:
            run_config = RunDirectory.open(resume_from).read_config()
        else:
            run_config = _as_run_config(config)
        if seed is not None:
            run_config = run_config.update({"trainer": {"seed": seed}})
        build_seed = run_config.trainer.seed
        if build_seed is not None:
            seed_everything(build_seed)  # the initial weights depend on the seed too
        env = make_env(run_config.env, seed=build_seed)
        # Evaluation on fresh in-process copies, enough for one episode per agent row.
        agents_per_copy = max(len(env.agent_names) // int(getattr(env, "num_envs", 1)), 1)
        eval_copies = -(-run_config.trainer.eval_episodes // agents_per_copy)
        eval_cfg = dataclasses.replace(
            run_config.env,
            workers=min(max(eval_copies, 1), MAX_EVAL_COPIES),
            envs_per_worker=1,
            backend="inprocess",
        )
        try:
            agents = make_agents(run_config.model, env)
            trainer = cls(
                agents,
                env,
                run_config,
                resume_from=resume_from,
                eval_env=lambda: make_env(eval_cfg, seed=None),
                env_factory=lambda env_seed: make_env(run_config.env, seed=env_seed),
            )
        except BaseException:
            env.close()
            raise
        trainer._owns_env = True
        return trainer

    @classmethod
    def resume(
        cls,
        run_dir: str | os.PathLike[str],
        agents: MacroAgent | None = None,
        env: MultiAgentEnv | None = None,
        config: RunConfig | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> PPOCrowdTrainer:
        """Continue the run in ``run_dir``: with the env and agents its config describes, or
        with the ``agents`` and ``env`` given (which must fit its checkpoint)."""
        if agents is None and env is None:
            return cls.from_config(config, resume_from=run_dir)
        if agents is None or env is None:
            raise TypeError("PPOCrowdTrainer.resume needs both agents and env, or neither")
        return cls(agents, env, config, resume_from=run_dir, **kwargs)

    # ------------------------------------------------------------------ training
    def train(self, num_iterations: int | None = None) -> dict[str, float]:
        """Run ``num_iterations`` more iterations (default: until ``trainer.iterations``
        in all), or until ``trainer.stop_at_return`` is reached or a stop signal arrives.

        Returns a summary: counters, the mean return of the last ``return_window`` episodes
        (``return_mean``) and the best such mean, ``solved`` / ``interrupted`` flags (1.0 or
        0.0), and with ``trainer.eval_episodes`` the evaluation's ``eval/return_mean`` etc.
        """
        cfg = self.config.trainer
        target = self._target(num_iterations)
        if self._loggers is None:
            self._loggers = _Loggers(self.run, self.config, self._resumed_at, self.env_steps)
            if cfg.wandb:
                self._wandb_id = self._loggers.start_wandb(self.config, self.run, self._wandb_id)
        self.stop_signal = None
        self.last_eval = {}
        self._time_totals = {}
        started = self._started_at = time.perf_counter()
        self._progress = _Progress(cfg.progress, target, self.iteration, sys.stderr)
        self._say(self._banner(target))
        try:
            with self._stop_on_signals():
                solved = self._loop(target)
        except Exception as exc:  # an env crash, a NaN, a full disk: say what is safe
            _add_note(exc, self._failure_note())
            raise
        finally:
            self.train_time += time.perf_counter() - started
            self._progress.close()
            self._loggers.flush()
        if self._phase == "idle" and self._saved_iteration != self.iteration:
            self.save_checkpoint()  # stopped by a signal between two periodic saves
        self._phase = "idle"
        if self.stop_signal is not None:
            self._say(
                f"stopped by {signal.Signals(self.stop_signal).name} at iteration "
                f"{self.iteration}; checkpoint: {self.checkpoint_path}\n"
                f"resume with: coltra train --resume {self.run.path}"
            )
        summary = self._summary(solved, time.perf_counter() - started)
        if self._time_totals:
            self._say(timing_summary(summary))
        return {**summary, **self.last_eval}

    def _loop(self, target: int) -> bool:
        """Iterate until ``target``, solved, or a stop signal; returns whether solved."""
        cfg = self.config.trainer
        solved = False
        fields: dict[str, str] = {}
        try:
            while self.iteration < target and self.stop_signal is None:
                metrics = self._iterate()
                solved = self._solved()
                last = solved or self.iteration >= target
                fields = self._progress_fields(metrics)
                self._progress.update(self.iteration, fields, last)
                if last and cfg.eval_episodes > 0 and self.stop_signal is None:
                    self._say(f"evaluating over {cfg.eval_episodes} episodes (deterministic)")
                    self._phase = "evaluate"
                    self.last_eval = self.evaluate(cfg.eval_episodes)
                    self._phase = "idle"
                    metrics.update(self.last_eval)
                if last or self.iteration % cfg.log_every == 0:
                    self._log(metrics)
                if last or self.iteration % cfg.save_every == 0:
                    self.save_checkpoint()
                if solved:
                    break
        except KeyboardInterrupt:  # a second signal, or Ctrl-C without our handler
            self.stop_signal = self.stop_signal or signal.SIGINT
            if self._phase == "update":  # weights half-updated: keep the last save
                self._say("stopped during a PPO update; nothing newer was saved")
            else:  # mid-rollout or evaluation: the weights are those of the last update
                self._phase = "idle"
            # The env was stepped past what the collector remembers: start afresh.
            self._new_collector(_derived_seed(self.seed, self.iteration))
        if fields:
            self._progress.finish(self.iteration, fields)
        return solved

    def _target(self, num_iterations: int | None) -> int:
        """The iteration count to reach; extends ``trainer.iterations`` when asked to."""
        total = self.config.trainer.iterations
        if num_iterations is None:
            if self.iteration >= total:
                raise TrainerError(
                    f"the run in {self.run.path} has done {self.iteration} of its {total} "
                    "iterations; raise trainer.iterations (coltra train --resume "
                    f"{self.run.path} -i N) to train further"
                )
            return total
        if isinstance(num_iterations, bool) or not isinstance(num_iterations, int | np.integer):
            raise TypeError(f"num_iterations must be a whole number >= 1, got {num_iterations!r}")
        if num_iterations < 1:
            raise ValueError(f"num_iterations must be a whole number >= 1, got {num_iterations}")
        target = self.iteration + int(num_iterations)
        if target > total:  # the run grows; a learning-rate schedule keeps its length
            self.config = self.config.update({"trainer": {"iterations": target}})
            self.run.write_config(self.config)
        return target

    def _failure_note(self) -> str:
        where = f"training stopped in iteration {self.iteration + 1} of the run in {self.run.path}"
        if self.checkpoint_path is None:
            return f"{where}; no checkpoint was saved yet"
        return (
            f"{where}; its last checkpoint, {self.checkpoint_path} (iteration "
            f"{self._saved_iteration}), is intact: resume with coltra train --resume "
            f"{self.run.path}"
        )

    def _iterate(self) -> dict[str, float]:
        """One rollout and one PPO update; returns this iteration's metrics."""
        steps = self.config.trainer.steps
        self._phase = "collect"
        start = time.perf_counter()
        records, collected = self._collect(steps)
        agent_steps = int(sum(int(record.mask.sum()) for record in records.values()))
        if self.config.trainer.on_nonfinite == "drop":
            before = self._checked_env.steps_taken
            found = self._checked_env.take(before)
            self._nonfinite_dropped = drop_entries(records, found, before - steps)
        collect_s = time.perf_counter() - start
        self._phase = "update"
        metrics = self.optimizer.train_on_data(records)
        train_s = time.perf_counter() - start - collect_s

        env_steps = self.num_envs * steps
        self.iteration += 1
        self.env_steps += env_steps
        self.agent_steps += agent_steps
        returns = collected["episode_return"]
        self.episodes += len(returns)
        self.recent_returns.extend(float(value) for value in returns)
        if len(self.recent_returns):
            self.best_return = max(self.best_return, self.window_return)
        for key, values in collected.items():
            self._pending.setdefault(key, []).append(np.asarray(values, dtype=np.float64))
        self._phase = "idle"

        elapsed = max(collect_s + train_s, 1e-9)
        timing = self.collector.timing
        times = {
            "time/env_s": timing["env_s"],
            "time/forward_s": timing["forward_s"],
            "time/collect_other_s": max(collect_s - timing["env_s"] - timing["forward_s"], 0.0),
            "time/gae_s": self.optimizer.timing["gae_s"],
        }
        times["time/update_s"] = max(train_s - times["time/gae_s"], 0.0)
        for key, seconds in times.items():
            self._time_totals[key] = self._time_totals.get(key, 0.0) + seconds
        metrics.update(times)
        metrics.update(
            {
                "charts/SPS": env_steps / elapsed,
                "charts/agent_SPS": agent_steps / elapsed,
                "time/collect_s": collect_s,
                "time/iteration_s": collect_s + train_s,
            }
        )
        if self.config.trainer.on_nonfinite == "drop":
            metrics["charts/nonfinite_dropped"] = float(self._nonfinite_dropped)
        if self.config.trainer.restart_crashed_envs > 0 or self.env_restarts:
            metrics["charts/env_restarts"] = float(self.env_restarts)
        return metrics

    def _collect(self, steps: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """This iteration's rollout; with ``trainer.restart_crashed_envs`` an env that
        crashes is rebuilt and the rollout collected again from fresh episodes."""
        while True:
            self._checked_env.start_rollout(f"iteration {self.iteration + 1}")
            try:
                records, collected, _ = self.collector.collect(steps)
                return records, collected
            except EnvCrashedError as exc:
                limit = self.config.trainer.restart_crashed_envs
                if self._session_restarts >= limit or self.env_factory is None:
                    if limit:
                        _add_note(exc, f"the env was rebuilt {limit} times already")
                    raise
                self._restart_env(exc)

    def _restart_env(self, crash: EnvCrashedError) -> None:
        """Replace the crashed env with a fresh one (new seed) and start new episodes."""
        assert self.env_factory is not None
        self._session_restarts += 1
        self.env_restarts += 1
        summary = str(crash).strip().splitlines()[0] if str(crash).strip() else repr(crash)
        message = (
            f"{summary}; rebuilding the env and collecting iteration {self.iteration + 1} "
            f"again from new episodes (restart {self._session_restarts} of at most "
            f"{self.config.trainer.restart_crashed_envs}; trainer.restart_crashed_envs)"
        )
        logger.warning(message)
        self._say(f"warning: {message}")
        try:
            self.env.close()  # after a crash the workers are stopped already
        except Exception:  # best effort: the env is broken anyway
            pass
        seed = _derived_seed(self.seed, 2**20 * self.env_restarts + self.iteration)
        self.env = self.env_factory(seed)
        self._owns_env = True
        self.num_envs = int(getattr(self.env, "num_envs", 1))
        self._new_collector(seed)

    @property
    def window_return(self) -> float:
        """Mean return of the last ``return_window`` finished episodes (nan before any)."""
        if not self.recent_returns:
            return math.nan
        return float(np.mean(self.recent_returns))

    def _solved(self) -> bool:
        cfg = self.config.trainer
        return (
            cfg.stop_at_return is not None
            and len(self.recent_returns) >= cfg.return_window
            and self.window_return >= cfg.stop_at_return
        )

    # ------------------------------------------------------------------ logging
    def _log(self, metrics: Mapping[str, float]) -> None:
        """Every metric of this iteration, to TensorBoard, metrics.csv and W&B at once."""
        assert self._loggers is not None
        row: dict[str, float] = {
            "iteration": float(self.iteration),
            "charts/env_steps": float(self.env_steps),
            "charts/agent_steps": float(self.agent_steps),
            "charts/episodes": float(self.episodes),
        }
        pending, self._pending = self._pending, {}
        for key, chunks in pending.items():
            values = np.concatenate(chunks) if chunks else np.zeros(0)
            if not len(values):
                continue
            if key in ("episode_return", "episode_length"):
                for stat in ("mean", "min", "max"):
                    row[f"charts/{key}_{stat}"] = float(getattr(np, stat)(values))
            else:  # the env's m_* / e_* metrics
                row[f"env/{key}_mean"] = float(values.mean())
        if self.recent_returns:
            row["charts/episode_return_window"] = self.window_return
        row.update({key: float(value) for key, value in metrics.items()})
        row["time/elapsed_s"] = self.train_time + (time.perf_counter() - self._started_at)
        self._loggers.log(row, step=self.env_steps)

    def _progress_fields(self, metrics: Mapping[str, float]) -> dict[str, str]:
        fields = {
            "steps": f"{self.env_steps:,}",
            "SPS": f"{metrics.get('charts/SPS', 0.0):,.0f}",
            "return": "-" if math.isnan(self.window_return) else f"{self.window_return:.1f}",
        }
        if self.best_return > -math.inf:
            fields["best"] = f"{self.best_return:.1f}"
        return fields

    def _banner(self, target: int) -> str:
        cfg = self.config
        start = f" from iteration {self.iteration}" if self.iteration else ""
        return (
            f"coltra: training '{cfg.trainer.name}' on {cfg.env.kind} {cfg.env.env_name} "
            f"({self.num_envs} env copies x {cfg.trainer.steps} steps, {self.device}){start} "
            f"to iteration {target}; run directory {self.run.path}"
        )

    def _say(self, message: str) -> None:
        """A message to the person watching (stderr), when progress is shown."""
        self._progress.write(message)

    def _summary(self, solved: bool, seconds: float) -> dict[str, float]:
        totals = dict(self._time_totals)
        if totals:  # logging, checkpoints, evaluation, progress output
            totals["time/other_s"] = max(seconds - sum(totals.values()), 0.0)
        return {
            **totals,
            "iterations": float(self.iteration),
            "env_steps": float(self.env_steps),
            "agent_steps": float(self.agent_steps),
            "episodes": float(self.episodes),
            "return_mean": self.window_return,
            "best_return": self.best_return if self.best_return > -math.inf else math.nan,
            "time_s": seconds,
            "solved": float(solved),
            "interrupted": float(self.stop_signal is not None),
        }

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int) -> dict[str, float]:
        """Mean, std, min and max return of ``episodes`` agent-episodes with deterministic
        actions on a fresh env (so training's env is not disturbed), chosen without a bias
        towards short episodes (:mod:`coltra.evaluation`). ``from_config`` builds that env
        with enough copies for every agent row to play one episode, side by side.
        """
        if self.eval_env is None:
            raise TrainerError("evaluate() needs the eval_env= the trainer was built with")
        owned = not isinstance(self.eval_env, MultiAgentEnv)
        env = self.eval_env if isinstance(self.eval_env, MultiAgentEnv) else self.eval_env()
        max_steps = max(EVAL_MAX_STEPS // int(getattr(env, "num_envs", 1)), 1)
        try:
            played = evaluate_episodes(
                self.agents,
                FiniteCheckedEnv(env),
                episodes,
                seed=_derived_seed(self.seed, 2**31),
                max_steps=max_steps,
            )
        except RuntimeError as exc:  # episodes that never end: say so, do not stop the run
            warnings.warn(f"{exc}; no evaluation score", stacklevel=2)
            return {"eval/episodes": 0.0}
        finally:
            if owned:
                env.close()
        done = played.returns
        return {
            "eval/episodes": float(len(done)),
            "eval/return_mean": float(done.mean()),
            "eval/return_std": float(done.std()),
            "eval/return_min": float(done.min()),
            "eval/return_max": float(done.max()),
            "eval/length_mean": float(played.lengths.mean()),
        }

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Save agents, optimizer state, counters and RNG states as the newest checkpoint."""
        state = {
            "format": STATE_FORMAT,
            "version": 1,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "agent_steps": self.agent_steps,
            "episodes": self.episodes,
            "train_time": self.train_time,
            "best_return": self.best_return,
            "recent_returns": list(self.recent_returns),
            "env_restarts": self.env_restarts,
            "optimizer": self.optimizer.state_dict(),
            "rng": _capture_rng(),
            "wandb_run_id": self._wandb_id,
        }
        self.checkpoint_path = self.run.save_checkpoint(
            self.iteration, self.agents, state, self.config.trainer.keep_checkpoints
        )
        self._saved_iteration = self.iteration
        return self.checkpoint_path

    def _load_checkpoint(self) -> None:
        path, saved_agents, state = self.run.load_checkpoint()
        _copy_weights(saved_agents, self.agents, path)
        _check_optimizer_shapes(self.optimizer, self.agents, state.get("optimizer"), path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.iteration = int(state["iteration"])
            self.env_steps = int(state["env_steps"])
            self.agent_steps = int(state["agent_steps"])
            self.episodes = int(state["episodes"])
            self.train_time = float(state["train_time"])
            self.best_return = float(state["best_return"])
            self.recent_returns.extend(float(value) for value in state["recent_returns"])
            self.env_restarts = int(state.get("env_restarts", 0))
            self._wandb_id = state.get("wandb_run_id")
            _restore_rng(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path / RunDirectory.STATE} does not fit this trainer: {_one_line(str(exc))}"
            ) from None
        self.checkpoint_path = path
        self._saved_iteration = self.iteration

    # ------------------------------------------------------------------ signals, closing
    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """First SIGINT/SIGTERM: finish this iteration, save, return. Second: stop now."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: FrameType | None) -> None:
            if self.stop_signal is not None:
                raise KeyboardInterrupt
            self.stop_signal = signum
            # os.write, not print: a handler may run in the middle of another print.
            name = signal.Signals(signum).name
            message = f"\n{name}: stopping after this iteration (again to stop now)\n"
            try:
                os.write(sys.stderr.fileno(), message.encode())
            except (OSError, ValueError, AttributeError):  # no real stderr (captured)
                pass

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def close(self) -> None:
        """Flush and close the logs, and the env when the trainer built it."""
        if self._loggers is not None:
            self._loggers.close()
            self._loggers = None
        if getattr(self, "_owns_env", False):
            self.env.close()

    def __enter__(self) -> PPOCrowdTrainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- config checks


def load_run_config(path: str | os.PathLike[str], overrides: Iterable[str] = ()) -> RunConfig:
    """The RunConfig of a YAML file, with command-line style ``key.path=value`` overrides.

    A config that anneals (``ppo.anneal_lr`` or ``ppo.ent_coef_final``) without saying over
    how long anneals over the whole run: ``ppo.anneal_iterations`` becomes
    ``trainer.iterations`` (after the overrides).
    """
    return _config_from_mapping(load_yaml_mapping(path), overrides, source=os.fspath(path))


def _as_run_config(config: RunConfig | Mapping[str, Any] | None) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if config is None:
        return RunConfig()
    if isinstance(config, Mapping):
        return _config_from_mapping(config)
    raise TypeError(f"config must be a RunConfig or a mapping of its keys, got {config!r}")


def _config_from_mapping(
    raw: Mapping[str, Any], overrides: Iterable[str] = (), source: str | None = None
) -> RunConfig:
    overrides = list(overrides)
    ppo = raw.get("ppo", {})
    # PPOConfig refuses annealing without its length; the length is left to the trainer
    # (the whole run) when neither the file nor an override gives it.
    fill = isinstance(ppo, Mapping) and ppo.get("anneal_iterations") is None
    if fill:  # a placeholder that passes PPOConfig's check; replaced below
        raw = {**raw, "ppo": {**ppo, "anneal_iterations": 1}}
    try:
        config = RunConfig.from_dict(raw)
    except ConfigError as err:
        raise (err.from_source(source) if source else err) from None
    config = config.override(overrides)
    set_by_hand = any(
        text.partition("=")[0].strip() == "ppo.anneal_iterations" for text in overrides
    )
    if fill and not set_by_hand:
        anneals = config.ppo.anneal_lr or config.ppo.ent_coef_final is not None
        length = config.trainer.iterations if anneals else None
        config = config.update({"ppo": {"anneal_iterations": length}})
    return config


# Env keys that decide what the agents see and do; the rest (copies, backend) may change.
_SETUP_ENV_KEYS = ("kind", "env_name", "env_kwargs")


def _check_same_setup(saved: RunConfig, new: RunConfig, run_dir: Path) -> None:
    """Refuse to resume a run with a different env or model than it was trained with."""
    pairs = [("model", saved.model.to_dict(), new.model.to_dict())]
    saved_env, new_env = saved.env.to_dict(), new.env.to_dict()
    pairs.append(
        (
            "env",
            {key: saved_env[key] for key in _SETUP_ENV_KEYS},
            {key: new_env[key] for key in _SETUP_ENV_KEYS},
        )
    )
    for section, old, current in pairs:
        found = _first_difference(old, current, section)
        if found:
            key, was, now = found
            raise ConfigError(
                f"the run in {run_dir} was trained with {json.dumps(was)}, this config has "
                f"{json.dumps(now)}; a run resumes with the env and model it was trained with",
                key=key,
            )


def _check_optimizer_shapes(
    optimizer: CrowdPPOptimizer, agents: MacroAgent, saved: Any, path: Path
) -> None:
    """Refuse optimizer moments whose shapes differ from the parameters they belong to (a
    trainer state from another model): torch loads them without a look, and the updates
    after would fail deep inside torch, or silently compute nonsense."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("optimizers"), Mapping):
        return  # the load that follows says what is missing
    for policy, saved_state in saved["optimizers"].items():
        current = optimizer.optimizers.get(policy)
        if current is None or not isinstance(saved_state, Mapping):
            continue
        groups, moments = saved_state.get("param_groups"), saved_state.get("state")
        if not isinstance(groups, list) or not isinstance(moments, Mapping):
            continue
        agent = agents.agents.get(policy)
        names = {}
        if agent is not None and agent.model is not None:
            names = {id(param): name for name, param in agent.model.named_parameters()}
        for group, saved_group in zip(current.param_groups, groups):
            ids = saved_group.get("params") if isinstance(saved_group, Mapping) else None
            if not isinstance(ids, list):
                continue
            for param_id, param in zip(ids, group["params"]):
                entry = moments.get(param_id)
                if not isinstance(entry, Mapping):
                    continue
                for key, value in entry.items():
                    if not isinstance(value, torch.Tensor) or value.dim() == 0:
                        continue  # Adam's step count
                    if value.shape != param.shape:
                        raise CheckpointError(
                            f"{path / RunDirectory.STATE} was saved for another model: the "
                            f"optimizer's {key!r} of policy '{policy}' parameter "
                            f"'{names.get(id(param), param_id)}' has shape {tuple(value.shape)}, "
                            f"the parameter has {tuple(param.shape)}"
                        )


def _copy_weights(saved: MacroAgent, agents: MacroAgent, path: Path) -> None:
    """Load a checkpoint's weights into ``agents``, refusing policies or models that differ."""
    if sorted(saved.agents) != sorted(agents.agents):
        raise CheckpointError(
            f"the checkpoint {path} holds policies {sorted(saved.agents)}, the agents given "
            f"have {sorted(agents.agents)}"
        )
    for name, agent in agents.agents.items():
        source = saved.agents[name]
        if type(source) is not type(agent):
            raise CheckpointError(
                f"the checkpoint {path} holds a {type(source).__name__} for policy '{name}', "
                f"the agents given have a {type(agent).__name__}"
            )
        if source.model is None or agent.model is None:
            continue
        # Compare as JSON, the form in which the checkpoint stored the description.
        old = json.loads(json.dumps(source.model.describe()))
        new = json.loads(json.dumps(agent.model.describe()))
        found = _first_difference(old, new, "")
        if found:
            key, was, now = found
            raise CheckpointError(
                f"the checkpoint {path} does not fit the agents: policy '{name}' was built "
                f"with {key} = {json.dumps(was)}, the agents given have {json.dumps(now)}"
            )
        agent.model.load_state_dict(source.model.state_dict())
