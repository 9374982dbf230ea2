"""Single-file CleanRL-style PPO for discrete actions: the peer Coltra is benchmarked against.

Written from the published algorithm, following the structure of CleanRL's ``ppo.py`` (Huang
et al. 2022, "The 37 Implementation Details of PPO"): vectorised envs, separate 64x64 tanh
actor and critic with orthogonal init, a reverse GAE loop, flatten, epochs x shuffled
minibatches, clipped policy and value losses, entropy bonus, gradient clipping.

Like CleanRL, truncation is treated as termination (no bootstrap from the final observation).
Gymnasium 1.x autoresets on the *next* step by default; the vector env here is built with
``AutoresetMode.SAME_STEP`` instead, which gives the pre-1.0 semantics CleanRL was written for:
the observation returned with ``done`` is already the first one of the next episode, so
``dones[t]`` marks "obs[t] starts a new episode" and no transition crosses an episode boundary.

Run: ``python benchmarks/reference/cleanrl_ppo.py --total-timesteps 100000``; prints one JSON
line. Or call ``train(Args(...), on_iteration=...)`` from a harness.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, get_type_hints

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.distributions.categorical import Categorical


@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """the id of the gymnasium environment (discrete actions, flat observations)"""
    num_envs: int = 8
    """the number of parallel environment copies (gymnasium SyncVectorEnv)"""
    num_steps: int = 128
    """the number of steps per environment copy in each rollout"""
    total_timesteps: int = 100_000
    """total environment steps of the run, summed over copies"""
    learning_rate: float = 2.5e-4
    """the learning rate of the Adam optimizer"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 over the run"""
    gamma: float = 0.99
    """the discount factor"""
    gae_lambda: float = 0.95
    """the lambda of generalised advantage estimation"""
    num_minibatches: int = 4
    """the number of minibatches each rollout is split into"""
    update_epochs: int = 4
    """the number of passes over each rollout"""
    norm_adv: bool = True
    """normalise advantages within each minibatch"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient (also clips the value update)"""
    clip_vloss: bool = True
    """use the clipped value loss"""
    ent_coef: float = 0.01
    """the entropy bonus coefficient"""
    vf_coef: float = 0.5
    """the value loss coefficient"""
    max_grad_norm: float = 0.5
    """the maximum global norm of the gradient"""
    target_kl: float | None = None
    """stop an update's epochs early once approx_kl exceeds this (None: never)"""
    seed: int = 1
    """seed of the environments, torch and the minibatch shuffle"""
    torch_threads: int = 1
    """torch.set_num_threads for the run"""
    cuda: bool = False
    """use CUDA when available"""


def make_env(env_id: str) -> Callable[[], gym.Env[Any, Any]]:
    """A thunk for the vector env; episode statistics are recorded on the vector env."""

    def thunk() -> gym.Env[Any, Any]:
        return gym.make(env_id)

    return thunk


