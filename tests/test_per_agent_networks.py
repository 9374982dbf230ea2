"""Parameter sharing on or off for the actor and the critic separately (``share_actor``,
``share_critic``), with the ``agent_id`` field (``env.agent_ids``) picking each row's own
network; the roles probe (``coltra.envs.probe_envs.RolesEnv``) proves they learn."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from mpe2 import simple_spread_v3
from torch import nn

from coltra.buffers import Observation
from coltra.cli import main
from coltra.configs import ConfigError, EnvConfig
from coltra.envs import PettingZooEnv
from coltra.envs.critic_inputs import AgentIds, GlobalState
from coltra.factory import make_env
from coltra.groups import MacroAgent
from coltra.models import MLPModel
from coltra.models.per_agent import AgentMLPs

pytestmark = pytest.mark.timeout(300)

SPACE = gym.spaces.Dict(
    {
        "vector": gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
        "agent_id": gym.spaces.Box(0.0, 1.0, (3,), np.float32),
    }
)
ACTIONS = gym.spaces.Discrete(4)


def rows(agents: list[int], seed: int = 0) -> Observation:
    """Random observations of the given agents (their one-hot ids)."""
    vector = np.random.default_rng(seed).uniform(-1, 1, (len(agents), 3)).astype(np.float32)
    return Observation(vector=vector, agent_id=np.eye(3, dtype=np.float32)[agents])


def plain_mlp(layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """``layers`` (``(weight [out, in], bias)``, tanh between) on ``x``: a separate MLP."""
    for k, (weight, bias) in enumerate(layers):
        x = nn.functional.linear(x, weight, bias)
        if k < len(layers) - 1:
            x = torch.tanh(x)
    return x


def test_each_row_goes_through_its_own_copy_and_trains_only_that_copy() -> None:
    torch.manual_seed(0)
    networks = [[nn.Linear(3, 5), nn.Linear(5, 2)] for _ in range(3)]
    mlps = AgentMLPs(networks, torch.tanh)
    x = torch.randn(6, 3)
    agents = torch.tensor([2, 0, 1, 2, 2, 0])
    out = mlps(x, agents)
    for row, agent in enumerate(agents.tolist()):
        expected = plain_mlp([(n.weight, n.bias) for n in networks[agent]], x[row : row + 1])
        torch.testing.assert_close(out[row : row + 1], expected)
    out[agents == 0].sum().backward()  # a loss on agent 0's rows alone
    for layer in mlps.layers:
        assert layer.weight.grad is not None and layer.bias.grad is not None  # type: ignore[union-attr]
        assert layer.weight.grad[0].abs().sum() > 0  # type: ignore[index]
        assert torch.equal(layer.weight.grad[1:], torch.zeros_like(layer.weight.grad[1:]))  # type: ignore[index]
        assert torch.equal(layer.bias.grad[1:], torch.zeros_like(layer.bias.grad[1:]))  # type: ignore[index]


def test_an_actor_per_agent_and_one_shared_critic() -> None:
    torch.manual_seed(0)
    model = MLPModel({"hidden_sizes": [8], "share_actor": False}, SPACE, ACTIONS)
    assert model.policy_agents is not None and model.policy_agents.copies == 3
    assert model.value_agents is None and model.value_hidden is not None
    assert model.policy_head is None and model.value_head is not None
    obs = rows([0, 1, 2, 1])
    features = model.encode(obs)
    assert features.shape == (4, 6)  # the id is a feature too
    with torch.no_grad():
        logits = model(obs)[0].logits
        for row, agent in enumerate([0, 1, 2, 1]):
            own = plain_mlp(model.policy_agents.network(agent), features[row : row + 1])
            torch.testing.assert_close(logits[row : row + 1], own.log_softmax(-1))
        # Copies are initialised apart, as separate networks are.
        weights = model.policy_agents.layers[0].weight
        assert not torch.equal(weights[0], weights[1])  # type: ignore[index]
        # The shared critic: rows with the same features get the same value whoever acts.
        same = Observation(
            vector=np.zeros((3, 3), np.float32), agent_id=np.zeros((3, 3), np.float32)
        )
        values = model.value(same)
        assert torch.equal(values, values[:1].expand(3))


def test_a_critic_per_agent_under_a_state_critic() -> None:
    space = gym.spaces.Dict({**SPACE.spaces, "state": gym.spaces.Box(-1.0, 1.0, (5,), np.float32)})
    model = MLPModel(
        {"hidden_sizes": [8], "share_critic": False, "critic": "state"}, space, ACTIONS
    )
    assert model.value_agents is not None and model.value_agents.copies == 3
    assert model.policy_agents is None and model.policy_hidden is not None
    obs = rows([2, 0])
    obs = Observation(**dict(obs.items()), state=np.ones((2, 5), np.float32))
    with torch.no_grad():
        values = model.value(obs)
        _, _, extra = model(obs, get_value=True)
        torch.testing.assert_close(extra["value"], values)
        inputs = torch.cat([torch.ones(2, 5), model.encode(obs)], -1)  # state, then own
        for row, agent in enumerate([2, 0]):
            own = plain_mlp(model.value_agents.network(agent), inputs[row : row + 1])
            torch.testing.assert_close(values[row : row + 1], own.squeeze(-1))


def test_networks_per_agent_survive_a_checkpoint_exactly(tmp_path: Path) -> None:
    model = MLPModel(
        {"hidden_sizes": [8], "share_actor": False, "share_critic": False}, SPACE, ACTIONS
    )
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    again = MLPModel(
        {"hidden_sizes": [8], "share_actor": False, "share_critic": False}, SPACE, ACTIONS
    )
    again.load_state_dict(torch.load(path))
    obs = rows([1, 2, 0, 0], seed=3)
    with torch.no_grad():
        first, _, a = model(obs, get_value=True)
        second, _, b = again(obs, get_value=True)
    assert torch.equal(first.logits, second.logits) and torch.equal(a["value"], b["value"])


def test_refusals_name_the_problem() -> None:
    plain = SPACE.spaces["vector"]
    with pytest.raises(ValueError, match=r"share_actor=false .*'agent_id'.*env.agent_ids: true"):
        MLPModel({"share_actor": False}, plain, ACTIONS)
    with pytest.raises(ValueError, match=r"shared_backbone .*share_critic=false"):
        MLPModel({"share_critic": False, "shared_backbone": True}, SPACE, ACTIONS)
    model = MLPModel({"share_actor": False}, SPACE, ACTIONS)
    five = Observation(vector=np.zeros((2, 3), np.float32), agent_id=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"'agent_id' field has 5 entries .* 3 agents"):
        model.agent_index(five)
    gym_env = EnvConfig.from_dict({"env_name": "CartPole-v1", "agent_ids": True})
    with pytest.raises(ConfigError, match=r"env.agent_ids.*a gym env gives its agents"):
        make_env(gym_env)


def test_agent_ids_are_one_hots_in_possible_agents_order() -> None:
    env = AgentIds(GlobalState(simple_spread_v3.parallel_env(max_cycles=3)))
    observations, _ = env.reset(seed=0)
    for _ in range(2):
        for agent, parts in observations.items():
            place = env.possible_agents.index(agent)
            np.testing.assert_array_equal(parts["agent_id"], np.eye(3, dtype=np.float32)[place])
            assert sorted(parts) == ["agent_id", "state", "vector"]
            assert env.observation_space(agent).contains(parts)
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, *_ = env.step(actions)
    batch = PettingZooEnv(lambda: env).reset_batch(seed=0)
    np.testing.assert_array_equal(batch.obs["agent_id"], np.eye(3, dtype=np.float32))


def roles_config(run_dir: Path, **model: Any) -> dict[str, Any]:
    return {
        "trainer": {
            "run_dir": str(run_dir), "steps": 16, "iterations": 30, "seed": 0,
            "progress": False, "save_every": 30,
        },
        "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 2, "ent_coef": 0.0},
        "model": {"hidden_sizes": [16], **model},
        "env": {
            "kind": "probe", "env_name": "roles", "workers": 2, "env_kwargs": {"num_agents": 3},
        },
    }  # fmt: skip


def final_return(run_dir: Path) -> float:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return float(list(csv.DictReader(file))[-1]["charts/episode_return_mean"])


def test_agents_of_one_policy_learn_different_roles(tmp_path: Path) -> None:
    """From a ``coltra train`` YAML: actors per agent (and a critic per agent) earn every
    agent its own role's reward, 1; a shared actor cannot without the id, 1/3 at best."""
    results = {}
    for name, model, kwargs in [
        ("per_agent", {"share_actor": False, "share_critic": False}, {}),
        ("shared_no_id", {}, {"ids": False}),
    ]:
        config = roles_config(tmp_path / name, **model)
        config["env"]["env_kwargs"].update(kwargs)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["train", "-c", str(path)]) == 0
        results[name] = final_return(tmp_path / name)
    assert results["per_agent"] > 0.95, results
    assert results["shared_no_id"] < 0.5, results
    group = MacroAgent.load(tmp_path / "per_agent" / "checkpoints" / "iter_000030" / "agents")
    model = group.policies["crowd"].model
    assert isinstance(model, MLPModel)
    with torch.no_grad():
        obs = Observation(vector=np.ones((3, 1), np.float32), agent_id=np.eye(3, dtype=np.float32))
        assert model(obs)[0].probs.argmax(-1).tolist() == [0, 1, 2]


