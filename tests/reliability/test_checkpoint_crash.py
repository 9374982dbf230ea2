"""A process killed while writing a checkpoint: the previous checkpoint still loads, and a
resumed run cleans up what the dead process left half-written.

Each case is a real `coltra train` process whose file writes are hooked to die (os._exit)
half-way through one file of the second checkpoint: the agents' weights, the trainer state,
or the `latest` pointer."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from faulty_envs import checkpoint_names, python_with_tests_path

from coltra.trainers import PPOCrowdTrainer, RunDirectory

DIE_MID_WRITE = r"""
import os, sys, tempfile
from pathlib import Path
import coltra.serialization as serialization
import coltra.run_dir as run_dir
from coltra.cli import main

target, nth = sys.argv[1], int(sys.argv[2])
real = serialization.atomic_write_bytes
seen = [0]

def dying(path, data):
    path = Path(path)
    if path.name == target:
        seen[0] += 1
        if seen[0] == nth:  # write half the temporary file, then die
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.write(fd, data[: len(data) // 2])
            os._exit(9)
    real(path, data)

serialization.atomic_write_bytes = dying
run_dir.atomic_write_bytes = dying
sys.exit(main(["train", *sys.argv[3:]]))
"""

COPIES, STEPS = 2, 8
CONFIG = {
    "trainer": {"name": "kill", "steps": STEPS, "iterations": 5, "save_every": 1, "seed": 3},
    "ppo": {"lr": 1e-2, "epochs": 1, "num_minibatches": 1},
    "model": {"hidden_sizes": [8]},
    "env": {"kind": "probe", "env_name": "action", "workers": COPIES, "backend": "inprocess"},
}
TARGETS = ("weights.pt", "trainer_state.pt", "latest")


class Killed(NamedTuple):
    process: subprocess.Popen[str]
    run_dir: Path


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Killed]]:
    """One run per target, started together (their start-ups overlap)."""
    started: dict[str, Killed] = {}
    try:
        for target in TARGETS:
            directory = tmp_path_factory.mktemp(target.replace(".", "_"))
            config_path = directory / "config.yaml"
            config_path.write_text(yaml.safe_dump(CONFIG))
            run_dir = directory / "run"
            process = python_with_tests_path(
                DIE_MID_WRITE, target, 2, "-c", config_path, "--run-dir", run_dir, "--no-progress"
            )
            started[target] = Killed(process, run_dir)
        yield started
    finally:
        for run in started.values():
            run.process.kill()
            run.process.wait()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("target", TARGETS)
def test_a_crash_mid_checkpoint_leaves_the_previous_one_loadable(
    killed_runs: dict[str, Killed], target: str
) -> None:
    process, run_dir = killed_runs[target]
    _, err = process.communicate(timeout=60)
    assert process.returncode == 9, err  # died inside the write, as planned
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "iter_000001"
    half_written = list(checkpoints.glob(".*.tmp"))
    assert half_written  # what the dead process left
    complete = [name for name in checkpoint_names(run_dir) if name.startswith("iter_")]
    if target == "latest":  # the new checkpoint was complete, only the pointer was not
        assert complete == ["iter_000001", "iter_000002"]
    else:
        assert complete == ["iter_000001"]

    path, group, state = RunDirectory.open(run_dir).load_checkpoint()
    assert path.name == "iter_000001" and state["counters"]["iteration"] == 1
    assert group.policy_names == ["crowd"]
    with PPOCrowdTrainer.resume(run_dir) as trainer:
        assert not any(leftover.exists() for leftover in half_written)  # cleaned up
        assert trainer.counters.iteration == 1 and trainer.counters.env_steps == COPIES * STEPS
        assert trainer.train(1)["iterations"] == 2  # writes iter_000002 anew
    assert (checkpoints / "latest").read_text().strip() == "iter_000002"
    RunDirectory.open(run_dir).load_checkpoint()
