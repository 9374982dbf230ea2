"""How fast do Coltra's own loop and Stable-Baselines3 PPO solve CartPole-v1 and Pendulum-v1?

For each seed, Coltra (CrowdCollector + CrowdPPOptimizer) and then SB3 PPO train with the
same hyperparameters and seeds. After every iteration (a rollout and an update), once the
mean return of the last 20 training episodes is ``EVAL_FROM`` of the way from its first
value to the target, 20 deterministic episodes are evaluated on a separate 4-copy env (seed
+ 1000); the task is solved when that evaluation reaches the target. Prints env steps and
wall time to solve (training only; evaluations are timed apart) per seed and library, the
Coltra/SB3 ratios, per-env medians with PASS/MISS for "Coltra's solve wall time < SB3's",
then one JSON line.

    python benchmarks/learning.py                      # both tasks, 3 seeds, Coltra and SB3
    python benchmarks/learning.py --env CartPole-v1 --seeds 3 --steps 100000
    python benchmarks/learning.py --peers none         # Coltra only
    python benchmarks/learning.py --env Pendulum-v1 --seeds 5 --eval-every 10   # whole budget
    python benchmarks/learning.py --env simple_speaker_listener_v4 --seeds 3   # multi-agent

``--eval-every N`` trains the whole budget instead of stopping at the first solve, and
evaluates every N iterations and at the end: the seed is solved at its first evaluation
that reaches the target (env steps and wall time to that point, as without the option), and
``final_eval`` / "held" tell whether the policy at the end of the budget still does.

The multi-agent tasks (mpe2 simple_speaker_listener_v4 and simple_tag_v3, magent2 battle_v4)
run in ``benchmarks/multiagent.py``, which this script hands them to (see its docstring).

Settings that cannot be matched exactly in SB3 (see ``sb3_kwargs``):

- Value clipping: SB3 takes the loss of the clipped value alone; Coltra by default (CleanRL)
  takes the larger of the clipped and unclipped losses (``--ppo value_clip=clipped`` is
  SB3's).
- SB3's value loss has no 1/2 factor, so SB3 gets ``vf_coef / 2`` (equal gradients).
- Random streams differ (weight init, minibatch shuffling, action sampling): the same seed
  gives the same env seeds (copy i: seed + i) but not the same trajectories.
- When the batch does not split evenly into minibatches, Coltra drops the remainder each
  epoch and SB3 trains on it as a smaller last minibatch (not the case in ``TASKS``).
- ``ent_coef_final``, non-default head gains, a non-orthogonal init other than PyTorch's own
  and continuous modes other than ``logstd`` have no SB3 counterpart: refused.
- SB3's clock starts after ``learn()`` has reset the envs; Coltra's first reset is timed.
  After solving, SB3 takes one more vector step before ``learn()`` returns: neither timed
  nor counted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from coltra.agents import CAgent, DAgent
from coltra.collectors import CrowdCollector
from coltra.configs import MLPConfig, PPOConfig
from coltra.envs import MultiGymEnv
from coltra.evaluation import episodes_per_row, evaluate
from coltra.groups import HomogeneousGroup
from coltra.models import MLPModel
from coltra.policy_optimization import CrowdPPOptimizer

if TYPE_CHECKING:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecEnv

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
    # scripts/configs/pendulum.yaml (issue 17): observation normalisation, return-based
    # reward scaling, gSDE (SB3's use_sde for the peer) and lr annealed over the 200k-step
    # budget.
    "Pendulum-v1": {
        "target": -200.0,
        "envs": 8,
        "steps": 256,
        "max_steps": 200_000,
        "ppo": {
            "lr": 1e-3,
            "gamma": 0.9,
            "gae_lambda": 0.95,
            "epochs": 10,
            "num_minibatches": 32,
            "reward_scaling": True,
            "value_clip": "clipped",  # SB3's clip_range_vf, exactly
            "anneal_lr": True,
            "anneal_iterations": 98,  # 200k env steps / (8 x 256)
        },
        "model": {"sigma0": 1.0, "obs_norm": True, "continuous_mode": "sde", "sde_every": 4},
    },
}
WINDOW = 20
#: Evaluate once the training return has come this fraction of the way from the start.
EVAL_FROM = 0.7
EVAL_COPIES = 4
LIBRARIES = ("coltra", "sb3")
TARGET = "Coltra solve wall time < SB3's"
SB3_ACTIVATIONS = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "leaky_relu": torch.nn.LeakyReLU,
    "elu": torch.nn.ELU,
    "gelu": torch.nn.GELU,
}


@dataclass
class SeedResult:
    env: str
    seed: int
    library: str
    solved: bool
    env_steps: int  # to solve (or all steps when not solved)
    wall_time_s: float  # training time, evaluations excluded
    final_eval: float  # mean return of the last deterministic evaluation
    sps: float
    evals: list[tuple[int, float]] = field(default_factory=list)  # (env steps, return)

    @property
    def solve_time(self) -> float:
        return self.wall_time_s if self.solved else math.inf

    @property
    def solve_steps(self) -> float:
        return self.env_steps if self.solved else math.inf


@dataclass
class SolveCheck:
    """The solve criterion and training clock, shared by both libraries' loops."""

    target: float
    evaluate: Callable[[], float]  # mean return of WINDOW deterministic episodes
    eval_every: int | None = None  # whole budget, an evaluation every this many iterations
    iterations: int = 0
    train_time: float = 0.0
    final_eval: float = math.nan
    solved: bool = False
    start_return: float | None = None
    solved_at: tuple[int, float] | None = None  # (iterations, train_time) at the first solve
    evals: list[tuple[int, float]] = field(default_factory=list)  # (iterations, return)
    _resumed: float | None = None

    @property
    def stop(self) -> bool:
        """Training ends: solved, unless the whole budget was asked for."""
        return self.solved and self.eval_every is None

    def _evaluate(self) -> float:
        self.final_eval = self.evaluate()
        self.evals.append((self.iterations, self.final_eval))
        if self.final_eval >= self.target and not self.solved:
            self.solved, self.solved_at = True, (self.iterations, self.train_time)
        return self.final_eval

    def resume(self) -> None:
        self._resumed = time.perf_counter()

    def pause(self) -> None:
        assert self._resumed is not None, "pause() without resume()"
        self.train_time += time.perf_counter() - self._resumed
        self._resumed = None

    def after_iteration(self, returns: Sequence[float]) -> bool:
        """Count an iteration (clock paused); evaluate if the last WINDOW training returns
        are close enough to the target (with ``eval_every``, every that many iterations
        instead). True once training should stop."""
        self.iterations += 1
        if self.eval_every is not None:
            if self.iterations % self.eval_every == 0:
                self._evaluate()
            return False
        if len(returns) < WINDOW:
            return False
        recent = float(np.mean(returns[-WINDOW:]))
        self.start_return = recent if self.start_return is None else self.start_return
        if recent >= self.start_return + EVAL_FROM * (self.target - self.start_return):
            self._evaluate()
        return self.solved

    def result(self, env: str, seed: int, library: str, batch: int) -> SeedResult:
        """The outcome, with a final evaluation when the budget ran out (unsolved, or
        with ``eval_every`` unless its last iteration was evaluated)."""
        sps = self.iterations * batch / self.train_time if self.train_time > 0 else math.nan
        if not self.stop and (not self.evals or self.evals[-1][0] != self.iterations):
            self._evaluate()
        iterations, train_time = self.solved_at or (self.iterations, self.train_time)
        evals = [(done * batch, value) for done, value in self.evals]
        return SeedResult(
            env, seed, library, self.solved, iterations * batch, train_time, self.final_eval,
            sps, evals,
        )  # fmt: skip