def test_actors_per_agent_with_a_state_critic_on_simple_spread_in_subprocesses(
    tmp_path: Path,
) -> None:
    """MAPPO with an actor per agent on mpe2 spread: two subprocess workers, the 'agent_id'
    and 'state' fields ride the vector backend, and the trained group acts per agent."""
    config = {
        "trainer": {"steps": 25, "iterations": 2, "save_every": 2},
        "ppo": {"epochs": 1},
        "model": {"hidden_sizes": [16], "critic": "state", "share_actor": False},
        "env": {
            "kind": "pettingzoo", "env_name": "mpe2.simple_spread_v3",
            "env_kwargs": {"max_cycles": 25}, "workers": 2, "backend": "subprocess",
            "global_state": True, "agent_ids": True,
        },
    }  # fmt: skip
    path = tmp_path / "spread.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    assert main(["train", "-c", str(path), "--run-dir", str(run_dir)]) == 0
    group = MacroAgent.load(run_dir / "checkpoints" / "iter_000002" / "agents")
    model = group.policies["crowd"].model
    assert isinstance(model, MLPModel) and model.policy_agents is not None
    assert model.policy_agents.copies == 3 and model.value_hidden is not None
    assert (model.features, model.state_features) == (18 + 3, 54)  # own + id; 3 x 18
