"""CrowdPPOptimizer: the whole PPO update, readable top to bottom in ``train_on_data``.

Defaults follow CleanRL's ``ppo.py`` (Huang et al. 2022, "The 37 Implementation Details of
Proximal Policy Optimization"); see ``coltra.configs.PPOConfig`` for each value and its
source. Metrics use CleanRL's names (``losses/approx_kl``, ``losses/clipfrac``, ...).

A recurrent policy (one whose rollout holds states) trains on minibatches of whole
sequences, backpropagating through time (:mod:`coltra.sequences`); the loss is the same.

Extra loss terms (``loss_terms={"name": fn}``) are added to PPO's loss on every minibatch:
``fn`` gets the :class:`Minibatch` (its observations, actions, the current log-probabilities,
values and entropies with gradients, the old ones, advantages and returns) and returns a
scalar tensor, logged as ``losses/<name>``.

``CrowdPPOptimizer.timing`` (a :class:`~coltra.timing.PhaseTimes`) says where the last
update's time went: ``gae`` (advantage estimation) and ``update`` (the rest).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from coltra.advantages import compute_gae, explained_variance
from coltra.agents import Agent
from coltra.buffers import Action, MemoryRecord, Observation
from coltra.configs import ConfigError, PPOConfig, policy_ppo
from coltra.groups import MacroAgent
from coltra.reward_scaling import ReturnScaler
from coltra.sequences import SequenceMinibatches, sequences_per_minibatch, warn_fewer
from coltra.timing import PhaseTimes

__all__ = ["CrowdPPOptimizer", "LossTerm", "Minibatch", "PPOLoss", "minibatch_size", "ppo_loss"]


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
    """Clipped surrogate + (optionally clipped) value loss - entropy bonus (Schulman 2017).
    The value loss is half the squared error, or the Huber loss (``value_loss: huber``,
    which equals it within ``huber_delta``); ``clip_vloss`` clips the new estimate to
    ``old_value +- clip_coef`` and takes the larger of both errors (``value_clip: max``,
    CleanRL) or the clipped one's alone (``clipped``, SB3's ``clip_range_vf``: no gradient
    once the estimate has moved ``clip_coef`` from its old value)."""
    if config.norm_adv and config.norm_adv_over == "minibatch" and advantage.numel() > 1:
        advantage = normalized(advantage)

    log_ratio = logprob - old_logprob
    ratio = log_ratio.exp()
    policy_loss_unclipped = -advantage * ratio
    policy_loss_clipped = -advantage * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
    policy_loss = torch.max(policy_loss_unclipped, policy_loss_clipped).mean()

    def value_error(estimate: torch.Tensor) -> torch.Tensor:
        if config.value_loss == "huber":
            return torch.nn.functional.huber_loss(
                estimate, returns, reduction="none", delta=config.huber_delta
            )
        return 0.5 * (estimate - returns) ** 2

    if config.clip_vloss:
        value_clipped = old_value + (value - old_value).clamp(-config.clip_coef, config.clip_coef)
        if config.value_clip == "clipped":  # SB3: the clipped estimate's error alone
            value_loss = value_error(value_clipped).mean()
        else:  # CleanRL: the larger of the clipped and unclipped errors
            value_loss = torch.max(value_error(value), value_error(value_clipped)).mean()
    else:
        value_loss = value_error(value).mean()

    entropy_loss = entropy.mean()
    total = policy_loss - ent_coef * entropy_loss + config.vf_coef * value_loss

    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        old_approx_kl = (-log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > config.clip_coef).float().mean()
    return PPOLoss(total, policy_loss, value_loss, entropy_loss, approx_kl, old_approx_kl, clipfrac)


def normalized(advantage: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit std (unbiased, +1e-8: CleanRL)."""
    return (advantage - advantage.mean()) / (advantage.std() + 1e-8)


@dataclass(frozen=True)
class Minibatch:
    """One minibatch of one policy's update, as an extra loss term sees it. ``[batch]``
    tensors, on the policy's device; the first three carry gradients."""

    policy: str
    agent: Agent
    logprob: torch.Tensor  # of the taken actions under the current policy
    value: torch.Tensor  # current value estimates
    entropy: torch.Tensor
    obs: Observation  # [batch, ...]
    actions: Action  # [batch, ...]
    old_logprob: torch.Tensor
    old_value: torch.Tensor
    advantages: torch.Tensor  # GAE (normalised over the batch with norm_adv_over: batch)
    returns: torch.Tensor  # value targets
    loss: PPOLoss  # PPO's own loss terms on this minibatch


