"""PPOCrowdTrainer: the loop around collection and the PPO update, and nothing else.

Build, iterate, finish:

1. **build** (:meth:`PPOCrowdTrainer.from_config`, or your own group and env): the run
   config is finished once (:func:`coltra.configs.finish_run_config`); from a config,
   torch's threads and the seeds are set before any weight exists (:mod:`coltra.runtime`);
   everything that can be checked is checked before the run directory is created
   (:mod:`coltra.run_dir`), which the trainer then holds locked until :meth:`close`.
2. **iterate**: collect a rollout (:class:`~coltra.collectors.CrowdCollector`) -> one PPO
   update (:class:`~coltra.policy_optimization.CrowdPPOptimizer`) -> count
   (:class:`~coltra.counters.RunCounters`) -> log (:mod:`coltra.logs`) -> checkpoint
   (:mod:`coltra.checkpoints`), with callbacks (:mod:`coltra.callbacks`) after each rollout,
   update, evaluation and checkpoint.
3. **finish**: at the end of the run, a checkpoint, then the deterministic evaluation, the
   summary and where the time went (:mod:`coltra.timing`).

Ctrl-C or SIGTERM lets the current iteration finish, saves and returns (an evaluation is
dropped at once instead); a second signal stops at once (:mod:`coltra.signals`). An env copy
that crashes, dies or hangs stops the run with its ``EnvCrashedError``, noting which
checkpoint is intact; with ``trainer.restart_crashed_envs`` the env is rebuilt with new
seeds and the iteration collected again, with a warning (:mod:`coltra.restarts`).
"""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coltra.callbacks import Callback
from coltra.checkpoints import derived_seed, load_checkpoint, save_checkpoint, space_needed
from coltra.collectors import CrowdCollector, check_agents_fit_env
from coltra.configs import (
    ConfigError,
    RunConfig,
    TrainerConfig,
    extend_run_config,
)
from coltra.counters import RunCounters
from coltra.envs import EnvCrashedError, MultiAgentEnv
from coltra.episodes import TeamReturns
from coltra.evaluation import evaluation_metrics
from coltra.groups import MacroAgent
from coltra.logs import EpisodeLog, MetricSinks
from coltra.policy_optimization import CrowdPPOptimizer, LossTerm, minibatch_size
from coltra.progress import Progress
from coltra.restarts import EnvRestarts
from coltra.run_dir import (
    BestCheckpoint,
    RunDirectory,
    RunDirError,
    RunPlan,
    TrainerError,
    plan_run,
    restart_command,
    resume_command,
)
from coltra.runtime import prepare_process, resolve_device, seed_everything, torch_threads
from coltra.self_play import Snapshots
from coltra.sequences import sequences_per_minibatch
from coltra.signals import StopSignals
from coltra.timing import PhaseTimes

__all__ = ["PPOCrowdTrainer", "RunDirError", "TrainerError"]

#: What "best" means for ``checkpoints/best``: the mean return of every evaluated
#: agent-episode (with several policies, all teams together).
BEST_METRIC = "eval/return_mean"


