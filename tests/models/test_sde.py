"""gSDE (continuous_mode: sde): the state-dependent Gaussian, its exploration matrices held
for sde_every collection steps, and what PPO trains on."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from coltra.agents import CAgent
from coltra.buffers import Observation
from coltra.cli import main
from coltra.collectors import CrowdCollector
from coltra.envs.probe_envs import ActionRewardEnv, ObservedRewardEnv
from coltra.groups import HomogeneousGroup, MacroAgent
from coltra.models import MLPModel
from coltra.models.sde import SDE_EPSILON, ExplorationNoise, SDENormal

PENDULUM_OBS = gym.spaces.Box(-8.0, 8.0, (3,), np.float32)
PENDULUM_ACTIONS = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)


def sde_model(**config: object) -> MLPModel:
    """A gSDE policy for Pendulum's spaces."""
    torch.manual_seed(0)
    return MLPModel(
        {"continuous_mode": "sde", "hidden_sizes": [8, 8], **config},
        observation_space=PENDULUM_OBS,
        action_space=PENDULUM_ACTIONS,
    )


def test_the_std_is_the_latent_features_through_the_learned_sigmas() -> None:
    model = sde_model(sigma0=0.5)
    with torch.no_grad():
        model.sde_log_std.copy_(torch.log(torch.tensor([[1.0], [2.0], [0.5], [1.0]] * 2)))
    obs = Observation(vector=np.array([[0.1, -0.2, 0.3], [1.0, 0.0, -1.0]], np.float32))
    distribution, _, _ = model(obs)
    assert isinstance(distribution, SDENormal)
    # The policy head's input: the last hidden layer's tanh features [2, 8].
    assert model.hidden is not None
    latent, _ = model.hidden(model.encode(obs))
    sigma = torch.tensor([1.0, 2.0, 0.5, 1.0] * 2)
    std = torch.sqrt((latent.detach() ** 2 * sigma**2).sum(-1) + SDE_EPSILON)
    torch.testing.assert_close(distribution.scale[:, 0], std)
    action = torch.tensor([[0.3], [-1.2]])
    mean = distribution.loc[:, 0]
    expected = (
        -((action[:, 0] - mean) ** 2) / (2 * std**2)
        - torch.log(std)
        - math.log(math.sqrt(2 * math.pi))
    )
    torch.testing.assert_close(distribution.log_prob(action), expected)
    torch.testing.assert_close(
        distribution.entropy(), 0.5 + 0.5 * math.log(2 * math.pi) + torch.log(std)
    )


def test_the_sigmas_learn_and_the_hidden_layers_only_through_the_mean() -> None:
    model = sde_model()
    obs = Observation(vector=np.ones((4, 3), np.float32))
    distribution, _, _ = model(obs)
    distribution.scale.sum().backward()  # the std alone: no gradient into the features
    assert model.sde_log_std.grad is not None and model.sde_log_std.grad.abs().sum() > 0
    hidden = model.hidden.parameters()  # type: ignore[union-attr]
    assert all(p.grad is None or not p.grad.any() for p in hidden)


def test_exploration_matrices_are_kept_for_sde_every_steps() -> None:
    noise = ExplorationNoise(rows=3, latent=4, actions=2, every=2, device=torch.device("cpu"))
    drawn = []
    for _ in range(5):
        noise.before_step()
        drawn.append(noise.eps.clone())
    assert torch.equal(drawn[0], drawn[1]) and torch.equal(drawn[2], drawn[3])
    assert not torch.equal(drawn[1], drawn[2]) and not torch.equal(drawn[3], drawn[4])
    latent = torch.randn(3, 4)
    sigma = torch.rand(4, 2) + 0.5
    expected = torch.einsum("rl,rla->ra", latent, drawn[4] * sigma)
    torch.testing.assert_close(noise.noise(latent, sigma), expected)
    assert noise.noise(torch.randn(5, 4), sigma) is None  # other rows: plain sampling
    with pytest.raises(ValueError, match="sde_every must be >= 1 step, got 0"):
        ExplorationNoise(3, 4, 2, every=0, device=torch.device("cpu"))


