"""Does a recurrent policy solve CartPole-v1 with the velocities hidden, as SB3-contrib's
RecurrentPPO does with the zoo's settings, in the same budget?

The task: CartPole-v1 observing only the cart's position and the pole's angle
(``coltra.envs.gym_wrappers.SelectObservation``, indices 0 and 2; SB3-zoo's
CartPoleNoVel-v1). Velocities must be inferred from what was seen, so a feed-forward policy
cannot balance the pole for long. For each seed, three runs of ``--steps`` env steps
(default 100k, the zoo's budget, where its RecurrentPPO scores 500):

- ``coltra-lstm``: ``scripts/configs/cartpole_memory.yaml`` (an LSTM policy and critic);
- ``coltra-mlp``: the same config with ``model.recurrent: none`` (what memory adds);
- ``sb3-lstm``: sb3-contrib RecurrentPPO with the zoo's CartPoleNoVel-v1 hyperparameters
  (8 envs x 32 steps, batch 256, 20 epochs, gamma 0.98, lambda 0.8, lr and clip range
  linear from 1e-3 and 0.2, LSTM 64 for actor and critic, [64] ReLU layers, no orthogonal
  init, VecNormalize on observations).

Differences that remain: SB3's MLP layers come after the LSTM, Coltra's before it; SB3
anneals the clip range, Coltra keeps 0.2; SB3 splits sequences at episode starts, Coltra
cuts fixed pieces and resets the state inside them (the same computation). Each run ends
with 20 deterministic episodes on 4 fresh copies (observation statistics frozen). Prints
per seed the final evaluation and the wall time of each run, then one JSON line.

    python benchmarks/memory.py                  # seeds 0-2, all three runs
    python benchmarks/memory.py --seeds 1 --steps 20000 --runs coltra-lstm
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coltra.configs import RunConfig
from coltra.envs.gym_wrappers import SelectObservation
from coltra.trainers import PPOCrowdTrainer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "scripts" / "configs" / "cartpole_memory.yaml"
RUNS = ("coltra-lstm", "coltra-mlp", "sb3-lstm")
EVAL_EPISODES = 20
EVAL_COPIES = 4
KEPT = [0, 2]  # cart position, pole angle
ZOO_SCORE = 500.0


@dataclass
class Result:
    run: str
    seed: int
    env_steps: int
    final_eval: float  # mean return of EVAL_EPISODES deterministic episodes
    final_eval_std: float
    wall_time_s: float  # training and the final evaluation


def coltra_run(run: str, seed: int, steps: int, run_dir: Path) -> Result:
    config = RunConfig.from_yaml(CONFIG)
    iterations = -(-steps // (config.trainer.steps * 8))
    overrides: dict[str, Any] = {
        "trainer": {
            "seed": seed,
            "iterations": iterations,
            "run_dir": str(run_dir),
            "progress": False,
            "eval_every": None,
            "eval_episodes": EVAL_EPISODES,
            "save_every": iterations,
        }
    }
    if run == "coltra-mlp":
        overrides["model"] = {"recurrent": "none"}
    config = config.update(overrides)
    started = time.perf_counter()
    with PPOCrowdTrainer.from_config(config) as trainer:
        summary = trainer.train()
    return Result(
        run,
        seed,
        int(summary["env_steps"]),
        float(summary["eval/return_mean"]),
        float(summary["eval/return_std"]),
        time.perf_counter() - started,
    )


def sb3_run(seed: int, steps: int) -> Result:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    def envs(copies: int, env_seed: int) -> Any:
        return make_vec_env(
            "CartPole-v1",
            n_envs=copies,
            seed=env_seed,
            wrapper_class=SelectObservation,
            wrapper_kwargs={"indices": KEPT},
        )

    started = time.perf_counter()
    train_env = VecNormalize(envs(8, seed), norm_obs=True, norm_reward=False)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        train_env,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gamma=0.98,
        gae_lambda=0.8,
        ent_coef=0.0,
        learning_rate=lambda remaining: 1e-3 * remaining,
        clip_range=lambda remaining: 0.2 * remaining,
        policy_kwargs={
            "ortho_init": False,
            "activation_fn": torch.nn.ReLU,
            "lstm_hidden_size": 64,
            "enable_critic_lstm": True,
            "net_arch": {"pi": [64], "vf": [64]},
        },
        seed=seed,
        device="cpu",
    )
    model.learn(total_timesteps=steps)
    eval_env = VecNormalize(envs(EVAL_COPIES, seed + 1000), training=False, norm_reward=False)
    eval_env.obs_rms = train_env.obs_rms
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
    return Result(
        "sb3-lstm",
        seed,
        int(model.num_timesteps),
        float(mean),
        float(std),
        time.perf_counter() - started,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds first..first+N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    if "sb3-lstm" in args.runs:
        try:
            import sb3_contrib  # noqa: F401
        except ImportError:
            print("sb3-lstm needs sb3-contrib: pip install 'coltra[bench]'", file=sys.stderr)
            return 2
    torch.set_num_threads(args.torch_threads)
    print(
        f"CartPole-v1, velocities hidden; {args.steps:,} env steps per run; torch threads "
        f"{args.torch_threads}; Python {platform.python_version()}, torch {torch.__version__}"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for run in args.runs:
                if run == "sb3-lstm":
                    result = sb3_run(seed, args.steps)
                else:
                    result = coltra_run(run, seed, args.steps, Path(scratch) / f"{run}_{seed}")
                results.append(result)
                print(
                    f"seed {seed} {run:12s} final eval {result.final_eval:6.1f} +- "
                    f"{result.final_eval_std:5.1f} after {result.env_steps:,} steps, "
                    f"{result.wall_time_s:6.1f} s",
                    flush=True,
                )
    print()
    print("| run | seeds | final eval per seed | mean | wall time (mean) | zoo |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for run in args.runs:
        mine = [r for r in results if r.run == run]
        scores = " / ".join(f"{r.final_eval:.1f}" for r in mine)
        mean = float(np.mean([r.final_eval for r in mine]))
        wall = float(np.mean([r.wall_time_s for r in mine]))
        zoo = f"{ZOO_SCORE:.0f}" if run == "sb3-lstm" else ""
        print(f"| {run} | {len(mine)} | {scores} | {mean:.1f} | {wall:.0f} s | {zoo} |")
    print(json.dumps({"steps": args.steps, "results": [asdict(r) for r in results]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
