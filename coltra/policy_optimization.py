"""CrowdPPOptimizer: the whole PPO update, readable top to bottom in ``train_on_data``.

Defaults follow CleanRL's ``ppo.py`` (Huang et al. 2022, "The 37 Implementation Details of
Proximal Policy Optimization"); see ``coltra.configs.PPOConfig`` for each value and its
source. Metrics use CleanRL's names (``losses/approx_kl``, ``losses/clipfrac``, ...).
``CrowdPPOptimizer.timing`` says where the last update's time went: ``gae_s`` (advantage
estimation) and ``total_s`` (the whole of ``train_on_data``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coltra.advantages import compute_gae, explained_variance
from coltra.buffers import MemoryRecord
from coltra.configs import ConfigError, PPOConfig
from coltra.groups import MacroAgent

__all__ = ["CrowdPPOptimizer", "PPOLoss", "ppo_loss"]


@dataclass
class PPOLoss:
    """The pieces of one minibatch's loss (tensors, so ``total`` can be backpropagated)."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor  # low-variance estimator E[(r - 1) - log r] (Schulman 2020)
    old_approx_kl: torch.Tensor  # naive estimator E[-log r]
    clipfrac: torch.Tensor


def ppo_loss(
    logprob: torch.Tensor,  # [batch] under the current policy
    old_logprob: torch.Tensor,  # [batch] when the data was collected
    advantage: torch.Tensor,  # [batch]
    value: torch.Tensor,  # [batch] current value estimates
    old_value: torch.Tensor,  # [batch] value estimates at collection
    returns: torch.Tensor,  # [batch] GAE returns (value targets)
    entropy: torch.Tensor,  # [batch]
    config: PPOConfig,
    ent_coef: float,
) -> PPOLoss:
    """Clipped surrogate + (optionally clipped) value loss - entropy bonus (Schulman 2017)."""
    if config.norm_adv and advantage.numel() > 1:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)

    log_ratio = logprob - old_logprob
    ratio = log_ratio.exp()
    policy_loss_unclipped = -advantage * ratio
    policy_loss_clipped = -advantage * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
    policy_loss = torch.max(policy_loss_unclipped, policy_loss_clipped).mean()

    if config.clip_vloss:
        value_clipped = old_value + (value - old_value).clamp(-config.clip_coef, config.clip_coef)
        value_loss = 0.5 * torch.max((value - returns) ** 2, (value_clipped - returns) ** 2).mean()
    else:
        value_loss = 0.5 * ((value - returns) ** 2).mean()

    entropy_loss = entropy.mean()
    total = policy_loss - ent_coef * entropy_loss + config.vf_coef * value_loss

    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        old_approx_kl = (-log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > config.clip_coef).float().mean()
    return PPOLoss(total, policy_loss, value_loss, entropy_loss, approx_kl, old_approx_kl, clipfrac)


def _adam(parameters: list[torch.nn.Parameter], config: PPOConfig) -> torch.optim.Adam:
    """Adam with the fused kernel when every parameter sits on one device that has it:
    one kernel for all parameters instead of a Python loop over them."""
    devices = {parameter.device.type for parameter in parameters}
    fused = len(devices) == 1 and devices <= {"cpu", "cuda"}
    return torch.optim.Adam(parameters, lr=config.lr, eps=config.adam_eps, fused=fused)


