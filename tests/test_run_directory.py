"""RunDirectory: creating, refusing, reusing and opening run directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from coltra.configs import RunConfig
from coltra.run_dir import RunDirectory, RunDirError, resume_command


def test_a_new_directory_is_created_and_probed(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path / "a" / "run")
    assert run.path.is_dir() and not run.has_checkpoint()
    assert [p.name for p in run.path.iterdir()] == [".lock"]  # the write probe is gone
    with pytest.raises(RunDirError, match="is in use"):
        RunDirectory.create(run.path)  # held by `run` (another process, as far as it knows)
    run.unlock()
    RunDirectory.create(run.path).unlock()


def test_a_run_without_a_checkpoint_is_cleared_and_used_again(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path / "run")
    run.write_config(RunConfig())
    run.unlock()
    (run.path / "metrics.csv").write_text("iteration\n1.0\n")
    (run.path / "events.out.tfevents.1.host").write_text("")
    (run.path / "notes.txt").write_text("mine")  # not the run's: kept
    with pytest.raises(RunDirError, match=r"has no checkpoint yet.*start it again in place"):
        RunDirectory.open(run.path)
    again = RunDirectory.create(run.path)
    assert sorted(p.name for p in again.path.iterdir()) == [".lock", "notes.txt"]


def test_a_run_with_a_checkpoint_is_never_overwritten(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path / "run")
    run.write_config(RunConfig())
    run.unlock()
    (run.checkpoints / "iter_000001").mkdir(parents=True)
    (run.checkpoints / "latest").write_text("iter_000001\n")
    with pytest.raises(RunDirError, match=r"already holds a run .* --resume"):
        RunDirectory.create(run.path)
    assert RunDirectory.open(run.path).latest_checkpoint() == run.checkpoints / "iter_000001"


def test_resume_commands_work_as_typed() -> None:
    config = RunConfig().override(["trainer.iterations=10"])
    path = Path("runs/x")
    assert resume_command(path, config, 4, solved=False) == "coltra train --resume runs/x"
    assert resume_command(path, config, 10, solved=False) == "coltra train --resume runs/x -i 20"
    assert resume_command(path, config, 4, solved=True) == (
        "coltra train --resume runs/x --set trainer.stop_at_return=null"
    )
    python = config.update({"env": None, "model": None})
    assert resume_command(path, python, 4, solved=False) == (
        "PPOCrowdTrainer.resume('runs/x', agents, env) in Python"
    )


def _saved(run: RunDirectory, iteration: int, keep: int) -> Path:
    """A checkpoint of a one-agent group at ``iteration`` (the real save path)."""
    import gymnasium as gym

    from coltra.agents import RandomAgent
    from coltra.groups import HomogeneousGroup

    group = HomogeneousGroup(RandomAgent(gym.spaces.Discrete(2), seed=0))
    return run.save_checkpoint(iteration, group, {"iteration": iteration}, keep)


def test_the_best_checkpoint_survives_pruning_until_a_better_one(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path / "run")
    assert run.best_checkpoint() is None
    second = _saved(run, 2, keep=1)
    best = run.mark_best(second, "eval/return_mean", 12.5, keep=1)
    assert best.path == second and best.score == 12.5
    for iteration in (3, 4, 5):
        _saved(run, iteration, keep=1)
    names = sorted(p.name for p in run.checkpoints.iterdir())
    assert names == ["best", "iter_000002", "iter_000005", "latest"]  # 3 and 4 pruned
    reopened = RunDirectory(run.path).best_checkpoint()
    assert reopened == best
    assert (run.checkpoints / "best").read_text() == "iter_000002\neval/return_mean 12.5\n"
    # A new best moves the pointer; the old best goes, being outside the newest `keep`.
    run.mark_best(run.checkpoints / "iter_000005", "eval/return_mean", 20.0, keep=1)
    names = sorted(p.name for p in run.checkpoints.iterdir())
    assert names == ["best", "iter_000005", "latest"]


def test_a_damaged_best_pointer_is_a_clear_error_and_prunes_nothing(tmp_path: Path) -> None:
    from coltra.serialization import CheckpointError

    run = RunDirectory.create(tmp_path / "run")
    _saved(run, 1, keep=1)
    (run.checkpoints / "best").write_text("iter_000009\neval/return_mean 3.0\n")
    with pytest.raises(CheckpointError, match=r"best names iter_000009, which does not exist"):
        run.best_checkpoint()
    (run.checkpoints / "best").write_text("iter_000001\n")
    with pytest.raises(CheckpointError, match=r"score on its second line"):
        run.best_checkpoint()
    _saved(run, 2, keep=1)  # the pointer cannot be trusted: iter_000001 is kept
    assert (run.checkpoints / "iter_000001").is_dir()
