"""Hyperparameter search with Optuna (``coltra tune``): trials of a run config, each with
values drawn from a search space declared in YAML, pruned when their evaluations lag.

A search space file names config keys (any dotted key ``coltra train --set`` takes) and
how to draw each::

    metric: eval/return_mean        # what a trial is scored by (its evaluations)
    direction: maximize
    eval_every: 5                   # iterations between a trial's evaluations (for pruning)
    eval_episodes: 10
    pruner: {n_startup_trials: 3, n_warmup_steps: 10}   # the median pruner; none = no pruning
    space:
      ppo.lr: {low: 1.0e-4, high: 3.0e-3, log: true}    # a float range, log scale
      ppo.epochs: {low: 2, high: 8}                      # whole numbers: an int range
      ppo.clip_coef: {low: 0.1, high: 0.3, step: 0.05}
      model.hidden_sizes: {choices: [[32], [64, 64]]}    # one of these values

Every trial trains the config with its values (``trainer.run_dir`` =
``STUDY_DIR/trials/trial_NNNN``, progress off), reporting each evaluation's ``metric`` to
Optuna, whose median pruner stops a trial whose score lags the median of earlier trials at
the same iteration. A trial's value is its last evaluation (the end-of-run one). The study
lives in ``STUDY_DIR/study.db`` (SQLite), so it can be stopped and continued
(``--resume``) and shared by parallel processes (``--jobs``). At the end the best trial's
config is written as ``best_config.yaml`` (ready for ``coltra train -c``) and the
optimisation history as ``history.png``. ``pip install 'coltra[tune]'``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import multiprocessing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from coltra.callbacks import Callback
from coltra.configs import ConfigError, RunConfig

__all__ = [
    "STUDY_FILE",
    "Param",
    "SearchSpace",
    "StudyResult",
    "TuneError",
    "load_space",
    "run_study",
]

STUDY_FILE = "study.db"
BEST_CONFIG = "best_config.yaml"
HISTORY = "history.png"
SPACE_KEYS = {"metric", "direction", "eval_every", "eval_episodes", "pruner", "space"}


class TuneError(ValueError):
    """A search space or study that cannot be used; the message names the bad value."""


@dataclass(frozen=True)
class Param:
    """One config key to draw: a float or int range (``log``, ``step``) or ``choices``."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @property
    def whole(self) -> bool:
        """An int range: both ends (and the step) are whole numbers."""
        ends = (self.low, self.high, *(() if self.step is None else (self.step,)))
        return self.choices is None and all(isinstance(v, int) for v in ends)

    def suggest(self, trial: Any) -> Any:
        if self.choices is not None:
            # Optuna stores choices as plain values: index them, so lists can be choices.
            index = trial.suggest_categorical(self.key, list(range(len(self.choices))))
            return self.choices[index]
        assert self.low is not None and self.high is not None
        if self.whole:
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def value_of(self, stored: Any) -> Any:
        """The config value of what Optuna stored for this key (a choice's index)."""
        return self.choices[int(stored)] if self.choices is not None else stored


@dataclass(frozen=True)
class SearchSpace:
    params: list[Param]
    metric: str = "eval/return_mean"
    direction: str = "maximize"
    eval_every: int | None = None
    eval_episodes: int = 10
    pruner: dict[str, int] | None = field(default_factory=dict)  # None = no pruning


@dataclass(frozen=True)
class StudyResult:
    trials: int  # finished (complete or pruned) in the study
    pruned: int
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    best_config: Path
    history: Path | None