def ppo_config(env_name: str, seed: int, overrides: dict[str, Any]) -> PPOConfig:
    return PPOConfig.from_dict({**TASKS[env_name]["ppo"], "seed": seed, **overrides})


def run_coltra(
    env_name: str, seed: int, budget: int, ppo: PPOConfig, eval_every: int | None = None
) -> SeedResult:
    task = TASKS[env_name]
    torch.manual_seed(seed)
    env = MultiGymEnv.get_venv(task["envs"], env_name=env_name, seed=seed)
    eval_env = MultiGymEnv.get_venv(EVAL_COPIES, env_name=env_name)
    model = MLPModel(
        task["model"], observation_space=env.observation_space, action_space=env.action_space
    )
    agents = HomogeneousGroup(DAgent(model) if model.discrete else CAgent(model))
    optimizer = CrowdPPOptimizer(agents, ppo)
    collector = CrowdCollector(agents, env, seed=seed)
    check = SolveCheck(
        task["target"],
        lambda: float(evaluate(agents, eval_env, WINDOW, seed=seed + 1000).mean()),
        eval_every,
    )

    batch = task["envs"] * task["steps"]
    returns: list[float] = []
    while check.iterations * batch < budget:
        check.resume()
        data, metrics, shape = collector.collect(task["steps"])
        optimizer.train_on_data(data)
        check.pause()
        assert shape[0] * shape[1] == batch, shape
        returns.extend(metrics["episode_return"].tolist())
        if check.after_iteration(returns[-WINDOW:]):
            break
    result = check.result(env_name, seed, "coltra", batch)
    env.close()
    eval_env.close()
    return result