#: An extra loss term: a scalar tensor from a minibatch, added to PPO's loss.
LossTerm = Callable[[Minibatch], torch.Tensor]
#: The ``losses/<name>`` metrics of the update itself (names extra terms may not take).
PPO_LOSS_METRICS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "old_approx_kl",
    "clipfrac",
    "grad_norm",
    "explained_variance",
    "epochs",
    "updates",
    "early_stop",
    "skipped",
)


def minibatch_size(config: PPOConfig, batch_size: int, strict: bool = True) -> int:
    """Samples per minibatch for a batch of ``batch_size`` samples.

    ``strict``: a ConfigError when the config asks for minibatches that do not fit (checked
    before a run starts, on the most samples a rollout can hold). Otherwise (during
    training, when masked rows of dead or absent agents left fewer samples) the minibatches
    are cut to fit, with a warning: at least one sample each."""
    if batch_size == 0:
        raise ValueError("no valid samples to train on: every entry of the rollout is masked")
    if config.minibatch_size is not None:
        if config.minibatch_size > batch_size and not strict:
            warn_fewer(batch_size, "samples", f"ppo.minibatch_size {config.minibatch_size}")
            return batch_size
        if config.minibatch_size > batch_size:
            raise ConfigError(
                f"{config.minibatch_size} is larger than the batch of {batch_size} samples "
                "collected per iteration",
                key="ppo.minibatch_size",
            )
        return config.minibatch_size
    if config.num_minibatches > batch_size and not strict:
        warn_fewer(batch_size, "samples", f"ppo.num_minibatches {config.num_minibatches}")
        return 1
    if config.num_minibatches > batch_size:
        raise ConfigError(
            f"{config.num_minibatches} minibatches do not fit in a batch of {batch_size} "
            "samples collected per iteration",
            key="ppo.num_minibatches",
        )
    return batch_size // config.num_minibatches