def collect_actions(every: int, env: ActionRewardEnv | ObservedRewardEnv, steps: int = 8):
    model = MLPModel(
        {"continuous_mode": "sde", "sde_every": every, "hidden_sizes": [8]},
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    agent = CAgent(model)
    group = HomogeneousGroup(agent)
    torch.manual_seed(1)
    data, _, _ = CrowdCollector(group, env, seed=0).collect(steps)
    return agent, data["crowd"]


def test_collection_keeps_each_rows_noise_for_sde_every_steps() -> None:
    # A constant observation: the action is mean + z @ W, so it changes only with W.
    env = ActionRewardEnv(num_agents=3, continuous=True, episode_length=100)
    agent, record = collect_actions(every=4, env=env)
    actions = record.action.continuous[..., 0]  # [agents, steps]
    for start in (0, 4):
        block = actions[:, start : start + 4]
        assert np.all(block == block[:, :1])
    assert np.all(actions[:, 0] != actions[:, 4])  # new matrices at step 4
    assert len(set(actions[:, 0].tolist())) == 3  # each row its own matrix
    assert agent.model.exploration is None  # exploration ends with the collect() call
    _, every_step = collect_actions(every=1, env=env)
    assert np.all(np.diff(every_step.action.continuous[..., 0], axis=1) != 0)


def test_stored_log_probs_are_the_gaussians_at_the_noisy_actions() -> None:
    env = ObservedRewardEnv(num_agents=4, continuous=True, episode_length=3)
    agent, record = collect_actions(every=3, env=env, steps=9)
    obs = record.obs.map(lambda a: a.reshape(-1, *a.shape[2:]))
    actions = record.action.map(lambda a: a.reshape(-1, *a.shape[2:]))
    with torch.no_grad():
        logprob, value, _ = agent.evaluate(obs, actions)
    np.testing.assert_allclose(logprob.numpy(), record.logprob.reshape(-1), atol=1e-5)
    np.testing.assert_allclose(value.numpy(), record.value.reshape(-1), atol=1e-5)


def test_acting_outside_collection_samples_plainly_and_deterministic_is_the_mean() -> None:
    model = sde_model()
    agent = CAgent(model)
    obs = Observation(vector=np.ones((2, 3), np.float32))
    torch.manual_seed(0)
    first, _, _ = agent.act(obs)
    second, _, _ = agent.act(obs)
    assert not np.array_equal(first.continuous, second.continuous)  # fresh noise each call
    mode, _, _ = agent.act(obs, deterministic=True)
    distribution, _, _ = model(obs)
    np.testing.assert_allclose(mode.continuous, distribution.loc.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"share_actor": False}, "continuous_mode='sde' is for a policy network shared"),
    ],
)
def test_sde_configs_that_cannot_work_are_refused(config: dict, message: str) -> None:
    space = gym.spaces.Dict(
        {"vector": PENDULUM_OBS, "agent_id": gym.spaces.Box(0.0, 1.0, (2,), np.float32)}
    )
    with pytest.raises(ValueError, match=message):
        MLPModel({"continuous_mode": "sde", **config}, space, PENDULUM_ACTIONS)


def test_sde_on_a_dict_action_is_refused() -> None:
    action = gym.spaces.Dict({"a": PENDULUM_ACTIONS, "b": gym.spaces.Discrete(2)})
    with pytest.raises(ValueError, match="continuous_mode='sde' is for Box actions"):
        MLPModel({"continuous_mode": "sde"}, PENDULUM_OBS, action)


def test_a_recurrent_sde_policy_reads_the_cores_output() -> None:
    model = sde_model(recurrent="gru", recurrent_size=6)
    assert tuple(model.sde_log_std.shape) == (6, 1)
    obs = Observation(vector=np.ones((3, 3), np.float32))
    distribution, state, _ = model(obs, model.get_initial_state(3))
    assert distribution.scale.shape == (3, 1) and len(state) == 2


def test_the_shipped_pendulum_config_explores_with_sde_and_its_sigmas_are_saved(
    tmp_path: Path,
) -> None:
    code = main(
        [
            "train",
            "-c",
            "scripts/configs/pendulum.yaml",
            "--set",
            "trainer.iterations=2",
            "--set",
            "trainer.steps=64",
            "--set",
            "trainer.eval_every=null",
            "--set",
            "trainer.progress=false",
            "--set",
            f"trainer.run_dir={tmp_path}",
        ]
    )
    assert code == 0
    group = MacroAgent.load(tmp_path / "checkpoints" / "iter_000002" / "agents")
    agent = next(iter(group.policies.values()))
    assert agent.model is not None and agent.model.config.continuous_mode == "sde"
    sigmas = agent.model.sde_log_std  # saved, and trained away from log(sigma0 1.0) = 0
    assert sigmas is not None and sigmas.abs().max() > 0
    obs = Observation(vector=np.array([[1.0, 0.0, 0.5]], np.float32))
    distribution, _, _ = agent.model(obs)
    assert isinstance(distribution, SDENormal)
    assert np.isfinite(distribution.scale.detach().numpy()).all()
