"""Where each vectorisation backend pays off: collection throughput of the in-process,
subprocess and Ray backends on envs that cost real time per step.

Envs: ``BusyEnv`` (a probe whose step keeps the CPU busy for 1 ms or 10 ms, as a simulator
would) with 8 copies, and pettingzoo.sisl pursuit_v5 (8 pursuers) with 4 copies. For each
env: every copy in this process, 2 subprocess workers, and 1, 2 and 4 Ray actors on a local
Ray session (``ray_num_cpus`` 0.5 so that 4 actors fit 2 cores), the copies split evenly.
Each measurement is Coltra's collector (one batched forward per step, a 64x64 MLP policy,
one torch thread) gathering ``--steps`` env steps after a warm-up rollout; the PPO update is
the same whatever the backend, so it is left out. Also the round trip alone: one step of a
copy that costs nothing, per backend, in microseconds. Medians over ``--seeds`` interleaved
repeats. Prints a table and one JSON line.

    python benchmarks/backends.py                    # 3 repeats, ~10 minutes on 2 cores
    python benchmarks/backends.py --steps 256 --seeds 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from coltra.agents import DAgent
from coltra.buffers import Action
from coltra.collectors import CrowdCollector
from coltra.envs import MultiAgentEnv, PettingZooEnv
from coltra.envs.probe_envs import BusyEnv
from coltra.groups import HomogeneousGroup
from coltra.models import MLPModel

#: Env steps of every copy per collection (a rollout fragment).
ROLLOUT = 32
#: (name, copies, how to build ``copies`` copies on a backend)
ENVS: list[tuple[str, int, Callable[..., MultiAgentEnv]]] = [
    ("busy-1ms", 8, lambda **kw: BusyEnv.get_venv(step_cost=0.001, **kw)),
    ("busy-10ms", 8, lambda **kw: BusyEnv.get_venv(step_cost=0.010, **kw)),
    (
        "pursuit",
        4,
        lambda **kw: PettingZooEnv.get_venv(env_fn=_pursuit_fn(), **kw),
    ),
]
#: (name, backend, processes or actors); the copies are split evenly among them.
BACKENDS = [
    ("inprocess", "inprocess", 1),
    ("subprocess-2", "subprocess", 2),
    ("ray-1", "ray", 1),
    ("ray-2", "ray", 2),
    ("ray-4", "ray", 4),
]


def _pursuit_fn() -> Any:
    from pettingzoo.sisl import pursuit_v5

    return pursuit_v5.parallel_env


def build(
    make: Callable[..., MultiAgentEnv], copies: int, backend: str, workers: int, seed: int
) -> MultiAgentEnv:
    kwargs: dict[str, Any] = {
        "workers": workers,
        "envs_per_worker": copies // workers,
        "backend": backend,
        "seed": seed,
    }
    if backend == "ray":
        kwargs["ray_num_cpus"] = 0.5
    return make(**kwargs)


def collection_sps(env: MultiAgentEnv, budget: int, seed: int) -> float:
    """Env steps (of all copies) per second of Coltra's collector on ``env``."""
    torch.manual_seed(seed)
    model = MLPModel(
        {"hidden_sizes": [64, 64]},
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    # Lock-step on every backend: this measures the transport, not overlapped collection.
    collector = CrowdCollector(HomogeneousGroup(DAgent(model)), env, seed=seed, overlap=False)
    copies = int(getattr(env, "num_envs", 1))
    collector.collect(ROLLOUT)  # warm-up: workers started, first episodes under way
    steps, start = 0, time.perf_counter()
    while steps < budget:
        collector.collect(ROLLOUT)
        steps += ROLLOUT * copies
    return steps / (time.perf_counter() - start)


def round_trip_us(backend: str, workers: int, repeats: int = 200) -> float:
    """Microseconds per step of ``workers`` copies that cost nothing (one per worker)."""
    env = build(lambda **kw: BusyEnv.get_venv(step_cost=0.0, **kw), workers, backend, workers, 0)
    try:
        env.reset_batch()
        actions = Action(discrete=np.ones(len(env.agent_names), dtype=np.int64))
        for _ in range(10):
            env.step_batch(actions)
        start = time.perf_counter()
        for _ in range(repeats):
            env.step_batch(actions)
        return 1e6 * (time.perf_counter() - start) / repeats
    finally:
        env.close()


@dataclass
class Row:
    env: str
    backend: str
    workers: int
    sps: float  # median env steps per second
    runs: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4096, help="env steps timed per measurement")
    parser.add_argument("--seeds", type=int, default=3, help="repeats; medians are reported")
    parser.add_argument(
        "--env", choices=[name for name, _, _ in ENVS], action="append", help="only these envs"
    )
    args = parser.parse_args()
    envs = [env for env in ENVS if args.env is None or env[0] in args.env]
    if args.steps < 1 or args.seeds < 1:
        parser.error("--steps and --seeds must be >= 1")
    import ray  # the Ray backend joins this session instead of starting its own

    torch.set_num_threads(1)
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    started = time.perf_counter()
    trips = {
        name: round_trip_us(backend, workers)
        for name, backend, workers in BACKENDS
        if name != "inprocess"
    }
    trips["inprocess"] = round_trip_us("inprocess", 1)
    runs: dict[tuple[str, str], list[float]] = {}
    for seed in range(args.seeds):
        for env_name, copies, make in envs:
            shift = seed % len(BACKENDS)
            for name, backend, workers in BACKENDS[shift:] + BACKENDS[:shift]:
                env = build(make, copies, backend, workers, seed)
                try:
                    sps = collection_sps(env, args.steps, seed)
                finally:
                    env.close()
                runs.setdefault((env_name, name), []).append(sps)
                print(
                    f"  {env_name:<10} {name:<13} seed={seed} {sps:>9,.0f} env steps/s",
                    file=sys.stderr,
                    flush=True,
                )
    ray.shutdown()
    rows = [
        Row(env_name, name, workers, statistics.median(runs[env_name, name]), runs[env_name, name])
        for env_name, _, _ in envs
        for name, _, workers in BACKENDS
    ]
    print(f"{'env':<10} {'backend':<13} {'env steps/s':>12} {'vs subprocess-2':>16}")
    for row in rows:
        base = next(r.sps for r in rows if (r.env, r.backend) == (row.env, "subprocess-2"))
        print(f"{row.env:<10} {row.backend:<13} {row.sps:>12,.0f} {row.sps / base:>15.2f}x")
    print()
    print("round trip of one step (copies that cost nothing, one per worker):")
    for name, value in trips.items():
        print(f"  {name:<13} {value:>8,.0f} us")
    summary = {
        "benchmark": "backends",
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ray": ray.__version__,
            "cpus": os.cpu_count(),
        },
        "settings": {"steps": args.steps, "seeds": args.seeds, "rollout": ROLLOUT},
        "wall_time_s": time.perf_counter() - started,
        "round_trip_us": trips,
        "rows": [asdict(row) for row in rows],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
