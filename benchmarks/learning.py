"""How fast does Coltra's own loop solve CartPole-v1 and Pendulum-v1?

For each seed: train with the library's collector and optimizer; once the mean return of
the last 20 training episodes is within reach of the target (``EVAL_FROM`` of the way
there), evaluate 20 deterministic episodes on a separate env after every iteration; the
task is solved when that evaluation reaches the target. Prints the env
steps and wall time (training only; evaluations are timed apart) to solve, per seed, then a
table and one JSON line.

    python benchmarks/learning.py                      # both tasks, 3 seeds
    python benchmarks/learning.py --env CartPole-v1 --seeds 3 --steps 100000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import yaml

from coltra.agents import CAgent, DAgent
from coltra.collectors import CrowdCollector
from coltra.envs import MultiGymEnv
from coltra.evaluation import evaluate
from coltra.groups import HomogeneousGroup
from coltra.models import MLPModel
from coltra.policy_optimization import CrowdPPOptimizer

#: Per task: target, envs, steps per env per iteration, PPO and model settings.
TASKS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {
        "target": 475.0,
        "envs": 8,
        "steps": 128,
        "max_steps": 100_000,
        "ppo": {"lr": 1e-3, "ent_coef": 0.0},
        "model": {},
    },
    "Pendulum-v1": {
        "target": -200.0,
        "envs": 8,
        "steps": 256,
        "max_steps": 400_000,
        "ppo": {
            "lr": 1e-3,
            "gamma": 0.9,
            "gae_lambda": 0.95,
            "epochs": 10,
            "num_minibatches": 32,
        },
        "model": {"sigma0": 0.5},
    },
}
WINDOW = 20
#: Evaluate once the training return has come this fraction of the way from the start.
EVAL_FROM = 0.7


@dataclass
class SeedResult:
    env: str
    seed: int
    solved: bool
    env_steps: int  # to solve (or all steps when not solved)
    wall_time_s: float  # training time, evaluations excluded
    final_eval: float  # mean return of the last deterministic evaluation
    sps: float


def run(
    env_name: str, seed: int, max_steps: int | None, ppo_overrides: dict[str, Any]
) -> SeedResult:
    task = TASKS[env_name]
    budget = max_steps or task["max_steps"]
    torch.manual_seed(seed)
    env = MultiGymEnv.get_venv(task["envs"], env_name=env_name, seed=seed)
    eval_env = MultiGymEnv.get_venv(4, env_name=env_name)
    model = MLPModel(
        task["model"], observation_space=env.observation_space, action_space=env.action_space
    )
    agents = HomogeneousGroup(DAgent(model) if model.discrete else CAgent(model))
    optimizer = CrowdPPOptimizer(agents, {**task["ppo"], "seed": seed, **ppo_overrides})
    collector = CrowdCollector(agents, env, seed=seed)

    returns: list[float] = []
    steps, train_time, final_eval, solved = 0, 0.0, float("nan"), False
    start_return: float | None = None
    while steps < budget:
        start = time.perf_counter()
        data, metrics, (agents_count, num_steps) = collector.collect(task["steps"])
        optimizer.train_on_data(data)
        train_time += time.perf_counter() - start
        steps += agents_count * num_steps
        returns.extend(metrics["episode_return"].tolist())
        if len(returns) < WINDOW:
            continue
        recent = float(np.mean(returns[-WINDOW:]))
        start_return = recent if start_return is None else start_return
        if recent >= start_return + EVAL_FROM * (task["target"] - start_return):
            final_eval = float(evaluate(agents, eval_env, WINDOW, seed=seed + 1000).mean())
            if final_eval >= task["target"]:
                solved = True
                break
    if not solved:
        final_eval = float(evaluate(agents, eval_env, WINDOW, seed=seed + 1000).mean())
    env.close()
    eval_env.close()
    return SeedResult(env_name, seed, solved, steps, train_time, final_eval, steps / train_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=None, help="env step budget per seed")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument(
        "--ppo", nargs="*", default=[], metavar="KEY=VALUE", help="PPO config overrides"
    )
    args = parser.parse_args()
    overrides = {key: yaml.safe_load(value) for key, value in (a.split("=", 1) for a in args.ppo)}
    torch.set_num_threads(args.torch_threads)

    names = list(TASKS) if args.env == "all" else [args.env]
    results = [
        run(name, seed, args.steps, overrides) for name in names for seed in range(args.seeds)
    ]

    header = ("env", "seed", "solved", "env steps", "wall s", "SPS", "eval")
    print("{:<13} {:>4} {:>6} {:>10} {:>7} {:>7} {:>8}".format(*header))
    for r in results:
        print(
            f"{r.env:<13} {r.seed:>4} {r.solved!s:>6} {r.env_steps:>10} "
            f"{r.wall_time_s:>7.1f} {r.sps:>7.0f} {r.final_eval:>8.1f}"
        )
    summary = {
        "benchmark": "learning",
        "machine": {"python": platform.python_version(), "torch": torch.__version__},
        "torch_threads": args.torch_threads,
        "ppo_overrides": overrides,
        "results": [asdict(r) for r in results],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