class CrowdPPOptimizer:
    """PPO for every trainable policy of a group, each on its own data.

    ``config`` is a ``PPOConfig`` or a (partial) dict of its keys; ``{}`` means defaults.
    """

    def __init__(self, agents: MacroAgent, config: Mapping[str, Any] | PPOConfig | None = None):
        if isinstance(config, PPOConfig):
            self.config = config
        elif config is None or isinstance(config, Mapping):
            self.config = PPOConfig.from_dict(dict(config or {}))
        else:
            raise TypeError(f"CrowdPPOptimizer config must be a dict or PPOConfig, got {config!r}")
        self.agents = agents
        self.optimizers = {
            policy: _adam(agents.agents[policy].parameters(), self.config)
            for policy in agents.trainable_policies
        }
        self.iteration = 0  # completed calls of train_on_data
        self.rng = np.random.default_rng(self.config.seed)
        self.timing: dict[str, float] = {"gae_s": 0.0, "total_s": 0.0}  # of the last update

    def schedule(self) -> tuple[float, float]:
        """Learning rate and entropy coefficient for the current iteration (linear)."""
        cfg = self.config
        progress = 0.0
        if cfg.anneal_iterations:
            progress = min(self.iteration / cfg.anneal_iterations, 1.0)
        lr = cfg.lr * (1.0 - progress) if cfg.anneal_lr else cfg.lr
        ent_coef = cfg.ent_coef
        if cfg.ent_coef_final is not None:
            ent_coef = cfg.ent_coef + (cfg.ent_coef_final - cfg.ent_coef) * progress
        return lr, ent_coef

    def train_on_data(
        self, data_dict: Mapping[str, MemoryRecord], shape: tuple[int, int] | None = None
    ) -> dict[str, float]:
        """One PPO update of each policy in ``data_dict`` on its rollout. Returns metrics,
        prefixed with ``<policy>/`` when the group has several policies."""
        cfg = self.config
        unknown = [policy for policy in data_dict if policy not in self.agents.agents]
        if unknown:
            raise KeyError(
                f"data for unknown policies {unknown}; the group has {self.agents.policy_names}"
            )
        lr, ent_coef = self.schedule()
        metrics: dict[str, float] = {}
        started, gae_s = time.perf_counter(), 0.0

        for policy, record in data_dict.items():
            if policy not in self.optimizers:  # a frozen policy acts but does not learn
                continue
            agent, optimizer = self.agents.agents[policy], self.optimizers[policy]
            params = [p for group in optimizer.param_groups for p in group["params"]]
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 1. Advantages and value targets on [agents, steps], truncation-aware.
            gae_started = time.perf_counter()
            advantages, returns = compute_gae(
                record.reward,
                record.value,
                record.terminated,
                record.truncated,
                record.bootstrap_value,
                record.last_value,
                gamma=cfg.gamma,
                gae_lambda=cfg.gae_lambda,
                mask=record.mask,
            )
            gae_s += time.perf_counter() - gae_started

            # 2. Flatten to one batch of the valid (unmasked) samples.
            valid = np.flatnonzero(record.mask.reshape(-1))
            device = agent.device

            def flat(array: np.ndarray, valid: np.ndarray = valid) -> np.ndarray:
                return array.reshape(-1, *array.shape[2:])[valid]  # [agents * steps, ...]

            obs = record.obs.map(flat).tensor(device)
            actions = record.action.map(flat).tensor(device)
            old_logprob = torch.as_tensor(flat(record.logprob), device=device)
            old_value = torch.as_tensor(flat(record.value), device=device)
            batch_advantages = torch.as_tensor(flat(advantages), device=device)
            batch_returns = torch.as_tensor(flat(returns), device=device)
            batch_size = len(valid)
            minibatch_size = self._minibatch_size(batch_size)

            # 3. Epochs of shuffled minibatches of the clipped PPO loss.
            sums: dict[str, float] = {}
            updates, epochs_done, stopped_early = 0, 0, False
            for _ in range(cfg.epochs):
                order = torch.as_tensor(self.rng.permutation(batch_size), device=device)
                for start in range(0, batch_size - minibatch_size + 1, minibatch_size):
                    index = order[start : start + minibatch_size]
                    logprob, value, entropy = agent.evaluate(obs[index], actions[index])
                    loss = ppo_loss(
                        logprob,
                        old_logprob[index],
                        batch_advantages[index],
                        value,
                        old_value[index],
                        batch_returns[index],
                        entropy,
                        cfg,
                        ent_coef,
                    )
                    if cfg.target_kl is not None and loss.approx_kl.item() > cfg.target_kl:
                        stopped_early = True  # stop before a step that goes too far
                        break
                    self._check_finite(policy, "loss", loss.total)
                    optimizer.zero_grad(set_to_none=True)
                    loss.total.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(
                        params, cfg.max_grad_norm, foreach=True
                    )
                    self._check_finite(policy, "gradient norm", grad_norm)
                    optimizer.step()

                    updates += 1
                    for key, tensor in (
                        ("policy_loss", loss.policy),
                        ("value_loss", loss.value),
                        ("entropy", loss.entropy),
                        ("approx_kl", loss.approx_kl),
                        ("old_approx_kl", loss.old_approx_kl),
                        ("clipfrac", loss.clipfrac),
                        ("grad_norm", grad_norm),
                    ):
                        sums[key] = sums.get(key, 0.0) + float(tensor.item())
                if stopped_early:
                    break
                epochs_done += 1

            # 4. Metrics: minibatch means, plus how well the values explained the returns.
            prefix = f"{policy}/" if len(self.agents.agents) > 1 else ""
            for key, total in sums.items():
                metrics[f"{prefix}losses/{key}"] = total / max(updates, 1)
            metrics[f"{prefix}losses/explained_variance"] = explained_variance(
                flat(record.value), flat(returns)
            )
            metrics[f"{prefix}losses/epochs"] = float(epochs_done)
            metrics[f"{prefix}losses/updates"] = float(updates)
            metrics[f"{prefix}losses/early_stop"] = float(stopped_early)
            metrics[f"{prefix}charts/batch_size"] = float(batch_size)

        metrics["charts/learning_rate"] = lr
        metrics["charts/ent_coef"] = ent_coef
        self.timing = {"gae_s": gae_s, "total_s": time.perf_counter() - started}
        self.iteration += 1
        return metrics

    def _minibatch_size(self, batch_size: int) -> int:
        cfg = self.config
        if batch_size == 0:
            raise ValueError("no valid samples to train on: every entry of the rollout is masked")
        if cfg.minibatch_size is not None:
            if cfg.minibatch_size > batch_size:
                raise ConfigError(
                    f"ppo.minibatch_size: {cfg.minibatch_size} is larger than the batch of "
                    f"{batch_size} samples collected per iteration"
                )
            return cfg.minibatch_size
        if cfg.num_minibatches > batch_size:
            raise ConfigError(
                f"ppo.num_minibatches: {cfg.num_minibatches} minibatches do not fit in a batch "
                f"of {batch_size} samples"
            )
        return batch_size // cfg.num_minibatches

    def _check_finite(self, policy: str, quantity: str, value: torch.Tensor) -> None:
        """Stop before a NaN/inf reaches the weights, naming where it appeared."""
        if not torch.isfinite(value).all():
            raise FloatingPointError(
                f"PPO update {self.iteration} of policy '{policy}': the {quantity} is "
                f"{value.item()}; the weights were not changed by this step"
            )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Optimizer moments, iteration and shuffling RNG: what resuming needs (a copy, so
        later updates do not change it)."""
        return {
            "iteration": self.iteration,
            "optimizers": {
                name: copy.deepcopy(opt.state_dict()) for name, opt in self.optimizers.items()
            },
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        for name, opt_state in state["optimizers"].items():
            if name not in self.optimizers:
                raise KeyError(f"optimizer state for unknown policy '{name}'")
            self.optimizers[name].load_state_dict(opt_state)
        self.rng.bit_generator.state = state["rng"]
