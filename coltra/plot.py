"""Learning curves of runs in one picture (``coltra plot``): a metric from each run's
``metrics.csv`` against env steps, as a PNG.

Runs whose configs differ only in the seed (and their name and directory) are one
experiment: drawn as the mean over seeds with the range between the lowest and highest
seed shaded, on the steps they share. Experiments are told apart by the config keys in
which they differ (``ppo.lr=0.001``), else by run name. A run with several policies logs
``<policy>/<metric>`` too; those are drawn one line per policy, not the mixed metric.
``pip install 'coltra[plot]'`` (matplotlib).
"""

from __future__ import annotations

import csv
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coltra.configs import ConfigError, RunConfig
from coltra.configs.errors import suggest
from coltra.run_dir import RunDirectory

__all__ = [
    "DEFAULT_METRIC",
    "Experiment",
    "PlotError",
    "RunCurves",
    "find_runs",
    "group_experiments",
    "load_run",
    "mean_and_range",
    "plot_experiments",
]

DEFAULT_METRIC = "charts/episode_return_mean"
STEPS = "charts/env_steps"
#: The picture: inches and dots per inch (900 x 550 pixels).
FIGURE_INCHES = (9.0, 5.5)
DPI = 100
#: Config keys that may differ between the seeds of one experiment (PPO's shuffling seed
#: follows trainer.seed unless set).
SEED_KEYS = ("trainer.seed", "ppo.seed", "trainer.name", "trainer.run_dir")


class PlotError(ValueError):
    """Runs that cannot be plotted: no metrics file, no such metric, nothing logged."""


@dataclass(frozen=True)
class RunCurves:
    """One run's curves: ``steps`` against each line's values (the metric itself, or one
    ``<policy>/<metric>`` per policy), NaN where a row did not log it. ``[rows]`` each"""

    path: Path
    name: str
    config: dict[str, Any]  # flattened: "ppo.lr" -> 0.001
    steps: np.ndarray
    lines: dict[str, np.ndarray]  # line label ("" for the metric itself, or the policy)


@dataclass(frozen=True)
class Experiment:
    """Runs that differ only in seed, and what sets them apart from the other experiments."""

    label: str
    runs: list[RunCurves]


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories: each path that has a ``metrics.csv``, or else the directories
    right under it that do (``coltra plot runs/``)."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise PlotError(f"{str(path)!r} is not a directory (give run directories)")
        if (path / RunDirectory.METRICS).is_file():
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if (p / RunDirectory.METRICS).is_file())
        if not inside:
            raise PlotError(
                f"{path} has no {RunDirectory.METRICS}, nor has any directory in it: not a run "
                "directory (has it logged an iteration yet?)"
            )
        found.extend(inside)
    return found


def load_run(path: Path, metric: str) -> RunCurves:
    """``metric`` (and its per-policy columns) against env steps from ``path``'s
    metrics.csv."""
    file = path / RunDirectory.METRICS
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PlotError(f"cannot read {file}: {exc}") from None
    columns = list(rows[0]) if rows else []
    if STEPS not in columns:
        raise PlotError(f"{file} has no rows with {STEPS} (nothing logged yet?)")
    config, policies = _run_config(path)
    wanted = {p: f"{p}/{metric}" for p in policies if f"{p}/{metric}" in columns} or {"": metric}
    if not set(wanted.values()) <= set(columns):
        shown = ", ".join(sorted(columns)[:12]) + (", ..." if len(columns) > 12 else "")
        raise PlotError(
            f"{file} has no metric {metric!r}{suggest(metric, columns)} (it has {shown})"
        )
    steps = np.array([_number(row.get(STEPS)) for row in rows])
    lines = {label: np.array([_number(row.get(c)) for row in rows]) for label, c in wanted.items()}
    if not any(np.isfinite(values).any() for values in lines.values()):
        raise PlotError(f"{file} logged no value of {metric!r} yet")
    return RunCurves(path, path.name, config, steps, lines)