def sb3_kwargs(task: dict[str, Any], ppo: PPOConfig, budget: int) -> dict[str, Any]:
    """SB3 ``PPO(...)`` keywords equal to ``ppo`` and the task's model for Coltra."""
    model = MLPConfig.from_dict(task["model"])
    unsupported = {
        "ent_coef_final": ppo.ent_coef_final is not None,  # SB3's ent_coef is a constant
        "model.initializer": model.initializer not in ("orthogonal", "default"),
        "model.policy_head_gain": model.policy_head_gain != 0.01,  # SB3's fixed gains
        "model.value_head_gain": model.value_head_gain != 1.0,
        "model.continuous_mode": model.continuous_mode not in ("logstd", "sde"),
        "model.shared_backbone": model.shared_backbone,
    }
    if any(unsupported.values()):
        names = ", ".join(key for key, bad in unsupported.items() if bad)
        raise ValueError(f"no SB3 counterpart for the settings {names}")
    batch = task["envs"] * task["steps"]
    learning_rate: float | Callable[[float], float] = ppo.lr
    if ppo.anneal_lr:
        anneal = ppo.anneal_iterations or 1  # validated by PPOConfig

        def learning_rate(remaining: float) -> float:
            # SB3 passes 1 - timesteps / budget after rollout k (1-based); Coltra's update k
            # uses lr * (1 - (k - 1) / anneal_iterations).
            update = round((1.0 - remaining) * budget / batch) - 1
            return ppo.lr * (1.0 - min(max(update, 0) / anneal, 1.0))

    sde = model.continuous_mode == "sde"
    return {
        # gSDE as Coltra's: sigma per (feature, action), features detached, matrices held
        # for sde_every steps (SB3's defaults full_std=True, learn_features=False).
        "use_sde": sde,
        "sde_sample_freq": model.sde_every if sde else -1,
        "n_steps": task["steps"],
        # Coltra's minibatch_size wins over num_minibatches; SB3 takes a sample count.
        "batch_size": ppo.minibatch_size or batch // ppo.num_minibatches,
        "n_epochs": ppo.epochs,
        "learning_rate": learning_rate,
        "gamma": ppo.gamma,
        "gae_lambda": ppo.gae_lambda,
        "clip_range": ppo.clip_coef,
        # CleanRL clips the value change with the policy's clip_coef; SB3's default is None.
        # SB3's clipping is Coltra's value_clip "clipped" (by default Coltra takes the max).
        "clip_range_vf": ppo.clip_coef if ppo.clip_vloss else None,
        "normalize_advantage": ppo.norm_adv,  # per minibatch, std + 1e-8: as Coltra
        "ent_coef": ppo.ent_coef,
        # Coltra: vf_coef * 0.5 * (V - R)^2; SB3: vf_coef * (V - R)^2.
        "vf_coef": ppo.vf_coef / 2,
        "max_grad_norm": ppo.max_grad_norm,  # one global norm over both networks: as Coltra
        # SB3 stops an update once approx KL > 1.5 * target_kl (same estimator, same place).
        "target_kl": None if ppo.target_kl is None else ppo.target_kl / 1.5,
        "policy_kwargs": {
            "net_arch": {"pi": list(model.hidden_sizes), "vf": list(model.hidden_sizes)},
            "activation_fn": SB3_ACTIVATIONS[model.activation],
            # SB3's orthogonal gains are Coltra's defaults: sqrt(2) hidden, 0.01 policy
            # head, 1 value head, zero biases. "default" is PyTorch's init in both.
            "ortho_init": model.initializer == "orthogonal",
            # Coltra's sigma0: the initial std of actions (logstd) or of each gSDE weight.
            "log_std_init": math.log(model.sigma0),
            "optimizer_kwargs": {"eps": ppo.adam_eps},
        },
    }