def _scalar(name: str, value: Any) -> torch.Tensor:
    """A loss term's value, checked: one number, as a tensor (so it can be backpropagated)."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shown = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise TypeError(f"loss term {name!r} must return a scalar tensor, got {shown}")
    return value.reshape(())


def _adam(parameters: list[torch.nn.Parameter], config: PPOConfig) -> torch.optim.Adam:
    """Adam with the fused kernel when every parameter sits on one device that has it:
    one kernel for all parameters instead of a Python loop over them."""
    devices = {parameter.device.type for parameter in parameters}
    fused = len(devices) == 1 and devices <= {"cpu", "cuda"}
    return torch.optim.Adam(parameters, lr=config.lr, eps=config.adam_eps, fused=fused)


class CrowdPPOptimizer:
    """PPO for every trainable policy of a group, each on its own data.

    ``config`` is a ``PPOConfig`` or a (partial) dict of its keys; ``{}`` means defaults.
    ``loss_terms`` maps names to extra loss terms (see the module docstring).
    ``policy_ppo`` gives policies PPO keys of their own (``{"prey": {"lr": 1e-3}}``, as a
    config's ``policies.<name>.ppo``); :attr:`configs` holds each policy's full config.
    """

    def __init__(
        self,
        agents: MacroAgent,
        config: Mapping[str, Any] | PPOConfig | None = None,
        loss_terms: Mapping[str, LossTerm] | None = None,
        policy_ppo: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.group = agents  # the seed's keyword is `agents`; it is a group
        unknown = sorted(set(policy_ppo or {}) - set(agents.policies))
        if unknown:
            raise KeyError(
                f"policy_ppo names policies {unknown} the group does not have "
                f"({agents.policy_names})"
            )
        self.policy_ppo = {name: dict(keys) for name, keys in (policy_ppo or {}).items()}
        if isinstance(config, PPOConfig):
            self.config = config
        elif config is None or isinstance(config, Mapping):
            self.config = PPOConfig.from_dict(dict(config or {}))
        else:
            raise TypeError(f"CrowdPPOptimizer config must be a dict or PPOConfig, got {config!r}")
        self.loss_terms: dict[str, LossTerm] = dict(loss_terms or {})
        for name, term in self.loss_terms.items():
            if not isinstance(name, str) or not name or not callable(term):
                raise TypeError(
                    f"loss_terms maps names to functions of a Minibatch, got {name!r}: {term!r}"
                )
            if name in PPO_LOSS_METRICS:
                raise ValueError(
                    f"loss term name {name!r} is taken by PPO's own losses/{name}; choose "
                    f"another (taken: {', '.join(PPO_LOSS_METRICS)})"
                )
        self.optimizers = {
            policy: _adam(agents.policies[policy].parameters(), self.configs[policy])
            for policy in agents.trainable_policies
        }
        self.iteration = 0  # completed calls of train_on_data
        self.reward_scalers: dict[str, ReturnScaler] = {}  # policies with ppo.reward_scaling
        self.rng = np.random.default_rng(self.config.seed)
        self.timing = PhaseTimes()  # of the last update

    @property
    def config(self) -> PPOConfig:
        """The run's PPO config; each policy's own is in :attr:`configs`."""
        return self._config

    @config.setter
    def config(self, config: PPOConfig) -> None:
        """Set the run's PPO config (a run extended past its end gets a longer schedule):
        each policy's is this one with its own keys (``policy_ppo``) on top."""
        configs = {}
        for policy in self.group.policies:
            try:
                configs[policy] = policy_ppo(config, self.policy_ppo.get(policy, {}))
            except ConfigError as exc:
                raise exc.within(f"policies.{policy}.ppo") from None
        for policy, cfg in configs.items():
            if (cfg.anneal_lr or cfg.ent_coef_final is not None) and cfg.anneal_iterations is None:
                why = "anneal_lr is true" if cfg.anneal_lr else "ent_coef_final is set"
                raise ConfigError(
                    f"must be set when {why}: the number of iterations to anneal over (a "
                    "training run sets it to trainer.iterations)",
                    key=f"policies.{policy}.ppo.anneal_iterations"
                    if {"anneal_lr", "ent_coef_final"} & set(self.policy_ppo.get(policy, {}))
                    else "ppo.anneal_iterations",
                )
        self._config, self.configs = config, configs

    @property
    def agents(self) -> MacroAgent:
        """Deprecated name of :attr:`group`."""
        warnings.warn(
            "CrowdPPOptimizer.agents is now CrowdPPOptimizer.group",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.group

    def schedule(self, policy: str | None = None) -> tuple[float, float]:
        """Learning rate and entropy coefficient for the current iteration (linear), of
        ``policy``'s config (default: the run's)."""
        cfg = self.config if policy is None else self.configs[policy]
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
        unknown = [policy for policy in data_dict if policy not in self.group.policies]
        if unknown:
            raise KeyError(
                f"data for unknown policies {unknown}; the group has {self.group.policy_names}"
            )
        metrics: dict[str, float] = {}
        started, gae_s = time.perf_counter(), 0.0

        for policy, record in data_dict.items():
            if policy not in self.optimizers:  # a frozen policy acts but does not learn
                continue
            cfg = self.configs[policy]  # the run's PPO config with this policy's own keys
            lr, ent_coef = self.schedule(policy)
            agent, optimizer = self.group.policies[policy], self.optimizers[policy]
            params = [p for param_group in optimizer.param_groups for p in param_group["params"]]
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            prefix = f"{policy}/" if len(self.group.policies) > 1 else ""
            metrics[f"{prefix}losses/skipped"] = 0.0
            if not record.mask.any():
                # Every agent of this policy was absent for the whole rollout (all dead, or
                # not yet joined): nothing to learn from, so its weights stay as they are.
                warnings.warn(
                    f"PPO update {self.iteration}: policy '{policy}' has no valid samples in "
                    "this rollout (every one of its agents was absent at every step); its "
                    "update is skipped (losses/skipped is 1)",
                    stacklevel=2,
                )
                metrics[f"{prefix}losses/skipped"] = 1.0
                continue

            # 1. Advantages and value targets on [agents, steps], truncation-aware; with
            # reward_scaling, of rewards divided by the running std of the return.
            gae_started = time.perf_counter()
            reward = record.reward
            if cfg.reward_scaling:
                scaler = self.reward_scalers.setdefault(policy, ReturnScaler(cfg.gamma))
                done = record.terminated | record.truncated
                reward = scaler.scale(reward, done, record.mask)
            advantages, returns = compute_gae(
                reward,
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
            if cfg.norm_adv and cfg.norm_adv_over == "batch" and len(valid) > 1:
                batch_advantages = normalized(batch_advantages)  # once, over the policy's batch
            batch_returns = torch.as_tensor(flat(returns), device=device)
            batch_size = len(valid)
            # With value_norm the value head predicts normalised returns (MAPPO's ValueNorm):
            # the loss compares the head's output with normalised targets. The old values
            # are normalised with the statistics they were computed with (giving back the
            # head's output at collection, as the value clip needs); then the statistics
            # take in this batch's targets.
            model = agent.model
            value_norm = model.value_normalizer() if model is not None else None
            target_returns, target_old_value = batch_returns, old_value
            if value_norm is not None:
                target_old_value = value_norm.normalize(old_value)
                value_norm.update(batch_returns)
                target_returns = value_norm.normalize(batch_returns)

            # 3. Epochs of shuffled minibatches of the clipped PPO loss: of samples, or for
            # a recurrent policy of whole sequences (backpropagation through time), whose
            # trained steps are then the minibatch's samples.
            sequences = (  # the record holds states: a policy that carries memory
                SequenceMinibatches(record, cfg.sequence_length, device)
                if record.initial_state
                else None
            )
            if sequences is None:
                units, size = batch_size, minibatch_size(cfg, batch_size, strict=False)
            else:
                units = len(sequences)
                size = sequences_per_minibatch(cfg, units, strict=False)
            sums: dict[str, float] = {}
            updates, epochs_done, stopped_early = 0, 0, False
            for _ in range(cfg.epochs):
                order = torch.as_tensor(self.rng.permutation(units), device=device)
                for start in range(0, units - size + 1, size):
                    if sequences is None:
                        index = order[start : start + size]
                        logprob, value, entropy = agent.evaluate(obs[index], actions[index])
                    else:
                        chosen = order[start : start + size]
                        index, logprob, value, entropy = sequences.evaluate(agent, chosen)
                    loss = ppo_loss(
                        logprob,
                        old_logprob[index],
                        batch_advantages[index],
                        value if value_norm is None else value_norm.normalize(value),
                        target_old_value[index],
                        target_returns[index],
                        entropy,
                        cfg,
                        ent_coef,
                    )
                    if cfg.target_kl is not None and loss.approx_kl.item() > cfg.target_kl:
                        stopped_early = True  # stop before a step that goes too far
                        break
                    total, extra_losses = loss.total, {}
                    if self.loss_terms:  # the user's extra terms, added to PPO's loss
                        minibatch = Minibatch(
                            policy=policy,
                            agent=agent,
                            logprob=logprob,
                            value=value,
                            entropy=entropy,
                            obs=obs[index],
                            actions=actions[index],
                            old_logprob=old_logprob[index],
                            old_value=old_value[index],
                            advantages=batch_advantages[index],
                            returns=batch_returns[index],
                            loss=loss,
                        )
                        for name, term in self.loss_terms.items():
                            extra_losses[name] = _scalar(name, term(minibatch))
                            total = total + extra_losses[name]
                    self._check_finite(policy, "loss", total)
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
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
                        *extra_losses.items(),
                    ):
                        sums[key] = sums.get(key, 0.0) + float(tensor.item())
                if stopped_early:
                    break
                epochs_done += 1
            if model is not None:  # obs_norm: the next rollout's statistics include this one's
                model.observe(obs)

            # 4. Metrics: minibatch means, plus how well the values explained the returns.
            for key, summed in sums.items():
                metrics[f"{prefix}losses/{key}"] = summed / max(updates, 1)
            metrics[f"{prefix}losses/explained_variance"] = explained_variance(
                flat(record.value), flat(returns)
            )
            metrics[f"{prefix}losses/epochs"] = float(epochs_done)
            metrics[f"{prefix}losses/updates"] = float(updates)
            metrics[f"{prefix}losses/early_stop"] = float(stopped_early)
            metrics[f"{prefix}charts/batch_size"] = float(batch_size)
            if policy in self.policy_ppo:
                metrics[f"{prefix}charts/learning_rate"] = lr
                metrics[f"{prefix}charts/ent_coef"] = ent_coef

        metrics["charts/learning_rate"], metrics["charts/ent_coef"] = self.schedule()
        self.timing = PhaseTimes()
        self.timing.add("gae", gae_s)
        self.timing.add("update", time.perf_counter() - started - gae_s)
        self.iteration += 1
        return metrics

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
            "reward_scalers": {
                name: scaler.state_dict() for name, scaler in self.reward_scalers.items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        for name, opt_state in state["optimizers"].items():
            if name not in self.optimizers:
                raise KeyError(f"optimizer state for unknown policy '{name}'")
            self.optimizers[name].load_state_dict(opt_state)
            # Adam's saved settings would replace the config's (lr is set every update).
            for param_group in self.optimizers[name].param_groups:
                param_group["eps"] = self.configs[name].adam_eps
        self.rng.bit_generator.state = state["rng"]
        for name, scaler_state in state.get("reward_scalers", {}).items():
            if name not in self.configs:
                raise KeyError(f"reward scaling statistics for unknown policy '{name}'")
            scaler = ReturnScaler(self.configs[name].gamma)
            scaler.load_state_dict(scaler_state)
            self.reward_scalers[name] = scaler
