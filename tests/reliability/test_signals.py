"""SIGINT and SIGTERM during collection and during the update of `coltra train`: the
iteration finishes, a checkpoint is written, the process exits (130 / 143), and a resumed
run continues with the same counters.

The run is a real `coltra train` process. To hit a phase for sure, the program pauses
inside the collector's (or the optimizer's) second call, says so on stdout, and goes on once
the test has sent the signal: the signal always arrives in that phase."""

from __future__ import annotations

import csv
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from faulty_envs import python_with_tests_path

from coltra.trainers import PPOCrowdTrainer

PAUSE_IN_PHASE = r"""
import sys, time
from pathlib import Path
from coltra.cli import main
from coltra.collectors import CrowdCollector
from coltra.policy_optimization import CrowdPPOptimizer

phase, at_call, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
owner, name = (CrowdCollector, "collect")
if phase == "update":
    owner, name = CrowdPPOptimizer, "train_on_data"
real = getattr(owner, name)
calls = [0]

def paused(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == at_call:
        print(f"in {phase}", flush=True)
        deadline = time.monotonic() + 300  # the test's own time limit comes first
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return real(self, *args, **kwargs)

setattr(owner, name, paused)
sys.exit(main(["train", *sys.argv[4:]]))
"""

COPIES, STEPS = 2, 8
PHASES = ("collect", "update")
CONFIG = {
    "trainer": {
        "name": "signals",
        "steps": STEPS,
        "iterations": 1000,
        "save_every": 1000,  # only the signal makes a checkpoint
        "seed": 5,
    },
    "ppo": {"lr": 1e-2, "epochs": 2, "num_minibatches": 2},
    "model": {"hidden_sizes": [8]},
    "env": {"kind": "probe", "env_name": "action", "workers": COPIES, "backend": "inprocess"},
}


class Run(NamedTuple):
    process: subprocess.Popen[str]
    run_dir: Path
    go: Path  # created once the signal is sent: the paused phase goes on


Case = tuple[signal.Signals, str]
CASES = [(signum, phase) for signum in (signal.SIGINT, signal.SIGTERM) for phase in PHASES]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[Case, Run]]:
    """All four runs, started together so their start-ups (importing torch) overlap; each
    pauses in its phase until its test signals it."""
    started: dict[Case, Run] = {}
    try:
        for signum, phase in CASES:
            directory = tmp_path_factory.mktemp(f"{signum.name}_{phase}")
            config_path = directory / "config.yaml"
            config_path.write_text(yaml.safe_dump(CONFIG))
            run_dir, go = directory / "run", directory / "go"
            process = python_with_tests_path(
                PAUSE_IN_PHASE, phase, 2, go, "-c", config_path, "--run-dir", run_dir
            )
            started[(signum, phase)] = Run(process, run_dir, go)
        yield started
    finally:
        for run in started.values():
            run.process.kill()
            run.process.wait()


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("signum", "phase"), CASES, ids=[f"{s.name}-{p}" for s, p in CASES])
def test_a_signal_saves_a_checkpoint_exits_and_resume_continues_the_counters(
    runs: dict[Case, Run], signum: signal.Signals, phase: str
) -> None:
    process, run_dir, go = runs[(signum, phase)]
    assert process.stdout is not None
    assert process.stdout.readline() == f"in {phase}\n"  # inside iteration 2's phase
    process.send_signal(signum)
    go.touch()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert f"stopped by {signum.name} at iteration 2" in err
    assert "Interrupted at iteration 2" in out
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "iter_000002"
    assert not list(checkpoints.glob(".*.tmp"))

    with PPOCrowdTrainer.resume(run_dir) as trainer:
        assert trainer.counters.iteration == trainer.optimizer.iteration == 2
        assert trainer.counters.env_steps == 2 * COPIES * STEPS
        summary = trainer.train(1)
    assert summary["iterations"] == 3 and summary["env_steps"] == 3 * COPIES * STEPS
    with (run_dir / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["iteration"]) for row in rows] == [1, 2, 3]
    assert [float(row["charts/env_steps"]) for row in rows] == [16, 32, 48]


TRAIN_WITH_FAULTY_PROBE = r"""
import sys
from faulty_envs import FaultyProbeEnv
from coltra.cli import main
from coltra.envs.probe_envs import PROBE_ENVS

PROBE_ENVS["faulty"] = FaultyProbeEnv
sys.exit(main(["train", *sys.argv[1:]]))
"""


def _interrupt_the_evaluation(*args: str | Path) -> tuple[float, str, str, int]:
    """Run `coltra train ARGS`, send SIGINT once it starts evaluating; returns the seconds
    from the signal to the exit, stdout, stderr and the exit code."""
    import time

    process = python_with_tests_path(TRAIN_WITH_FAULTY_PROBE, *args)
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("evaluating over"):
            break
    else:
        process.wait()
        raise AssertionError("the run never evaluated: " + "".join(lines))
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    return time.monotonic() - sent, out, "".join(lines) + err, process.returncode


@pytest.mark.timeout(120)
def test_ctrl_c_during_the_final_evaluation_stops_at_once_and_keeps_the_checkpoint(
    tmp_path: Path,
) -> None:
    """Issue 12 (f): Ctrl-C during the end-of-run evaluation waited for it to finish (39 s
    on CarRacing). Here an evaluation episode would take ~60 s: 3000 steps of 20 ms."""
    from faulty_envs import run_config

    run_dir = tmp_path / "run"
    config_path = tmp_path / "config.yaml"
    slow = run_config(run_dir, episode_length=3000, sleep=0.02, trainer={"eval_episodes": 1})
    slow.update({"trainer": {"iterations": 1, "progress": True}}).to_yaml(config_path)

    seconds, out, err, code = _interrupt_the_evaluation("-c", config_path)
    assert code == 130, err
    assert seconds < 10, f"took {seconds:.1f} s to stop"  # ~0.1 s on a quiet machine
    assert "evaluation stopped; the checkpoint of the last iteration is saved" in err
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "iter_000001"
    assert "Interrupted at iteration 1" in out
    (hint,) = [line for line in err.splitlines() if line.startswith("resume with: ")]
    command = hint.removeprefix("resume with: ").split()
    assert command == ["coltra", "train", "--resume", str(run_dir), "-i", "2"]

    # The hint works as printed: it trains iteration 2 (and evaluates again, stopped again).
    seconds, out, err, code = _interrupt_the_evaluation(*command[2:])
    assert code == 130 and seconds < 10, err
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "iter_000002"