def load_space(path: str | Path, config: RunConfig) -> SearchSpace:
    """The search space in ``path``, every key checked against ``config`` (each range's
    ends and every choice must be values the key takes)."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TuneError(f"cannot read the search space {file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise TuneError(f"{file} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or not isinstance(data.get("space"), dict) or not data["space"]:
        raise TuneError(f"{file}: expected a mapping with a non-empty 'space:' of config keys")
    unknown = sorted(set(data) - SPACE_KEYS)
    if unknown:
        raise TuneError(f"{file}: unknown top-level keys {unknown}; expected {sorted(SPACE_KEYS)}")
    params = [_param(file, key, spec, config) for key, spec in data["space"].items()]
    direction = data.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise TuneError(f"{file}: direction must be maximize or minimize, got {direction!r}")
    pruner = data.get("pruner", {})
    if pruner in ("none", None):
        pruner = None
    elif not isinstance(pruner, dict) or set(pruner) - {"n_startup_trials", "n_warmup_steps"}:
        raise TuneError(
            f"{file}: pruner takes n_startup_trials and n_warmup_steps (or none), got {pruner!r}"
        )
    eval_every, episodes = data.get("eval_every"), data.get("eval_episodes", 10)
    for name, value in (("eval_every", eval_every), ("eval_episodes", episodes)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise TuneError(f"{file}: {name} must be a whole number >= 1, got {value!r}")
    return SearchSpace(
        params,
        metric=str(data.get("metric", "eval/return_mean")),
        direction=direction,
        eval_every=eval_every,
        eval_episodes=episodes,
        pruner=pruner,
    )


def _param(file: Path, key: Any, spec: Any, config: RunConfig) -> Param:
    where = f"{file}: space.{key}"
    if not isinstance(spec, dict):
        raise TuneError(f"{where}: expected {{low, high}} or {{choices}}, got {spec!r}")
    extra = sorted(set(spec) - {"low", "high", "log", "step", "choices"})
    if extra:
        raise TuneError(f"{where}: unknown keys {extra}; expected low, high, log, step or choices")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise TuneError(f"{where}: choices must be a non-empty list, got {choices!r}")
        for choice in choices:
            _check_value(where, str(key), choice, config)
        return Param(str(key), choices=choices)
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers:
        raise TuneError(f"{where}: low and high must be numbers, got low={low!r}, high={high!r}")
    if not low < high:
        raise TuneError(f"{where}: the range is empty: low={low!r} must be below high={high!r}")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and low <= 0:
        raise TuneError(f"{where}: a log scale needs low > 0, got low={low!r}")
    if step is not None and (not isinstance(step, int | float) or step <= 0 or log):
        raise TuneError(f"{where}: step must be a number > 0 and not with log, got {step!r}")
    param = Param(str(key), low, high, log, step)
    for value in (low, high):
        _check_value(where, str(key), value, config)
    return param


def _check_value(where: str, key: str, value: Any, config: RunConfig) -> None:
    try:
        config.override([_override(key, value)])
    except ConfigError as exc:
        raise TuneError(f"{where}: {exc}") from None


def _override(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` takes it (the value as one line of YAML)."""
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return f"{key}={text.removesuffix('...').strip()}"


class _Reporter(Callback):
    """Reports each evaluation's score to the Optuna trial; asks the run to stop once the
    pruner says the trial lags."""

    def __init__(self, trial: Any, metric: str, iterations: int) -> None:
        self.trial, self.metric, self.iterations = trial, metric, iterations
        self.pruned = False
        self.last: float = math.nan

    def on_evaluation(self, trainer: Any, metrics: dict[str, float]) -> None:
        score = metrics.get(self.metric)
        if score is None or math.isnan(score):
            return
        self.last = float(score)
        iteration = trainer.counters.iteration
        self.trial.report(self.last, step=iteration)
        # The end-of-run evaluation is the trial's value: a trial that ran to the end is
        # complete, never pruned.
        if iteration < self.iterations and self.trial.should_prune():
            self.pruned = True
            trainer.request_stop()


