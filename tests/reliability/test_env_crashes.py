"""An env copy that raises, dies or hangs while the trainer trains: the trainer stops within
seconds with an error naming the copy and the cause, the last checkpoint is intact and
resumes, and no worker process is left behind. Optionally the env is rebuilt and training
goes on (trainer.restart_crashed_envs)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from faulty_envs import BAD_COPY, STEPS, FaultyProbeEnv, checkpoint_names, run_config

from coltra.cli import main
from coltra.configs import ConfigError
from coltra.envs import EnvCrashedError, SubprocVecEnv
from coltra.factory import make_agents, make_env
from coltra.trainers import PPOCrowdTrainer, RunDirectory, TrainerError

AssertGone = Callable[[Iterable[int]], None]
WORKERS = 3


def check_last_checkpoint_resumes(run_dir: Path, iteration: int) -> None:
    """The newest checkpoint is that of ``iteration``, loads, and a resumed run starts from
    its counters (with an in-process env: the backend may change on resume)."""
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == f"iter_{iteration:06d}"
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    cfg = RunDirectory.open(run_dir).read_config()
    cfg = cfg.update({"env": {"backend": "inprocess", "step_timeout": None}})
    with PPOCrowdTrainer.resume(run_dir, config=cfg) as trainer:
        assert trainer.counters.iteration == trainer.optimizer.iteration == iteration
        assert trainer.counters.env_steps == iteration * WORKERS * STEPS


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fault", "backend", "cause"),
    [
        ("raise_step", "subprocess", "raised in step: ValueError: step failure at step 10"),
        ("raise_step", "inprocess", "raised in step: ValueError: step failure at step 10"),
        ("raise_reset", "subprocess", "raised in reset: ValueError: reset failure after 12"),
        ("raise_reset", "inprocess", "raised in reset: ValueError: reset failure after 12"),
        ("exit", "subprocess", "died during step (exit code 3"),
        ("sigkill", "subprocess", "died during step (exit code -9"),
    ],
)
def test_a_crashing_env_copy_stops_the_trainer_and_leaves_a_checkpoint_and_no_worker(
    tmp_path: Path,
    faulty_probe: type[FaultyProbeEnv],
    assert_gone: AssertGone,
    fault: str,
    backend: str,
    cause: str,
) -> None:
    run_dir = tmp_path / "run"
    trainer = PPOCrowdTrainer.from_config(
        run_config(run_dir, fault, backend=backend, workers=WORKERS)
    )
    pids = trainer.env.pids if isinstance(trainer.env, SubprocVecEnv) else []
    assert len(pids) == (WORKERS if backend == "subprocess" else 0)
    with trainer, pytest.raises(EnvCrashedError) as caught:
        trainer.train()  # the bad copy fails at its 10th step: in iteration 3

    error = caught.value
    assert error.env_index == BAD_COPY
    first_line = str(error).splitlines()[0]
    assert f"copy {BAD_COPY}" in first_line and cause in first_line
    notes = " ".join(getattr(error, "__notes__", []))
    assert "training stopped in iteration 3" in notes
    assert "iter_000002 (iteration 2), is intact" in notes
    assert f"coltra train --resume {run_dir}" in notes
    assert trainer.counters.iteration == 2
    assert_gone(pids)
    check_last_checkpoint_resumes(run_dir, 2)


@pytest.mark.timeout(60)
def test_a_hung_worker_becomes_a_clear_error_after_env_step_timeout(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], assert_gone: AssertGone
) -> None:
    cfg = run_config(
        tmp_path / "run", "hang", backend="subprocess", workers=WORKERS, env={"step_timeout": 1.0}
    )
    trainer = PPOCrowdTrainer.from_config(cfg)
    assert isinstance(trainer.env, SubprocVecEnv)
    assert trainer.env.step_timeout == 1.0  # the factory passes env.step_timeout on
    pids = trainer.env.pids
    with trainer, pytest.raises(EnvCrashedError) as caught:
        trainer.train()
    message = str(caught.value)
    assert f"copy {BAD_COPY}" in message
    assert "did not answer step within 1.0 s (step_timeout)" in message
    assert caught.value.env_index == BAD_COPY
    assert_gone(pids)  # the hung worker too
    check_last_checkpoint_resumes(tmp_path / "run", 2)


@pytest.mark.timeout(60)
def test_a_step_timeout_the_backend_cannot_honour_is_a_config_error(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv]
) -> None:
    """A copy stepped in this process cannot be stopped when it hangs: a step timeout there
    would be silently ignored, so the config is refused."""
    for backend in ("inprocess", "auto"):  # probe envs run in-process by default
        cfg = run_config(tmp_path / backend, env={"step_timeout": 1.0, "backend": backend})
        with pytest.raises(ConfigError, match=r"^env\.step_timeout: needs env\.backend: subp"):
            PPOCrowdTrainer.from_config(cfg)


@pytest.mark.timeout(60)
def test_restart_crashed_envs_rebuilds_the_env_warns_and_goes_on(
    tmp_path: Path,
    faulty_probe: type[FaultyProbeEnv],
    assert_gone: AssertGone,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_dir = tmp_path / "run"
    cfg = run_config(
        run_dir,
        "exit",
        backend="subprocess",
        workers=WORKERS,
        trainer={"restart_crashed_envs": 2, "iterations": 5},
    )
    caplog.set_level(logging.WARNING, logger="coltra.trainers")
    trainer = PPOCrowdTrainer.from_config(cfg)
    assert isinstance(trainer.env, SubprocVecEnv)
    first_pids = trainer.env.pids
    with trainer:
        summary = trainer.train()
        assert isinstance(trainer.env, SubprocVecEnv)
        new_pids = trainer.env.pids
        assert set(new_pids).isdisjoint(first_pids)
    # The crash in iteration 3 cost a rebuild; the rebuilt env (new seeds) behaves.
    assert summary["iterations"] == 5 and summary["env_steps"] == 5 * WORKERS * STEPS
    assert trainer.counters.env_restarts == 1
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert f"env worker {BAD_COPY} (copy {BAD_COPY}" in warning.getMessage()
    assert "died during step" in warning.getMessage()
    assert "rebuilding the env and collecting iteration 3 again" in warning.getMessage()
    assert_gone(first_pids)  # the crashed env's workers
    assert_gone(new_pids)  # and, after close, the rebuilt env's
    assert checkpoint_names(run_dir)[-1] == "latest"
    with PPOCrowdTrainer.resume(run_dir) as resumed:
        assert resumed.counters.env_restarts == 1  # the count is part of the checkpoint


@pytest.mark.timeout(60)
def test_restart_crashed_envs_gives_up_after_its_limit(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv]
) -> None:
    # Every copy of every env fails at its second step: the restarts cannot help.
    cfg = run_config(
        tmp_path / "run",
        "raise_step",
        at_step=2,
        bad_seed=None,
        trainer={"restart_crashed_envs": 2},
    )
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        with pytest.raises(EnvCrashedError, match="raised in step") as caught:
            trainer.train()
        assert trainer.counters.env_restarts == 2
    assert "the env was rebuilt 2 times already" in " ".join(caught.value.__notes__)


@pytest.mark.timeout(60)
def test_restart_crashed_envs_with_your_own_env_needs_a_factory(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv]
) -> None:
    cfg = run_config(tmp_path / "run", trainer={"restart_crashed_envs": 1})
    env = make_env(cfg.env, seed=0)
    try:
        agents = make_agents(cfg.model, env)
        with pytest.raises(TrainerError, match="restart_crashed_envs=1 needs env_factory="):
            PPOCrowdTrainer(agents, env, cfg)
        with PPOCrowdTrainer(
            agents, env, cfg, env_factory=lambda seed: make_env(cfg.env, seed=seed)
        ) as trainer:
            assert trainer.train(1)["iterations"] == 1
    finally:
        env.close()


@pytest.mark.timeout(60)
def test_the_command_line_reports_an_env_crash_in_one_line_with_exit_code_1(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    config_path = tmp_path / "config.yaml"
    run_config(run_dir, "raise_step", backend="subprocess", workers=2).to_yaml(config_path)
    assert main(["train", "-c", str(config_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # the worker's traceback only with --debug
    assert lines[0].startswith(f"coltra: error: env copy {BAD_COPY} raised in step: ValueError")
    assert "iter_000002 (iteration 2), is intact" in lines[0]
    assert "(run with --debug for the traceback)" in lines[0]


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_cluster")
def test_a_killed_ray_actor_stops_the_trainer_or_is_rebuilt(
    tmp_path: Path,
    faulty_probe: type[FaultyProbeEnv],
    assert_gone: AssertGone,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On the Ray backend a dead actor is the same EnvCrashedError (the checkpoint before it
    intact), and trainer.restart_crashed_envs rebuilds the env on new actors."""
    from coltra.envs.vector.ray_backend import RayVecEnv

    cfg = run_config(tmp_path / "stop", "sigkill", backend="ray", workers=WORKERS)
    trainer = PPOCrowdTrainer.from_config(cfg)
    assert isinstance(trainer.env, RayVecEnv)
    pids = list(trainer.env.pids)
    with trainer, pytest.raises(EnvCrashedError) as caught:
        trainer.train()
    assert f"Ray env actor {BAD_COPY} (copy {BAD_COPY}" in str(caught.value)
    assert "died during step" in str(caught.value)
    assert trainer.counters.iteration == 2
    assert_gone(pids)
    check_last_checkpoint_resumes(tmp_path / "stop", 2)

    cfg = run_config(
        tmp_path / "restart",
        "sigkill",
        backend="ray",
        workers=WORKERS,
        trainer={"restart_crashed_envs": 1, "iterations": 5},
    )
    caplog.set_level(logging.WARNING, logger="coltra.trainers")
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        first_pids = list(trainer.env.pids)  # type: ignore[attr-defined]
        summary = trainer.train()
        assert isinstance(trainer.env, RayVecEnv)
        assert set(trainer.env.pids).isdisjoint(first_pids)
    assert summary["iterations"] == 5 and trainer.counters.env_restarts == 1
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "died during step" in warning.getMessage()