def group_experiments(runs: Sequence[RunCurves]) -> list[Experiment]:
    """Runs in experiments of seeds (same config but for ``SEED_KEYS``), in the order
    first seen, labelled by the keys whose values differ between experiments."""
    groups: dict[str, list[RunCurves]] = {}
    for run in runs:
        if not run.config:  # no config to compare: a run is its own experiment
            key = f"run {run.path}"
        else:
            key = repr(sorted((k, repr(v)) for k, v in run.config.items() if k not in SEED_KEYS))
        groups.setdefault(key, []).append(run)
    members = list(groups.values())
    configs = [group[0].config for group in members]
    differing = sorted(
        key
        for key in set().union(*configs)
        if key not in SEED_KEYS and len({repr(config.get(key)) for config in configs}) > 1
    )
    experiments = []
    for group, config in zip(members, configs):
        if len(members) > 1 and differing and len(differing) <= 3:
            label = ", ".join(f"{key}={config.get(key)}" for key in differing)
        else:
            label = group[0].name if len(group) == 1 else _common_prefix([r.name for r in group])
        experiments.append(Experiment(label, group))
    return experiments


def plot_experiments(
    experiments: Sequence[Experiment], metric: str, out: str | Path, title: str | None = None
) -> Path:
    """Draw every experiment's lines into the PNG ``out`` (mean and range over seeds)."""
    target = Path(out)
    if target.suffix.lower() != ".png":
        raise PlotError(f"the picture is written as a .png file, got {str(target)!r}")
    if not target.parent.is_dir():
        raise PlotError(f"cannot write {target}: {target.parent} is not a directory")
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=FIGURE_INCHES, dpi=DPI)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for number, experiment in enumerate(experiments):
        colour = colours[number % len(colours)]
        labels = list(dict.fromkeys(label for run in experiment.runs for label in run.lines))
        for k, line in enumerate(labels):
            steps, values = mean_and_range(experiment.runs, line)
            if not len(steps):  # this line never logged a value in these runs
                continue
            name = experiment.label if not line else f"{experiment.label}: {line}"
            seeds = len(experiment.runs)
            if seeds > 1:
                name += f" ({seeds} seeds)"
            style = styles[k % len(styles)]
            axes.plot(steps, values[0], style, color=colour, label=name, linewidth=1.6)
            if seeds > 1:
                axes.fill_between(
                    steps, values[1], values[2], color=colour, alpha=0.18, linewidth=0
                )
    axes.set_xlabel("env steps")
    axes.set_ylabel(metric)
    axes.set_title(title or metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(target, dpi=DPI)
    plt.close(figure)
    return target


def mean_and_range(runs: Sequence[RunCurves], line: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps, and ``[mean, min, max]`` over the runs that log ``line``, on the first run's
    steps from where every run has started to where every run reaches (others
    interpolated); empty if none logged it. ``[points]``, ``[3, points]``"""
    curves = []
    for run in runs:
        if line in run.lines:
            keep = np.isfinite(run.lines[line]) & np.isfinite(run.steps)
            curves.append((run.steps[keep], run.lines[line][keep]))
    curves = [(steps, values) for steps, values in curves if len(steps)]
    if not curves:
        return np.zeros(0), np.zeros((3, 0))
    grid = curves[0][0]
    first = max(steps[0] for steps, _ in curves)
    grid = grid[(grid >= first) & (grid <= min(steps[-1] for steps, _ in curves))]
    stacked = np.stack([np.interp(grid, steps, values) for steps, values in curves])
    return grid, np.stack([stacked.mean(0), stacked.min(0), stacked.max(0)])


def _run_config(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The run's config flattened to dotted keys (``ppo.lr``) and its policies' names
    (``policies:``); empty without a loadable config.yaml."""
    if not (path / RunDirectory.CONFIG).is_file():
        return {}, []
    try:
        config: RunConfig = RunDirectory(path).read_config()
    except ConfigError:
        return {}, []
    return _flatten(config.to_dict()), list(config.policies)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _common_prefix(names: Sequence[str]) -> str:
    first, last = min(names), max(names)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size].rstrip("_-") or first


def _number(text: str | None) -> float:
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        value = math.nan
    return value


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install 'coltra[plot]'") from None
    matplotlib.use("Agg")  # files only: no display needed
    return importlib.import_module("matplotlib.pyplot")
