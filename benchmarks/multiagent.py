"""Does Coltra learn standard multi-agent tasks with several policies?

Each task trains Coltra's policies (``PPOCrowdTrainer``, independent PPO per policy, nothing
shared between teams) on a PettingZoo-API env from ``mpe2`` or ``magent2``, in one or more
phases, and reports per policy: the return of uniformly random play, the training curve
(a PNG), and the final evaluation, next to the published anchor converted to the same reward
convention (see ``TASKS``: each says where its anchor comes from and how it was converted).

    python benchmarks/learning.py --env simple_speaker_listener_v4 --seeds 3
    python benchmarks/learning.py --env simple_tag_v3
    python benchmarks/learning.py --env battle_v4
    python benchmarks/learning.py --env simple_speaker_listener_v4 --algo mappo
    python benchmarks/learning.py --env simple_spread_v3 --algo mappo      # and --algo ippo
    python benchmarks/learning.py --env knights_archers_zombies_v11
    python benchmarks/multiagent.py --task simple_tag_v3 --steps 3200   # a smoke run

A budget longer than a sitting: stop the run (Ctrl-C or SIGTERM: the trainer checkpoints)
and give the same command again with ``--resume`` to continue each one-phase run from its
last checkpoint in ``--out`` (its curve is the whole run; its wall time this sitting's).

Reward convention everywhere: the return of one agent, the sum of its rewards over one
episode, as the env gives them (mpe2: ``max_cycles=25`` steps; magent2 battle: 1000 steps).
Training curves show ``<policy>/charts/episode_return_mean`` against env steps (one env step
moves every agent of a copy once). Runs go to ``benchmarks/runs/`` (not committed), curves to
``benchmarks/results/<task>_seed<N>.png`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from coltra.collectors import join_policy_actions, plan_policies, policy_views, step_env
from coltra.configs import RunConfig
from coltra.enjoy import random_policies
from coltra.envs import MultiAgentEnv
from coltra.evaluation import evaluate_episodes
from coltra.factory import make_env, make_group
from coltra.groups import MacroAgent, MultiPolicyGroup
from coltra.names import parse_agent_name
from coltra.trainers import PPOCrowdTrainer

HERE = Path(__file__).resolve().parent

MPE = {"max_cycles": 25, "continuous_actions": False}


@dataclass(frozen=True)
class Phase:
    """One training run of a task: which policies learn, which play uniformly at random
    (``RandomAgent``), for how many env steps. Later phases continue from the weights the
    earlier ones left."""

    name: str
    env_steps: int
    learning: tuple[str, ...]
    random: tuple[str, ...] = ()
    snapshots: Mapping[str, str] = field(default_factory=dict)  # frozen -> learner it copies


@dataclass(frozen=True)
class Task:
    name: str
    config: dict[str, Any]  # a RunConfig: env, policies, ppo, model, trainer.steps
    phases: tuple[Phase, ...]
    eval_episodes: int  # agent-episodes of the random-play and final evaluations
    eval_copies: int  # env copies they play on, side by side
    deterministic_eval: bool  # False where an opponent is random (a stochastic game)
    goal: Mapping[str, float]  # policy -> final evaluation return the issue asks for
    anchor: str  # the published number and its source, in our convention
    conversion: str  # how the published number was converted
    random_note: str  # the random-play returns the issue quotes
    kill_ratio: bool = False  # magent2 battle: deaths caused / deaths suffered vs random
    team_goal: float | None = None  # the team's return (all agents' summed) the issue asks for
    # With stochastic evaluation: the learned policies' deterministic play reported too
    # (only where no opponent plays at random: a random agent's mode is one fixed action).
    also_deterministic: bool = False


TASKS: dict[str, Task] = {
    "simple_speaker_listener_v4": Task(
        name="simple_speaker_listener_v4",
        config={
            "trainer": {"steps": 100, "save_every": 100, "return_window": 200},
            "env": {
                "kind": "pettingzoo",
                "env_name": "mpe2.simple_speaker_listener_v4",
                "env_kwargs": MPE,
                "workers": 2,
                "envs_per_worker": 16,
            },
            # MAPPO's MPE settings (Yu et al. 2021): lr 7e-4, 10 epochs of one minibatch,
            # entropy 0.01, 64-unit networks; here without its centralised critic (IPPO).
            "ppo": {"lr": 7e-4, "epochs": 10, "num_minibatches": 1, "ent_coef": 0.01},
            "model": {"hidden_sizes": [64, 64]},
            "policies": {
                # The speaker commits to a message per goal colour from the start (a large
                # head gain makes its first policy near-deterministic, no entropy bonus keeps
                # it so): a near-uniform speaker gives the listener nothing to read, and the
                # pair settles on going to the landmarks' centre (-16 per agent).
                "speaker": {
                    "agents": ["speaker"],
                    "ppo": {"ent_coef": 0.0},
                    "model": {"hidden_sizes": [64, 64], "policy_head_gain": 10.0},
                },
                "listener": {"agents": ["listener"]},
            },
        },
        phases=(Phase("cooperate", 2_000_000, ("speaker", "listener")),),
        eval_episodes=1024,
        eval_copies=8,
        deterministic_eval=True,
        goal={"speaker": -12.0, "listener": -12.0},
        anchor="see benchmarks/RESULTS.md (MAPPO paper, EPyMARL)",
        conversion="see benchmarks/RESULTS.md",
        random_note="random play ~ -41.8 per agent (issue 13)",
    ),
    "simple_tag_v3": Task(
        name="simple_tag_v3",
        config={
            "trainer": {"steps": 100, "save_every": 100, "return_window": 200},
            "env": {
                "kind": "pettingzoo",
                "env_name": "mpe2.simple_tag_v3",
                "env_kwargs": {**MPE, "num_good": 1, "num_adversaries": 3, "num_obstacles": 2},
                "workers": 2,
                "envs_per_worker": 16,
            },
            "ppo": {"lr": 7e-4, "epochs": 10, "num_minibatches": 1, "ent_coef": 0.01},
            "model": {"hidden_sizes": [64, 64]},
            "policies": {"adversary": {"agents": ["adversary"]}, "prey": {"agents": ["agent"]}},
        },
        phases=(
            Phase("adversaries vs random prey", 1_000_000, ("adversary",), random=("prey",)),
            Phase("both learn", 1_000_000, ("adversary", "prey")),
        ),
        eval_episodes=1024,
        eval_copies=8,
        deterministic_eval=False,
        goal={},
        anchor="no convertible published return (see benchmarks/RESULTS.md)",
        conversion="see benchmarks/RESULTS.md",
        random_note="random adversaries and prey: adversary ~ 3.3, prey ~ -16.2 (issue 13)",
    ),
    "battle_v4": Task(
        name="battle_v4",
        config={
            "trainer": {"steps": 64, "save_every": 100, "return_window": 2000},
            "env": {
                "kind": "pettingzoo",
                "env_name": "magent2.environments.battle_v4",
                # No cost for attacking (battle's default is -0.1 per attack): with it, self-
                # play settled on never attacking (kill ratio 0 against a random team).
                "env_kwargs": {"map_size": 45, "max_cycles": 1000, "attack_penalty": 0.0},
                "workers": 2,
                "envs_per_worker": 1,
            },
            "ppo": {"lr": 3e-4, "epochs": 4, "num_minibatches": 4, "ent_coef": 0.01},
            # A flat 845-number view into 64 units: the small CNN costs 20x the update time
            # on a CPU (54 s against 2.4 s for 6 iterations on the development machine).
            "model": {"hidden_sizes": [64], "image_encoder": "flatten"},
            "policies": {
                "red": {"agents": ["red"]},
                "blue": {"agents": ["blue"], "frozen": True},
            },
        },
        phases=(Phase("self-play", 200_000, ("red",), snapshots={"blue": "red"}),),
        eval_episodes=324,
        eval_copies=2,
        deterministic_eval=False,
        goal={},
        anchor="see benchmarks/RESULTS.md",
        conversion="see benchmarks/RESULTS.md",
        random_note="",
        kill_ratio=True,
    ),
}
TASKS["simple_spread_v3"] = Task(
    name="simple_spread_v3",
    config={
        "trainer": {"steps": 100, "save_every": 100, "return_window": 300},
        "env": {
            "kind": "pettingzoo",
            "env_name": "mpe2.simple_spread_v3",
            "env_kwargs": {**MPE, "N": 3, "local_ratio": 0.5},
            "workers": 2,
            "envs_per_worker": 16,
        },
        "ppo": {"lr": 7e-4, "epochs": 10, "num_minibatches": 1, "ent_coef": 0.01},
        "model": {"hidden_sizes": [64, 64]},
        "policies": {"agent": {"agents": ["agent"]}},  # one policy shared by the 3 agents
    },
    phases=(Phase("cooperate", 5_000_000, ("agent",)),),
    eval_episodes=1024,
    eval_copies=8,
    deterministic_eval=True,
    goal={"agent": -10.0},
    anchor="MAPPO official script ~ -120 team metric at 20M steps = ~ -7.5 per agent; JaxMARL "
    "IPPO ~ -20 per agent at 10M (issue 14)",
    conversion="MAPPO's team metric ~ 6 x per-agent - 75 (it counts each agent's collision "
    "with itself); see benchmarks/RESULTS.md",
    random_note="random play ~ -27.9 per agent (issue 14)",
)
TASKS["knights_archers_zombies_v11"] = Task(
    name="knights_archers_zombies_v11",
    config={
        "trainer": {"steps": 128, "save_every": 100, "return_window": 100},
        "env": {
            "kind": "pettingzoo",
            "env_name": "pettingzoo.butterfly.knights_archers_zombies_v11",
            "env_kwargs": {"max_cycles": 900, "max_zombies": 10},
            "workers": 2,
            "envs_per_worker": 4,
        },
        "ppo": {"lr": 3e-4, "epochs": 4, "num_minibatches": 4, "ent_coef": 0.01},
        "model": {"hidden_sizes": [128, 128]},
        "policies": {"archer": {}, "knight": {}},  # agents die: their rows are masked
    },
    phases=(Phase("cooperate", 2_000_000, ("archer", "knight")),),
    eval_episodes=64,
    eval_copies=8,
    deterministic_eval=False,
    goal={},
    anchor="hand-tuned heuristic: team return 43.7 (max_cycles=900, max_zombies=10; issue 14)",
    conversion="none: the same env settings and the same team return (all agents' zombie "
    "kills summed per episode)",
    random_note="random team ~ 2.4 per episode (issue 14)",
    team_goal=43.7,
    also_deterministic=True,
)

#: In a run directory: the task settings the run was started with (``--resume`` checks).
SETTINGS_FILE = "benchmark_task.json"

#: Iterations between self-play snapshots.
SNAPSHOT_EVERY = 10


@dataclass
class PolicyResult:
    policy: str
    random_return: float  # mean return of uniformly random play (all policies random)
    final_return: float  # the final evaluation's mean return
    final_std: float
    goal: float | None
    reached: bool | None
    final_length: float | None = None  # mean env steps an agent lived in the final evaluation
    deterministic_return: float | None = None  # Task.also_deterministic: the mode's return
    deterministic_std: float | None = None
    deterministic_length: float | None = None


@dataclass
class TeamResult:
    """The team's return per episode: every agent's return summed (agents per copy times
    each policy's mean return)."""

    random_return: float
    final_return: float
    goal: float | None
    reached: bool | None
    deterministic_return: float | None = None  # Task.also_deterministic
    deterministic_reached: bool | None = None


@dataclass
class TaskResult:
    task: str
    seed: int
    env_steps: int
    wall_time_s: float  # training, all phases
    agent_sps: float  # this sitting's (NaN when a resumed run had nothing left to train)
    policies: list[PolicyResult]
    phases: list[dict[str, Any]]
    curve: str  # the PNG
    kill_ratio: dict[str, float] | None = None
    team: TeamResult | None = None


def with_algorithm(task: Task, algorithm: str) -> Task:
    """``task`` trained by ``algorithm``: ``ippo`` (independent PPO, value networks on each
    agent's own observation: the task as written) or ``mappo`` (Yu et al. 2022: a value
    network on the env's global state, ValueNorm, Huber value loss, advantages normalised
    over the batch, gradient norm 10; ``<task>_mappo`` in run names and curves)."""
    if algorithm == "ippo":
        return task
    mappo_model = {"critic": "state", "value_norm": True}
    policies = {  # a policy's own model section replaces the run's: it needs the keys too
        name: {**policy, "model": {**policy["model"], **mappo_model}}
        if "model" in policy
        else policy
        for name, policy in task.config.get("policies", {}).items()
    }
    config = {
        **task.config,
        "policies": policies,
        "env": {**task.config["env"], "global_state": True},
        "model": {**task.config.get("model", {}), **mappo_model},
        "ppo": {
            **task.config.get("ppo", {}),
            "value_loss": "huber",
            "huber_delta": 10.0,
            "norm_adv_over": "batch",
            "max_grad_norm": 10.0,
        },
    }
    return replace(task, name=f"{task.name}_mappo", config=config)


def with_overrides(task: Task, settings: Sequence[str], tag: str | None) -> Task:
    """``task`` with ``section.key=value`` settings (YAML values, e.g.
    ``model.activation=relu``) in its config, named ``<task>_<tag>`` (runs and curves)."""
    if not settings and not tag:
        return task
    config = {
        key: dict(value) if isinstance(value, dict) else value for key, value in task.config.items()
    }
    for setting in settings:
        dotted, sep, value = setting.partition("=")
        section, dot, key = dotted.partition(".")
        if not sep or not dot or not key:
            raise SystemExit(
                f"--set takes section.key=value (e.g. model.activation=relu), got {setting!r}"
            )
        config.setdefault(section, {})[key] = yaml.safe_load(value)
    return replace(task, name=f"{task.name}_{tag}" if tag else task.name, config=config)


def run_config(task: Task, phase: Phase, seed: int, run_dir: Path, iterations: int) -> RunConfig:
    """The config of one phase's run (the trainer's keys; the group is built here)."""
    data = {key: value for key, value in task.config.items() if key != "policies"}
    trainer = {
        **data.get("trainer", {}),
        "name": task.name,
        "run_dir": str(run_dir),
        "seed": seed,
        "iterations": iterations,
        "progress": True,
        "snapshot_every": SNAPSHOT_EVERY if phase.snapshots else None,
    }
    return RunConfig.from_dict({**data, "trainer": trainer, "policies": {}})


def random_group(
    group: MacroAgent, env: MultiAgentEnv, policies: Sequence[str], seed: int
) -> MacroAgent:
    """``group`` with ``policies`` replaced by uniformly random agents (frozen)."""
    return random_policies(group, env, seed, policies)


def evaluate_by_policy(
    group: MacroAgent, env: MultiAgentEnv, episodes: int, deterministic: bool, seed: int
) -> dict[str, tuple[float, float, float]]:
    """Mean and std of each policy's agents' returns over ``episodes`` agent-episodes, and
    their mean length (env steps an agent lived: where agents die, how long they last)."""
    played = evaluate_episodes(group, env, episodes, deterministic=deterministic, seed=seed)
    results = {}
    for policy, rows in group.policy_rows(env.agent_names).items():
        mine = played.select(rows)
        results[policy] = (
            float(mine.returns.mean()),
            float(mine.returns.std()),
            float(mine.lengths.mean()),
        )
    return results


def kill_ratio(group: MacroAgent, env: MultiAgentEnv, episodes: int, seed: int) -> dict[str, float]:
    """Red (learned, stochastic) against a uniformly random blue team: the deaths of each
    team over at least ``episodes`` whole episodes (of all copies), and blue deaths / red
    deaths (the kill ratio; random against random is about 1)."""
    vs_random = random_group(group, env, ["blue"], seed)
    plans = plan_policies(vs_random, env)
    red = np.isin(np.arange(env.num_agents), plans["red"].rows)
    copy_of_row = np.array([parse_agent_name(name)[1] or 0 for name in env.agent_names])
    batch = env.reset_batch(seed=seed)
    deaths = {"red": 0, "blue": 0}
    ended = 0
    while ended < episodes:
        outputs = vs_random.act_policies(policy_views(batch.obs, plans))
        acted = batch.active
        batch = step_env(env, join_policy_actions(outputs, plans, env.num_agents))
        died = acted & batch.terminated
        deaths["red"] += int((died & red).sum())
        deaths["blue"] += int((died & ~red).sum())
        # A copy's episode is over when every agent that acted is done (it was reset).
        over = np.ones(int(copy_of_row.max()) + 1, dtype=bool)
        np.logical_and.at(over, copy_of_row, ~acted | batch.done)
        played = np.zeros_like(over)
        np.logical_or.at(played, copy_of_row, acted & batch.done)
        ended += int((over & played).sum())
    return {
        "red_deaths": float(deaths["red"]),
        "blue_deaths": float(deaths["blue"]),
        "kill_ratio": deaths["blue"] / max(deaths["red"], 1),
        "episodes": float(ended),
    }


def _check_resumable(run_dir: Path, settings: str) -> None:
    """A run to resume (one with a checkpoint) must have been started with ``settings``."""
    if not (run_dir / "checkpoints" / "latest").is_file():
        return  # nothing to resume: a new run
    saved = run_dir / SETTINGS_FILE
    if not saved.is_file() or saved.read_text() != settings:
        raise ValueError(
            f"--resume: the run in {run_dir} was started with other settings than this "
            f"command's (see its {SETTINGS_FILE}); give the command it was started with, "
            "or a --tag of its own for a new run"
        )


def run_task(
    task: Task,
    seed: int,
    steps: int | None = None,
    eval_episodes: int | None = None,
    out: Path = HERE,
    resume: bool = False,
) -> TaskResult:
    """Every phase of ``task`` with ``seed`` (``steps``: env steps per phase instead of the
    task's); runs go to ``out/runs``, the curve to ``out/results``. ``resume``: a
    one-phase task continues the run its run directory holds from its last checkpoint (a
    budget longer than a sitting, over several; ``wall_time_s`` is then this sitting's)."""
    if resume and len(task.phases) != 1:
        raise ValueError(
            f"--resume continues one-phase tasks; {task.name} has {len(task.phases)} phases"
        )
    # What a resumed run must have been started with: the task's settings as given.
    settings = json.dumps({"task": task.name, "config": task.config}, sort_keys=True, default=str)
    if resume:  # refused before anything is built
        _check_resumable(out / "runs" / f"{task.name}_seed{seed}_0", settings)
    episodes = eval_episodes or task.eval_episodes
    base = RunConfig.from_dict(task.config)
    assert base.env is not None
    torch.manual_seed(seed)
    env = make_env(base.env, seed=seed)
    # Evaluated on each agent's own reward, whatever the agents were trained on
    # (env.shared_reward trains on the team's; its returns would count each kill once per
    # agent).
    eval_env = make_env(
        base.env.update(
            {"backend": "inprocess", "workers": 8, "envs_per_worker": 1, "shared_reward": False}
        )
    )
    group = make_group(base, env)
    copies, rollout = int(getattr(env, "num_envs", 1)), base.trainer.steps
    random_play = evaluate_by_policy(
        random_group(group, env, group.policy_names, seed),
        eval_env,
        episodes,
        False,
        seed,
    )
    phases, curves, wall, env_steps, agent_steps, offset = [], [], 0.0, 0, 0, 0
    sitting_agent_steps = 0  # agent steps trained in this sitting (all of them unless resumed)
    try:
        for index, phase in enumerate(task.phases):
            budget = steps if steps is not None else phase.env_steps
            iterations = max(1, round(budget / (copies * rollout)))
            run_dir = out / "runs" / f"{task.name}_seed{seed}_{index}"
            resuming = resume and (run_dir / "checkpoints" / "latest").is_file()
            saved_settings = run_dir / SETTINGS_FILE
            if not resuming:
                shutil.rmtree(run_dir, ignore_errors=True)  # a run of an earlier benchmark
                run_dir.mkdir(parents=True)
                saved_settings.write_text(settings)
            playing = random_group(group, env, phase.random, seed) if phase.random else group
            frozen = [p for p in group.policy_names if p not in phase.learning]
            playing = MultiPolicyGroup(playing.policies, group.policy_mapping, frozen=frozen)
            cfg = run_config(task, phase, seed, run_dir, iterations)
            policy_ppo = {name: policy.ppo for name, policy in base.policies.items() if policy.ppo}
            print(
                f"== {task.name} seed {seed}, phase '{phase.name}': {iterations} iterations"
                + (f", resuming {run_dir}" if resuming else ""),
                file=sys.stderr,
            )
            options: dict[str, Any] = {
                "policy_ppo": policy_ppo,
                "snapshots": dict(phase.snapshots) or None,
            }
            trainer = (
                PPOCrowdTrainer.resume(run_dir, playing, env, cfg, **options)
                if resuming
                else PPOCrowdTrainer(playing, env, cfg, **options)
            )
            with trainer:
                before = trainer.counters.agent_steps  # > 0 when resumed
                if trainer.counters.iteration < iterations:
                    summary = trainer.train()
                else:  # the budget was done in an earlier sitting: evaluate
                    flags = {"solved": 0.0, "interrupted": 0.0}
                    summary = {**trainer.counters.summary(), "time_s": 0.0, **flags}
            wall += summary["time_s"]
            sitting_agent_steps += int(summary["agent_steps"]) - before
            env_steps += int(summary["env_steps"])
            agent_steps += int(summary["agent_steps"])
            phases.append(
                {
                    "phase": phase.name,
                    **{k: v for k, v in summary.items() if not k.startswith("time/")},
                }
            )
            curves.append((phase.name, offset, read_curve(run_dir, group.policy_names)))
            offset += int(summary["env_steps"])
        final = evaluate_by_policy(group, eval_env, episodes, task.deterministic_eval, seed + 1000)
        greedy = (
            evaluate_by_policy(group, eval_env, episodes, True, seed + 1000)
            if task.also_deterministic and not task.deterministic_eval
            else None
        )
        kills = (
            kill_ratio(group, eval_env, 2 * task.eval_copies, seed + 2000)
            if task.kill_ratio
            else None
        )
        eval_copies = int(getattr(eval_env, "num_envs", 1))
        eval_env_agents = {
            policy: len(rows) // eval_copies
            for policy, rows in group.policy_rows(eval_env.agent_names).items()
        }
    finally:
        env.close()
        eval_env.close()
    png = out / "results" / f"{task.name}_seed{seed}.png"
    plot(task, curves, random_play, png)
    policies = []
    for policy in group.policy_names:
        goal = task.goal.get(policy)
        mean, std, length = final[policy]
        policies.append(
            PolicyResult(
                policy,
                random_play[policy][0],
                mean,
                std,
                goal,
                None if goal is None else mean >= goal,
                length,
                *(greedy[policy] if greedy is not None else (None, None, None)),
            )
        )
    team = None
    if task.team_goal is not None:
        random_team, final_team = (
            team_return(group, eval_env_agents, {p: v[0] for p, v in play.items()})
            for play in (random_play, final)
        )
        team = TeamResult(random_team, final_team, task.team_goal, final_team >= task.team_goal)
        if greedy is not None:
            greedy_team = team_return(group, eval_env_agents, {p: v[0] for p, v in greedy.items()})
            team.deterministic_return = greedy_team
            team.deterministic_reached = greedy_team >= task.team_goal
    return TaskResult(
        task.name,
        seed,
        env_steps,
        wall,
        sitting_agent_steps / wall if wall > 0 else math.nan,  # JSON null when nothing ran
        policies,
        phases,
        str(png),
        kills,
        team,
    )


def team_return(
    group: MacroAgent, agents_per_copy: Mapping[str, int], means: Mapping[str, float]
) -> float:
    """The team's mean return per episode: each policy's agents per copy times its mean."""
    return float(sum(agents_per_copy[policy] * means[policy] for policy in group.policy_names))


def read_curve(run_dir: Path, policies: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    """Per policy: (env steps, mean training return of the episodes logged there). A run of
    one policy logs its metrics without the ``<policy>/`` prefix."""
    with (run_dir / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    curve: dict[str, list[tuple[float, float]]] = {policy: [] for policy in policies}
    prefix = len(policies) > 1
    for row in rows:
        for policy in policies:
            column = "charts/episode_return_mean"
            value = row.get(f"{policy}/{column}" if prefix else column, "")
            if value:
                curve[policy].append((float(row["charts/env_steps"]), float(value)))
    return curve


def plot(
    task: Task,
    curves: list[tuple[str, int, dict[str, list[tuple[float, float]]]]],
    random_play: Mapping[str, tuple[float, float, float]],
    path: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    colours = dict(zip(random_play, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for phase_index, (phase, offset, curve) in enumerate(curves):
        for policy, points in curve.items():
            if points:
                x = [offset + steps for steps, _ in points]
                label = policy if phase_index == 0 else None
                axis.plot(x, [value for _, value in points], color=colours[policy], label=label)
        if phase_index:
            axis.axvline(offset, color="grey", linewidth=0.8)
            axis.text(offset, axis.get_ylim()[1], f" {phase}", va="top", fontsize=8)
    for policy, (mean, *_) in random_play.items():
        axis.axhline(mean, color=colours[policy], linestyle=":", linewidth=1)
    for policy, goal in task.goal.items():
        axis.axhline(goal, color=colours[policy], linestyle="--", linewidth=1)
    axis.set_xlabel("env steps")
    axis.set_ylabel("episode return per agent (training)")
    axis.set_title(f"{task.name}: dotted = random play, dashed = goal")
    if axis.get_legend_handles_labels()[0]:
        axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def print_report(results: Sequence[TaskResult]) -> None:
    for result in results:
        print(
            f"{result.task} seed {result.seed}: {result.env_steps:,} env steps in "
            f"{result.wall_time_s:.0f} s ({result.agent_sps:,.0f} agent steps/s; this "
            "sitting's); curve "
            f"{result.curve}"
        )
        for p in result.policies:
            goal = (
                "" if p.goal is None else f" | goal {p.goal:g}: {'PASS' if p.reached else 'MISS'}"
            )
            lived = "" if p.final_length is None else f" | lives {p.final_length:.0f} steps"
            print(
                f"  {p.policy:<10} random {p.random_return:8.2f} | final {p.final_return:8.2f} "
                f"+- {p.final_std:.2f}{lived}{goal}"
            )
            if p.deterministic_return is not None:
                print(
                    f"  {'':<10} deterministic {p.deterministic_return:8.2f} "
                    f"+- {p.deterministic_std or 0.0:.2f} | lives "
                    f"{p.deterministic_length or 0.0:.0f} steps"
                )
        if result.kill_ratio:
            k = result.kill_ratio
            print(
                f"  vs a random blue team: red lost {k['red_deaths']:.0f}, blue lost "
                f"{k['blue_deaths']:.0f}: kill ratio {k['kill_ratio']:.2f}"
            )
        if result.team is not None:
            t = result.team
            goal = (
                "" if t.goal is None else f" | goal {t.goal:g}: {'PASS' if t.reached else 'MISS'}"
            )
            print(f"  team       random {t.random_return:8.2f} | final {t.final_return:8.2f}{goal}")
            if t.deterministic_return is not None:
                passed = "PASS" if t.deterministic_reached else "MISS"
                mark = "" if t.goal is None else f": {passed}"
                print(f"  {'':<10} deterministic {t.deterministic_return:8.2f}{mark}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first..first+N-1 (one job per seed)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="env steps per phase (default: the task's)"
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="agent-episodes per evaluation, random play and final (default: the task's)",
    )
    parser.add_argument(
        "--algo",
        choices=["ippo", "mappo"],
        default="ippo",
        help="value networks on each agent's observation (IPPO) or on the env's state (MAPPO)",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        action="extend",  # repeated --set flags add up (a second one used to replace the first)
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config overrides for every policy, e.g. model.activation=relu ppo.epochs=15",
    )
    parser.add_argument("--tag", default=None, help="names the variant's runs and curves")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue each run from its last checkpoint in --out (one-phase tasks; same "
        "command otherwise): a budget spread over several sittings",
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=HERE, help="where runs/ and results/ go (default: benchmarks)"
    )
    args = parser.parse_args(argv)
    names = list(TASKS) if args.task == "all" else [args.task]
    several = [name for name in names if len(TASKS[name].phases) != 1]
    if args.resume and several:
        parser.error(f"--resume continues one-phase tasks; {several} have several phases")
    torch.set_num_threads(args.torch_threads)
    started = time.perf_counter()
    results = [
        run_task(
            with_overrides(with_algorithm(TASKS[name], args.algo), args.set, args.tag),
            seed,
            args.steps,
            args.eval_episodes,
            args.out,
            args.resume,
        )
        for name in names
        for seed in range(args.first_seed, args.first_seed + args.seeds)
    ]
    print_report(results)
    summary = {
        "benchmark": "multiagent",
        "machine": {"python": platform.python_version(), "torch": torch.__version__},
        "steps_per_phase": args.steps,
        "algo": args.algo,
        "overrides": args.set,
        "tag": args.tag,
        "wall_time_s": time.perf_counter() - started,
        "results": [asdict(r) for r in results],
    }
    print(json.dumps(_finite(summary)))


def _finite(value: Any) -> Any:
    """``value`` as plain JSON: NaN and inf become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


if __name__ == "__main__":
    main()