@dataclass(frozen=True)
class _Study:
    """What every process of a study needs (picklable: parallel jobs get a copy)."""

    config: dict[str, Any]
    space: SearchSpace
    directory: str
    name: str
    seed: int
    imports: tuple[str, ...] = ()  # --import modules, imported again by each parallel job
    allowed: tuple[str, ...] = ()  # --allow-module packages, likewise

    @property
    def storage(self) -> str:
        return f"sqlite:///{Path(self.directory).resolve() / STUDY_FILE}"

    def trial_config(self, number: int, values: Mapping[str, Any]) -> RunConfig:
        base = RunConfig.from_dict(self.config)
        every = self.space.eval_every or max(base.trainer.iterations // 10, 1)
        run_dir = Path(self.directory) / "trials" / f"trial_{number:04d}"
        return base.override(
            [
                *(_override(key, value) for key, value in values.items()),
                _override("trainer.run_dir", str(run_dir)),
                f"trainer.name=trial_{number:04d}",
                "trainer.progress=false",
                f"trainer.eval_every={every}",
                f"trainer.eval_episodes={self.space.eval_episodes}",
            ]
        )

    def objective(self, trial: Any) -> float:
        from coltra.trainers import PPOCrowdTrainer

        optuna = _optuna()
        values = {param.key: param.suggest(trial) for param in self.space.params}
        config = self.trial_config(trial.number, values)
        reporter = _Reporter(trial, self.space.metric, config.trainer.iterations)
        with PPOCrowdTrainer.from_config(config, callbacks=[reporter]) as trainer:
            summary = trainer.train()
            stopped = trainer.stop_signal is not None
        trial.set_user_attr("run_dir", str(config.trainer.run_dir))
        trial.set_user_attr("iterations", int(summary["iterations"]))
        if stopped and not reporter.pruned:  # Ctrl-C: a cut-short run is no score
            raise KeyboardInterrupt
        if reporter.pruned:
            raise optuna.TrialPruned()
        if math.isnan(reporter.last):
            raise TuneError(
                f"trial {trial.number} logged no {self.space.metric!r}: is it a metric of its "
                "evaluations (eval/return_mean, <policy>/eval/return_mean)?"
            )
        return reporter.last

    def optimize(self, total: int, worker: int = 0, jobs: int = 1) -> None:
        """Draw this process's share of the trials the study lacks to have ``total``
        finished ones (``worker`` of ``jobs`` processes; their samplers differ)."""
        optuna = _optuna()
        study = optuna.load_study(study_name=self.name, storage=self.storage)
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        done = len(study.get_trials(deepcopy=False))
        # A sampler seeded by the trials already in the study, or a resumed study would
        # draw its first values again (TPE starts with seeded random draws).
        study.sampler = optuna.samplers.TPESampler(seed=self.seed + 1000 * done + worker)
        study.pruner = self.pruner()
        left = total - len(study.get_trials(deepcopy=False, states=finished))
        share = left // jobs + (1 if worker < left % jobs else 0)
        if share > 0:
            study.optimize(
                self.objective,
                n_trials=share,
                callbacks=[optuna.study.MaxTrialsCallback(total, states=finished)],
                catch=(),
            )

    def pruner(self) -> Any:
        optuna = _optuna()
        if self.space.pruner is None:
            return optuna.pruners.NopPruner()
        return optuna.pruners.MedianPruner(**self.space.pruner)


def _run_jobs(study: _Study, total: int, worker: int, jobs: int) -> None:
    """One parallel job (a fresh process): the parent's --allow-module and --import, then
    its share of the trials."""
    from coltra.envs import allow_module

    for package in study.allowed:
        allow_module(package)
    for module in study.imports:
        importlib.import_module(module)
    study.optimize(total, worker, jobs)


def run_study(
    config: RunConfig,
    space: SearchSpace,
    directory: str | Path,
    trials: int,
    resume: bool = False,
    jobs: int = 1,
    imports: tuple[str, ...] = (),
    allowed: tuple[str, ...] = (),
) -> StudyResult:
    """Run the study in ``directory`` until it has ``trials`` finished trials (with
    ``resume``, continue the one there); ``jobs`` processes draw trials side by side."""
    optuna = _optuna()
    folder = Path(directory)
    database = folder / STUDY_FILE
    if database.exists() and not resume:
        raise TuneError(
            f"{folder} already holds a study ({STUDY_FILE}): continue it with --resume, or "
            "choose another --study-dir"
        )
    if resume and not database.exists():
        raise TuneError(f"cannot resume: {folder} holds no study ({STUDY_FILE} is missing)")
    folder.mkdir(parents=True, exist_ok=True)
    data = config.to_dict()
    seed = int(config.trainer.seed or 0)
    study = _Study(data, space, str(folder), folder.resolve().name, seed, imports, allowed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    created = optuna.create_study(
        study_name=study.name,
        storage=study.storage,
        direction=space.direction,
        load_if_exists=True,
    )
    # Optuna keeps a choice as its index and a key by name: a resumed study must draw the
    # same keys and choices, or its old trials would mean other values.
    described = repr([(p.key, p.low, p.high, p.log, p.step, p.choices) for p in space.params])
    saved = created.user_attrs.get("space")
    if saved is None:
        created.set_user_attr("space", described)
    elif saved != described:
        raise TuneError(
            f"the search space differs from the one the study in {folder} was started with; "
            "a study keeps one space (start a new --study-dir for another)"
        )
    if jobs == 1:
        study.optimize(trials)
    else:
        context = multiprocessing.get_context("spawn")  # no forked torch or env state
        workers = [
            context.Process(target=_run_jobs, args=(study, trials, worker, jobs))
            for worker in range(jobs)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        failed = [w.exitcode for w in workers if w.exitcode != 0]
        if failed:
            raise TuneError(
                f"{len(failed)} of {jobs} tuning processes failed (exit codes {failed})"
            )
    return _summarise(study, config)


def _summarise(study: _Study, config: RunConfig) -> StudyResult:
    optuna = _optuna()
    loaded = optuna.load_study(study_name=study.name, storage=study.storage)
    states = optuna.trial.TrialState
    done = loaded.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))
    complete = [trial for trial in done if trial.state == states.COMPLETE]
    if not complete:
        raise TuneError(f"no trial of the study in {study.directory} completed (all pruned?)")
    best = loaded.best_trial
    params = {p.key: p.value_of(best.params[p.key]) for p in study.space.params}
    best_config = config.override(
        [
            *(_override(k, v) for k, v in params.items()),
            "trainer.run_dir=null",
            f"trainer.name={config.trainer.name}_tuned",
        ]
    )
    path = Path(study.directory) / BEST_CONFIG
    best_config.to_yaml(path)
    return StudyResult(
        trials=len(done),
        pruned=len(done) - len(complete),
        best_value=float(best.value),
        best_params=params,
        best_trial=best.number,
        best_config=path,
        history=_history(loaded, Path(study.directory) / HISTORY),
    )


def _history(study: Any, path: Path) -> Path | None:
    """The optimisation history as a PNG (None without matplotlib)."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        axes = plot_optimization_history(study)
    figure: Any = axes.figure
    figure.set_size_inches(9, 5.5)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _optuna() -> Any:
    try:
        return importlib.import_module("optuna")
    except ImportError:
        raise TuneError("tuning needs Optuna: pip install 'coltra[tune]'") from None
