"""An unwritable run directory or a full disk is a clear error at start-up, before any
training; a disk that fills up later leaves the previous checkpoint and says so.

Tests run as root, for whom chmod does not stop a write: an unwritable directory is a path
under a regular file or inside /proc, and a full disk is simulated where the start-up check
writes or asks for free space."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from faulty_envs import FaultyProbeEnv, run_config

import coltra.run_dir as run_dir_module
from coltra.cli import main
from coltra.collectors import CrowdCollector
from coltra.trainers import PPOCrowdTrainer, RunDirError


class Usage(NamedTuple):
    total: int
    used: int
    free: int


@pytest.fixture
def no_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any rollout fails the test: the errors must come before training starts."""

    def collect(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("training started before the run directory was checked")

    monkeypatch.setattr(CrowdCollector, "collect", collect)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_an_unwritable_run_dir_fails_at_start_up(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], no_collection: None, where: str
) -> None:
    if where == "under_a_file":
        (tmp_path / "file").write_text("a file, not a directory")
        run_dir = tmp_path / "file" / "run"
    else:
        run_dir = Path("/proc/coltra-reliability/run")
    with pytest.raises(RunDirError, match=f"cannot write the run directory {run_dir}: .*"):
        PPOCrowdTrainer.from_config(run_config(run_dir))
    assert not run_dir.exists()


@pytest.mark.timeout(60)
def test_a_full_disk_fails_at_start_up(
    tmp_path: Path,
    faulty_probe: type[FaultyProbeEnv],
    no_collection: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_dir_module.os, "fsync", full)
    with pytest.raises(RunDirError, match=r"No space left on device \(free some space\)"):
        PPOCrowdTrainer.from_config(run_config(tmp_path / "run"))


@pytest.mark.timeout(60)
def test_too_little_free_space_fails_at_start_up_and_on_resume(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    with PPOCrowdTrainer.from_config(run_config(run_dir)) as trainer:
        trainer.train(1)
    real_usage = shutil.disk_usage

    def almost_full(path: Any) -> Usage:
        total, used, _ = real_usage(path)
        return Usage(total, used, 200 * 1024)

    monkeypatch.setattr(run_dir_module.shutil, "disk_usage", almost_full)
    message = r"not enough free space for the run directory .*: 0\.2 MB free, the run needs"
    with pytest.raises(RunDirError, match=message):
        PPOCrowdTrainer.from_config(run_config(tmp_path / "new_run"))
    with pytest.raises(RunDirError, match=message):
        PPOCrowdTrainer.resume(run_dir)


@pytest.mark.timeout(60)
def test_the_command_line_reports_an_unwritable_run_dir_in_one_line(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    config_path = tmp_path / "config.yaml"
    run_config(tmp_path / "file" / "run").to_yaml(config_path)
    assert main(["train", "-c", str(config_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"coltra: error: cannot write the run directory {tmp_path}")


@pytest.mark.timeout(60)
def test_a_disk_that_fills_up_while_training_keeps_the_last_checkpoint_and_says_so(
    tmp_path: Path,
    faulty_probe: type[FaultyProbeEnv],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = tmp_path / "run"
    config_path = tmp_path / "config.yaml"
    run_config(run_dir).to_yaml(config_path)
    real_save = run_dir_module.save_tensors
    saves = {"count": 0}

    def save_until_full(path: Path, tensors: dict[str, Any]) -> None:
        saves["count"] += 1
        if saves["count"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_save(path, tensors)

    with monkeypatch.context() as patched:
        patched.setattr(run_dir_module, "save_tensors", save_until_full)
        assert main(["train", "-c", str(config_path), "--no-progress"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "No space left on device" in lines[0]
    assert "iter_000002 (iteration 2), is intact" in lines[0]
    with PPOCrowdTrainer.resume(run_dir) as trainer:
        assert trainer.counters.iteration == 2


@pytest.mark.timeout(60)
def test_what_can_be_checked_is_checked_before_the_run_directory_exists(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (c): a start that failed after creating the directory left one that could
    be neither reused ("already holds a run") nor resumed ("no checkpoint yet")."""
    run_dir = tmp_path / "run"
    config_path = tmp_path / "config.yaml"
    run_config(run_dir).to_yaml(config_path)
    for override, expected in [
        (
            "ppo.num_minibatches=5000",
            "ppo.num_minibatches: 5000 minibatches do not fit in a batch of 12 samples",
        ),
        ("ppo.minibatch_size=13", "ppo.minibatch_size: 13 is larger than the batch of 12 samples"),
        (
            "model.input_size=3",
            "model: model config input_size=3 contradicts the observation space",
        ),
    ]:
        assert main(["train", "-c", str(config_path), "--set", override]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"coltra: error: {expected}"), line
        assert not run_dir.exists()
    assert main(["train", "-c", str(config_path), "-i", "1"]) == 0  # the same directory, unharmed


@pytest.mark.timeout(60)
def test_a_run_that_crashed_before_its_first_checkpoint_starts_again_in_place(
    tmp_path: Path, faulty_probe: type[FaultyProbeEnv], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (c): an env that crashes before the first checkpoint."""
    run_dir = tmp_path / "run"
    config_path = tmp_path / "config.yaml"
    run_config(run_dir, "raise_step", at_step=2, trainer={"save_every": 10}).to_yaml(config_path)
    assert main(["train", "-c", str(config_path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    again = f"coltra train -c {run_dir / 'config.yaml'}"
    assert f"no checkpoint was saved yet: start it again in place with {again}" in line
    assert (run_dir / "config.yaml").exists() and not (run_dir / "checkpoints").exists()

    assert main(["train", "--resume", str(run_dir)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        "the run has no checkpoint yet" in line and f"start it again in place with {again}" in line
    )

    # The command printed works as printed (here with the env fixed and a short run).
    assert main([*again.split()[1:], "--set", "env.env_kwargs.fault=none", "-i", "2"]) == 0
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "iter_000002"
    with (run_dir / "metrics.csv").open() as file:
        assert [line.split(",")[0] for line in file][1:] == ["1.0", "2.0"]  # the old rows are gone
