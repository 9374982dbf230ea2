"""CrowdPPOptimizer and the PPO loss: exact loss values, schedules, safety checks."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
import torch

import coltra.policy_optimization
from coltra.advantages import compute_gae
from coltra.agents import DAgent
from coltra.buffers import MemoryRecord, Observation
from coltra.collectors import CrowdCollector
from coltra.configs import ConfigError, PPOConfig
from coltra.envs.probe_envs import ConstantRewardEnv, ObsActionRewardEnv, ObservedRewardEnv
from coltra.groups import HomogeneousGroup, MultiPolicyGroup
from coltra.models import MLPModel
from coltra.policy_optimization import (
    CrowdPPOptimizer,
    LossTerm,
    Minibatch,
    PPOLoss,
    minibatch_size,
    ppo_loss,
)
from coltra.reward_scaling import ReturnScaler

CLEANRL_METRICS = {
    "losses/policy_loss",
    "losses/value_loss",
    "losses/entropy",
    "losses/approx_kl",
    "losses/old_approx_kl",
    "losses/clipfrac",
    "losses/explained_variance",
    "losses/grad_norm",
    "charts/learning_rate",
}


def make_agent(env: ConstantRewardEnv, seed: int = 0) -> DAgent:
    torch.manual_seed(seed)
    return DAgent(
        MLPModel({}, observation_space=env.observation_space, action_space=env.action_space)
    )


def two_policies(
    env: ObsActionRewardEnv, mapping: dict[str, str], frozen: tuple[str, ...] | list[str] = ()
) -> tuple[dict[str, MLPModel], MultiPolicyGroup]:
    """A model per policy named in ``mapping`` (prefix -> policy) and their group."""
    torch.manual_seed(0)
    models = {
        name: MLPModel({}, observation_space=env.observation_space, action_space=env.action_space)
        for name in dict.fromkeys(mapping.values())
    }
    group = MultiPolicyGroup(
        {name: DAgent(model) for name, model in models.items()}, mapping, frozen=list(frozen)
    )
    return models, group


def rollout(
    agents: HomogeneousGroup | MultiPolicyGroup, env: ConstantRewardEnv, steps: int = 8
) -> dict[str, MemoryRecord]:
    data, _, _ = CrowdCollector(agents, env, seed=0).collect(steps)
    return data


def tensors(*values: list[float]) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=torch.float32) for v in values]


def test_loss_at_ratio_one_is_minus_the_mean_advantage() -> None:
    logprob, advantage, value, returns, entropy = tensors(
        [-0.5, -1.0], [1.0, 3.0], [0.0, 0.0], [1.0, 3.0], [0.7, 0.5]
    )
    config = PPOConfig(norm_adv=False, clip_vloss=False, vf_coef=0.5)
    loss = ppo_loss(logprob, logprob, advantage, value, value, returns, entropy, config, 0.1)
    assert loss.policy.item() == pytest.approx(-2.0)
    assert loss.value.item() == pytest.approx(0.5 * (1 + 9) / 2)
    assert loss.entropy.item() == pytest.approx(0.6)
    assert loss.total.item() == pytest.approx(-2.0 - 0.1 * 0.6 + 0.5 * 2.5)
    assert loss.approx_kl.item() == 0.0 and loss.clipfrac.item() == 0.0


def test_policy_ratio_is_clipped() -> None:
    old = torch.zeros(2)
    new = torch.log(torch.tensor([1.5, 0.5]))
    advantage = torch.tensor([1.0, -1.0])
    zeros = torch.zeros(2)
    config = PPOConfig(norm_adv=False, clip_coef=0.2)
    loss = ppo_loss(new, old, advantage, zeros, zeros, zeros, zeros, config, 0.0)
    # sample 0: min(1.5 * 1, 1.2 * 1) = 1.2; sample 1: min(0.5 * -1, 0.8 * -1) = -0.8
    assert loss.policy.item() == pytest.approx(-(1.2 - 0.8) / 2)
    assert loss.clipfrac.item() == 1.0
    expected_kl = np.mean([(1.5 - 1) - math.log(1.5), (0.5 - 1) - math.log(0.5)])
    assert loss.approx_kl.item() == pytest.approx(expected_kl, rel=1e-6)


def test_value_loss_is_clipped_around_the_old_value() -> None:
    value, old_value, returns = tensors([1.0], [0.0], [1.0])
    zeros = torch.zeros(1)
    config = PPOConfig(norm_adv=False, clip_coef=0.2, clip_vloss=True)
    loss = ppo_loss(zeros, zeros, zeros, value, old_value, returns, zeros, config, 0.0)
    # unclipped error 0, clipped prediction 0.2 → error 0.8² ; max → 0.64, times 0.5
    assert loss.value.item() == pytest.approx(0.5 * 0.64)


def test_sb3_value_clipping_takes_the_clipped_error_alone_and_stops_its_gradient() -> None:
    """value_clip clipped: SB3's clip_range_vf. An estimate moved past old +- clip_coef
    gets no value gradient, even where the unclipped one is the larger error."""
    old_value, returns = tensors([0.0, 0.0], [1.0, -1.0])
    value = torch.tensor([1.0, 0.1], requires_grad=True)  # row 0 past the clip, row 1 inside
    zeros = torch.zeros(2)
    config = PPOConfig(norm_adv=False, clip_coef=0.2, clip_vloss=True, value_clip="clipped")
    loss = ppo_loss(zeros, zeros, zeros, value, old_value, returns, zeros, config, 0.0)
    # row 0: clipped to 0.2, error 0.8²; row 1: 0.1 unclipped, error 1.1²; halved, mean
    assert loss.value.item() == pytest.approx((0.5 * 0.64 + 0.5 * 1.21) / 2)
    loss.value.backward()
    assert value.grad is not None
    assert value.grad.tolist() == pytest.approx([0.0, (0.1 + 1.0) / 2])
    # The two differ where the unclipped error is the larger: estimate 1 (old 0) for a
    # return of -1 costs CleanRL 2² and SB3 the clipped estimate's 1.2².
    value, old_value, returns = tensors([1.0], [0.0], [-1.0])
    zero = torch.zeros(1)
    cleanrl = config.update({"value_clip": "max"})
    assert ppo_loss(
        zero, zero, zero, value, old_value, returns, zero, cleanrl, 0.0
    ).value.item() == pytest.approx(0.5 * 2.0**2)
    assert ppo_loss(
        zero, zero, zero, value, old_value, returns, zero, config, 0.0
    ).value.item() == pytest.approx(0.5 * 1.2**2)


def test_advantages_are_normalised_per_minibatch() -> None:
    advantage = torch.tensor([1.0, 3.0])
    zeros = torch.zeros(2)
    loss = ppo_loss(zeros, zeros, advantage, zeros, zeros, zeros, zeros, PPOConfig(), 0.0)
    assert loss.policy.item() == pytest.approx(0.0, abs=1e-6)


def test_huber_value_loss_is_quadratic_within_delta_and_linear_beyond() -> None:
    value, returns = tensors([0.0, 20.0], [1.0, 0.0])
    zeros = torch.zeros(2)
    huber = PPOConfig(norm_adv=False, clip_vloss=False, value_loss="huber", huber_delta=10.0)
    loss = ppo_loss(zeros, zeros, zeros, value, value, returns, zeros, huber, 0.0)
    assert loss.value.item() == pytest.approx((0.5 * 1**2 + 10.0 * (20.0 - 5.0)) / 2)
    mse = PPOConfig(norm_adv=False, clip_vloss=False)
    assert ppo_loss(
        zeros, zeros, zeros, value, value, returns, zeros, mse, 0.0
    ).value.item() == pytest.approx((0.5 + 200.0) / 2)
    # Clipped around the old value 0 (clip 0.2): the prediction 0.2 is 0.8 off, beyond a
    # delta of 0.5, so the worse of the two errors is 0.5 * (0.8 - 0.25).
    value, old, returns, zero = tensors([1.0], [0.0], [1.0], [0.0])
    clipped = huber.update({"clip_vloss": True, "huber_delta": 0.5})
    loss = ppo_loss(zero, zero, zero, value, old, returns, zero, clipped, 0.0)
    assert loss.value.item() == pytest.approx(0.5 * (0.8 - 0.25))


def test_advantages_normalised_over_the_batch_are_not_normalised_again() -> None:
    advantage = torch.tensor([1.0, 3.0])
    zeros = torch.zeros(2)
    config = PPOConfig(norm_adv_over="batch")
    loss = ppo_loss(zeros, zeros, advantage, zeros, zeros, zeros, zeros, config, 0.0)
    assert loss.policy.item() == pytest.approx(-2.0)
    env = ObsActionRewardEnv(num_agents=8)
    agents = HomogeneousGroup(make_agent(env))
    data = rollout(agents, env)
    seen: list[torch.Tensor] = []

    def record(batch: Minibatch) -> torch.Tensor:
        seen.append(batch.advantages.detach())
        return torch.zeros(())

    optimizer = CrowdPPOptimizer(
        agents, {"norm_adv_over": "batch", "epochs": 1}, loss_terms={"spy": record}
    )
    optimizer.train_on_data(data)
    whole = torch.cat(seen)  # every sample once (one epoch)
    assert whole.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert whole.std().item() == pytest.approx(1.0, abs=1e-5)


def test_train_on_data_reports_cleanrl_metrics() -> None:
    env = ObsActionRewardEnv(num_agents=8)
    agents = HomogeneousGroup(make_agent(env))
    optimizer = CrowdPPOptimizer(agents, {})
    metrics = optimizer.train_on_data(rollout(agents, env))
    assert CLEANRL_METRICS <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics["losses/updates"] == 4 * 4
    assert metrics["charts/batch_size"] == 64
    timing = optimizer.timing
    assert set(timing.seconds) == {"gae", "update"}
    assert 0.0 < timing["gae"] < timing["update"]


def test_several_policies_train_on_their_own_data_and_frozen_ones_do_not() -> None:
    env = ObsActionRewardEnv(num_agents=4)
    models, agents = two_policies(env, {"agent_0": "frozen", "": "learner"}, frozen=["frozen"])
    before = {name: [p.clone() for p in model.parameters()] for name, model in models.items()}
    metrics = CrowdPPOptimizer(agents, {}).train_on_data(rollout(agents, env))
    assert "learner/losses/policy_loss" in metrics and "frozen/losses/policy_loss" not in metrics
    assert all(torch.equal(a, b) for a, b in zip(before["frozen"], models["frozen"].parameters()))
    assert not all(
        torch.equal(a, b) for a, b in zip(before["learner"], models["learner"].parameters())
    )


def test_learning_rate_and_entropy_anneal_linearly() -> None:
    env = ConstantRewardEnv(num_agents=4)
    agents = HomogeneousGroup(make_agent(env))
    config = {
        "lr": 1e-3,
        "anneal_lr": True,
        "anneal_iterations": 4,
        "ent_coef": 0.1,
        "ent_coef_final": 0.0,
    }
    optimizer = CrowdPPOptimizer(agents, config)
    data = rollout(agents, env)
    seen = [optimizer.train_on_data(data) for _ in range(5)]
    lrs = [m["charts/learning_rate"] for m in seen]
    np.testing.assert_allclose(lrs, [1e-3, 0.75e-3, 0.5e-3, 0.25e-3, 0.0])
    np.testing.assert_allclose([m["charts/ent_coef"] for m in seen], [0.1, 0.075, 0.05, 0.025, 0.0])


def test_target_kl_stops_the_epochs_early() -> None:
    env = ObsActionRewardEnv(num_agents=16)
    agents = HomogeneousGroup(make_agent(env))
    optimizer = CrowdPPOptimizer(agents, {"target_kl": 1e-9, "lr": 0.1})
    metrics = optimizer.train_on_data(rollout(agents, env))
    assert metrics["losses/early_stop"] == 1.0
    assert metrics["losses/updates"] < 16


def test_shuffling_is_seeded() -> None:
    env = ObsActionRewardEnv(num_agents=8)

    def train(seed: int) -> dict[str, float]:
        agents = HomogeneousGroup(make_agent(env, seed=1))
        data = rollout(agents, env)
        return CrowdPPOptimizer(agents, {"seed": seed}).train_on_data(data)

    assert train(3) == train(3)
    assert train(3) != train(4)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"lr": -1}, "lr"),
        ({"clip_coef": 0}, "clip_coef"),
        ({"gamma": 1.5}, "gamma"),
        ({"epochs": 0}, "epochs"),
        ({"lrr": 1e-3}, "lrr"),
    ],
)
def test_bad_config_values(config: dict[str, float], message: str) -> None:
    env = ConstantRewardEnv()
    with pytest.raises(ConfigError, match=message):
        CrowdPPOptimizer(HomogeneousGroup(make_agent(env)), config)


def test_minibatch_larger_than_the_batch() -> None:
    # Before a run: a config error. During one (masked rows of dead agents can leave fewer
    # samples than asked for): minibatches of what there is, with a warning.
    env = ConstantRewardEnv(num_agents=2)
    with pytest.raises(ConfigError, match="minibatch_size: 64 is larger than the batch of 16"):
        minibatch_size(PPOConfig(minibatch_size=64), 16)
    agents = HomogeneousGroup(make_agent(env))
    optimizer = CrowdPPOptimizer(agents, {"minibatch_size": 64, "epochs": 2})
    with pytest.warns(UserWarning, match="only 16 samples .* ppo.minibatch_size 64"):
        metrics = optimizer.train_on_data(rollout(agents, env))
    assert metrics["losses/updates"] == 2  # one minibatch of all 16 samples per epoch


def test_fewer_valid_samples_than_minibatches_trains_on_single_samples() -> None:
    env = ObsActionRewardEnv(num_agents=2)
    agents = HomogeneousGroup(make_agent(env))
    data = rollout(agents, env)
    data["crowd"].mask[:] = 0.0
    data["crowd"].mask[0, :3] = 1.0  # three samples left, four minibatches asked for
    optimizer = CrowdPPOptimizer(agents, {"num_minibatches": 4, "epochs": 2})
    with pytest.warns(UserWarning, match="only 3 samples .* ppo.num_minibatches 4"):
        metrics = optimizer.train_on_data(data)
    assert metrics["losses/updates"] == 2 * 3
    assert metrics["charts/batch_size"] == 3


def test_a_policy_whose_agents_were_all_absent_is_skipped_and_the_others_train() -> None:
    env = ObsActionRewardEnv(num_agents=4)
    models, agents = two_policies(env, {"agent_0": "gone", "agent_1": "gone", "": "here"})
    data = rollout(agents, env)
    data["gone"].mask[:] = 0.0  # e.g. every one of its agents dead for the whole rollout
    before = {name: [p.clone() for p in model.parameters()] for name, model in models.items()}
    optimizer = CrowdPPOptimizer(agents, {})
    with pytest.warns(UserWarning, match="policy 'gone' has no valid samples"):
        metrics = optimizer.train_on_data(data)
    assert metrics["gone/losses/skipped"] == 1.0 and metrics["here/losses/skipped"] == 0.0
    assert "gone/losses/policy_loss" not in metrics and "here/losses/policy_loss" in metrics
    assert all(torch.equal(a, b) for a, b in zip(before["gone"], models["gone"].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before["here"], models["here"].parameters()))


def test_data_from_an_unknown_policy() -> None:
    env = ConstantRewardEnv(num_agents=2)
    agents = HomogeneousGroup(make_agent(env))
    data = rollout(agents, env)
    with pytest.raises(KeyError, match="unknown policies \\['pursuer'\\]"):
        CrowdPPOptimizer(agents, {}).train_on_data({"pursuer": data["crowd"]})


def test_nan_stops_training_before_the_weights_change() -> None:
    env = ConstantRewardEnv(num_agents=2)
    agents = HomogeneousGroup(make_agent(env))
    record = rollout(agents, env)["crowd"]
    record.reward[0, 3] = np.nan
    optimizer = CrowdPPOptimizer(agents, {"norm_adv": False})
    before = [p.clone() for p in agents.parameters()]
    with pytest.raises(FloatingPointError, match="PPO update 0 of policy 'crowd': the loss is nan"):
        optimizer.train_on_data({"crowd": record})
    assert all(torch.equal(a, b) for a, b in zip(before, agents.parameters()))


def test_state_dict_round_trip_continues_identically() -> None:
    env = ObsActionRewardEnv(num_agents=8)
    agents = HomogeneousGroup(make_agent(env))
    data = rollout(agents, env)
    first = CrowdPPOptimizer(agents, {"anneal_lr": True, "anneal_iterations": 10})
    first.train_on_data(data)
    state = first.state_dict()
    weights = [p.clone() for p in agents.parameters()]
    expected = first.train_on_data(data)

    with torch.no_grad():
        for parameter, saved in zip(agents.parameters(), weights):
            parameter.copy_(saved)
    second = CrowdPPOptimizer(agents, {"anneal_lr": True, "anneal_iterations": 10})
    second.load_state_dict(state)
    assert second.train_on_data(data) == expected


# ----------------------------------------------------------------------------- extra loss terms


def test_an_extra_loss_term_sees_each_minibatch_and_is_logged() -> None:
    env = ObsActionRewardEnv(num_agents=8)
    group = HomogeneousGroup(make_agent(env))
    data = rollout(group, env)
    seen: list[Minibatch] = []

    def constant(batch: Minibatch) -> torch.Tensor:
        seen.append(batch)
        return torch.tensor(0.25) + 0.0 * batch.value.sum()

    metrics = CrowdPPOptimizer(group, {}, loss_terms={"constant": constant}).train_on_data(data)
    assert len(seen) == 4 * 4  # epochs x minibatches
    assert metrics["losses/constant"] == pytest.approx(0.25)
    first = seen[0]
    assert first.policy == "crowd" and first.agent is group.agent
    assert first.logprob.shape == first.value.shape == first.advantages.shape == (16,)
    assert first.logprob.requires_grad and first.value.requires_grad
    assert not first.old_logprob.requires_grad
    assert first.obs.batch_size == 16 and first.actions.discrete.shape == (16,)
    assert first.loss.total.requires_grad


def test_an_extra_loss_term_changes_what_is_learned() -> None:
    """A term pulling every value towards 10 (and outweighing PPO's value loss) does."""
    env = ConstantRewardEnv(num_agents=8)

    def mean_value(loss_terms: dict[str, LossTerm]) -> float:
        group = HomogeneousGroup(make_agent(env))
        optimizer = CrowdPPOptimizer(group, {"lr": 1e-2}, loss_terms=loss_terms)
        collector = CrowdCollector(group, env, seed=0)
        for _ in range(10):
            records, _, _ = collector.collect(8)
            optimizer.train_on_data(records)
        return float(records["crowd"].value.mean())

    def towards_ten(batch: Minibatch) -> torch.Tensor:
        return 10.0 * ((batch.value - 10.0) ** 2).mean()

    assert mean_value({"towards_ten": towards_ten}) > mean_value({}) + 1.0


def test_a_loss_term_must_return_a_scalar_tensor() -> None:
    env = ObsActionRewardEnv(num_agents=8)
    group = HomogeneousGroup(make_agent(env))
    data = rollout(group, env)
    for bad, shown in ((lambda batch: batch.value, "[16]"), (lambda batch: 0.5, "float")):
        optimizer = CrowdPPOptimizer(group, {}, loss_terms={"bad": bad})
        with pytest.raises(
            TypeError, match=rf"loss term 'bad' must return a scalar tensor, got {re.escape(shown)}"
        ):
            optimizer.train_on_data(data)
    with pytest.raises(TypeError, match="loss_terms maps names to functions"):
        CrowdPPOptimizer(group, {}, loss_terms={"x": 3})  # type: ignore[dict-item]


def test_annealing_without_a_length_is_refused_outside_a_run() -> None:
    group = HomogeneousGroup(make_agent(ObsActionRewardEnv()))
    with pytest.raises(
        ConfigError, match=r"^ppo\.anneal_iterations: must be set when anneal_lr is true"
    ):
        CrowdPPOptimizer(group, {"anneal_lr": True})
    with pytest.raises(ConfigError, match="must be set when ent_coef_final is set"):
        CrowdPPOptimizer(group, {"ent_coef_final": 0.0})
    CrowdPPOptimizer(group, {"anneal_lr": True, "anneal_iterations": 10})


def test_a_loss_term_may_not_take_the_name_of_a_ppo_loss() -> None:
    group = HomogeneousGroup(make_agent(ObsActionRewardEnv()))
    with pytest.raises(ValueError, match="loss term name 'entropy' is taken by PPO's own"):
        CrowdPPOptimizer(group, {}, loss_terms={"entropy": lambda batch: batch.entropy.mean()})


def test_the_old_attribute_names_still_answer_with_a_warning() -> None:
    group = HomogeneousGroup(make_agent(ObsActionRewardEnv()))
    optimizer = CrowdPPOptimizer(group, {})
    with pytest.warns(DeprecationWarning, match="MacroAgent.agents is now MacroAgent.policies"):
        assert group.agents is group.policies
    with pytest.warns(DeprecationWarning, match="CrowdPPOptimizer.agents is now"):
        assert optimizer.agents is group


# ----------------------------------------------------------------------------- normalisation


def test_return_scaling_divides_by_the_std_of_the_running_return() -> None:
    scaler = ReturnScaler(gamma=0.5)
    reward = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, 4.0]], np.float32)
    done = np.array([[False, True, False], [False, False, False]])
    mask = np.array([[True, True, True], [True, False, True]])  # row 1 absent at step 1
    scaled = scaler.scale(reward, done, mask)
    # Row 0: G = 1, 1.5, then a new episode: 1. Row 1: G = 2, (absent), 2 * 0.5 + 4 = 5.
    seen = np.array([1.0, 1.5, 1.0, 2.0, 5.0])
    std = np.sqrt(seen.var() + 1e-8)
    np.testing.assert_allclose(scaled, reward / std, rtol=1e-6)
    assert scaler.returns is not None and scaler.returns.tolist() == [1.0, 5.0]
    # A resumed run keeps the statistics but starts new episodes: G starts from 0 again.
    again = ReturnScaler(gamma=0.5)
    again.load_state_dict(scaler.state_dict())
    for key, value in scaler.stats.state_dict().items():
        assert torch.equal(again.stats.state_dict()[key], value)
    nxt = np.array([[1.0], [1.0]], np.float32)
    flags = np.zeros((2, 1), bool)
    again.scale(nxt, flags, ~flags)
    scaler.scale(nxt, flags, ~flags)
    assert again.returns is not None and again.returns.tolist() == [1.0, 1.0]
    assert scaler.returns is not None and scaler.returns.tolist() == [1.5, 3.5]  # carried on
    huge = ReturnScaler(gamma=0.0)
    assert (
        huge.scale(np.ones((1, 4), np.float32), np.ones((1, 4), bool), np.ones((1, 4), bool)).max()
        == 10.0
    )


