"""The ``coltra`` command line.

``coltra train -c CONFIG`` trains with a YAML config (see ``scripts/configs/``);
``coltra train --resume RUN_DIR`` continues a run; ``coltra config`` prints the config
that a file and overrides give, every key with its default (``--markdown``), or the JSON
Schema of config files (``--schema``, for editors); ``coltra enjoy`` plays saved policies
(scores, video); ``coltra plot`` draws learning curves; ``coltra export`` writes policies
as ONNX or TorchScript; ``coltra tune`` searches hyperparameters with Optuna; ``coltra
envs`` lists the envs a
config can name; ``coltra --version``.

Mistakes (a missing or invalid config file, an unknown key or env id, a directory that is
not a run, an unwritable run directory or a full disk) end with one line on stderr,
``coltra: error: ...``, and exit code 2; ``--debug`` shows the traceback instead. A run that
fails while training (an env crash, NaN or inf, a disk that fills up) prints one line naming
the cause and the last checkpoint that is safe, and exits with 1. A run stopped by Ctrl-C or
SIGTERM saves a checkpoint and exits with 128 + the signal number (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

# Torch and the rest load only when a command needs them, so `coltra --help` is instant.
if TYPE_CHECKING:
    from coltra.callbacks import Callback
    from coltra.configs import RunConfig
    from coltra.trainers import PPOCrowdTrainer

__all__ = [
    "add_enjoy_arguments",
    "add_train_arguments",
    "build_parser",
    "enjoy_main",
    "main",
    "train_main",
]

EXIT_OK = 0
EXIT_FAILED = 1  # the run itself failed (an env crashed, the loss became NaN)
EXIT_USAGE = 2  # the input was wrong: flags, config, run directory


class UsageError(Exception):
    """A command-line mistake found by the parser."""


def _error_types() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Mistakes in what the user gave (one line, exit code 2), and failures of the run
    (one line too, the message names the cause; exit code 1): an env crash, NaN or inf (from
    the env or the update), a disk that filled up while training."""
    from coltra.configs import ConfigError
    from coltra.envs import EnvCrashedError
    from coltra.run_dir import TrainerError
    from coltra.saved_policies import SavedPolicyError
    from coltra.serialization import CheckpointError
    from coltra.video import VideoError

    watch_errors: tuple[type[BaseException], ...] = (SavedPolicyError, VideoError, *_late_errors())
    return (UsageError, ConfigError, CheckpointError, TrainerError, *watch_errors), (
        EnvCrashedError,
        FloatingPointError,
        OSError,
    )


