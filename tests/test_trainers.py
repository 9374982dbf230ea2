"""PPOCrowdTrainer: run directory, logs, checkpoints, resume, seeding, signals.

Runs are a few iterations on probe envs or a tiny CartPole: they check the plumbing, not
learning (scripts and `make train` show learning).
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import coltra.run_dir as run_dir_module
from coltra.configs import ConfigError, RunConfig, finish_run_config
from coltra.factory import make_agents, make_env
from coltra.groups import MacroAgent
from coltra.logs import TIMING_METRICS
from coltra.run_dir import RunDirectory
from coltra.runtime import resolve_device
from coltra.serialization import CheckpointError
from coltra.trainers import PPOCrowdTrainer, RunDirError, TrainerError

PROBE: dict[str, Any] = {
    "trainer": {
        "name": "t",
        "steps": 8,
        "iterations": 3,
        "save_every": 2,
        "progress": False,
    },
    "ppo": {"lr": 1e-2, "epochs": 2, "num_minibatches": 2},
    "model": {"hidden_sizes": [8]},
    "env": {"kind": "probe", "env_name": "action", "workers": 2, "backend": "inprocess"},
}

CARTPOLE: dict[str, Any] = {
    **PROBE,
    "env": {"kind": "gym", "env_name": "CartPole-v1", "workers": 2, "backend": "inprocess"},
    "trainer": {**PROBE["trainer"], "steps": 32},
}


def config(base: dict[str, Any], run_dir: Path, **trainer: Any) -> RunConfig:
    data = {**base, "trainer": {**base["trainer"], "run_dir": str(run_dir), **trainer}}
    return RunConfig.from_dict(data)


def train(cfg: RunConfig, num_iterations: int | None = None) -> dict[str, float]:
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        return trainer.train(num_iterations)


def read_csv(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(row[key]) for row in rows]


def scalars(run_dir: Path) -> tuple[EventAccumulator, dict[str, list[tuple[int, float]]]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events, {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def is_timing(key: str) -> bool:
    return any(key == t or (t.endswith("/") and key.startswith(t)) for t in TIMING_METRICS)


# ----------------------------------------------------------------------------- a run


def test_run_directory_holds_config_metrics_events_and_checkpoints(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    summary = train(config(PROBE, run_dir))

    assert summary["iterations"] == 3
    assert summary["env_steps"] == 3 * 2 * 8  # iterations x copies x steps
    assert summary["agent_steps"] == summary["env_steps"]  # one agent per probe copy
    assert summary["interrupted"] == 0.0

    saved = RunConfig.from_yaml(run_dir / "config.yaml")
    assert saved.trainer.run_dir == str(run_dir)
    assert saved.ppo.seed == saved.trainer.seed == 0  # one seed, shuffling included
    assert [row["iteration"] for row in read_csv(run_dir)] == ["1.0", "2.0", "3.0"]
    assert list(run_dir.glob("events.out.tfevents.*"))

    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "iter_000003"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "iter_000002",
        "iter_000003",
        "latest",
    ]
    final = checkpoints / "iter_000003"
    assert (final / "trainer_state.pt").is_file()
    assert (final / "agents" / "group.json").is_file()


def test_tensorboard_holds_every_metric_and_the_config(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(CARTPOLE, run_dir, eval_episodes=1))
    events, found = scalars(run_dir)
    expected = {
        "losses/policy_loss",
        "losses/value_loss",
        "losses/entropy",
        "losses/approx_kl",
        "losses/clipfrac",
        "losses/explained_variance",
        "charts/episode_return_mean",
        "charts/episode_return_min",
        "charts/episode_return_max",
        "charts/episode_length_mean",
        "charts/episode_length_min",
        "charts/episode_length_max",
        "env/e_episode_reward_mean",
        "charts/SPS",
        "charts/agent_SPS",
        "charts/env_steps",
        "charts/agent_steps",
        "charts/learning_rate",
        "time/collect_s",
        "time/env_s",
        "time/forward_s",
        "time/collect_other_s",
        "time/gae_s",
        "time/update_s",
        "time/iteration_s",
        "eval/return_mean",
    }
    assert expected <= set(found), expected - set(found)
    # CleanRL's x axis: env steps.
    assert [step for step, _ in found["charts/env_steps"]] == [64, 128, 192]
    assert [value for _, value in found["charts/learning_rate"]] == pytest.approx([1e-2] * 3)
    # Every scalar is also a column of metrics.csv, with the same last value.
    last = read_csv(run_dir)[-1]
    for tag, values in found.items():
        assert float(last[tag]) == pytest.approx(values[-1][1], rel=1e-6), tag
    assert "config/text_summary" in events.Tags()["tensors"]
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "env_name: CartPole-v1" in text


def test_stop_at_return_and_the_final_evaluation(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = config(
        PROBE, run_dir, iterations=60, stop_at_return=0.9, return_window=16, eval_episodes=8
    )
    summary = train(cfg)
    assert summary["solved"] == 1.0
    assert summary["iterations"] < 60
    assert summary["return_mean"] >= 0.9
    # The probe pays 1 for action 1: a solved policy's deterministic action earns exactly 1.
    assert summary["eval/episodes"] == 8
    assert summary["eval/return_mean"] == 1.0
    # The final checkpoint is the solved policy, and the last CSV row holds the evaluation.
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == (
        f"iter_{int(summary['iterations']):06d}"
    )
    assert float(read_csv(run_dir)[-1]["eval/return_mean"]) == 1.0


def test_evaluation_every_n_iterations_keeps_the_best_checkpoint(tmp_path: Path) -> None:
    """eval/* at iterations 2, 4, 6 only; checkpoints/best names the best of them and holds
    weights that evaluate to that very score; nothing else but the newest survives."""
    run_dir = tmp_path / "run"
    cfg = config(
        CARTPOLE,
        run_dir,
        iterations=6,
        eval_every=2,
        eval_episodes=4,
        save_every=100,
        keep_checkpoints=1,
    )
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        trainer.train()
        eval_env = trainer.eval_env
        seed = trainer.seed
    rows = read_csv(run_dir)
    evaluated = {
        int(float(row["iteration"])): float(row["eval/return_mean"])
        for row in rows
        if row["eval/return_mean"]
    }
    assert sorted(evaluated) == [2, 4, 6]
    best_iteration = max(evaluated, key=lambda i: (evaluated[i], -i))  # the first of ties
    best = RunDirectory(run_dir).best_checkpoint()
    assert best is not None and best.path.name == f"iter_{best_iteration:06d}"
    assert best.score == evaluated[best_iteration]
    assert float(rows[-1]["eval/best_return"]) == best.score
    kept = {p.name for p in (run_dir / "checkpoints").iterdir() if p.is_dir()}
    assert kept == {best.path.name, "iter_000006"}
    from coltra.checkpoints import derived_seed
    from coltra.evaluation import evaluation_metrics

    assert callable(eval_env)
    saved = MacroAgent.load(best.path / "agents")
    again = evaluation_metrics(saved, eval_env, 4, derived_seed(seed, 2**31))
    assert again["eval/return_mean"] == best.score


def test_evaluating_during_training_leaves_training_unchanged(tmp_path: Path) -> None:
    """The evaluations draw from no RNG the training uses: the same losses and returns."""
    plain = config(PROBE, tmp_path / "a", iterations=4, eval_episodes=2)
    evaluated = config(PROBE, tmp_path / "b", iterations=4, eval_episodes=2, eval_every=1)
    train(plain)
    train(evaluated)
    a, b = read_csv(tmp_path / "a"), read_csv(tmp_path / "b")
    for key in ("losses/policy_loss", "losses/value_loss", "charts/episode_return_mean"):
        assert column(a, key) == column(b, key), key
    assert [row["eval/return_mean"] != "" for row in b] == [True] * 4


def test_a_resumed_run_keeps_its_best_and_beats_it_only_with_a_better_score(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    train(config(CARTPOLE, run_dir, iterations=2, eval_every=1, eval_episodes=2))
    before = RunDirectory(run_dir).best_checkpoint()
    assert before is not None
    resumed = config(CARTPOLE, run_dir, iterations=4, eval_every=1, eval_episodes=2)
    with PPOCrowdTrainer.resume(run_dir, config=resumed) as trainer:
        assert trainer.best == before
        trainer.train()
    rows = read_csv(run_dir)
    scores = column(rows, "eval/return_mean")
    after = RunDirectory(run_dir).best_checkpoint()
    assert after is not None and after.score == max(scores)
    assert after.path.name == f"iter_{scores.index(max(scores)) + 1:06d}"


def test_an_evaluation_row_is_logged_whatever_log_every_says(tmp_path: Path) -> None:
    train(config(PROBE, tmp_path / "run", iterations=4, eval_every=2, eval_episodes=2, log_every=3))
    rows = read_csv(tmp_path / "run")
    logged = {int(float(r["iteration"])): r["eval/return_mean"] != "" for r in rows}
    assert logged == {2: True, 3: False, 4: True}  # 3 by log_every, 2 and 4 by evaluating


def test_eval_every_needs_evaluation_episodes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainer.eval_every: .*set trainer.eval_episodes"):
        config(CARTPOLE, tmp_path / "run", eval_every=2)


def test_the_evaluation_env_has_a_copy_per_episode(tmp_path: Path) -> None:
    cfg = config(PROBE, tmp_path / "run", eval_episodes=5)
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        assert callable(trainer.eval_env)
        eval_env = trainer.eval_env()
        assert eval_env.num_envs == 5  # type: ignore[attr-defined]
        eval_env.close()


def test_progress_lines_go_to_stderr_when_it_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train(config(PROBE, tmp_path / "run", progress=True))
    err = capsys.readouterr().err
    assert "coltra: training 't' on probe action" in err
    assert re.search(r"iteration 1/3 \| steps 16 \| SPS [\d,]+ \| return [\d.]+ \| best", err)
    assert "iteration 3/3" in err


def test_time_is_split_into_the_parts_of_an_iteration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    summary = train(config(CARTPOLE, run_dir, progress=True))
    for row in read_csv(run_dir):
        parts = {key: float(row[f"time/{key}_s"]) for key in TIME_PART_NAMES}
        assert all(seconds >= 0.0 for seconds in parts.values()), parts
        collect = parts["env"] + parts["forward"] + parts["collect_other"]
        assert collect == pytest.approx(float(row["time/collect_s"]), rel=1e-6)
        assert collect + parts["gae"] + parts["update"] == pytest.approx(
            float(row["time/iteration_s"]), rel=1e-3
        )
        assert parts["env"] > 0.0 and parts["forward"] > 0.0 and parts["update"] > 0.0
    # The run's totals (plus logging and checkpoints) add up to the time train() took.
    totals = [summary[f"time/{key}_s"] for key in (*TIME_PART_NAMES, "other")]
    assert sum(totals) == pytest.approx(summary["time_s"], rel=1e-6)
    assert summary["time/env_s"] == pytest.approx(
        sum(float(row["time/env_s"]) for row in read_csv(run_dir)), rel=1e-4
    )
    assert re.search(
        r"time: [\d.]+ s = env stepping [\d.]+ s \(\d+%\), policy forward",
        (capsys.readouterr().err),
    )


TIME_PART_NAMES = ("env", "forward", "collect_other", "gae", "update")


# ----------------------------------------------------------------------------- seeding


def test_one_seed_and_config_give_the_same_metrics_step_for_step(tmp_path: Path) -> None:
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "other_seed"]
    for run_dir, seed in zip(runs, (7, 7, 8)):
        train(config(CARTPOLE, run_dir, seed=seed))
    a, b, other = (read_csv(run_dir) for run_dir in runs)
    keys = [key for key in a[0] if not is_timing(key)]
    assert "losses/approx_kl" in keys and "charts/episode_return_mean" in keys
    assert [[row[k] for k in keys] for row in a] == [[row[k] for k in keys] for row in b]
    assert [row["losses/value_loss"] for row in a] != [row["losses/value_loss"] for row in other]


def test_update_threads_hold_for_the_update_only(tmp_path: Path) -> None:
    """``trainer.update_threads`` is torch's thread count while the PPO update runs, and
    collection goes back to ``torch_threads``."""
    seen: dict[str, list[int]] = {"update": [], "collect": []}
    with PPOCrowdTrainer.from_config(
        config(PROBE, tmp_path / "run", torch_threads=1, update_threads=2)
    ) as trainer:
        update, collect = trainer.optimizer.train_on_data, trainer.collector.collect

        def spy_update(*args: Any, **kwargs: Any) -> Any:
            seen["update"].append(torch.get_num_threads())
            return update(*args, **kwargs)

        def spy_collect(*args: Any, **kwargs: Any) -> Any:
            seen["collect"].append(torch.get_num_threads())
            return collect(*args, **kwargs)

        trainer.optimizer.train_on_data = spy_update  # type: ignore[method-assign]
        trainer.collector.collect = spy_collect  # type: ignore[method-assign]
        trainer.train()
    assert seen == {"update": [2, 2, 2], "collect": [1, 1, 1]}
    assert torch.get_num_threads() == 1
    with pytest.raises(
        ConfigError, match=r"trainer\.update_threads: expected an int > 0 or null, got 0"
    ):
        config(PROBE, tmp_path / "bad", update_threads=0)


def test_a_null_seed_is_drawn_and_recorded(tmp_path: Path) -> None:
    with PPOCrowdTrainer.from_config(config(PROBE, tmp_path / "run", seed=None)) as trainer:
        assert isinstance(trainer.config.trainer.seed, int)
        saved = RunConfig.from_yaml(tmp_path / "run" / "config.yaml")
        assert saved.trainer.seed == trainer.config.trainer.seed == trainer.config.ppo.seed


# ----------------------------------------------------------------------------- resume


def test_resume_continues_counters_schedule_csv_and_tensorboard(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    anneal = {**PROBE, "ppo": {**PROBE["ppo"], "anneal_lr": True, "anneal_iterations": 10}}
    train(config(anneal, run_dir))

    with PPOCrowdTrainer.resume(run_dir, config=config(anneal, run_dir, iterations=5)) as trainer:
        assert (
            trainer.counters.iteration,
            trainer.counters.env_steps,
            trainer.optimizer.iteration,
        ) == (3, 48, 3)
        assert trainer.run.path == run_dir
        summary = trainer.train()
    assert summary["iterations"] == 5 and summary["env_steps"] == 80

    rows = read_csv(run_dir)
    assert column(rows, "iteration") == [1, 2, 3, 4, 5]
    assert column(rows, "charts/env_steps") == [16, 32, 48, 64, 80]
    # The learning rate continues its linear decay where it stopped: lr * (1 - i / 10).
    assert column(rows, "charts/learning_rate") == pytest.approx(
        [1e-2 * (1 - i / 10) for i in range(5)]
    )
    _, found = scalars(run_dir)
    assert [step for step, _ in found["charts/env_steps"]] == [16, 32, 48, 64, 80]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # same run, one more file
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "iter_000005"


def test_resume_after_a_crash_drops_what_was_logged_after_the_checkpoint(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir, iterations=3, save_every=2))
    # As if the process died after logging iteration 3 but before saving it.
    checkpoints = run_dir / "checkpoints"
    (checkpoints / "latest").write_text("iter_000002\n")
    shutil.rmtree(checkpoints / "iter_000003")

    with PPOCrowdTrainer.resume(run_dir, config=config(PROBE, run_dir, iterations=4)) as trainer:
        trainer.train()
    assert column(read_csv(run_dir), "iteration") == [1, 2, 3, 4]
    _, found = scalars(run_dir)
    assert [step for step, _ in found["charts/env_steps"]] == [16, 32, 48, 64]


def test_a_run_that_is_done_asks_for_more_iterations(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    with PPOCrowdTrainer.resume(run_dir) as trainer:
        with pytest.raises(TrainerError, match="has done 3 of its 3 iterations"):
            trainer.train()
        assert trainer.train(1)["iterations"] == 4  # or say how many more
    assert RunConfig.from_yaml(run_dir / "config.yaml").trainer.iterations == 4


def test_resume_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="is not a Coltra run directory"):
        PPOCrowdTrainer.resume(tmp_path)
    with pytest.raises(RunDirError, match="is not a directory"):
        PPOCrowdTrainer.resume(tmp_path / "missing")
    RunConfig().to_yaml(tmp_path / "config.yaml")
    with pytest.raises(RunDirError, match="has no checkpoint yet"):
        PPOCrowdTrainer.resume(tmp_path)


def test_resume_refuses_another_env_or_model(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    other_env = {**PROBE, "env": {**PROBE["env"], "env_name": "constant"}}
    with pytest.raises(
        ConfigError, match=r'^env\.env_name: the run in .* "action", this config has "constant"'
    ):
        PPOCrowdTrainer.resume(run_dir, config=config(other_env, run_dir, iterations=5))

    # Agents built by hand that do not fit the checkpoint.
    env = make_env(RunConfig.from_dict(PROBE).env)
    try:
        other_model = RunConfig.from_dict({**PROBE, "model": {"hidden_sizes": [4]}}).model
        with pytest.raises(CheckpointError, match=r"hidden_sizes = \[8\].*\[4\]"):
            PPOCrowdTrainer.resume(run_dir, make_agents(other_model, env), env)
        # ... while the right ones resume.
        agents = make_agents(RunConfig.from_dict(PROBE).model, env)
        trainer = PPOCrowdTrainer.resume(run_dir, agents, env, config={**PROBE})
        assert trainer.counters.iteration == 3
        trainer.close()
    finally:
        env.close()


def test_a_trainer_state_holding_python_objects_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    state = run_dir / "checkpoints" / "iter_000003" / "trainer_state.pt"
    torch.save({"format": "coltra-trainer-state", "payload": Path("/")}, state)
    with pytest.raises(CheckpointError, match="refusing to load"):
        PPOCrowdTrainer.resume(run_dir)


# ----------------------------------------------------------------------------- checkpoints


def test_a_crash_while_saving_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    calls = {"n": 0}
    real_save = run_dir_module.save_tensors

    def failing_save(path: Path, tensors: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        real_save(path, tensors)

    monkeypatch.setattr(run_dir_module, "save_tensors", failing_save)
    with pytest.raises(OSError, match="No space left"):
        train(config(PROBE, run_dir, iterations=4, save_every=1))
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "iter_000001"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["iter_000001", "latest"]
    monkeypatch.undo()
    with PPOCrowdTrainer.resume(run_dir) as trainer:
        assert trainer.counters.iteration == 1


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir, iterations=4, save_every=1, keep_checkpoints=2))
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["iter_000003", "iter_000004", "latest"]


# ----------------------------------------------------------------------------- signals


def _signal_during_collect(
    trainer: PPOCrowdTrainer, at_iteration: int, times: int
) -> Callable[..., Any]:
    real_collect = trainer.collector.collect

    def collect(*args: Any, **kwargs: Any) -> Any:
        if trainer.counters.iteration + 1 == at_iteration:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        return real_collect(*args, **kwargs)

    return collect


def test_a_signal_finishes_the_iteration_saves_and_returns(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Python's default, or SIG_IGN when the suite was started in the background by a shell
    # without job control: the trainer gives back whichever it found.
    before = signal.getsignal(signal.SIGINT)
    with PPOCrowdTrainer.from_config(config(PROBE, run_dir, iterations=50)) as trainer:
        trainer.collector.collect = _signal_during_collect(trainer, 3, times=1)  # type: ignore[method-assign]
        summary = trainer.train()
        assert trainer.stop_signal == signal.SIGINT
    assert summary["interrupted"] == 1.0 and summary["iterations"] == 3
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "iter_000003"
    assert signal.getsignal(signal.SIGINT) is before  # restored
    with PPOCrowdTrainer.resume(run_dir) as trainer:
        assert trainer.train(1)["iterations"] == 4


def test_a_second_signal_stops_at_once_and_keeps_a_consistent_checkpoint(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    with PPOCrowdTrainer.from_config(config(PROBE, run_dir, iterations=50)) as trainer:
        trainer.collector.collect = _signal_during_collect(trainer, 4, times=2)  # type: ignore[method-assign]
        summary = trainer.train()
    # Stopped during the rollout of iteration 4: the state saved is that after iteration 3.
    assert summary["interrupted"] == 1.0 and summary["iterations"] == 3
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "iter_000003"
    assert column(read_csv(run_dir), "iteration") == [1, 2, 3]


# ----------------------------------------------------------------------------- set-up


def test_an_unwritable_run_dir_fails_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RunDirError, match="cannot write the run directory"):
        PPOCrowdTrainer.from_config(config(PROBE, blocker / "run"))


def test_an_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    with pytest.raises(RunDirError, match=r"already holds a run.*--resume"):
        PPOCrowdTrainer.from_config(config(PROBE, run_dir))


def test_the_default_run_dir_is_runs_name_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = {**PROBE, "trainer": {**PROBE["trainer"], "name": "test_run"}}
    with PPOCrowdTrainer.from_config(data) as trainer:
        trainer.train(1)
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"test_run_\d{8}-\d{6}", run_dir.name)
    assert trainer.run.path == Path("runs") / run_dir.name
    assert (run_dir / "checkpoints" / "iter_000001").is_dir()


def test_library_use_with_your_own_env(tmp_path: Path) -> None:
    cfg = config(PROBE, tmp_path / "run", eval_episodes=2)
    env = make_env(cfg.env, seed=0)
    try:
        agents = make_agents(cfg.model, env)
        with pytest.raises(TrainerError, match="needs eval_env="):
            PPOCrowdTrainer(agents, env, cfg)
        eval_env = make_env(cfg.env, seed=1)
        with PPOCrowdTrainer(agents, env, cfg, seed=3, eval_env=eval_env) as trainer:
            summary = trainer.train()
        assert trainer.config.trainer.seed == 3
        assert summary["eval/episodes"] == 2
    finally:
        env.close()


def test_a_file_that_anneals_anneals_over_the_whole_run(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"iterations": 40}, "ppo": {"anneal_lr": True}}))

    def length(*overrides: str) -> int | None:
        return finish_run_config(RunConfig.from_yaml(path, overrides)).ppo.anneal_iterations

    assert length() == 40
    assert length("trainer.iterations=7") == 7
    assert length("ppo.anneal_iterations=5") == 5
    path.write_text(yaml.safe_dump({"trainer": {"iterations": 40}}))
    assert length() is None
    assert length("ppo.anneal_lr=true") == 40


def test_device_auto_picks_cuda_only_when_present() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^trainer\.device: device 'cuda:1'"):
            resolve_device("cuda:1")


def test_run_directory_open_names_the_newest_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    run = RunDirectory.open(run_dir)
    assert run.latest_checkpoint() == run_dir / "checkpoints" / "iter_000003"
    _path, group, state = run.load_checkpoint()
    counters = state["counters"]
    assert counters["iteration"] == 3 and counters["env_steps"] == 48
    assert math.isfinite(counters["best_return"])
    assert group.policy_names == ["crowd"]


def test_a_run_built_in_python_records_that_and_resumes_in_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (e): a run of one's own env and agents recorded the default env (gym
    CartPole-v1) in config.yaml and its header, and the crash note's resume command failed."""
    run_dir = tmp_path / "run"
    cfg = config(PROBE, run_dir, progress=True)
    env = make_env(cfg.env, seed=0)
    try:
        agents = make_agents(cfg.model, env)
        with PPOCrowdTrainer(agents, env, {"trainer": cfg.trainer.to_dict()}) as trainer:
            trainer.train(2)
            assert trainer.resume_hint(False) == (
                f"PPOCrowdTrainer.resume({str(run_dir)!r}, agents, env) in Python"
            )
        assert "on an env built in Python (2 env copies" in capsys.readouterr().err
        saved = RunConfig.from_yaml(run_dir / "config.yaml")
        assert saved.env is None and saved.model is None
        with pytest.raises(ConfigError, match=r"built in Python .* PPOCrowdTrainer\.resume"):
            PPOCrowdTrainer.resume(run_dir)
        with PPOCrowdTrainer.resume(run_dir, agents, env) as trainer:
            assert trainer.counters.iteration == 2
            assert trainer.train(1)["iterations"] == 3
    finally:
        env.close()


def test_extending_a_run_from_python_extends_its_annealing(tmp_path: Path) -> None:
    anneal = {**PROBE, "ppo": {**PROBE["ppo"], "anneal_lr": True}}
    run_dir = tmp_path / "run"
    with PPOCrowdTrainer.from_config(config(anneal, run_dir, iterations=2)) as trainer:
        trainer.train()
        assert trainer.config.ppo.anneal_iterations == 2
        trainer.train(2)  # past the planned end: the run and its schedule grow to 4
        assert trainer.config.trainer.iterations == trainer.config.ppo.anneal_iterations == 4
    assert column(read_csv(run_dir), "charts/learning_rate") == pytest.approx(
        [1e-2, 5e-3, 1e-2 * 2 / 4, 1e-2 * 1 / 4]
    )
    assert RunConfig.from_yaml(run_dir / "config.yaml").ppo.anneal_iterations == 4


FINGERPRINT = r"""
import hashlib, sys
from coltra.trainers import PPOCrowdTrainer
config = {
    "trainer": {"run_dir": sys.argv[1], "progress": False, "iterations": 2, "steps": 16},
    "env": {"workers": 2, "backend": "inprocess"},
}
with PPOCrowdTrainer.from_config(config) as trainer:
    weights = [p.detach().numpy().tobytes() for p in trainer.group.parameters()]
    summary = trainer.train()
print(hashlib.sha256(b"".join(weights)).hexdigest(), summary["return_mean"])
"""


def test_the_seed_decides_the_run_whatever_the_thread_count(tmp_path: Path) -> None:
    """Issue 12 (g): torch's thread count was set after the weights were initialised, so
    one seed gave different runs under different OMP_NUM_THREADS."""
    import subprocess
    import sys

    prints = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        command = [sys.executable, "-c", FINGERPRINT, str(tmp_path / f"run{threads}")]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        prints.append(result.stdout)
    assert prints[0] == prints[1]


# ----------------------------------------------------------------------------- review fixes


def test_two_trainers_never_share_a_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = PPOCrowdTrainer.from_config(config(PROBE, run_dir))
    try:
        with pytest.raises(RunDirError, match="is in use: another process is training in it"):
            PPOCrowdTrainer.from_config(config(PROBE, run_dir))  # would clear first's files
        first.train(1)
        with pytest.raises(RunDirError, match="is in use"):
            PPOCrowdTrainer.resume(run_dir)
    finally:
        first.close()
    with PPOCrowdTrainer.resume(run_dir) as trainer:  # closed: free again
        assert trainer.counters.iteration == 1


def test_resuming_with_a_mapping_changes_only_its_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir, seed=7))
    with PPOCrowdTrainer.resume(run_dir, config={"trainer": {"iterations": 5}}) as trainer:
        cfg = trainer.config
        assert (cfg.trainer.iterations, cfg.trainer.seed, cfg.trainer.steps) == (5, 7, 8)
        assert cfg.ppo.lr == 1e-2 and cfg.model is not None  # the run's, not the defaults
    with PPOCrowdTrainer.resume(run_dir, seed=9, config={"trainer": {"progress": True}}) as t:
        t.train(1)
    assert "note: trainer.seed is now 9 (the run was seeded 7)" in capsys.readouterr().err


def test_a_refused_resume_leaves_the_config_as_it_was(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    before = (run_dir / "config.yaml").read_text()
    with PPOCrowdTrainer.resume(run_dir, config={"trainer": {"iterations": 2}}) as trainer:
        with pytest.raises(TrainerError, match="has done 3 of its 2 iterations"):
            trainer.train()
    assert (run_dir / "config.yaml").read_text() == before


def test_adam_settings_of_a_resume_come_from_its_config(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    change = {"ppo": {"adam_eps": 1e-3}}
    with PPOCrowdTrainer.resume(run_dir, config=change) as trainer:
        (optimizer,) = trainer.optimizer.optimizers.values()
        assert optimizer.param_groups[0]["eps"] == 1e-3


def test_a_second_signal_during_an_update_goes_back_to_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    with PPOCrowdTrainer.from_config(config(PROBE, run_dir, iterations=6, save_every=2)) as t:
        real_update = t.optimizer.train_on_data

        def interrupted_update(records: Any) -> Any:
            if t.counters.iteration == 3:  # the update of iteration 4 breaks off halfway
                with torch.no_grad():
                    for parameter in t.group.parameters():
                        parameter.add_(1.0)
                raise KeyboardInterrupt
            return real_update(records)

        monkeypatch.setattr(t.optimizer, "train_on_data", interrupted_update)
        summary = t.train()
        assert summary["interrupted"] == 1.0 and t.counters.iteration == 2
        saved = MacroAgent.load(run_dir / "checkpoints" / "iter_000002" / "agents")
        for mine, theirs in zip(t.group.parameters(), saved.parameters()):
            assert torch.equal(mine, theirs)  # not the half-updated weights
        monkeypatch.setattr(t.optimizer, "train_on_data", real_update)
        assert t.train(1)["iterations"] == 3  # and the same trainer goes on from there


def test_a_closed_resumed_trainer_that_trains_again_keeps_its_rows(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = config(PROBE, run_dir)
    env = make_env(cfg.env, seed=0)  # your own env: close() leaves it open
    try:
        agents = make_agents(cfg.model, env)
        with PPOCrowdTrainer(agents, env, cfg) as trainer:
            trainer.train(3)
        trainer = PPOCrowdTrainer.resume(run_dir, agents, env)
        trainer.train(1)
        trainer.close()
        trainer.train(1)  # the logs reopen; the row of iteration 4 must stay
        trainer.close()
    finally:
        env.close()
    assert column(read_csv(run_dir), "iteration") == [1, 2, 3, 4, 5]


def test_each_policy_must_fit_its_own_minibatches_before_the_run_directory_exists(
    tmp_path: Path,
) -> None:
    from coltra.agents import DAgent
    from coltra.envs.probe_envs import ActionRewardEnv
    from coltra.groups import MultiPolicyGroup
    from coltra.models import MLPModel

    env = ActionRewardEnv(num_agents=3)
    space = {"observation_space": env.observation_space, "action_space": env.action_space}
    group = MultiPolicyGroup(
        {"a": DAgent(MLPModel({}, **space)), "b": DAgent(MLPModel({}, **space))},
        {"agent_0": "a", "": "b"},
    )
    run_dir = tmp_path / "run"
    cfg = {"trainer": {"run_dir": str(run_dir), "steps": 4}, "ppo": {"num_minibatches": 6}}
    # 3 agents x 4 steps = 12 samples would fit 6 minibatches; policy a has only 4 samples.
    with pytest.raises(ConfigError, match="6 minibatches do not fit in a batch of 4 samples"):
        PPOCrowdTrainer(group, env, cfg)
    assert not run_dir.exists()


def test_a_checkpoint_of_the_first_state_layout_still_resumes(tmp_path: Path) -> None:
    """Version 1 of trainer_state.pt kept the counters at its top level (and, before
    restart_crashed_envs, had no env_restarts)."""
    from coltra.serialization import load_tensors, save_tensors

    run_dir = tmp_path / "run"
    train(config(PROBE, run_dir))
    path = run_dir / "checkpoints" / "iter_000003" / "trainer_state.pt"
    state = load_tensors(path)
    counters = state.pop("counters")
    counters.pop("env_restarts")
    save_tensors(path, {**state, **counters, "version": 1})
    with PPOCrowdTrainer.resume(run_dir) as trainer:
        assert trainer.counters.iteration == 3 and trainer.counters.env_restarts == 0
        assert trainer.counters.env_steps == 48


def test_a_crash_during_the_evaluation_is_an_error_not_a_missing_score(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import coltra.evaluation
    from coltra.envs import EnvCrashedError
    from coltra.envs.probe_envs import ActionRewardEnv
    from coltra.evaluation import evaluation_metrics

    class Crashing(ActionRewardEnv):
        def step_batch(self, actions: Any) -> Any:
            raise EnvCrashedError("copy 0 died")

    cfg = config(PROBE, tmp_path / "run")
    env = make_env(cfg.env, seed=0)
    try:
        group = make_agents(cfg.model, env)
        with pytest.raises(EnvCrashedError, match="copy 0 died"):
            evaluation_metrics(group, Crashing(), 2)
        endless = ActionRewardEnv(episode_length=10**6)
        monkeypatch.setattr(coltra.evaluation, "EVAL_MAX_STEPS", 2_000)  # 100k steps take ~15 s
        with pytest.warns(UserWarning, match="episodes it waits for end"):
            assert evaluation_metrics(group, endless, 1) == {"eval/episodes": 0.0}
    finally:
        env.close()


def test_a_resumed_run_gets_back_every_normalisation_statistic_bit_for_bit(
    tmp_path: Path,
) -> None:
    """obs_norm and value_norm statistics (model buffers) and the reward scaler's statistics
    (optimizer state) are what they were when the run stopped."""
    normalised = {
        **CARTPOLE,
        "model": {**CARTPOLE["model"], "obs_norm": True, "value_norm": True},
        "ppo": {**CARTPOLE["ppo"], "reward_scaling": True},
    }
    run_dir = tmp_path / "run"
    with PPOCrowdTrainer.from_config(config(normalised, run_dir, iterations=2)) as trainer:
        trainer.train()
        model = trainer.group.policies["crowd"].model
        assert model is not None
        buffers = {key: value.clone() for key, value in model.state_dict().items()}
        scaler = trainer.optimizer.reward_scalers["crowd"]
        scaled = scaler.state_dict()
    assert buffers["value_norm.count"].item() == buffers["obs_normalizer.count"].item() == 128
    resumed = config(normalised, run_dir, iterations=3)
    with PPOCrowdTrainer.resume(run_dir, config=resumed) as trainer:
        model = trainer.group.policies["crowd"].model
        assert model is not None
        for key, value in model.state_dict().items():
            assert torch.equal(value, buffers[key]), key
        again = trainer.optimizer.reward_scalers["crowd"].state_dict()
        for key, value in again["stats"].items():
            assert torch.equal(value, scaled["stats"][key]), key
        trainer.train()
