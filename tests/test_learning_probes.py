"""PPO must learn each probe env to a tight tolerance in a few seconds (issue 5).

Each probe isolates one part of the learner: value regression, reading observations,
policy improvement, observation-conditioned policy, and discounting over time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coltra.agents import CAgent, DAgent
from coltra.buffers import Observation
from coltra.collectors import CrowdCollector
from coltra.envs import probe_envs
from coltra.envs.probe_envs import ProbeEnv
from coltra.groups import HomogeneousGroup
from coltra.models import MLPModel
from coltra.policy_optimization import CrowdPPOptimizer

GAMMA = 0.9


def train_probe(
    env: ProbeEnv, iterations: int, seed: int = 0, **ppo: object
) -> tuple[HomogeneousGroup, dict[str, float]]:
    torch.manual_seed(seed)
    model = MLPModel(
        {"hidden_sizes": [32, 32]},
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    agent = DAgent(model) if model.discrete else CAgent(model)
    agents = HomogeneousGroup(agent)
    config = {"lr": 3e-3, "gamma": GAMMA, "gae_lambda": 1.0, "epochs": 4, "seed": seed, **ppo}
    optimizer = CrowdPPOptimizer(agents, config)
    collector = CrowdCollector(agents, env, seed=seed)
    metrics: dict[str, float] = {}
    for _ in range(iterations):
        data, _, shape = collector.collect(16)
        metrics = optimizer.train_on_data(data, shape)
    return agents, metrics


def values(agents: HomogeneousGroup, vectors: list[list[float]]) -> np.ndarray:
    obs = Observation(vector=np.asarray(vectors, dtype=np.float32))
    with torch.no_grad():
        return agents.agent.value(obs).numpy()


def action_probability(
    agents: HomogeneousGroup, vectors: list[list[float]], action: int
) -> np.ndarray:
    obs = Observation(vector=np.asarray(vectors, dtype=np.float32)).tensor()
    assert agents.agent.model is not None
    with torch.no_grad():
        distribution, _, _ = agents.agent.model(obs)
        return distribution.probs[:, action].numpy()


@pytest.mark.timeout(60)
def test_value_learns_a_constant_reward() -> None:
    agents, _ = train_probe(probe_envs.ConstantRewardEnv(num_agents=64), iterations=25)
    np.testing.assert_allclose(values(agents, [[1.0]]), [1.0], atol=0.05)


@pytest.mark.timeout(60)
def test_value_reads_the_observation() -> None:
    agents, _ = train_probe(probe_envs.ObservedRewardEnv(num_agents=64), iterations=30)
    np.testing.assert_allclose(values(agents, [[1.0], [-1.0]]), [1.0, -1.0], atol=0.05)


@pytest.mark.timeout(60)
def test_policy_prefers_the_paying_action() -> None:
    agents, _ = train_probe(probe_envs.ActionRewardEnv(num_agents=64), iterations=30)
    assert action_probability(agents, [[1.0]], action=1)[0] > 0.95


@pytest.mark.timeout(60)
def test_policy_follows_the_observed_sign() -> None:
    agents, _ = train_probe(probe_envs.ObsActionRewardEnv(num_agents=64), iterations=40)
    probabilities = action_probability(agents, [[1.0], [-1.0]], action=1)
    assert probabilities[0] > 0.95 and probabilities[1] < 0.05


@pytest.mark.timeout(60)
def test_delayed_reward_is_discounted() -> None:
    agents, _ = train_probe(probe_envs.DelayedRewardEnv(num_agents=64), iterations=40)
    clock = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    np.testing.assert_allclose(values(agents, clock), [GAMMA**2, GAMMA, 1.0], atol=0.05)


@pytest.mark.timeout(60)
def test_truncated_constant_reward_is_bootstrapped() -> None:
    """Episodes cut by a time limit every step: the value must be 1 / (1 - gamma), not 1."""
    env = probe_envs.ConstantRewardEnv(num_agents=64, truncate=True)
    agents, _ = train_probe(env, iterations=80, lr=1e-2, clip_vloss=False)
    np.testing.assert_allclose(values(agents, [[1.0]]), [1 / (1 - GAMMA)], rtol=0.05)


@pytest.mark.timeout(60)
def test_continuous_policy_moves_to_the_target() -> None:
    env = probe_envs.ActionRewardEnv(num_agents=64, continuous=True)
    agents, _ = train_probe(env, iterations=40)
    action, _, _ = agents.agent.act(
        Observation(vector=np.ones((1, 1), np.float32)), deterministic=True
    )
    np.testing.assert_allclose(action.continuous, [[0.5]], atol=0.1)


def test_training_is_deterministic_under_a_seed() -> None:
    env_a = probe_envs.ObsActionRewardEnv(num_agents=8)
    env_b = probe_envs.ObsActionRewardEnv(num_agents=8)
    _, metrics_a = train_probe(env_a, iterations=3, seed=5)
    _, metrics_b = train_probe(env_b, iterations=3, seed=5)
    assert metrics_a == metrics_b