def _late_errors() -> tuple[type[Exception], ...]:
    """The mistakes of the commands after training (their modules load torch's parts)."""
    from coltra.enjoy import WatchError
    from coltra.export import ExportError
    from coltra.plot import PlotError
    from coltra.tune import TuneError

    return WatchError, PlotError, ExportError, TuneError


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake raises UsageError (reported as one line) instead of
    printing the usage block and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``coltra train`` (shared with scripts/train_gym.py and friends)."""
    parser.add_argument(
        "-c", "--config", metavar="CONFIG", help="YAML config file (see scripts/configs/)"
    )
    parser.add_argument(
        "-i",
        "--iters",
        "--iterations",
        dest="iterations",
        type=_positive_int,
        metavar="N",
        help="training iterations in all (trainer.iterations); with --resume, the new total",
    )
    parser.add_argument("-n", "--name", help="run name (trainer.name), used in the run directory")
    parser.add_argument("-e", "--env", metavar="ENV_NAME", help="env id or module (env.env_name)")
    parser.add_argument("--seed", type=_non_negative_int, metavar="N", help="trainer.seed")
    parser.add_argument(
        "-r", "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its checkpoint"
    )
    parser.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--run-dir", metavar="DIR", help="run directory (default runs/<name>_<timestamp>)"
    )
    _add_set_argument(parser, "e.g. --set ppo.lr=3e-4 trainer.steps=64")
    parser.add_argument(
        "--wandb", action="store_true", help="also log to Weights & Biases (pip install wandb)"
    )
    parser.add_argument("--wandb-project", metavar="P", help="W&B project (trainer.wandb_project)")
    parser.add_argument("--wandb-entity", metavar="E", help="W&B entity (trainer.wandb_entity)")
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="step the env copies in Ray actors on the cluster at ADDR, e.g. 127.0.0.1:6379 "
        "or auto (env.ray_address, and env.backend=ray)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar or progress lines"
    )
    parser.add_argument(
        "--profile",
        type=_positive_int,
        metavar="N",
        help="profile the first N iterations with cProfile: RUN_DIR/profile.prof and profile.txt",
    )
    _add_import_and_debug(parser)


def _add_set_argument(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "-s",
        "--set",
        dest="overrides",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"override any config key by dotted path, {example}",
    )


def _add_import_and_debug(parser: argparse.ArgumentParser) -> None:
    """--import and --allow-module, then --debug: the options every command ends with."""
    _add_import_argument(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _add_import_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first (repeatable), e.g. one that registers your model classes "
        "with coltra.agents.register_model or your envs with coltra.envs.register",
    )
    parser.add_argument(
        "--allow-module",
        dest="allowed",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="let the config name env modules, env classes and wrappers of PACKAGE "
        "(repeatable); pettingzoo, mpe2, magent2, gymnasium and supersuit always are",
    )


def add_enjoy_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``coltra enjoy`` (shared with scripts/enjoy_gym.py and friends)."""
    parser.add_argument(
        "source",
        nargs="?",
        metavar="RUN_OR_CHECKPOINT",
        help="a run directory, checkpoints/best or latest, a checkpoint, a saved group or agent",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="CONFIG",
        help="the env (and, with --random, the policies) of this config instead of the run's",
    )
    parser.add_argument("-e", "--env", metavar="ENV_NAME", help="another env id (env.env_name)")
    _add_set_argument(parser, "e.g. --set env.env_kwargs.max_cycles=100")
    parser.add_argument(
        "--episodes", type=_positive_int, default=5, metavar="N", help="episodes to play (5)"
    )
    parser.add_argument("--random", action="store_true", help="uniformly random actions instead")
    parser.add_argument(
        "--stochastic", action="store_true", help="sample actions (default: the most likely)"
    )
    parser.add_argument(
        "--seed", type=_non_negative_int, default=0, metavar="N", help="env seed (0)"
    )
    parser.add_argument(
        "--video", metavar="FILE", help="record the episodes to FILE (.mp4, or .gif), headless"
    )
    parser.add_argument(
        "--fps", type=float, metavar="F", help="video frames per second (default: the env's)"
    )
    parser.add_argument("--human", action="store_true", help="show the env's own window")
    _add_import_and_debug(parser)


