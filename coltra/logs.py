"""Where a run's metrics go: metrics.csv, TensorBoard, and (opt-in) Weights & Biases.

:class:`MetricSinks` writes one row of metrics to all of them at once. :class:`EpisodeLog`
gathers the episodes and env metrics of the iterations between two logged rows and reduces
them to that row's ``charts/episode_*`` and ``env/*`` entries (per policy too, when the
group has several).
"""

from __future__ import annotations

import csv
import io
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coltra.configs import RunConfig
from coltra.episodes import FinishedEpisodes
from coltra.run_dir import RunDirectory, TrainerError
from coltra.serialization import atomic_write_bytes

__all__ = ["TIMING_METRICS", "EpisodeLog", "MetricSinks", "MetricsCSV"]

#: Metrics that measure wall-clock time: the only ones that differ between two runs with one
#: seed and config on one machine.
TIMING_METRICS = ("charts/SPS", "charts/agent_SPS", "time/")


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


class MetricSinks:
    """TensorBoard, metrics.csv and (opt-in) Weights & Biases, written together.

    ``resumed_at`` (the checkpoint's iteration on resume) drops what was logged after it,
    since those iterations are trained and logged again.
    """

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
            text = " ".join(str(exc).split())[:300]
            raise TrainerError(
                f"wandb.init failed: {text} (WANDB_MODE=offline logs without an account; "
                "`wandb sync` uploads later)"
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


class EpisodeLog:
    """Episodes and env metrics since the last logged row, reduced when the row is written.

    ``policy_rows`` (policy -> its agent rows) splits episodes by policy: with several
    policies each also gets ``<policy>/charts/episode_return_mean`` and friends, and
    ``<policy>/charts/team_return_mean`` when a copy has several of its agents
    (``charts/team_return_mean`` with one policy).
    """

    def __init__(self) -> None:
        self._episodes: list[FinishedEpisodes] = []
        self._env: dict[str, list[np.ndarray]] = {}
        self._teams: dict[str, list[float]] = {}

    def add(
        self,
        episodes: FinishedEpisodes,
        env_metrics: Mapping[str, np.ndarray],
        team_returns: Mapping[str, list[float]] | None = None,
    ) -> None:
        """An iteration's episodes, env metrics and team totals (by policy:
        :class:`~coltra.episodes.TeamReturns`)."""
        self._episodes.append(episodes)
        for key, values in env_metrics.items():
            if key.startswith(("m_", "e_")):
                self._env.setdefault(key, []).append(np.asarray(values, dtype=np.float64))
        for policy, totals in (team_returns or {}).items():
            self._teams.setdefault(policy, []).extend(totals)

    def reduce(self, policy_rows: Mapping[str, np.ndarray]) -> dict[str, float]:
        """This row's episode and env entries; the log starts empty again."""
        row: dict[str, float] = {}
        joined = FinishedEpisodes.concat(self._episodes)
        if len(joined):
            row.update(_episode_stats(joined, ""))
            if len(policy_rows) > 1:
                for policy, rows in policy_rows.items():
                    row.update(_episode_stats(joined.select(rows), f"{policy}/"))
        for policy, totals in self._teams.items():
            if totals:
                prefix = f"{policy}/" if len(policy_rows) > 1 else ""
                row[f"{prefix}charts/team_return_mean"] = float(np.mean(totals))
        for key, chunks in self._env.items():
            values = np.concatenate(chunks)
            if len(values):
                row[f"env/{key}_mean"] = float(values.mean())
        self._episodes, self._env, self._teams = [], {}, {}
        return row


def _episode_stats(episodes: FinishedEpisodes, prefix: str) -> dict[str, float]:
    if not len(episodes):
        return {}
    stats: dict[str, float] = {}
    for name, values in (("return", episodes.returns), ("length", episodes.lengths)):
        stats[f"{prefix}charts/episode_{name}_mean"] = float(np.mean(values))
        stats[f"{prefix}charts/episode_{name}_min"] = float(np.min(values))
        stats[f"{prefix}charts/episode_{name}_max"] = float(np.max(values))
    return stats
