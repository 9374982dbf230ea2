"""Training throughput of a full PPO loop (collection + update): Coltra against its peers.

Every contender trains with the same hyperparameters (8 envs or agent-envs x 128 steps per
iteration, 4 epochs, 4 minibatches, separate 64x64 tanh policy and value MLPs, CPU, one
torch thread) and is timed after one warm-up iteration. Scenarios:

* ``cartpole``: CartPole-v1 env steps/s of Coltra, Stable-Baselines3 PPO and the CleanRL-style
  reference (``benchmarks/reference/cleanrl_ppo.py``), plus a bare loop (raw gymnasium envs,
  one batched forward per step, a minimal PPO update) as the ceiling Python envs allow.
* ``pursuit``: pettingzoo.sisl pursuit_v5 agent steps/s (4 copies x 8 pursuers = 32 agents):
  Coltra's subprocess and in-process backends (and the subprocess backend with overlapped
  collection, ``-overlap``, shared memory, ``-shm``, both, or 2 torch threads for the
  update, ``-ut2``) against SB3 on
  SuperSuit's parameter-sharing vector env (0 and 2 worker processes), plus raw pursuit
  stepping (1 process; x2 is the 2-core ceiling).
* ``crowd``: agent steps/s at 16..1024 agents of a cheap crowd env (``crowd_env.py``), one
  copy, Coltra against SB3 + SuperSuit; shows how each scales with the number of agents.
  Also the raw env alone, a bare loop over its dict API (the ceiling, as for CartPole), and
  Coltra on the same crowd implemented in the batch view (``coltra.envs.crowd``, no dicts:
  ``coltra-native``, what simulation users who hold their agents in arrays get).

Contenders run in separate worker processes (one per library, reused across measurements),
interleaved, so that the machine's load hits all of them alike; each number is the median
over ``--seeds`` repeats. Prints a table, each target with PASS/MISS, and one JSON line.
The table's ``collect`` and ``update`` columns are samples/s of each phase alone: SB3's
collection includes its GAE, Coltra's and the CleanRL-style update include theirs.

    python benchmarks/throughput.py                           # everything, 3 repeats
    python benchmarks/throughput.py --scenario cartpole --steps 100000 --seeds 5
    python benchmarks/throughput.py --steps 1024 --seeds 1 --rollout 16   # smoke run, ~1 min
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent

#: The shared PPO settings (CleanRL's ppo.py defaults for CartPole).
NUM_ENVS = 8
NUM_STEPS = 128
EPOCHS = 4
MINIBATCHES = 4
LR = 2.5e-4
HIDDEN = (64, 64)
#: Pursuit: copies of the 8-pursuer env, so every contender trains 32 agents.
PURSUIT_COPIES = 4
PURSUIT_AGENTS = 8
#: Crowd sizes and steps per agent per iteration (fewer at 1024 to keep iterations short;
#: the same for both contenders).
CROWD_SIZES = (16, 64, 256, 1024)
CROWD_ROLLOUT = {16: 128, 64: 128, 256: 64, 1024: 32}
CROWD_EPISODE = 200

#: Samples (env steps for CartPole, agent steps otherwise) timed per measurement.
DEFAULT_STEPS = {"cartpole": 81_920, "pursuit": 16_384, "crowd": 131_072}
#: Raw-env loops run at least this long, however small the budget (they are cheap).
MIN_RAW_S = 0.5
SCENARIOS = tuple(DEFAULT_STEPS)
#: Environment variables of the worker processes: one thread for every numeric library.
THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
BENCH_EXTRAS = ("stable_baselines3", "supersuit", "pettingzoo")


@dataclass
class Measurement:
    """One timed run of one contender. ``sps`` is samples per second of wall time; the
    phase times are over the same timed iterations (None when the contender hides them)."""

    scenario: str
    contender: str
    agents: int  # agents (or env copies) stepping in parallel
    seed: int
    samples: int
    wall_s: float
    sps: float
    collect_s: float | None = None
    update_s: float | None = None


# --------------------------------------------------------------------------- worker side
# Everything below up to "parent side" runs in a worker process with one torch thread.


def _timed(iteration: Callable[[], tuple[int, float, float]], budget: int) -> dict[str, float]:
    """One warm-up ``iteration()``, then iterations until ``budget`` samples are timed.

    ``iteration`` returns ``(samples, collect seconds, update seconds)``."""
    iteration()
    samples, collect_s, update_s = 0, 0.0, 0.0
    start = time.perf_counter()
    while samples < budget:
        n, collect, update = iteration()
        samples, collect_s, update_s = samples + n, collect_s + collect, update_s + update
    wall = time.perf_counter() - start
    return {
        "samples": samples,
        "wall_s": wall,
        "sps": samples / wall,
        "collect_s": collect_s,
        "update_s": update_s,
    }


def _coltra(
    env: Any,
    num_steps: int,
    budget: int,
    seed: int,
    update_threads: int | None = None,
    overlap: bool = False,
) -> dict[str, float]:
    """Coltra's own loop: ``CrowdCollector.collect`` then ``CrowdPPOptimizer.train_on_data``
    (with ``update_threads`` torch threads for the update, as ``trainer.update_threads``, and
    overlapped collection with ``overlap``, as ``env.overlap``)."""
    import torch

    from coltra.agents import DAgent
    from coltra.collectors import CrowdCollector
    from coltra.groups import HomogeneousGroup
    from coltra.models import MLPModel
    from coltra.policy_optimization import CrowdPPOptimizer
    from coltra.runtime import torch_threads

    torch.manual_seed(seed)
    model = MLPModel(
        {"hidden_sizes": list(HIDDEN), "activation": "tanh"},
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    agents = HomogeneousGroup(DAgent(model))
    ppo = {"lr": LR, "epochs": EPOCHS, "num_minibatches": MINIBATCHES, "ent_coef": 0.0}
    optimizer = CrowdPPOptimizer(agents, {**ppo, "seed": seed})
    collector = CrowdCollector(agents, env, seed=seed, overlap=overlap)

    def iteration() -> tuple[int, float, float]:
        start = time.perf_counter()
        data, _, (rows, steps) = collector.collect(num_steps)
        middle = time.perf_counter()
        with torch_threads(update_threads):
            optimizer.train_on_data(data)
        return rows * steps, middle - start, time.perf_counter() - middle

    try:
        return _timed(iteration, budget)
    finally:
        env.close()


def _sb3(env: Any, num_steps: int, budget: int, seed: int) -> dict[str, float]:
    """SB3 PPO on a VecEnv; ``collect_rollouts`` (which includes GAE) and ``train`` timed by
    wrapping them. Seeded with ``set_random_seed``: ``PPO(seed=)`` also seeds the env,
    which SuperSuit's vector env does not support."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(seed)
    batch = env.num_envs * num_steps
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=num_steps,
        batch_size=batch // MINIBATCHES,
        n_epochs=EPOCHS,
        learning_rate=LR,
        ent_coef=0.0,
        policy_kwargs={
            "net_arch": {"pi": list(HIDDEN), "vf": list(HIDDEN)},
            "activation_fn": torch.nn.Tanh,
        },
        device="cpu",
        verbose=0,
    )
    phases = {"collect": 0.0, "update": 0.0}

    def timing(phase: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                phases[phase] += time.perf_counter() - start

        return timed

    model.collect_rollouts = timing("collect", model.collect_rollouts)  # type: ignore[method-assign]
    model.train = timing("update", model.train)  # type: ignore[method-assign]
    try:
        model.learn(batch)  # warm-up iteration
        phases.update(collect=0.0, update=0.0)
        before = model.num_timesteps
        start = time.perf_counter()
        model.learn(budget, reset_num_timesteps=False)
        wall = time.perf_counter() - start
    finally:
        env.close()
    samples = model.num_timesteps - before
    return {
        "samples": samples,
        "wall_s": wall,
        "sps": samples / wall,
        "collect_s": phases["collect"],
        "update_s": phases["update"],
    }


def _supersuit_env(env_fn: Callable[[], Any], copies: int, num_cpus: int, seed: int) -> Any:
    """SuperSuit's parameter-sharing recipe: each agent is one row of an SB3 VecEnv.
    Seeded through the inner vector env (the SB3 wrapper's ``seed`` is not supported)."""
    import supersuit as ss

    vec = ss.pettingzoo_env_to_vec_env_v1(env_fn())
    env = ss.concat_vec_envs_v1(vec, copies, num_cpus=num_cpus, base_class="stable_baselines3")
    env.venv.reset(seed=seed)
    return env


def _pursuit_flat() -> Any:
    import supersuit as ss
    from pettingzoo.sisl import pursuit_v5

    return ss.flatten_v0(pursuit_v5.parallel_env())


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """Torch threads for one whole measurement (a peer's own default is every core)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def task_cartpole_coltra(
    seed: int, budget: int, update_threads: int | None = None
) -> dict[str, float]:
    from coltra.envs import MultiGymEnv

    env = MultiGymEnv.get_venv(NUM_ENVS, env_name="CartPole-v1", seed=seed, backend="inprocess")
    return _coltra(env, NUM_STEPS, budget, seed, update_threads)


def task_cartpole_sb3(seed: int, budget: int, threads: int = 1) -> dict[str, float]:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    # make_vec_env: DummyVecEnv with a Monitor per env, SB3's standard recipe.
    env = make_vec_env("CartPole-v1", n_envs=NUM_ENVS, seed=seed, vec_env_cls=DummyVecEnv)
    with _threads(threads):
        return _sb3(env, NUM_STEPS, budget, seed)


def task_cartpole_cleanrl(seed: int, budget: int) -> dict[str, float]:
    """The reference's own ``train``; timed from the end of its first iteration to the end
    of its last. Its phase times cover all iterations, so they are scaled to the timed ones."""
    sys.path.insert(0, str(HERE))
    from reference.cleanrl_ppo import Args, train

    per_iteration = NUM_ENVS * NUM_STEPS
    iterations = 1 + math.ceil(budget / per_iteration)
    marks: list[tuple[float, float]] = []

    def on_iteration(metrics: dict[str, float]) -> None:
        marks.append((time.perf_counter(), metrics["global_step"]))

    args = Args(
        num_envs=NUM_ENVS,
        num_steps=NUM_STEPS,
        total_timesteps=iterations * per_iteration,
        learning_rate=LR,
        anneal_lr=False,
        num_minibatches=MINIBATCHES,
        update_epochs=EPOCHS,
        ent_coef=0.0,
        seed=seed,
        torch_threads=1,
    )
    summary = train(args, on_iteration)
    (t0, s0), (t1, s1) = marks[0], marks[-1]
    share = (len(marks) - 1) / len(marks)
    return {
        "samples": int(s1 - s0),
        "wall_s": t1 - t0,
        "sps": (s1 - s0) / (t1 - t0),
        "collect_s": summary["collect_s"] * share,
        "update_s": summary["update_s"] * share,
    }


class _BareLearner:
    """The least a PPO learner can do for ``rows`` agents over ``steps`` steps: one batched
    forward of the policy and value MLPs per step (outputs stored, as PPO needs), then GAE
    and the CleanRL loss over epochs x minibatches, with nothing else around them. Actions
    come from the caller (random), so sampling is the only thing left out."""

    def __init__(self, obs_size: int, num_actions: int, steps: int, rows: int, seed: int) -> None:
        import numpy as np
        import torch

        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.actor, self.critic = _mlp(obs_size, num_actions), _mlp(obs_size, 1)
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.optimizer = torch.optim.Adam(self.params, lr=LR, eps=1e-5)
        self.obs = np.zeros((steps, rows, obs_size), np.float32)
        self.action = np.zeros((steps, rows), np.int64)
        self.logprob = np.zeros((steps, rows), np.float32)
        self.value = np.zeros((steps, rows), np.float32)
        self.reward = np.zeros((steps, rows), np.float32)
        self.done = np.zeros((steps, rows), np.float32)
        self._rows = np.arange(rows)

    def act(self, t: int, obs: Any, action: Any) -> None:
        """Forward pass over ``obs`` ``[rows, features]``; stores what PPO keeps of step t."""
        import torch

        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32)
            logits, value = self.actor(x), self.critic(x)
            self.logprob[t] = torch.log_softmax(logits, -1).numpy()[self._rows, action]
            self.value[t] = value.numpy()[:, 0]
        self.obs[t], self.action[t] = obs, action

    def update(self) -> None:
        import numpy as np
        import torch

        rewards, values, dones = self.reward, self.value, self.done
        advantages = np.zeros_like(rewards)
        last = np.zeros(rewards.shape[1], np.float32)
        for t in reversed(range(len(rewards))):
            next_value = values[t + 1] if t + 1 < len(rewards) else values[t]
            not_done = 1.0 - dones[t]
            delta = rewards[t] + 0.99 * next_value * not_done - values[t]
            last = delta + 0.99 * 0.95 * not_done * last
            advantages[t] = last
        obs = torch.as_tensor(self.obs.reshape(-1, self.obs.shape[-1]))
        actions = torch.as_tensor(self.action.reshape(-1))
        old_logprob = torch.as_tensor(self.logprob.reshape(-1))
        old_value = torch.as_tensor(values.reshape(-1))
        adv = torch.as_tensor(advantages.reshape(-1))
        returns = adv + old_value
        size = len(adv)
        minibatch = size // MINIBATCHES
        for _ in range(EPOCHS):
            order = torch.as_tensor(self.rng.permutation(size))
            for start in range(0, size, minibatch):
                index = order[start : start + minibatch]
                dist = torch.distributions.Categorical(logits=self.actor(obs[index]))
                logprob, entropy = dist.log_prob(actions[index]), dist.entropy()
                value = self.critic(obs[index]).view(-1)
                mb_adv = adv[index]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                ratio = (logprob - old_logprob[index]).exp()
                policy_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(0.8, 1.2)).mean()
                clipped = old_value[index] + (value - old_value[index]).clamp(-0.2, 0.2)
                value_loss = (
                    0.5
                    * torch.max(
                        (value - returns[index]) ** 2, (clipped - returns[index]) ** 2
                    ).mean()
                )
                loss = policy_loss + 0.5 * value_loss - 0.0 * entropy.mean()
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.params, 0.5)
                self.optimizer.step()


def _mlp(inputs: int, outputs: int) -> Any:
    import torch.nn as nn

    return nn.Sequential(
        nn.Linear(inputs, HIDDEN[0]),
        nn.Tanh(),
        nn.Linear(HIDDEN[0], HIDDEN[1]),
        nn.Tanh(),
        nn.Linear(HIDDEN[1], outputs),
    )


def task_cartpole_ceiling(seed: int, budget: int) -> dict[str, float]:
    """The least a PPO loop over Python CartPole envs can cost: 8 raw ``gym.make`` envs
    stepped with random actions, reset where done, and the bare learner."""
    import gymnasium as gym
    import numpy as np

    envs = [gym.make("CartPole-v1") for _ in range(NUM_ENVS)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)])
    learner = _BareLearner(4, 2, NUM_STEPS, NUM_ENVS, seed)

    def iteration() -> tuple[int, float, float]:
        start = time.perf_counter()
        for t in range(NUM_STEPS):
            action = learner.rng.integers(0, 2, NUM_ENVS)
            learner.act(t, obs, action)
            for i, env in enumerate(envs):
                o, r, terminated, truncated, _ = env.step(int(action[i]))
                done = terminated or truncated
                if done:
                    o, _ = env.reset()
                obs[i], learner.reward[t, i], learner.done[t, i] = o, r, done
        middle = time.perf_counter()
        learner.update()
        return NUM_ENVS * NUM_STEPS, middle - start, time.perf_counter() - middle

    try:
        return _timed(iteration, budget)
    finally:
        for env in envs:
            env.close()


def task_pursuit_coltra(
    seed: int,
    budget: int,
    backend: str,
    update_threads: int | None = None,
    overlap: bool = False,
    shared_memory: bool = False,
) -> dict[str, float]:
    from pettingzoo.sisl import pursuit_v5

    from coltra.envs import PettingZooEnv

    env = PettingZooEnv.get_venv(
        workers=2,
        envs_per_worker=PURSUIT_COPIES // 2,
        backend=backend,
        seed=seed,
        env_fn=pursuit_v5.parallel_env,
        shared_memory=shared_memory,
    )
    return _coltra(env, NUM_STEPS, budget, seed, update_threads, overlap)


def task_pursuit_sb3(seed: int, budget: int, num_cpus: int) -> dict[str, float]:
    env = _supersuit_env(_pursuit_flat, PURSUIT_COPIES, num_cpus, seed)
    return _sb3(env, NUM_STEPS, budget, seed)


def _raw_parallel_env(env: Any, seed: int, budget: int) -> dict[str, float]:
    """Agent steps/s of a PettingZoo parallel env under random actions, nothing else."""
    import numpy as np

    rng = np.random.default_rng(seed)
    space = env.action_space(env.possible_agents[0])
    env.reset(seed=seed)

    def step() -> int:
        agents = env.agents
        env.step(dict(zip(agents, rng.integers(0, space.n, len(agents)).tolist())))
        if not env.agents:
            env.reset()
        return len(agents)

    for _ in range(5):  # warm-up
        step()
    samples, wall = 0, 0.0
    start = time.perf_counter()
    while samples < budget or wall < MIN_RAW_S:
        samples += step()
        wall = time.perf_counter() - start
    env.close()
    return {"samples": samples, "wall_s": wall, "sps": samples / wall}


def task_pursuit_raw(seed: int, budget: int) -> dict[str, float]:
    from pettingzoo.sisl import pursuit_v5

    return _raw_parallel_env(pursuit_v5.parallel_env(), seed, budget)


def _crowd(agents: int) -> Any:
    sys.path.insert(0, str(HERE))
    from crowd_env import CrowdEnv

    return CrowdEnv(agents, episode_length=CROWD_EPISODE)


def task_crowd_coltra(
    seed: int, budget: int, agents: int, update_threads: int | None = None
) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    from crowd_env import parallel_env

    from coltra.envs import PettingZooEnv

    env = PettingZooEnv(
        env_fn=parallel_env, n_agents=agents, episode_length=CROWD_EPISODE
    )  # one copy, in this process
    return _coltra(env, CROWD_ROLLOUT[agents], budget, seed, update_threads)


def task_crowd_native(
    seed: int, budget: int, agents: int, update_threads: int | None = None
) -> dict[str, float]:
    """Coltra on the same crowd without dicts: ``coltra.envs.crowd.CrowdEnv`` fills the
    stacked rows itself (the batch view), one copy in this process."""
    from coltra.envs.crowd import CrowdEnv

    env = CrowdEnv(agents, episode_length=CROWD_EPISODE)
    return _coltra(env, CROWD_ROLLOUT[agents], budget, seed, update_threads)


def task_crowd_sb3(seed: int, budget: int, agents: int, threads: int = 1) -> dict[str, float]:
    env = _supersuit_env(lambda: _crowd(agents), 1, 0, seed)
    with _threads(threads):
        return _sb3(env, CROWD_ROLLOUT[agents], budget, seed)


def task_crowd_raw(seed: int, budget: int, agents: int) -> dict[str, float]:
    return _raw_parallel_env(_crowd(agents), seed, budget)


def task_crowd_ceiling(seed: int, budget: int, agents: int) -> dict[str, float]:
    """The least a PPO loop over the crowd's dict API can cost: the env stepped with random
    actions, its dicts turned into arrays the shortest way, and the bare learner."""
    import numpy as np

    env = _crowd(agents)
    names = env.possible_agents
    steps = CROWD_ROLLOUT[agents]
    learner = _BareLearner(8, 5, steps, agents, seed)
    obs_dict, _ = env.reset(seed=seed)

    def iteration() -> tuple[int, float, float]:
        nonlocal obs_dict
        start = time.perf_counter()
        for t in range(steps):
            action = learner.rng.integers(0, 5, agents)
            learner.act(t, np.stack([obs_dict[name] for name in names]), action)
            obs_dict, rewards, _, truncations, _ = env.step(dict(zip(names, action.tolist())))
            learner.reward[t] = [rewards[name] for name in names]
            learner.done[t] = [truncations[name] for name in names]
            if not env.agents:
                obs_dict, _ = env.reset()
        middle = time.perf_counter()
        learner.update()
        return agents * steps, middle - start, time.perf_counter() - middle

    return _timed(iteration, budget)


TASKS: dict[str, Callable[..., dict[str, float]]] = {
    name.removeprefix("task_"): function
    for name, function in dict(globals()).items()
    if name.startswith("task_")
}


def worker_main(rollout: int) -> None:
    """Serve tasks read as JSON lines from stdin; answer each with one JSON line
    (``rollout``: NUM_STEPS for this worker's tasks, ``--rollout``).

    Answers go to a private copy of stdout; fd 1 itself is pointed at stderr, so whatever a
    library prints cannot corrupt the protocol."""
    global NUM_STEPS
    NUM_STEPS = rollout
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work has started
        pass
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer: dict[str, Any] = {"ok": TASKS[request["task"]](**request["kwargs"])}
        except Exception:
            answer = {"error": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


# --------------------------------------------------------------------------- parent side


class Worker:
    """A worker process (``--worker``) that runs one library's measurements."""

    def __init__(self, name: str, rollout: int) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", "--rollout", str(rollout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **THREAD_ENV},
        )

    def run(self, task: str, **kwargs: Any) -> dict[str, float]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps({"task": task, "kwargs": kwargs}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(
                f"worker '{self.name}' died during {task} (exit code {self.process.wait()})"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"worker '{self.name}' failed in {task}:\n{answer['error']}")
        return dict(answer["ok"])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def workers(names: tuple[str, ...], rollout: int) -> Iterator[dict[str, Worker]]:
    """Start every worker at once (imports overlap), stop them all on the way out."""
    started: dict[str, Worker] = {}
    try:
        for name in names:
            started[name] = Worker(name, rollout)
        yield started
    finally:
        for worker in started.values():
            worker.close()


@dataclass(frozen=True)
class Contender:
    """One row of a scenario's table: which worker runs which task with what arguments."""

    name: str
    worker: str
    task: str
    agents: int
    kwargs: tuple[tuple[str, Any], ...] = ()


def contenders(scenario: str) -> list[list[Contender]]:
    """The scenario's contenders in groups; a group's members run back to back."""
    if scenario == "cartpole":
        return [
            [
                Contender("coltra", "coltra", "cartpole_coltra", NUM_ENVS),
                Contender("sb3", "sb3", "cartpole_sb3", NUM_ENVS),
                Contender("cleanrl", "reference", "cartpole_cleanrl", NUM_ENVS),
                Contender("ceiling", "reference", "cartpole_ceiling", NUM_ENVS),
                # The update on 2 cores (trainer.update_threads), against SB3 on 2 threads.
                Contender(
                    "coltra-ut2", "coltra", "cartpole_coltra", NUM_ENVS, (("update_threads", 2),)
                ),
                Contender("sb3-t2", "sb3", "cartpole_sb3", NUM_ENVS, (("threads", 2),)),
            ]
        ]
    if scenario == "pursuit":
        agents = PURSUIT_COPIES * PURSUIT_AGENTS
        return [
            [
                Contender(
                    "coltra-subprocess",
                    "coltra",
                    "pursuit_coltra",
                    agents,
                    (("backend", "subprocess"),),
                ),
                Contender(
                    "coltra-inprocess",
                    "coltra",
                    "pursuit_coltra",
                    agents,
                    (("backend", "inprocess"),),
                ),
                Contender(
                    "coltra-subprocess-ut2",
                    "coltra",
                    "pursuit_coltra",
                    agents,
                    (("backend", "subprocess"), ("update_threads", 2)),
                ),
                Contender(
                    "coltra-subprocess-overlap",
                    "coltra",
                    "pursuit_coltra",
                    agents,
                    (("backend", "subprocess"), ("overlap", True)),
                ),
                Contender(
                    "coltra-subprocess-shm",
                    "coltra",
                    "pursuit_coltra",
                    agents,
                    (("backend", "subprocess"), ("shared_memory", True)),
                ),
                Contender(
                    "coltra-subprocess-overlap-shm",
                    "coltra",
                    "pursuit_coltra",
                    agents,
                    (("backend", "subprocess"), ("overlap", True), ("shared_memory", True)),
                ),
                Contender("sb3-ss-cpus0", "sb3", "pursuit_sb3", agents, (("num_cpus", 0),)),
                Contender("sb3-ss-cpus2", "sb3", "pursuit_sb3", agents, (("num_cpus", 2),)),
                Contender("raw-1proc", "reference", "pursuit_raw", PURSUIT_AGENTS),
            ]
        ]
    return [
        [
            Contender("coltra", "coltra", "crowd_coltra", n, (("agents", n),)),
            Contender("coltra-native", "coltra", "crowd_native", n, (("agents", n),)),
            Contender("sb3-ss", "sb3", "crowd_sb3", n, (("agents", n),)),
            Contender("raw-env", "reference", "crowd_raw", n, (("agents", n),)),
            Contender("ceiling", "reference", "crowd_ceiling", n, (("agents", n),)),
        ]
        # The update is most of the loop at 1024 agents: a second core for it (Coltra's
        # update_threads), against SB3 on 2 threads throughout (torch's own default).
        + (
            [
                Contender(
                    "coltra-ut2",
                    "coltra",
                    "crowd_coltra",
                    n,
                    (("agents", n), ("update_threads", 2)),
                ),
                Contender(
                    "coltra-native-ut2",
                    "coltra",
                    "crowd_native",
                    n,
                    (("agents", n), ("update_threads", 2)),
                ),
                Contender("sb3-ss-t2", "sb3", "crowd_sb3", n, (("agents", n), ("threads", 2))),
            ]
            if n == CROWD_SIZES[-1]
            else []
        )
        for n in CROWD_SIZES
    ]


def measure(
    scenario: str, budget: int, seeds: int, pool: dict[str, Worker], log: IO[str]
) -> list[Measurement]:
    """Every contender ``seeds`` times; within a repeat, the order rotates by the seed."""
    results: list[Measurement] = []
    for group in contenders(scenario):
        for seed in range(seeds):
            shift = seed % len(group)
            for contender in group[shift:] + group[:shift]:
                out = pool[contender.worker].run(
                    contender.task, seed=seed, budget=budget, **dict(contender.kwargs)
                )
                samples = int(out.pop("samples"))
                result = Measurement(
                    scenario, contender.name, contender.agents, seed, samples, **out
                )
                results.append(result)
                print(
                    f"  {scenario:<8} {contender.name:<18} agents={contender.agents:<5} "
                    f"seed={seed} {result.sps:>10,.0f} samples/s ({result.wall_s:.1f} s)",
                    file=log,
                    flush=True,
                )
    return results


@dataclass
class Row:
    """Median over repeats of one contender (at one crowd size). ``collect_sps`` and
    ``update_sps`` are samples per second of each phase alone (None when not timed)."""

    scenario: str
    contender: str
    agents: int
    sps: float
    sps_min: float
    sps_max: float
    runs: int
    collect_frac: float | None  # share of the timed wall spent collecting
    collect_sps: float | None = None
    update_sps: float | None = None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(results: list[Measurement]) -> list[Row]:
    keys = dict.fromkeys((r.scenario, r.contender, r.agents) for r in results)
    rows = []
    for scenario, contender, agents in keys:
        runs = [
            r
            for r in results
            if (r.scenario, r.contender, r.agents) == (scenario, contender, agents)
        ]
        sps = [r.sps for r in runs]
        phased = [
            (r.samples, r.collect_s, r.update_s)
            for r in runs
            if r.collect_s is not None and r.update_s is not None and r.collect_s > 0
        ]
        rows.append(
            Row(
                scenario,
                contender,
                agents,
                statistics.median(sps),
                min(sps),
                max(sps),
                len(runs),
                _median([collect / (collect + update) for _, collect, update in phased]),
                _median([n / collect for n, collect, _ in phased]),
                _median([n / update for n, _, update in phased if update > 0]),
            )
        )
        if (scenario, contender) == ("pursuit", "raw-1proc"):
            # Two cores stepping raw pursuit: the most any 2-core trainer can reach.
            raw = rows[-1]
            rows.append(
                Row(
                    scenario,
                    "raw-2core (2x)",
                    2 * agents,
                    2 * raw.sps,
                    2 * raw.sps_min,
                    2 * raw.sps_max,
                    raw.runs,
                    None,
                )
            )
    return rows


@dataclass
class Target:
    """A goal the team set. ``value`` comes from the medians; ``per_repeat`` is the same
    ratio within each repeat (runs of one repeat are minutes apart at most, so those
    ratios are less exposed to the load of a shared machine drifting)."""

    name: str
    value: float
    threshold: float
    unit: str  # "x" (ratio) or "%" (of a ceiling)
    per_repeat: list[float]

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold


#: ``sps(scenario, contender, agents, phase)``: samples/s of the whole loop (phase "loop")
#: or of collection alone (phase "collect"), or None when not measured.
Lookup = Callable[[str, str, int | None, str], float | None]


def _ratio(top: float | None, bottom: float | None, scale: float = 1.0) -> float | None:
    return scale * top / bottom if top and bottom else None


def _best(*values: float | None) -> float | None:
    return max((v for v in values if v), default=None)


def _coltra_pursuit_best(sps: Lookup) -> float | None:
    """Coltra's pursuit rate with its better backend."""
    return _best(
        sps("pursuit", "coltra-subprocess", None, "loop"),
        sps("pursuit", "coltra-inprocess", None, "loop"),
        sps("pursuit", "coltra-subprocess-ut2", None, "loop"),
        sps("pursuit", "coltra-subprocess-overlap", None, "loop"),
        sps("pursuit", "coltra-subprocess-shm", None, "loop"),
        sps("pursuit", "coltra-subprocess-overlap-shm", None, "loop"),
    )


#: name, required value, unit, and how to compute it from samples/s figures: issue 15's six
#: (Coltra / SB3 on CartPole, both pursuit ratios, the crowd at 1024 in collection and in the
#: whole loop, the batch-native crowd) and three kept from before.
TARGETS: list[tuple[str, float, str, Callable[[Lookup], float | None]]] = [
    (
        "cartpole: Coltra / SB3 PPO",
        1.8,
        "x",
        lambda sps: _ratio(
            sps("cartpole", "coltra", None, "loop"), sps("cartpole", "sb3", None, "loop")
        ),
    ),
    (
        "cartpole: Coltra / CleanRL-style",
        1.5,
        "x",
        lambda sps: _ratio(
            sps("cartpole", "coltra", None, "loop"), sps("cartpole", "cleanrl", None, "loop")
        ),
    ),
    (
        "pursuit: Coltra best / SB3+SS best",
        1.4,
        "x",
        lambda sps: _ratio(
            _coltra_pursuit_best(sps),
            _best(
                sps("pursuit", "sb3-ss-cpus0", None, "loop"),
                sps("pursuit", "sb3-ss-cpus2", None, "loop"),
            ),
        ),
    ),
    (
        "pursuit: Coltra best / 2-core raw ceiling",
        85.0,
        "%",
        lambda sps: _ratio(
            _coltra_pursuit_best(sps),
            sps("pursuit", "raw-1proc", None, "loop"),
            scale=100 / 2,
        ),
    ),
    (
        "crowd 1024 collection: Coltra / SB3+SS",
        3.0,
        "x",
        lambda sps: _ratio(
            sps("crowd", "coltra", 1024, "collect"), sps("crowd", "sb3-ss", 1024, "collect")
        ),
    ),
    (
        "crowd 1024 whole loop: Coltra / SB3+SS",
        1.5,
        "x",
        lambda sps: _ratio(
            sps("crowd", "coltra", 1024, "loop"), sps("crowd", "sb3-ss", 1024, "loop")
        ),
    ),
    (
        "crowd 16->256: Coltra fraction of linear",
        0.7,
        "x",
        lambda sps: _ratio(
            sps("crowd", "coltra", 256, "loop"), sps("crowd", "coltra", 16, "loop"), scale=1 / 16
        ),
    ),
    (
        "crowd 16->256 collection scaling / raw env's",
        0.7,
        "x",
        lambda sps: _ratio(
            _ratio(sps("crowd", "coltra", 256, "collect"), sps("crowd", "coltra", 16, "collect")),
            _ratio(sps("crowd", "raw-env", 256, "loop"), sps("crowd", "raw-env", 16, "loop")),
        ),
    ),
    (
        "crowd 1024 batch-native collection, M agent steps/s",
        1.0,
        "M",
        lambda sps: _ratio(sps("crowd", "coltra-native", 1024, "collect"), 1e6),
    ),
]


def targets(rows: list[Row], results: list[Measurement]) -> list[Target]:
    """Every target whose contenders were measured, from the medians and per repeat."""

    def from_rows(scenario: str, contender: str, agents: int | None, phase: str) -> float | None:
        return next(
            (
                r.sps if phase == "loop" else r.collect_sps
                for r in rows
                if (r.scenario, r.contender) == (scenario, contender) and agents in (None, r.agents)
            ),
            None,
        )

    def from_repeat(seed: int) -> Lookup:
        def sps(scenario: str, contender: str, agents: int | None, phase: str) -> float | None:
            return next(
                (
                    r.sps if phase == "loop" else r.samples / r.collect_s if r.collect_s else None
                    for r in results
                    if (r.scenario, r.contender, r.seed) == (scenario, contender, seed)
                    and agents in (None, r.agents)
                ),
                None,
            )

        return sps

    seeds = sorted({r.seed for r in results})
    found = []
    for name, threshold, unit, compute in TARGETS:
        value = compute(from_rows)
        if value is not None:
            per_repeat = [compute(from_repeat(seed)) for seed in seeds]
            found.append(
                Target(name, value, threshold, unit, [v for v in per_repeat if v is not None])
            )
    return found


def print_table(rows: list[Row], found: list[Target]) -> None:
    """Per scenario: median samples/s, range, each phase's own rate, the collection share of
    the wall time, and Coltra's ratio to each contender (the better backend for pursuit)."""

    def number(value: float | None) -> str:
        return f"{value:,.0f}" if value is not None else "-"

    header = ("scenario", "contender", "agents", "SPS", "min-max", "collect", "update", "coll%")
    print("{:<9} {:<26} {:>6} {:>10} {:>19} {:>10} {:>10} {:>5}  Coltra/x".format(*header))
    for row in rows:
        same = [
            r.sps
            for r in rows
            if r.scenario == row.scenario
            and r.contender.startswith("coltra")
            and not r.contender.startswith("coltra-native")  # not the same env API
            and not r.contender.endswith(("-ut2", "-overlap", "-shm", "-t2"))  # variants
            and (r.agents == row.agents or row.scenario == "pursuit")
        ]
        ratio = (
            f"{max(same) / row.sps:.2f}x" if same and not row.contender.startswith("coltra") else ""
        )
        share = f"{100 * row.collect_frac:.0f}%" if row.collect_frac is not None else "-"
        spread = f"{row.sps_min:,.0f}-{row.sps_max:,.0f}"
        print(
            f"{row.scenario:<9} {row.contender:<26} {row.agents:>6} {row.sps:>10,.0f} "
            f"{spread:>19} {number(row.collect_sps):>10} {number(row.update_sps):>10} "
            f"{share:>5}  {ratio}"
        )
    if found:
        print()
        target_header = ("target", "measured", "required", "result", "per repeat")
        print("{:<56} {:>9} {:>9} {:>6}  {}".format(*target_header))
        for target in found:
            digits = 3 if target.unit == "x" else 1  # 1.498x must not print as 1.50x
            repeats = " ".join(f"{v:.{digits}f}" for v in target.per_repeat)
            print(
                f"{target.name:<56} {target.value:>8.{digits}f}{target.unit} "
                f"{target.threshold:>8.2f}{target.unit} {'PASS' if target.passed else 'MISS':>6}  "
                f"{repeats}"
            )


def machine() -> dict[str, Any]:
    """CPU, core count, load and the versions of everything measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in (
        "coltra",
        "torch",
        "numpy",
        "gymnasium",
        "pettingzoo",
        "stable-baselines3",
        "supersuit",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        **versions,
        **_git_state(),
    }


def _git_state() -> dict[str, Any]:
    """The commit measured and the coltra files changed on top of it (the library moves
    while benchmarks run; this says which code a number belongs to)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=HERE.parent,
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout

    changed = git("status", "--porcelain", "--", "coltra")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "coltra_uncommitted": [line[3:] for line in changed.splitlines()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="samples timed per measurement (env steps for cartpole, agent steps otherwise); "
        f"default per scenario: {DEFAULT_STEPS}",
    )
    parser.add_argument("--seeds", type=int, default=3, help="repeats; medians are reported")
    parser.add_argument(
        "--quick", action="store_true", help="a rough look: 1 repeat, a quarter of the steps"
    )
    parser.add_argument(
        "--rollout",
        type=int,
        default=NUM_STEPS,
        help=f"steps per env copy per iteration in cartpole and pursuit (default {NUM_STEPS}, "
        "the shared setting; fewer make a quicker smoke run whose numbers do not compare)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rollout < MINIBATCHES:
        parser.error(f"--rollout must be >= {MINIBATCHES} (the minibatches), got {args.rollout}")
    if args.worker:
        worker_main(args.rollout)
        return
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    missing = [name for name in BENCH_EXTRAS if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"benchmarks/throughput.py needs the bench extras, missing: {', '.join(missing)} "
            "(make bench-setup, or pip install stable-baselines3 supersuit 'pettingzoo[sisl]')"
        )
    seeds = 1 if args.quick else args.seeds
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    budgets = {
        s: args.steps or (DEFAULT_STEPS[s] // 4 if args.quick else DEFAULT_STEPS[s])
        for s in scenarios
    }

    info = machine()
    start = time.perf_counter()
    results: list[Measurement] = []
    with workers(("coltra", "sb3", "reference"), args.rollout) as pool:
        for scenario in scenarios:
            results += measure(scenario, budgets[scenario], seeds, pool, sys.stderr)
    info["load_avg_1m_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    rows = summarise(results)
    found = targets(rows, results)
    print_table(rows, found)
    summary = {
        "benchmark": "throughput",
        "machine": info,
        "settings": {
            "scenarios": scenarios,
            "steps": budgets,
            "seeds": seeds,
            "num_envs": NUM_ENVS,
            "num_steps": args.rollout,
            "epochs": EPOCHS,
            "minibatches": MINIBATCHES,
            "hidden": list(HIDDEN),
            "torch_threads": 1,
            "pursuit_agents": PURSUIT_COPIES * PURSUIT_AGENTS,
            "crowd_rollout": CROWD_ROLLOUT,
        },
        "wall_time_s": time.perf_counter() - start,
        "summary": [asdict(row) for row in rows],
        "targets": [{**asdict(t), "passed": t.passed} for t in found],
        "results": [asdict(r) for r in results],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