def build_parser(prog: str = "coltra") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Coltra: multi-agent-first reinforcement learning (PPO).",
        epilog="Run 'coltra train --help' for the training options.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser(
        "train",
        help="train agents with PPO from a YAML config",
        description="Train with PPO. Config precedence: file < --set < the other flags.",
    )
    add_train_arguments(train)
    show = commands.add_parser(
        "config",
        help="print a config (defaults, or a file with overrides), or every key",
        description="Print the full config a file and overrides give (the defaults without "
        "-c), or with --markdown every key with its type, default and doc.",
    )
    show.add_argument("-c", "--config", metavar="CONFIG", help="YAML config file")
    show.add_argument(
        "-s", "--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE"
    )
    shown = show.add_mutually_exclusive_group()
    shown.add_argument("--markdown", action="store_true", help="the table of every key")
    shown.add_argument(
        "--schema", action="store_true", help="the JSON Schema of config files (for editors)"
    )
    _add_import_and_debug(show)
    enjoy = commands.add_parser(
        "enjoy",
        help="watch saved policies play: scores per policy, a video, or a window",
        description="Play episodes with the policies of a run (its best checkpoint, else its "
        "newest), a checkpoint or a saved group, on one copy of the run's env; print each "
        "policy's mean return and length; record a video or open a window.",
    )
    add_enjoy_arguments(enjoy)
    plot = commands.add_parser(
        "plot",
        help="learning curves of runs as a PNG (seeds as mean and range)",
        description="Plot a metric of runs against env steps into a PNG. Runs that differ only "
        "in seed are drawn as their mean with the range shaded; per-policy lines for teams.",
    )
    plot.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run directories, or directories of runs"
    )
    plot.add_argument("-o", "--out", default="curves.png", metavar="PNG", help="(curves.png)")
    plot.add_argument(
        "--metric",
        default="charts/episode_return_mean",
        metavar="NAME",
        help="a metrics.csv column (charts/episode_return_mean; eval/return_mean, losses/...)",
    )
    plot.add_argument("--title", help="the picture's title (default: the metric)")
    _add_import_and_debug(plot)  # runs whose configs name models or envs of your own
    tune = commands.add_parser(
        "tune",
        help="search hyperparameters with Optuna (SQLite study, median pruning)",
        description="Train trials of CONFIG with values drawn from the search space in "
        "SPACE (YAML; see coltra.tune), prune the ones whose evaluations lag, and write the "
        "best config (best_config.yaml) and the optimisation history (history.png).",
    )
    tune.add_argument("-c", "--config", required=True, metavar="CONFIG", help="the run config")
    tune.add_argument("--space", required=True, metavar="SPACE", help="the search space (YAML)")
    tune.add_argument(
        "--trials",
        type=_positive_int,
        required=True,
        metavar="N",
        help="finished trials the study should have (with --resume: in all)",
    )
    tune.add_argument(
        "--study-dir", metavar="DIR", help="where the study lives (default studies/<name>)"
    )
    tune.add_argument("--resume", action="store_true", help="continue the study in --study-dir")
    tune.add_argument(
        "--jobs", type=_positive_int, default=1, metavar="J", help="trials side by side (1)"
    )
    _add_set_argument(tune, "e.g. --set trainer.iterations=50")
    _add_import_and_debug(tune)
    export = commands.add_parser(
        "export",
        help="write each policy's deterministic policy as ONNX or TorchScript",
        description="Export the deterministic policy of each policy of a run (its best "
        "checkpoint, else its newest), a checkpoint or a saved group: observation fields in, "
        "the env's action out, normalisation and action masks inside.",
    )
    export.add_argument("source", metavar="RUN_OR_CHECKPOINT")
    export.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    export.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="FILE",
        help="the file (policy.onnx); with several policies FILE_<policy>.onnx for each",
    )
    export.add_argument(
        "--policy", action="append", metavar="NAME", help="only this policy (repeatable)"
    )
    _add_import_and_debug(export)  # a run whose model class you registered
    envs = commands.add_parser(
        "envs",
        help="list the envs a config can name (env.kind and env.env_name)",
        description="List every env name this installation offers, by env.kind.",
    )
    envs.add_argument(
        "--kind",
        choices=["gym", "pettingzoo", "probe", "coltra", "registered"],
        help="only envs of this env.kind",
    )
    _add_import_and_debug(envs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coltra`` console command; returns the exit code."""
    parser = build_parser()
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    if args.command == "config":
        return _guarded(args.debug, lambda: _show_config(args), printing=True)
    if args.command == "envs":
        return _guarded(args.debug, lambda: _list_envs(args), printing=True)
    if args.command == "tune":
        return _guarded(args.debug, lambda: _tune(args))
    if args.command == "export":
        return _guarded(args.debug, lambda: _export(args), printing=True)
    if args.command == "plot":
        return _guarded(args.debug, lambda: _plot(args), printing=True)
    if args.command == "enjoy":
        return _guarded(args.debug, lambda: enjoy_command(args))
    return _guarded(args.debug, lambda: _train(args, default_config=None))


def train_main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "coltra train",
    default_config: str | Path | None = None,
) -> int:
    """``coltra train`` under another name (the scripts in scripts/): same options, and
    ``default_config`` when neither -c nor --resume is given."""
    default = f" Without -c or --resume: {default_config}." if default_config else ""
    parser = _Parser(prog=prog, description=f"Train with PPO, as `coltra train`.{default}")
    add_train_arguments(parser)
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    return _guarded(args.debug, lambda: _train(args, default_config=default_config))


def enjoy_main(argv: Sequence[str] | None = None, *, prog: str, default_config: str | Path) -> int:
    """``coltra enjoy`` under another name (scripts/enjoy_*.py): same options, and
    ``default_config``'s env when the policies come without a run (or with --random)."""
    parser = _Parser(
        prog=prog,
        description=f"Watch saved policies play, as `coltra enjoy`; env: {default_config} "
        "unless the run or -c gives one.",
    )
    add_enjoy_arguments(parser)
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    return _guarded(args.debug, lambda: enjoy_command(args, default_config))


# ----------------------------------------------------------------------------- internals


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK


def _error(message: str) -> None:
    text = " ".join(message.split()) or "unknown error"
    print(f"coltra: error: {text}", file=sys.stderr)


def _guarded(debug: bool, run: Callable[[], int], printing: bool = False) -> int:
    """Run a command; known errors become one line on stderr, unless ``debug``.
    ``printing``: a command that only prints (no env runs), for which a broken pipe means
    that the reader of its output went away (``coltra envs | head``), nothing to report."""
    user_errors, run_errors = _error_types()
    try:
        try:
            return int(run())
        except BrokenPipeError:
            if not printing:  # an env's own pipe or socket: the run failed
                raise
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
            return EXIT_OK
    except user_errors as exc:
        if debug:
            raise
        _error(str(exc))
        return EXIT_USAGE
    except run_errors as exc:
        if debug:
            raise
        _error(f"{_failure(exc)} (run with --debug for the traceback)")
        return EXIT_FAILED
    except KeyboardInterrupt:
        if debug:
            raise
        _error("interrupted")
        return 128 + 2


def _failure(exc: BaseException) -> str:
    """A failed run in one line: the first line of the error (an env crash carries the
    worker's traceback after it, shown with --debug) and its notes (which checkpoint is
    safe, how to resume)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    summary = lines[0] if lines else type(exc).__name__
    notes = [note for note in getattr(exc, "__notes__", []) if isinstance(note, str)]
    return "; ".join([summary, *notes])


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """The dedicated flags as ``key=value`` overrides, applied after --set."""
    flags = {
        "trainer.iterations": args.iterations,
        "trainer.name": args.name,
        "env.env_name": args.env,
        "trainer.seed": args.seed,
        "trainer.device": args.device,
        "trainer.run_dir": args.run_dir,
        "trainer.wandb_project": args.wandb_project,
        "trainer.wandb_entity": args.wandb_entity,
    }
    overrides = [f"{key}={value}" for key, value in flags.items() if value is not None]
    if args.ray_address is not None:
        overrides += ["env.backend=ray", f"env.ray_address={args.ray_address}"]
    if args.wandb:
        overrides.append("trainer.wandb=true")
    if args.no_progress:
        overrides.append("trainer.progress=false")
    return overrides


def _import_modules(args: argparse.Namespace) -> None:
    """--allow-module and --import: code the user asked for on the command line."""
    import importlib

    from coltra.envs import allow_module

    for package in args.allowed:
        try:
            allow_module(package)
        except ValueError as exc:
            raise UsageError(f"--allow-module {package}: {exc}") from None
    for name in args.imports:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"--import {name}: cannot import it ({exc})") from None


def _run_config(args: argparse.Namespace, default_config: str | Path | None) -> RunConfig:
    from coltra.configs import RunConfig
    from coltra.run_dir import RunDirectory

    overrides = [*args.overrides, *_flag_overrides(args)]
    if args.resume is not None:
        run = RunDirectory.open(args.resume)
        if args.run_dir is not None:
            raise UsageError("--run-dir cannot be used with --resume (the run stays where it is)")
        if args.config is None:  # the run's own config, as it was saved
            return run.read_config().override(overrides)
    config_path = args.config if args.config is not None else default_config
    if config_path is None:
        raise UsageError(
            "the following arguments are required: -c/--config (or --resume RUN_DIR to "
            "continue a run)"
        )
    return RunConfig.from_yaml(config_path, overrides)


def _train(args: argparse.Namespace, default_config: str | Path | None) -> int:
    from coltra.trainers import PPOCrowdTrainer

    _import_modules(args)
    config = _run_config(args, default_config)
    callbacks = [_profiler(args.profile)] if args.profile else []
    trainer = PPOCrowdTrainer.from_config(config, resume_from=args.resume, callbacks=callbacks)
    with trainer:
        summary = trainer.train()
    _report(trainer, summary)
    if trainer.stop_signal is not None:
        return 128 + int(trainer.stop_signal)
    return EXIT_OK


def _profiler(iterations: int) -> Callback:
    """A callback that profiles the first ``iterations`` iterations of ``train()`` with
    cProfile and writes the raw profile (for snakeviz or pstats) and the top functions by
    cumulative time into the run directory; training goes on unprofiled."""
    import cProfile
    import io
    import pstats

    from coltra.callbacks import Callback

    class Profiler(Callback):
        def __init__(self) -> None:
            self.profiler: cProfile.Profile | None = None
            self.first = 0

        def on_train_start(self, trainer: PPOCrowdTrainer) -> None:
            self.first = trainer.counters.iteration
            self.profiler = cProfile.Profile()
            self.profiler.enable()

        def on_update_end(self, trainer: PPOCrowdTrainer, metrics: dict[str, float]) -> None:
            if trainer.counters.iteration - self.first >= iterations:
                self.finish(trainer)

        def on_train_end(self, trainer: PPOCrowdTrainer, summary: dict[str, float]) -> None:
            self.finish(trainer)

        def finish(self, trainer: PPOCrowdTrainer) -> None:
            if self.profiler is None:
                return
            profiler, self.profiler = self.profiler, None
            profiler.disable()
            profiler.dump_stats(trainer.run.path / "profile.prof")
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
            (trainer.run.path / "profile.txt").write_text(text.getvalue())
            done = trainer.counters.iteration - self.first
            print(
                f"profile of {done} iteration(s): {trainer.run.path / 'profile.txt'}",
                file=sys.stderr,
            )

    return Profiler()


def _report(trainer: PPOCrowdTrainer, summary: dict[str, float]) -> None:
    """What a person wants at the end: the score and where everything is (stdout)."""
    cfg = trainer.config.trainer
    iteration = int(summary["iterations"])
    steps = f"{int(summary['env_steps']):,} env steps in {summary['time_s']:.1f} s"
    window = min(int(summary["episodes"]), cfg.return_window)
    policies = list(trainer.counters.policy_returns)  # with several policies
    if math.isnan(summary["return_mean"]):
        score = "no episode finished yet"
    elif policies:  # several policies: each one's, not a mean over teams
        score = "mean return over the last {} episodes: {}".format(
            cfg.return_window,
            ", ".join(f"{policy} {summary[f'{policy}/return_mean']:.2f}" for policy in policies),
        )
    else:
        score = f"mean return {summary['return_mean']:.1f} over the last {window} episodes"
    target = cfg.stop_at_return
    shown_target = (
        ", ".join(f"{policy} {value:g}" for policy, value in target.items())
        if isinstance(target, dict)
        else f"{target:g}"
        if target is not None
        else ""
    )
    if summary["interrupted"]:
        headline = f"Interrupted at iteration {iteration} ({steps}); {score}."
    elif summary["solved"]:
        headline = f"Solved at iteration {iteration} ({steps}): {score} >= {shown_target}."
    else:
        missed = " (stop_at_return not reached)" if target is not None else ""
        headline = f"Finished {iteration} iterations ({steps}): {score}{missed}."
    lines = [headline]
    if "eval/return_mean" in summary:
        scores = [
            f"{policy} {summary[f'{policy}/eval/return_mean']:.1f} +- "
            f"{summary[f'{policy}/eval/return_std']:.1f}"
            for policy in policies
            if f"{policy}/eval/return_mean" in summary
        ] or [f"{summary['eval/return_mean']:.1f} +- {summary['eval/return_std']:.1f}"]
        lines.append(
            f"Final score: {', '.join(scores)} mean return over "
            f"{int(summary['eval/episodes'])} evaluation episodes (deterministic actions)."
        )
    elif "eval/episodes" in summary:
        lines.append("Final score: none (the evaluation episodes did not all end; see the warning)")
    run = trainer.run.path
    resume = trainer.resume_hint(bool(summary["solved"]))
    if not summary["interrupted"]:
        resume += "  (to train further)"
    lines += [
        f"Run directory: {run}",
        f"TensorBoard:   tensorboard --logdir {run}",
        f"Checkpoint:    {trainer.checkpoint_path}",
    ]
    if trainer.best is not None:
        best = trainer.best
        lines.append(
            f"Best:          {best.path} ({best.metric} {best.score:g}; coltra enjoy {run})"
        )
    lines.append(f"Resume:        {resume}")
    print("\n".join(lines), flush=True)


def _show_config(args: argparse.Namespace) -> int:
    import json

    from coltra.configs import RunConfig

    _import_modules(args)
    if args.markdown:
        print(RunConfig.describe_markdown(), end="")
        return EXIT_OK
    if args.schema:
        print(json.dumps(RunConfig.json_schema(), indent=2))
        return EXIT_OK
    if args.config is not None:
        config = RunConfig.from_yaml(args.config, args.overrides)
    else:
        config = RunConfig().override(args.overrides)
    print(config.to_yaml(), end="")
    return EXIT_OK


def enjoy_command(args: argparse.Namespace, default_config: str | Path | None = None) -> int:
    """``coltra enjoy``: play, print the scores, write the video. ``default_config``: the
    env when neither the source's run nor -c gives one (the scripts' own config)."""
    from coltra import enjoy
    from coltra.configs import RunConfig
    from coltra.evaluation import EpisodesDidNotEnd
    from coltra.saved_policies import find_saved_group
    from coltra.video import VideoWriter, check_video_path

    _import_modules(args)
    if args.video:
        check_video_path(args.video)
    if args.video and args.human:
        raise UsageError("--video and --human cannot be used together (record, or watch)")
    if args.source is None and not args.random:
        raise UsageError("give RUN_OR_CHECKPOINT to watch (or --random for random actions)")
    saved = find_saved_group(args.source) if args.source is not None else None
    overrides = [*args.overrides, *([f"env.env_name={args.env}"] if args.env else [])]
    if args.config is not None:
        config = RunConfig.from_yaml(args.config, overrides)
    elif saved is not None and saved.config is not None:
        config = saved.config.override(overrides)
    elif default_config is not None:
        config = RunConfig.from_yaml(default_config, overrides)
    elif saved is not None:
        raise UsageError(f"{args.source} is not in a run directory: give its env with -c CONFIG")
    else:
        raise UsageError("--random without RUN_OR_CHECKPOINT needs the env: give -c CONFIG")
    mode = "rgb_array" if args.video else "human" if args.human else None
    env = enjoy.watch_env(config, mode)
    try:
        group = saved.group if saved is not None else enjoy.build_group(config, env)
        who = saved.which if saved is not None else ""
        enjoy.check_fits(group, env)
        if args.random:
            group = enjoy.random_policies(group, env, seed=args.seed)
        assert config.env is not None
        how = "sampled actions" if args.stochastic else "deterministic actions"
        if args.random:
            who, how = "uniformly random actions", "no policy"
        print(
            f"playing {args.episodes} episode(s) of {config.env.env_name} with {who} "
            f"({how}, env seed {args.seed})",
            flush=True,
        )
        video = None
        if args.video:
            fps = args.fps if args.fps is not None else enjoy.frames_per_second(env)
            video = VideoWriter(args.video, fps)
        try:
            scores = enjoy.play(group, env, args.episodes, not args.stochastic, args.seed, video)
        except EpisodesDidNotEnd as exc:
            raise enjoy.WatchError(f"{exc}: the episodes do not end") from None
        finally:
            if video is not None:
                video.close()
    finally:
        env.close()
    for score in scores:
        print(score.line())
    if video is not None:
        print(f"video: {video.path} ({video.frames} frames at {video.fps:g} fps)")
    return EXIT_OK


def _tune(args: argparse.Namespace) -> int:
    from coltra.configs import RunConfig
    from coltra.tune import load_space, run_study

    _import_modules(args)
    config = RunConfig.from_yaml(args.config, args.overrides)
    space = load_space(args.space, config)
    directory = Path(args.study_dir or Path("studies") / config.trainer.name)
    print(
        f"tuning {len(space.params)} key(s) of {args.config} by {space.metric} "
        f"({space.direction}): study {directory}, {args.trials} trial(s), {args.jobs} job(s)",
        flush=True,
    )
    result = run_study(
        config,
        space,
        directory,
        args.trials,
        args.resume,
        args.jobs,
        imports=tuple(args.imports),
        allowed=tuple(args.allowed),
    )
    values = ", ".join(f"{key}={value}" for key, value in result.best_params.items())
    print(
        f"{result.trials} trial(s) finished ({result.pruned} pruned); best: trial "
        f"{result.best_trial}, {space.metric} {result.best_value:.4g} with {values}"
    )
    print(f"best config: {result.best_config}  (coltra train -c {result.best_config})")
    if result.history is not None:
        print(f"history:     {result.history}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from coltra.export import export_group, memory_inputs, policy_inputs
    from coltra.saved_policies import find_saved_group

    _import_modules(args)
    saved = find_saved_group(args.source)
    written = export_group(saved.group, args.out, args.format, args.policy)
    print(f"exported {saved.which} as {args.format}:")
    for policy, path in written.items():
        agent = saved.group.policies[policy]
        inputs = ", ".join(
            f"{name} {['batch', *shape]} {dtype}"
            for name, (shape, dtype) in policy_inputs(agent).items()
        )
        memory = memory_inputs(agent)
        if memory:  # a recurrent policy: its state in and out, zeros at an episode's start
            inputs += "".join(
                f", {name} ['batch', {size}] float32" for name, size in memory.items()
            )
            outputs = ", ".join(["action", *(f"next_{name}" for name in memory)])
            print(f"  {policy}: {path} (inputs: {inputs}; outputs: {outputs})")
        else:
            print(f"  {policy}: {path} (inputs: {inputs}; output: action)")
    return EXIT_OK


def _plot(args: argparse.Namespace) -> int:
    from coltra import plot

    _import_modules(args)
    runs = [plot.load_run(path, args.metric) for path in plot.find_runs(args.runs)]
    experiments = plot.group_experiments(runs)
    out = plot.plot_experiments(experiments, args.metric, args.out, args.title)
    described = "; ".join(
        f"{e.label} ({len(e.runs)} seed{'s' if len(e.runs) > 1 else ''})" for e in experiments
    )
    print(f"wrote {out}: {args.metric} of {len(runs)} run(s): {described}")
    return EXIT_OK


def _list_envs(args: argparse.Namespace) -> int:
    from coltra.envs.catalog import env_catalog

    _import_modules(args)  # --import: modules that register envs of their own
    entries = [entry for entry in env_catalog() if args.kind in (None, entry.kind)]
    kinds = list(dict.fromkeys(entry.kind for entry in entries))
    for number, kind in enumerate(kinds):
        mine = [entry for entry in entries if entry.kind == kind]
        width = max(len(entry.name) for entry in mine)
        print(f"{chr(10) if number else ''}env.kind: {kind} ({len(mine)})")
        for entry in mine:
            print(f"  {entry.name:<{width}}  {entry.about}")
    if args.kind == "registered" and not entries:
        print("no env registered (coltra.envs.register in a module given with --import)")
    return EXIT_OK


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("coltra")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown (not installed)"


if __name__ == "__main__":  # python -m coltra.cli
    sys.exit(main())