def sb3_evaluate(model: PPO, env: VecEnv, seed: int, max_steps: int = 1_000_000) -> float:
    """Mean return of WINDOW episodes chosen as ``coltra.evaluation.evaluate`` chooses them:
    dealt out over the copies in order, each copy's episodes in the order they end."""
    env.seed(seed)
    obs = env.reset()
    copies = env.num_envs
    needed = episodes_per_row(WINDOW, copies)
    running = np.zeros(copies, dtype=np.float64)
    finished: list[list[float]] = [[] for _ in range(copies)]
    for _ in range(max_steps):
        actions, _ = model.predict(obs, deterministic=True)  # type: ignore[arg-type]
        obs, rewards, dones, _ = env.step(actions)
        running += rewards
        for copy in np.flatnonzero(dones):
            finished[copy].append(float(running[copy]))
            running[copy] = 0.0
        if all(len(done) >= n for done, n in zip(finished, needed)):
            return float(np.mean([r for done, n in zip(finished, needed) for r in done[:n]]))
    raise RuntimeError(f"evaluation did not see {WINDOW} episodes end in {max_steps} steps")


def run_sb3(
    env_name: str, seed: int, budget: int, ppo: PPOConfig, eval_every: int | None = None
) -> SeedResult:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    task = TASKS[env_name]
    env = make_vec_env(env_name, n_envs=task["envs"], seed=seed, vec_env_cls=DummyVecEnv)
    eval_env = make_vec_env(env_name, n_envs=EVAL_COPIES, vec_env_cls=DummyVecEnv)
    obs_norm = bool(task["model"].get("obs_norm", False))
    if obs_norm or ppo.reward_scaling:  # Coltra's obs_norm / reward_scaling: VecNormalize's
        from stable_baselines3.common.vec_env import VecNormalize

        env = VecNormalize(env, norm_obs=obs_norm, norm_reward=ppo.reward_scaling, gamma=ppo.gamma)
        eval_env = VecNormalize(eval_env, training=False, norm_obs=obs_norm, norm_reward=False)

        def evaluate_frozen() -> float:
            if obs_norm:  # VecNormalize has no obs_rms when it leaves observations alone
                eval_env.obs_rms = env.obs_rms  # the training statistics, frozen
            return sb3_evaluate(model, eval_env, seed + 1000)

    model = PPO(
        "MlpPolicy",
        env,
        stats_window_size=WINDOW,  # ep_info_buffer: the last WINDOW training episodes
        seed=seed,
        device="cpu",
        verbose=0,
        **sb3_kwargs(task, ppo, budget),
    )
    check = SolveCheck(
        task["target"],
        evaluate_frozen
        if obs_norm or ppo.reward_scaling
        else lambda: sb3_evaluate(model, eval_env, seed + 1000),
        eval_every,
    )

    class SolveCallback(BaseCallback):
        """Runs ``check`` after each update: at the next rollout's start, or at the end."""

        updates = 0  # a finished rollout is always followed by an update

        def _after_update(self) -> bool:
            if check.iterations == self.updates:
                return False
            check.pause()
            return check.after_iteration([info["r"] for info in self.model.ep_info_buffer or ()])

        def _on_training_start(self) -> None:
            check.resume()

        def _on_rollout_start(self) -> None:
            if self.updates and not self._after_update():
                check.resume()

        def _on_rollout_end(self) -> None:
            self.updates += 1

        def _on_step(self) -> bool:
            return not check.stop  # False stops learn() at the first step after solving

        def _on_training_end(self) -> None:
            self._after_update()

    model.learn(total_timesteps=budget, callback=SolveCallback())
    result = check.result(env_name, seed, "sb3", task["envs"] * task["steps"])
    env.close()
    eval_env.close()
    return result


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if values else math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def _show(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "-"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summarise(env: str, results: list[SeedResult], whole_budget: bool = False) -> dict[str, Any]:
    """Medians over seeds of the solve wall time and env steps (inf when unsolved); after
    whole-budget runs, also how many seeds end at the target ("held")."""
    rows = {lib: [r for r in results if r.env == env and r.library == lib] for lib in LIBRARIES}
    wall = {lib: _median([r.solve_time for r in rows[lib]]) for lib in LIBRARIES if rows[lib]}
    steps = {lib: _median([r.solve_steps for r in rows[lib]]) for lib in LIBRARIES if rows[lib]}
    summary: dict[str, Any] = {
        "env": env,
        "seeds": len(rows["coltra"]),
        "solved": {lib: sum(r.solved for r in rows[lib]) for lib in wall},
        "median_wall_s": {lib: _finite(value) for lib, value in wall.items()},
        "median_env_steps": {lib: _finite(value) for lib, value in steps.items()},
    }
    if whole_budget:
        target = TASKS[env]["target"]
        summary["held"] = {lib: sum(r.final_eval >= target for r in rows[lib]) for lib in wall}
    if rows["sb3"]:
        summary["wall_ratio_coltra_over_sb3"] = _finite(_ratio(wall["coltra"], wall["sb3"]))
        summary["speedup_sb3_over_coltra"] = _finite(_ratio(wall["sb3"], wall["coltra"]))
        summary["env_steps_ratio_coltra_over_sb3"] = _finite(_ratio(steps["coltra"], steps["sb3"]))
        summary["target"] = TARGET
        summary["verdict"] = "PASS" if wall["coltra"] < wall["sb3"] else "MISS"
    return summary


def print_report(results: list[SeedResult], summaries: list[dict[str, Any]]) -> None:
    header = ("env", "seed", "library", "solved", "env steps", "wall s", "SPS", "eval")
    row = "{:<13} {:>4} {:<7} {:>6} {:>10} {:>7} {:>7} {:>8}"
    print(row.format(*header))
    for r in results:
        print(
            row.format(
                r.env,
                r.seed,
                r.library,
                str(r.solved),
                r.env_steps,
                f"{r.wall_time_s:.1f}",
                _show(r.sps, ".0f"),
                _show(r.final_eval, ".1f"),
            )
        )
        if r.library != "sb3":
            continue
        # The same seed's Coltra run came just before.
        coltra = next(c for c in results if (c.env, c.seed, c.library) == (r.env, r.seed, "coltra"))
        wall = _ratio(coltra.solve_time, r.solve_time)
        steps = _ratio(coltra.solve_steps, r.solve_steps)
        speedup = f"speedup {_show(_ratio(r.solve_time, coltra.solve_time), '.2f')}x"
        unsolved = [run.library for run in (coltra, r) if not run.solved]
        note = f"unsolved: {', '.join(unsolved)}" if unsolved else speedup
        ratios = (r.env, r.seed, "C/SB3", "", _show(steps, ".2f"), _show(wall, ".2f"), "", "")
        print(row.format(*ratios) + f"  {note}")
    if any(r.library == "sb3" for r in results):
        print("(C/SB3: Coltra / SB3 of env steps and wall time to solve; '-': a run did not solve)")
    for s in summaries:
        print(f"{s['env']}, medians over seeds 0..{s['seeds'] - 1} (unsolved = never solved):")
        for label, key, spec, ratio in (
            ("solve wall s", "median_wall_s", ".1f", "wall_ratio_coltra_over_sb3"),
            ("env steps", "median_env_steps", ",.0f", "env_steps_ratio_coltra_over_sb3"),
        ):
            cells = [f"{lib} {_text(value, spec, 'unsolved')}" for lib, value in s[key].items()]
            if ratio in s:
                cells.append(f"coltra/sb3 {_text(s[ratio], '.2f')}")
            if key == "median_wall_s" and "verdict" in s:
                cells.append(f"speedup {_text(s['speedup_sb3_over_coltra'], '.2f')}x")
            print(f"  {label:<13} " + " | ".join(cells))
        solved = [f"{lib} {count}/{s['seeds']}" for lib, count in s["solved"].items()]
        print(f"  {'solved':<13} " + " | ".join(solved))
        if "held" in s:
            held = [f"{lib} {count}/{s['seeds']}" for lib, count in s["held"].items()]
            print(f"  {'held (end)':<13} " + " | ".join(held))
        if "verdict" in s:
            print(f'  target "{TARGET}": {s["verdict"]}')


def _pairs(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` arguments as a dict, the values read as YAML."""
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def _text(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def main() -> None:
    if _multiagent_task(sys.argv[1:]):  # several policies: benchmarks/multiagent.py
        import multiagent

        argv = sys.argv[1:]
        index = argv.index("--env")
        multiagent.main([*argv[:index], "--task", *argv[index + 1 :]])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--steps", type=int, default=None, help="env step budget per seed")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument(
        "--ppo", nargs="*", default=[], metavar="KEY=VALUE", help="PPO config overrides"
    )
    parser.add_argument(
        "--model", nargs="*", default=[], metavar="KEY=VALUE", help="model config overrides"
    )
    parser.add_argument(
        "--task", nargs="*", default=[], metavar="KEY=VALUE",
        help="task overrides: envs (copies), steps (per copy per iteration), target",
    )  # fmt: skip
    parser.add_argument(
        "--peers", choices=["none", "sb3"], default="sb3", help="also run SB3 PPO (default)"
    )
    parser.add_argument(
        "--eval-every", type=int, default=None, metavar="N",
        help="train the whole budget, evaluating every N iterations (and at the end)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.eval_every is not None and args.eval_every < 1:
        parser.error(f"--eval-every takes a positive number of iterations, got {args.eval_every}")
    for key, value in _pairs(args.task).items():
        if key not in ("envs", "steps", "target"):
            parser.error(f"--task takes envs, steps or target, got {key!r}")
        for task in TASKS.values():
            task[key] = value
    for task in TASKS.values():
        task["model"] = {**task["model"], **_pairs(args.model)}
    if args.peers == "sb3" and importlib.util.find_spec("stable_baselines3") is None:
        sys.exit("stable_baselines3 is not installed: run `make bench-setup` (or --peers none)")
    overrides = _pairs(args.ppo)
    torch.set_num_threads(args.torch_threads)

    names = list(TASKS) if args.env == "all" else [args.env]
    runners = {"coltra": run_coltra, "sb3": run_sb3}
    libraries = ["coltra"] if args.peers == "none" else list(LIBRARIES)
    sb3_settings = {}
    results = []
    for name in names:
        budget = args.steps or TASKS[name]["max_steps"]
        if args.peers == "sb3":  # refuse unmatched settings before any training
            try:
                settings = sb3_kwargs(TASKS[name], ppo_config(name, 0, overrides), budget)
            except ValueError as err:
                parser.error(f"{err} (run without the peer: --peers none)")
            sb3_settings[name] = settings
        for seed in range(args.seeds):  # libraries back to back per seed
            ppo = ppo_config(name, seed, overrides)
            results += [runners[lib](name, seed, budget, ppo, args.eval_every) for lib in libraries]
    summaries = [summarise(name, results, args.eval_every is not None) for name in names]

    print_report(results, summaries)
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    if args.peers == "sb3":
        import stable_baselines3

        versions["stable_baselines3"] = stable_baselines3.__version__
    summary = {
        "benchmark": "learning",
        "machine": versions,
        "torch_threads": args.torch_threads,
        "ppo_overrides": overrides,
        "peers": args.peers,
        "sb3_settings": sb3_settings,
        "results": [asdict(r) for r in results],
        "summary": summaries,
    }
    print(_json(summary))


def _multiagent_task(argv: Sequence[str]) -> bool:
    """``--env`` names one of the multi-agent tasks (``benchmarks/multiagent.py``)."""
    import multiagent

    return "--env" in argv[:-1] and argv[argv.index("--env") + 1] in multiagent.TASKS


def _json(data: dict[str, Any]) -> str:
    """One JSON line; NaN becomes null, a class or function its name."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(data), default=lambda obj: getattr(obj, "__name__", str(obj)))


if __name__ == "__main__":
    main()