def normalised(env: ConstantRewardEnv, **config: object) -> tuple[MLPModel, HomogeneousGroup]:
    """A seeded model with value_norm and obs_norm (and ``config``) for ``env``, in a group."""
    torch.manual_seed(0)
    model = MLPModel(
        {"value_norm": True, "obs_norm": True, **config}, env.observation_space, env.action_space
    )
    return model, HomogeneousGroup(DAgent(model))


def test_value_norm_and_obs_norm_take_in_each_update_batch() -> None:
    env = ObservedRewardEnv(num_agents=4)
    model, agents = normalised(env)
    data = rollout(agents, env, steps=16)
    record = data["crowd"]
    _, returns = compute_gae(
        record.reward, record.value, record.terminated, record.truncated,
        record.bootstrap_value, record.last_value, gamma=0.99, gae_lambda=0.95, mask=record.mask,
    )  # fmt: skip
    CrowdPPOptimizer(agents, {}).train_on_data(data)
    value_stats, obs_stats = model.value_normalizer(), model.obs_normalizer
    assert value_stats is not None and obs_stats is not None
    assert value_stats.count.item() == obs_stats.count.item() == 64
    np.testing.assert_allclose(value_stats.mean.item(), returns.mean(), rtol=1e-6)
    np.testing.assert_allclose(value_stats.var.item(), returns.var(), rtol=1e-5)
    seen = record.obs["vector"].reshape(-1, 1)
    np.testing.assert_allclose(obs_stats.mean.numpy(), seen.mean(0), rtol=1e-6)