def layer_init(layer: nn.Linear, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain ``std``, constant bias (implementation detail #2)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class Agent(nn.Module):
    """Separate critic and actor MLPs, 64x64 tanh each."""

    def __init__(self, obs_size: int, num_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_size, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_size, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, num_actions), std=0.01),
        )

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        """V(x), shape ``[batch, 1]``."""
        return self.critic(x)

    def get_action_and_value(
        self, x: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(action, log_prob(action), entropy, value); samples an action when none is given."""
        probs = Categorical(logits=self.actor(x))
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


def train(
    args: Args, on_iteration: Callable[[dict[str, float]], bool | None] | None = None
) -> dict[str, float]:
    """Runs PPO; returns summary: env_steps, wall_time_s, sps, final mean episodic return (last
    20 episodes), and per-phase times: collect_s, update_s.

    ``on_iteration`` gets each iteration's metrics (global_step, mean_return of the last 20
    finished episodes, sps, learning_rate, losses, approx_kl, clipfrac, explained_variance);
    returning True stops training after that iteration.
    """
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    num_iterations = args.total_timesteps // batch_size
    if num_iterations < 1 or minibatch_size < 1:
        raise ValueError(
            f"total_timesteps={args.total_timesteps} must be at least num_envs * num_steps = "
            f"{batch_size}, and num_minibatches={args.num_minibatches} at most that"
        )

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = True
    torch.set_num_threads(args.torch_threads)
    shuffle_rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.vector.SyncVectorEnv(
            [make_env(args.env_id) for _ in range(args.num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
    )
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(f"{args.env_id}: only discrete action spaces, got {action_space}")
    assert obs_space.shape is not None
    envs.action_space.seed(args.seed)

    agent = Agent(int(np.prod(obs_space.shape)), int(action_space.n)).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # Rollout storage, [num_steps, num_envs] (+ observation shape).
    obs = torch.zeros((args.num_steps, args.num_envs, *obs_space.shape), device=device)
    actions = torch.zeros((args.num_steps, args.num_envs), device=device)
    logprobs = torch.zeros((args.num_steps, args.num_envs), device=device)
    rewards = torch.zeros((args.num_steps, args.num_envs), device=device)
    dones = torch.zeros((args.num_steps, args.num_envs), device=device)
    values = torch.zeros((args.num_steps, args.num_envs), device=device)

    recent_returns: deque[float] = deque(maxlen=20)
    global_step = 0
    collect_s = update_s = 0.0
    start_time = time.perf_counter()
    next_obs_np, _ = envs.reset(seed=args.seed)
    next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
    next_done = torch.zeros(args.num_envs, device=device)

    for iteration in range(1, num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        phase_start = time.perf_counter()
        for step in range(args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            next_obs_np, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            # Same-step autoreset: next_obs_np already starts a new episode where done.
            next_done_np = np.logical_or(terminations, truncations)
            rewards[step] = torch.as_tensor(reward, dtype=torch.float32, device=device)
            next_obs = torch.as_tensor(next_obs_np, dtype=torch.float32, device=device)
            next_done = torch.as_tensor(next_done_np, dtype=torch.float32, device=device)
            if "_episode" in infos:
                recent_returns.extend(infos["episode"]["r"][infos["_episode"]].tolist())
        collect_s += time.perf_counter() - phase_start

        phase_start = time.perf_counter()
        # GAE, in reverse (Schulman et al. 2016); dones[t + 1] means obs[t + 1] is a reset.
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = torch.zeros(args.num_envs, device=device)
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                lastgaelam = (
                    delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
                ).flatten()
                advantages[t] = lastgaelam
            returns = advantages + values

        # Flatten the batch.
        b_obs = obs.reshape((-1, *obs_space.shape))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1).long()
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # Optimise the policy and value network.
        b_inds = np.arange(batch_size)
        clipfracs: list[float] = []
        for _epoch in range(args.update_epochs):
            shuffle_rng.shuffle(b_inds)
            for start in range(0, batch_size, minibatch_size):
                mb_inds = b_inds[start : start + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_actions[mb_inds]
                )
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    # http://joschu.net/blog/kl-approx.html: (ratio - 1) - log ratio.
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std() + 1e-8
                    )

                # Clipped surrogate policy loss.
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(
                    ratio, 1 - args.clip_coef, 1 + args.clip_coef
                )
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # Value loss, optionally clipped around the rollout's value estimates.
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
        update_s += time.perf_counter() - phase_start

        elapsed = time.perf_counter() - start_time
        metrics = {
            "iteration": float(iteration),
            "global_step": float(global_step),
            "mean_return": _mean(recent_returns),
            "sps": global_step / elapsed,
            "learning_rate": float(optimizer.param_groups[0]["lr"]),
            "value_loss": v_loss.item(),
            "policy_loss": pg_loss.item(),
            "entropy": entropy_loss.item(),
            "old_approx_kl": old_approx_kl.item(),
            "approx_kl": approx_kl.item(),
            "clipfrac": float(np.mean(clipfracs)),
            "explained_variance": float(explained_var),
        }
        if on_iteration is not None and on_iteration(metrics):
            break

    wall_time_s = time.perf_counter() - start_time
    envs.close()
    return {
        "env_steps": float(global_step),
        "wall_time_s": wall_time_s,
        "sps": global_step / wall_time_s,
        "mean_return": _mean(recent_returns),
        "collect_s": collect_s,
        "update_s": update_s,
    }


def _mean(values: deque[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _field_docs() -> dict[str, str]:
    """The docstring under each Args field, for --help."""
    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(Args)).body[0]
    assert isinstance(body, ast.ClassDef)
    for node, following in zip(body.body, body.body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = str(following.value.value)
    return docs


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def parse_args(argv: list[str] | None = None) -> Args:
    """``Args`` from command-line flags: ``--num-envs 8``, ``--anneal-lr false``, ..."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    hints = get_type_hints(Args)
    docs = _field_docs()
    defaults = Args()
    for field in fields(Args):
        hint = hints[field.name]
        if hint is bool:
            kind: Callable[[str], Any] = _parse_bool
        elif hint in (str, int, float):
            kind = hint
        else:  # float | None
            kind = _parse_optional_float
        default = getattr(defaults, field.name)
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=kind,
            default=default,
            nargs="?" if hint is bool else None,
            const=True if hint is bool else None,
            help=f"{docs.get(field.name, '')} (default: {default})",
        )
    return Args(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    cli_args = parse_args()
    summary = train(cli_args)
    print(json.dumps({**summary, "args": asdict(cli_args)}))