class PPOCrowdTrainer:
    """Trains a group on an env with PPO, with a run directory, logs and checkpoints.

    ``PPOCrowdTrainer(agents, env, config)`` trains the group ``agents`` you built on your
    ``env``: the config's ``trainer`` and ``ppo`` sections drive the run, and its
    ``config.yaml`` records ``model`` and ``env`` as null (resume it in Python with
    :meth:`resume`). :meth:`from_config` builds both from the config's sections instead.
    ``seed`` overrides ``trainer.seed``; ``resume_from`` continues the run in that directory.

    ``eval_env`` is the env of the end-of-run evaluation (``trainer.eval_episodes``), or a
    function that builds one; ``env_factory(seed)`` builds a fresh env like ``env`` for
    ``trainer.restart_crashed_envs``. ``callbacks`` (:class:`~coltra.callbacks.Callback`) and
    ``loss_terms`` (extra PPO loss terms, see :mod:`coltra.policy_optimization`) extend the
    run without editing the library.
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
        callbacks: Iterable[Callback] = (),
        loss_terms: Mapping[str, LossTerm] | None = None,
        policy_ppo: Mapping[str, Mapping[str, Any]] | None = None,
        snapshots: Mapping[str, str] | None = None,
    ) -> None:
        plan = plan_run(config, seed, resume_from, built_in_python=True)
        self._build(
            plan,
            agents,
            env,
            eval_env,
            env_factory,
            callbacks,
            loss_terms,
            Teams(policy_ppo or {}, snapshots or {}, ()),
        )

    @classmethod
    def from_config(
        cls,
        config: RunConfig | Mapping[str, Any] | None = None,
        seed: int | None = None,
        *,
        resume_from: str | os.PathLike[str] | None = None,
        callbacks: Iterable[Callback] = (),
        loss_terms: Mapping[str, LossTerm] | None = None,
    ) -> PPOCrowdTrainer:
        """A trainer with the env and group the config describes (:mod:`coltra.factory`);
        the trainer owns the env and closes it in :meth:`close`."""
        from coltra.factory import make_parts

        plan = plan_run(config, seed, resume_from, built_in_python=False)
        prepare_process(plan.config.trainer)  # threads, then seeds: before the weights exist
        parts = make_parts(plan.config, resuming=plan.resumed is not None)
        policies = plan.config.policies
        teams = Teams(
            policy_ppo={name: policy.ppo for name, policy in policies.items() if policy.ppo},
            snapshots={
                name: policy.snapshot_of
                for name, policy in policies.items()
                if policy.snapshot_of is not None
            },
            initialised=[name for name, policy in policies.items() if policy.init_from],
        )
        try:
            trainer = cls.__new__(cls)
            trainer._build(
                plan,
                parts.group,
                parts.env,
                parts.eval_env,
                parts.env_factory,
                callbacks,
                loss_terms,
                teams,
            )
        except BaseException:
            parts.env.close()
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
        """Continue the run in ``run_dir``: with the env and group its config describes, or
        with the ``agents`` and ``env`` given (which must fit its checkpoint)."""
        if agents is None and env is None:
            return cls.from_config(config, resume_from=run_dir, **kwargs)
        if agents is None or env is None:
            raise TypeError("PPOCrowdTrainer.resume needs both agents and env, or neither")
        return cls(agents, env, config, resume_from=run_dir, **kwargs)

    def _build(
        self,
        plan: RunPlan,
        agents: MacroAgent,
        env: MultiAgentEnv,
        eval_env: MultiAgentEnv | Callable[[], MultiAgentEnv] | None,
        env_factory: Callable[[int | None], MultiAgentEnv] | None,
        callbacks: Iterable[Callback],
        loss_terms: Mapping[str, LossTerm] | None,
        teams: Teams,
    ) -> None:
        self.config: RunConfig = plan.config
        cfg = self.config.trainer
        assert cfg.seed is not None and cfg.run_dir is not None  # a finished config has both
        self.seed: int = cfg.seed
        self.device = resolve_device(cfg.device)
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        _check_extras(cfg.wandb, cfg.eval_episodes, eval_env, cfg.restart_crashed_envs, env_factory)
        self.group = agents.to(self.device)
        self.env = env
        self.eval_env = eval_env
        self._owns_env = False
        self.callbacks = list(callbacks)
        self.optimizer = CrowdPPOptimizer(
            self.group, self.config.ppo, loss_terms, policy_ppo=teams.policy_ppo
        )
        self.num_envs = int(getattr(env, "num_envs", 1))
        # What can be checked is checked before the run directory exists (a start that
        # fails leaves no directory that can neither be reused nor resumed).
        check_agents_fit_env(self.group, env)
        policy_rows = self.group.policy_rows(env.agent_names)
        for policy, rows in policy_rows.items():
            if policy not in self.optimizer.optimizers:
                continue
            ppo = self.optimizer.configs[policy]
            minibatch_size(ppo, len(rows) * cfg.steps)
            if self.group.policies[policy].get_initial_state(1):  # trains on sequences
                try:
                    sequences_per_minibatch(ppo, len(rows) * -(-cfg.steps // ppo.sequence_length))
                except ConfigError as exc:
                    key = exc.key or "ppo.num_minibatches"
                    raise ConfigError(
                        f"policy '{policy}': {exc.problem} (trainer.steps {cfg.steps}, "
                        f"{len(rows)} agent rows)",
                        key=key,
                    ) from None
        self.snapshots = _snapshots(self.group, teams.snapshots, cfg.snapshot_every)
        _check_stop_targets(cfg.stop_at_return, self.group)

        self.counters = RunCounters(cfg.return_window)
        self.checkpoint_path: Path | None = None
        self.stop_signal: int | None = None
        self.last_eval: dict[str, float] = {}  # the end-of-run evaluation of this train()
        self.best: BestCheckpoint | None = None  # checkpoints/best (trainer.eval_every)
        self._signals = StopSignals()
        self._stop_requested = False
        self._saved_iteration: int | None = None
        self._resumed_at: int | None = None
        self._wandb_id: str | None = None
        self._sinks: MetricSinks | None = None
        self._episode_log = EpisodeLog()
        self._teams = TeamReturns(env.agent_names, policy_rows)
        self._time_totals = PhaseTimes()  # summed over this train()
        self._restarts = EnvRestarts(cfg.restart_crashed_envs, env_factory)
        self._phase = "idle"
        self._notes = list(plan.notes)
        self._progress = Progress(False, 0, 0, sys.stderr)
        self._started_at = time.perf_counter()
        if plan.resumed is not None:
            self.run = plan.resumed
            self.run.lock()
        else:
            if self.snapshots is not None:  # opponents start as their learners, unless loaded
                targets = [name for name in self.snapshots.pairs if name not in teams.initialised]
                self.snapshots.take(targets)
            seed_everything(self.seed)
            self.run = RunDirectory.create(
                cfg.run_dir, space_needed(self.group, _kept_checkpoints(cfg))
            )  # and locks it
        try:
            if plan.resumed is not None:
                self.run.clean_temporary()
                self.run.check_writable(space_needed(self.group, _kept_checkpoints(cfg)))
                self.checkpoint_path, self._wandb_id = load_checkpoint(
                    self.run, self.group, self.counters, self.optimizer
                )
                self._saved_iteration = self._resumed_at = self.counters.iteration
                self.best = self.run.best_checkpoint()
                env_seed = derived_seed(self.seed, self.counters.iteration)
            else:
                self.run.write_config(self.config)  # a resumed run's, once it trains
                env_seed = self.seed
            self._new_collector(env_seed)
        except BaseException:
            self.run.unlock()
            raise

    def _new_collector(self, seed: int | None) -> None:
        """A collector that starts afresh on ``self.env``."""
        env_cfg = self.config.env
        self.collector = CrowdCollector(
            self.group,
            self.env,
            seed=seed,
            on_nonfinite=self.config.trainer.on_nonfinite,
            overlap=env_cfg is not None and env_cfg.overlap,
            # Recurrent policies keep their state where each training sequence starts.
            state_every={
                policy: cfg.sequence_length for policy, cfg in self.optimizer.configs.items()
            },
        )

    # ------------------------------------------------------------------ training
    def train(self, num_iterations: int | None = None) -> dict[str, float]:
        """Run ``num_iterations`` more iterations (default: until ``trainer.iterations``
        in all), or until ``trainer.stop_at_return`` is reached or a stop signal arrives.

        Returns a summary: counters, the mean return of the last ``return_window`` episodes
        (``return_mean``) and the best such mean, ``solved`` / ``interrupted`` flags (1.0 or
        0.0), the seconds per phase (``time/*_s``), and with ``trainer.eval_episodes`` the
        evaluation's ``eval/return_mean`` etc.
        """
        cfg = self.config.trainer
        target = self._target(num_iterations)
        self.run.lock()  # held from the start; again after a close()
        self.run.write_config(self.config)
        if self._sinks is None:
            self._sinks = MetricSinks(
                self.run, self.config, self._resumed_at, self.counters.env_steps
            )
            self._resumed_at = None  # what was logged after the checkpoint is dropped once
            if cfg.wandb:
                self._wandb_id = self._sinks.start_wandb(self.config, self.run, self._wandb_id)
        self.stop_signal, self.last_eval, self._stop_requested = None, {}, False
        self._time_totals = PhaseTimes()
        started = self._started_at = time.perf_counter()
        self._progress = Progress(cfg.progress, target, self.counters.iteration, sys.stderr)
        self._say(self._banner(target))
        for note in self._notes:
            self._progress.write(f"note: {note}", always=True)
        self._notes = []
        self._emit("on_train_start")
        try:
            with self._signals.installed():
                solved = self._loop(target)
        except Exception as exc:  # an env crash, a NaN, a full disk: say what is safe
            if hasattr(exc, "add_note"):
                exc.add_note(self._failure_note())
            # The env was stepped past what the collector remembers: start afresh if this
            # trainer is used again.
            self._new_collector(derived_seed(self.seed, self.counters.iteration))
            raise
        finally:
            self.counters.train_time += time.perf_counter() - started
            self._progress.close()
            self._sinks.flush()
        self.stop_signal = self._signals.received
        if self._phase == "idle" and self._saved_iteration != self.counters.iteration:
            self.save_checkpoint()  # stopped by a signal between two periodic saves
        self._phase = "idle"
        seconds = time.perf_counter() - started
        summary = self._summary(solved, seconds)
        if self._time_totals.seconds:
            self._say(self._time_totals.summary(seconds))
        if self.stop_signal is not None:
            self._say(
                f"stopped by {signal.Signals(self.stop_signal).name} at iteration "
                f"{self.counters.iteration}; checkpoint: {self.checkpoint_path}\n"
                f"resume with: {self.resume_hint(solved)}"
            )
        self._emit("on_train_end", summary)
        return summary

    def _loop(self, target: int) -> bool:
        """Iterate until ``target``, solved, or a stop; returns whether solved."""
        cfg = self.config.trainer
        solved = False
        fields: dict[str, str] = {}
        try:
            while self.counters.iteration < target and not self._stopping():
                metrics = self._iterate()
                iteration = self.counters.iteration
                solved = self.counters.reached(self._stop_target())
                run_over = solved or iteration >= cfg.iterations
                call_over = run_over or iteration >= target or self._stopping()
                fields = self.counters.progress_fields(metrics.get("charts/SPS", 0.0))
                self._progress.update(iteration, fields, call_over)
                if call_over or iteration % cfg.save_every == 0:
                    self.save_checkpoint()
                periodic = cfg.eval_every is not None and iteration % cfg.eval_every == 0
                evaluated = False
                if (run_over or periodic) and cfg.eval_episodes > 0 and not self._stopping():
                    metrics.update(self._evaluation(cfg.eval_episodes, final=run_over))
                    evaluated = True
                # An evaluation's row is logged whatever log_every says (its eval/* would be lost)
                if call_over or evaluated or iteration % cfg.log_every == 0:
                    self._log(metrics)
                if solved:
                    break
        except KeyboardInterrupt:  # a second signal, or Ctrl-C without our handler
            self._signals.received = self._signals.received or signal.SIGINT
            if self._phase == "update":  # weights half-updated: back to the last save
                self._say("stopped during a PPO update; nothing newer was saved")
                if self.checkpoint_path is not None:
                    self.checkpoint_path, self._wandb_id = load_checkpoint(
                        self.run, self.group, self.counters, self.optimizer
                    )
                    self._phase = "idle"
            else:  # mid-rollout: the weights are those of the last update
                self._phase = "idle"
            # The env was stepped past what the collector remembers: start afresh.
            self._new_collector(derived_seed(self.seed, self.counters.iteration))
        if fields:
            self._progress.finish(self.counters.iteration, fields)
        return solved

    def _iterate(self) -> dict[str, float]:
        """One rollout and one PPO update, counted; returns this iteration's metrics."""
        cfg = self.config.trainer
        metrics: dict[str, float] = {}
        self._phase = "collect"
        records, collected = self._collect(cfg.steps, f"iteration {self.counters.iteration + 1}")
        self._emit("on_rollout_end", records, metrics)
        self._phase = "update"
        with torch_threads(cfg.update_threads):
            metrics.update(self.optimizer.train_on_data(records))
        self._phase = "idle"

        env_steps = self.num_envs * cfg.steps
        policy_steps = {policy: int(record.mask.sum()) for policy, record in records.items()}
        agent_steps = sum(policy_steps.values())
        finished = self.collector.finished
        by_policy = None
        if len(self.group.policies) > 1:
            rows = self.group.policy_rows(self.env.agent_names)
            by_policy = {policy: finished.select(rows[policy]).returns for policy in rows}
        self.counters.add_iteration(env_steps, agent_steps, finished.returns, by_policy)
        self._episode_log.add(finished, collected, self._teams.add(finished))
        times = self.collector.timing.merge(self.optimizer.timing)
        self._time_totals = self._time_totals.merge(times)
        metrics.update(times.iteration_metrics(env_steps, agent_steps))
        if by_policy is not None:
            for policy, steps in policy_steps.items():
                metrics[f"{policy}/charts/agent_SPS"] = steps / max(times.total, 1e-9)
        if self.snapshots is not None:
            metrics.update(self.snapshots.after_iteration(self.counters.iteration))
        if cfg.on_nonfinite == "drop":
            metrics["charts/nonfinite_dropped"] = float(self.collector.nonfinite_dropped)
        if cfg.restart_crashed_envs > 0 or self.counters.env_restarts:
            metrics["charts/env_restarts"] = float(self.counters.env_restarts)
        self._emit("on_update_end", metrics)
        return metrics

    def _collect(self, steps: int, label: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """This iteration's rollout; with ``trainer.restart_crashed_envs`` an env that
        crashes is rebuilt and the rollout collected again from fresh episodes."""
        while True:
            try:
                records, collected, _ = self.collector.collect(steps, label=label)
                return records, collected
            except EnvCrashedError as crash:
                counters = self.counters
                seed = derived_seed(
                    self.seed, 2**20 * (counters.env_restarts + 1) + counters.iteration
                )
                self.env, warning = self._restarts.rebuild(
                    self.env, crash, seed, counters.iteration + 1
                )
                counters.env_restarts += 1
                self._progress.write(f"warning: {warning}", always=True)
                self._owns_env = True
                self.num_envs = int(getattr(self.env, "num_envs", 1))
                self._new_collector(seed)

    def _target(self, num_iterations: int | None) -> int:
        """The iteration count to reach; a run asked to go past ``trainer.iterations`` is
        extended (:func:`coltra.configs.extend_run_config`)."""
        total, done = self.config.trainer.iterations, self.counters.iteration
        if num_iterations is None:
            if done >= total:
                raise TrainerError(
                    f"the run in {self.run.path} has done {done} of its {total} iterations; "
                    f"raise trainer.iterations ({self.resume_hint(False, more=True)}) to "
                    "train further"
                )
            return total
        if isinstance(num_iterations, bool) or not isinstance(num_iterations, int | np.integer):
            raise TypeError(f"num_iterations must be a whole number >= 1, got {num_iterations!r}")
        if num_iterations < 1:
            raise ValueError(f"num_iterations must be a whole number >= 1, got {num_iterations}")
        target = done + int(num_iterations)
        if target > total:
            self.config, notes = extend_run_config(self.config, target)
            self.optimizer.config = self.config.ppo  # the schedule's length may have grown
            self.run.write_config(self.config)
            self._notes += notes
        return target

    def _stop_target(self) -> float | Mapping[str, float] | None:
        """``trainer.stop_at_return``; a mapping naming a group's only policy is that
        policy's number (its window is the run's)."""
        target = self.config.trainer.stop_at_return
        if isinstance(target, Mapping) and len(self.group.policies) == 1:
            return next(iter(target.values()), None)
        return target

    def request_stop(self) -> None:
        """End the run after the current iteration, with a checkpoint (for callbacks)."""
        self._stop_requested = True

    def _stopping(self) -> bool:
        return self._signals.received is not None or self._stop_requested

    # ------------------------------------------------------------------ logging
    def _log(self, metrics: Mapping[str, float]) -> None:
        """Every metric of this iteration, to TensorBoard, metrics.csv and W&B at once."""
        assert self._sinks is not None
        episodes = self._episode_log.reduce(self.group.policy_rows(self.env.agent_names))
        elapsed = self.counters.train_time + (time.perf_counter() - self._started_at)
        row = self.counters.log_row() | episodes | dict(metrics) | {"time/elapsed_s": elapsed}
        self._sinks.log(row, step=self.counters.env_steps)

    def _banner(self, target: int) -> str:
        cfg = self.config
        env = cfg.env
        what = f"{env.kind} {env.env_name}" if env is not None else "an env built in Python"
        start = f" from iteration {self.counters.iteration}" if self.counters.iteration else ""
        return (
            f"coltra: training '{cfg.trainer.name}' on {what} ({self.num_envs} env copies x "
            f"{cfg.trainer.steps} steps, {self.device}){start} to iteration {target}; run "
            f"directory {self.run.path}"
        )

    def _say(self, message: str) -> None:
        """A message to the person watching (stderr), when progress is shown."""
        self._progress.write(message)

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _summary(self, solved: bool, seconds: float) -> dict[str, float]:
        times = self._time_totals.with_other(seconds).metrics() if self._time_totals.seconds else {}
        flags = {"solved": float(solved), "interrupted": float(self.stop_signal is not None)}
        return {**times, **self.counters.summary(), "time_s": seconds, **flags, **self.last_eval}

    def resume_hint(self, solved: bool, more: bool = False) -> str:
        """How to continue this run, as it works when typed (see ``resume_command``)."""
        return resume_command(self.run.path, self.config, self.counters.iteration, solved, more)

    def _failure_note(self) -> str:
        where = (
            f"training stopped in iteration {self.counters.iteration + 1} of the run in "
            f"{self.run.path}"
        )
        if self.checkpoint_path is None:
            again = restart_command(self.run.path, self.config)
            return f"{where}; no checkpoint was saved yet: start it again in place with {again}"
        return (
            f"{where}; its last checkpoint, {self.checkpoint_path} (iteration "
            f"{self._saved_iteration}), is intact: resume with {self.resume_hint(False)}"
        )

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, episodes: int) -> dict[str, float]:
        """``eval/*`` metrics of ``episodes`` deterministic agent-episodes on the evaluation
        env (:func:`coltra.evaluation.evaluation_metrics`)."""
        if self.eval_env is None:
            raise TrainerError("evaluate() needs the eval_env= the trainer was built with")
        return evaluation_metrics(
            self.group, self.eval_env, episodes, derived_seed(self.seed, 2**31)
        )

    def _evaluation(self, episodes: int, final: bool) -> dict[str, float]:
        """An evaluation during training (``trainer.eval_every``) or the end-of-run one
        (after the last checkpoint, kept as ``last_eval``); a stop signal drops it at once
        instead of waiting for the episodes to end. With ``eval_every``, a new best score
        moves ``checkpoints/best`` to this iteration's checkpoint (saved if it was not)."""
        self._phase, self._signals.interrupt_now = "evaluate", True
        try:
            if final:
                self._say(f"evaluating over {episodes} episodes (deterministic)")
            result = self.evaluate(episodes)
        except KeyboardInterrupt:
            self._signals.received = self._signals.received or signal.SIGINT
            self._say("evaluation stopped; the checkpoint of the last iteration is saved")
            return {}
        finally:
            self._phase, self._signals.interrupt_now = "idle", False
        if final:
            self.last_eval = result
        if self.config.trainer.eval_every is not None:
            result = {**result, **self._keep_if_best(result)}
        self._emit("on_evaluation", result)
        return result

    def _keep_if_best(self, result: Mapping[str, float]) -> dict[str, float]:
        """Point ``checkpoints/best`` here if ``result`` beats the best so far; returns
        ``eval/best_return`` (the best score, this one included)."""
        score = result.get(BEST_METRIC, math.nan)
        if not math.isnan(score) and (self.best is None or score > self.best.score):
            if self._saved_iteration != self.counters.iteration:
                self.save_checkpoint()
            assert self.checkpoint_path is not None
            keep = self.config.trainer.keep_checkpoints
            self.best = self.run.mark_best(self.checkpoint_path, BEST_METRIC, score, keep)
            self._say(
                f"new best evaluation: {BEST_METRIC} {score:.2f} at iteration "
                f"{self.counters.iteration} (checkpoints/best)"
            )
        return {} if self.best is None else {"eval/best_return": self.best.score}

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Save the group, optimizer state, counters and RNG states as the newest checkpoint."""
        keep = self.config.trainer.keep_checkpoints
        self.checkpoint_path = save_checkpoint(
            self.run, self.group, self.counters, self.optimizer, self._wandb_id, keep
        )
        self._saved_iteration = self.counters.iteration
        self._emit("on_checkpoint", self.checkpoint_path)
        return self.checkpoint_path

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Flush and close the logs, the env when the trainer built it, and the run
        directory's lock."""
        if self._sinks is not None:
            self._sinks.close()
            self._sinks = None
        if getattr(self, "_owns_env", False):
            self.env.close()
        if hasattr(self, "run"):
            self.run.unlock()

    def __enter__(self) -> PPOCrowdTrainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class Teams:
    """What a run with several policies adds to the group: PPO keys of their own
    (``policies.<name>.ppo``), snapshots (frozen policy -> the learner it copies) and the
    policies loaded from ``init_from`` (which a snapshot does not overwrite at the start)."""

    policy_ppo: Mapping[str, Mapping[str, Any]]
    snapshots: Mapping[str, str]
    initialised: Iterable[str]


def _snapshots(group: MacroAgent, pairs: Mapping[str, str], every: int | None) -> Snapshots | None:
    if not pairs and every is None:
        return None
    if not pairs or every is None:
        missing = "no policy to snapshot (snapshots=...)" if not pairs else "no snapshot_every"
        raise TrainerError(
            f"self-play needs trainer.snapshot_every and policies to copy; this run has {missing}"
        )
    try:
        return Snapshots(group, pairs, every)
    except ValueError as exc:
        raise TrainerError(str(exc)) from None


def _check_stop_targets(targets: float | Mapping[str, float] | None, group: MacroAgent) -> None:
    if isinstance(targets, Mapping):
        unknown = sorted(set(targets) - set(group.policies))
        if unknown:
            raise TrainerError(
                f"trainer.stop_at_return names policies {unknown} the group does not have "
                f"({group.policy_names})"
            )


def _kept_checkpoints(cfg: TrainerConfig) -> int:
    """Checkpoints a run keeps at most: the newest ``keep_checkpoints``, and the best."""
    return cfg.keep_checkpoints + (1 if cfg.eval_every is not None else 0)


def _check_extras(
    wandb: bool, eval_episodes: int, eval_env: object, restarts: int, env_factory: object
) -> None:
    """Refuse options that need something the trainer was not given."""
    if wandb and importlib.util.find_spec("wandb") is None:
        raise TrainerError(
            "trainer.wandb is true but Weights & Biases is not installed: pip install wandb "
            "(or pip install 'coltra[wandb]')"
        )
    needs = []
    if eval_episodes > 0 and eval_env is None:
        needs.append(f"trainer.eval_episodes={eval_episodes} needs eval_env= (a fresh env)")
    if restarts > 0 and env_factory is None:
        needs.append(
            f"trainer.restart_crashed_envs={restarts} needs env_factory= (a function of a "
            "seed that builds a fresh env)"
        )
    if needs:
        raise TrainerError(
            f"{'; '.join(needs)} when you pass your own env; or build the trainer with "
            "PPOCrowdTrainer.from_config"
        )