def test_value_norm_learns_values_in_return_units() -> None:
    """Returns of 100 +- 50: the value head learns normalised targets, the values it
    reports are V(s) = 100 + 50 s."""
    env = ObservedRewardEnv(num_agents=8)
    model, agents = normalised(env, obs_norm=False, hidden_sizes=[16])
    optimizer = CrowdPPOptimizer(agents, {"lr": 1e-2, "epochs": 8})
    collector = CrowdCollector(agents, env, seed=0)
    for _ in range(40):
        data, _, _ = collector.collect(16)
        record = data["crowd"]
        record.reward[:] = 100.0 + 50.0 * record.reward  # s = +-1: 50 or 150
        optimizer.train_on_data(data)
    obs = Observation(vector=np.array([[-1.0], [1.0]], np.float32))
    with torch.no_grad():
        values = model.value(obs).numpy()
    np.testing.assert_allclose(values, [50.0, 150.0], rtol=0.05)


def test_state_dict_round_trip_with_every_normalisation() -> None:
    env = ObsActionRewardEnv(num_agents=8)
    model, agents = normalised(env)
    data = rollout(agents, env)
    config = {"reward_scaling": True}
    first = CrowdPPOptimizer(agents, config)
    first.train_on_data(data)
    state, weights = first.state_dict(), {k: v.clone() for k, v in model.state_dict().items()}
    expected = first.train_on_data(data)
    model.load_state_dict(weights)
    second = CrowdPPOptimizer(agents, config)
    second.load_state_dict(state)
    assert second.train_on_data(data) == expected


def test_with_value_norm_the_first_minibatch_starts_inside_the_value_clip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The value clip compares the head's output with its output at collection: the old
    values are normalised with the statistics they were made with, so before the first
    step the two are equal, even though this update moves the statistics a long way."""
    env = ObservedRewardEnv(num_agents=8)
    _, agents = normalised(env, obs_norm=False)
    data = rollout(agents, env, steps=16)
    data["crowd"].reward[:] = 100.0 + 50.0 * data["crowd"].reward  # far from mean 0, std 1
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = coltra.policy_optimization.ppo_loss

    def spy(logprob: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, value: torch.Tensor,
            old_value: torch.Tensor, *rest: Any) -> PPOLoss:  # fmt: skip
        seen.append((value.detach().clone(), old_value.detach().clone()))
        return real(logprob, old, adv, value, old_value, *rest)

    monkeypatch.setattr(coltra.policy_optimization, "ppo_loss", spy)
    CrowdPPOptimizer(agents, {"epochs": 1, "num_minibatches": 1}).train_on_data(data)
    value, old_value = seen[0]
    torch.testing.assert_close(value, old_value, rtol=1e-4, atol=1e-4)
