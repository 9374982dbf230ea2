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
