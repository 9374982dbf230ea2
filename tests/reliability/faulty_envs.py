"""Env copies that misbehave on cue, and small helpers shared by the reliability tests.

The classes live at module level so that they pickle into subprocess workers. A copy knows
it is the bad one by the seed of its first reset (copy ``i`` of a run seeded ``s`` is seeded
``s + i``), so the same env rebuilt with another seed (a resumed run, an env restarted after
a crash) behaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coltra.buffers import Action
from coltra.configs import RunConfig
from coltra.envs.base import StepBatch
from coltra.envs.probe_envs import ActionRewardEnv

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

SEED = 1000  # the trainer seed of every test run: copy i is seeded SEED + i
BAD_COPY = 1
BAD_SEED = SEED + BAD_COPY
BAD_AGENT = f"agent_0&env={BAD_COPY}"
STEPS = 4  # env steps per copy per iteration in the test configs
AT_STEP = 10  # the bad copy misbehaves at its 10th step: in iteration 3 (steps 9 to 12)
EPISODE = 4  # episode length: step 10 is inside an episode, not at its end

FAULTS = (
    "none",
    "raise_step",  # raises ValueError in step
    "raise_reset",  # raises ValueError in the first reset after AT_STEP steps
    "exit",  # the worker process dies: os._exit(3)
    "sigkill",  # the worker process is killed: SIGKILL
    "hang",  # sleeps for ten minutes in step
    "nan_obs",
    "inf_obs",
    "nan_reward",
    "inf_reward",
)


class FaultyProbeEnv(ActionRewardEnv):
    """``ActionRewardEnv`` (reward 1 for action 1) whose bad copy misbehaves at its
    ``at_step``-th step (counted over the copy's life, from 1) with ``fault`` (see FAULTS).

    ``bad_seed`` picks the bad copy by the seed of its first reset; None makes every copy
    bad. ``bad_agent`` is the agent whose observation or reward turns NaN/inf. ``sleep``
    slows every step down (seconds). ``protected_pid`` is a process that must never be
    killed: a fault that would kill the process refuses to run there (the in-process
    backend would otherwise kill the test runner).
    """

    def __init__(
        self,
        num_agents: int = 1,
        *,
        fault: str = "none",
        at_step: int = AT_STEP,
        bad_seed: int | None = BAD_SEED,
        bad_agent: int = 0,
        episode_length: int = EPISODE,
        sleep: float = 0.0,
        protected_pid: int = 0,
        truncate: bool = False,
        continuous: bool = False,
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        super().__init__(
            num_agents, episode_length=episode_length, truncate=truncate, continuous=continuous
        )
        self.fault = fault
        self.at_step = at_step
        self.bad_seed = bad_seed
        self.bad_agent = bad_agent
        self.sleep = sleep
        self.protected_pid = protected_pid
        self.bad = bad_seed is None
        self.life_steps = 0
        self.first_reset = True

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        if self.first_reset:
            self.first_reset = False
            self.bad = self.bad_seed is None or seed == self.bad_seed
        if self.bad and self.fault == "raise_reset" and self.life_steps >= self.at_step:
            raise ValueError(f"reset failure after {self.life_steps} steps")
        return super().reset_batch(seed)

    def step_batch(self, actions: Action) -> StepBatch:
        if self.sleep:
            time.sleep(self.sleep)
        self.life_steps += 1
        due = self.bad and self.life_steps == self.at_step
        if due and self.fault == "raise_step":
            raise ValueError(f"step failure at step {self.life_steps}")
        if due and self.fault in ("exit", "sigkill"):
            if os.getpid() == self.protected_pid:
                raise RuntimeError(f"fault {self.fault!r} would kill the test process itself")
            if self.fault == "exit":
                os._exit(3)
            os.kill(os.getpid(), signal.SIGKILL)
        if due and self.fault == "hang":
            time.sleep(600)
        batch = super().step_batch(actions)
        if due and self.fault.endswith(("_obs", "_reward")):
            value = np.nan if self.fault.startswith("nan") else np.inf
            if self.fault.endswith("_obs"):
                batch.obs.vector[self.bad_agent, 0] = value
            else:
                batch.reward[self.bad_agent] = value
        return batch


def run_config(
    run_dir: Path,
    fault: str = "none",
    *,
    backend: str = "inprocess",
    workers: int = 3,
    trainer: dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
    **env_kwargs: Any,
) -> RunConfig:
    """A tiny run on the faulty probe ("faulty" in PROBE_ENVS, see the register fixture):
    ``workers`` copies x STEPS steps per iteration, a checkpoint after every iteration."""
    kwargs: dict[str, Any] = {"fault": fault, "protected_pid": os.getpid(), **env_kwargs}
    return RunConfig.from_dict(
        {
            "trainer": {
                "name": "reliability",
                "run_dir": str(run_dir),
                "steps": STEPS,
                "iterations": 5,
                "save_every": 1,
                "progress": False,
                "seed": SEED,
                **(trainer or {}),
            },
            "ppo": {"lr": 1e-2, "epochs": 1, "num_minibatches": 1},
            "model": {"hidden_sizes": [8]},
            "env": {
                "kind": "probe",
                "env_name": "faulty",
                "workers": workers,
                "backend": backend,
                "env_kwargs": kwargs,
                **(env or {}),
            },
        }
    )


def python_with_tests_path(
    code: str, *args: str | int | Path, **kwargs: Any
) -> subprocess.Popen[str]:
    """``python -c code args`` in a new process that can import this module, with pipes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    env.pop("COLUMNS", None)
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=str(ROOT),
        **kwargs,
    )


def checkpoint_names(run_dir: Path) -> Sequence[str]:
    return sorted(path.name for path in (run_dir / "checkpoints").iterdir())
