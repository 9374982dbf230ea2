"""Centralised critics: ``model.critic: state`` values the env's global state.

On the team probe (``coltra.envs.probe_envs.TeamSumEnv``) every agent is paid the mean of
all agents' random signs and sees only its own: no value of the agent's observation can
get its mean squared error below (n - 1) / n**2 = 0.25 for two agents, while the value of
the ``state`` field (all signs) can be exact. Both are trained by the same PPO run config.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from coltra.buffers import Action, Observation
from coltra.cli import main
from coltra.collectors import plan_policies, policy_views
from coltra.configs import RunConfig
from coltra.factory import make_env
from coltra.groups import MacroAgent
from coltra.models import MLPModel
from coltra.trainers import PPOCrowdTrainer

pytestmark = pytest.mark.timeout(300)


def train_team_sum(run_dir: Path, critic: str) -> torch.nn.Module:
    config = RunConfig.from_dict(
        {
            "trainer": {
                "run_dir": str(run_dir), "steps": 16, "iterations": 40, "seed": 0,
                "progress": False, "save_every": 40,
            },
            "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 2},
            "model": {"hidden_sizes": [16], "critic": critic},
            "env": {"kind": "probe", "env_name": "team_sum", "workers": 2},
        }
    )  # fmt: skip
    with PPOCrowdTrainer.from_config(config) as trainer:
        trainer.train()
        model = trainer.group.policies["crowd"].model
    assert model is not None
    return model


def value_error(model: torch.nn.Module) -> float:
    """Mean squared error of V against the expected return, over the four sign pairs."""
    rows = []
    for signs in itertools.product([-1.0, 1.0], repeat=2):
        for agent in range(2):
            rows.append((signs[agent], signs, np.mean(signs)))
    obs = Observation(
        vector=np.array([[own] for own, _, _ in rows], np.float32),
        state=np.array([signs for _, signs, _ in rows], np.float32),
    )
    with torch.no_grad():
        values = model.value(obs).numpy()
    return float(np.mean((values - np.array([target for *_, target in rows])) ** 2))


def test_the_state_critic_predicts_what_the_local_one_cannot(tmp_path: Path) -> None:
    local = value_error(train_team_sum(tmp_path / "local", "local"))
    state = value_error(train_team_sum(tmp_path / "state", "state"))
    assert local >= 0.25 - 0.02  # the bound: no function of the own sign does better
    assert state < 0.01, f"state critic MSE {state:.4f}"


def test_mappo_on_speaker_listener_from_yaml_saves_and_reloads(tmp_path: Path) -> None:
    """``env.global_state`` and ``model.critic: state`` in a ``coltra train`` config: both
    policies train, their checkpoints rebuild the same centralised critics, and a reloaded
    group values and acts on the env's observations."""
    config = {
        "trainer": {"name": "mappo", "steps": 25, "iterations": 2, "save_every": 2},
        "ppo": {"epochs": 1},
        "model": {"hidden_sizes": [16], "critic": "state"},
        "env": {
            "kind": "pettingzoo",
            "env_name": "mpe2.simple_speaker_listener_v4",
            "env_kwargs": {"max_cycles": 25},
            "workers": 2,
            "backend": "inprocess",
            "global_state": True,
        },
        "policies": {"speaker": {}, "listener": {"model": {"critic": "local"}}},
    }
    path = tmp_path / "mappo.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    assert main(["train", "-c", str(path), "--run-dir", str(run_dir)]) == 0
    with (run_dir / "metrics.csv").open(newline="") as file:
        last = list(csv.DictReader(file))[-1]
    assert last["speaker/losses/explained_variance"] and last["listener/losses/value_loss"]
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    group = MacroAgent.load(run_dir / "checkpoints" / latest / "agents")
    speaker, listener = group.policies["speaker"].model, group.policies["listener"].model
    assert isinstance(speaker, MLPModel) and isinstance(listener, MLPModel)
    assert (speaker.features, speaker.state_features) == (3, 14)
    assert (listener.features, listener.state_features) == (11, 0)  # local: own 11 numbers
    env = make_env(RunConfig.from_dict(config).env, seed=1)  # type: ignore[arg-type]
    try:
        batch = env.reset_batch(seed=1)
        views = policy_views(batch.obs, plan_policies(group, env))
        with torch.no_grad():
            assert speaker.value(views["speaker"]).shape == (2,)
        outputs = group.act_policies(views)
        assert set(outputs) == {"speaker", "listener"}
    finally:
        env.close()


def test_a_team_critic_on_simple_tag_values_the_whole_team(tmp_path: Path) -> None:
    """``env.team_observations`` and ``critic: team``: the adversaries' value network reads
    the three adversaries' observations (3 x (16 + 1) numbers), the prey's its own 14 + 1."""
    config = RunConfig.from_dict(
        {
            "trainer": {"run_dir": str(tmp_path / "run"), "steps": 25, "iterations": 1,
                        "progress": False},
            "ppo": {"epochs": 1},
            "model": {"hidden_sizes": [16], "critic": "team"},
            "env": {
                "kind": "pettingzoo", "env_name": "mpe2.simple_tag_v3",
                "env_kwargs": {"max_cycles": 25}, "workers": 1, "backend": "inprocess",
                "team_observations": True, "global_state": True,
            },
            "policies": {"adversary": {}, "prey": {"agents": ["agent"]}},
        }
    )  # fmt: skip
    with PPOCrowdTrainer.from_config(config) as trainer:
        trainer.train()
        models = {name: agent.model for name, agent in trainer.group.policies.items()}
    adversary, prey = models["adversary"], models["prey"]
    assert isinstance(adversary, MLPModel) and isinstance(prey, MLPModel)
    assert (adversary.features, adversary.state_features) == (16, 51)
    assert (prey.features, prey.state_features) == (14, 15)
    with pytest.raises(ValueError, match=r"critic='team' needs .* 'team' field.*team_observat"):
        MLPModel({"critic": "team"}, adversary.observation_space.spaces["vector"], None)  # type: ignore[union-attr]


KAZ_DEATHS = {"max_cycles": 150, "spawn_delay": 2, "line_death": True}  # agents die early


def test_a_team_critic_and_critics_per_agent_on_kaz_where_agents_die(tmp_path: Path) -> None:
    """knights_archers_zombies with vector observations, where agents die mid-episode: the
    batch keeps a row per agent (a dead one's inactive, its slot in its team's view zeros
    with a 0 flag, shapes fixed), and a team critic with a value network per agent trains
    on it."""
    env_config = {
        "kind": "pettingzoo", "env_name": "pettingzoo.butterfly.knights_archers_zombies_v11",
        "env_kwargs": KAZ_DEATHS, "workers": 1, "backend": "inprocess",
        "team_observations": True, "agent_ids": True,
    }  # fmt: skip
    config = RunConfig.from_dict(
        {
            "trainer": {"run_dir": str(tmp_path / "run"), "steps": 150, "iterations": 2,
                        "seed": 0, "progress": False},
            "ppo": {"epochs": 1},
            "model": {"hidden_sizes": [16], "critic": "team", "share_critic": False},
            "env": env_config,
            "policies": {"archer": {}, "knight": {}},
        }
    )  # fmt: skip
    env = make_env(config.env, seed=0)  # type: ignore[arg-type]
    try:
        batch = env.reset_batch(seed=0)
        names = env.agent_names
        archers = [row for row, name in enumerate(names) if name.startswith("archer")]
        shape = batch.obs["team"].shape  # one block: archers and knights share their spaces
        assert shape == (4, 2 * (27 * 5 + 1))  # each team: two 27 x 5 views with flags
        rng = np.random.default_rng(0)
        dead = None  # the slot in the archers' team of the archer that died
        for _ in range(150):
            was_active = batch.active.copy()
            batch = env.step_batch(Action(discrete=rng.integers(0, 6, 4)))
            assert batch.obs["team"].shape == shape
            alive = [k for k, row in enumerate(archers) if batch.active[row]]
            if dead is not None and alive:  # a step after the death: its slot is empty
                view = batch.obs["team"][archers[alive[0]]].reshape(2, 27 * 5 + 1)
                assert view[dead].tolist() == [0.0] * (27 * 5 + 1)  # zeros and a 0 flag
                assert view[alive[0], -1] == 1.0
                break
            gone = [k for k, row in enumerate(archers) if was_active[row] and not batch.active[row]]
            if gone and alive and not batch.truncated.any():
                dead = gone[0]
        else:
            pytest.fail("no archer died while the other lived in 150 steps")
    finally:
        env.close()
    with PPOCrowdTrainer.from_config(config) as trainer:
        trainer.train()
        archer = trainer.group.policies["archer"].model
    assert isinstance(archer, MLPModel) and archer.value_agents is not None
    assert archer.value_agents.copies == 4  # one per agent of the env; archers use two
    with (tmp_path / "run" / "metrics.csv").open(newline="") as file:
        last = list(csv.DictReader(file))[-1]
    assert last["archer/losses/value_loss"] and last["knight/losses/value_loss"]


def test_the_shipped_spread_config_is_the_benchmarks_mappo_and_trains(tmp_path: Path) -> None:
    """scripts/configs/spread_mappo.yaml is the config of the benchmark run that reached
    the goal (benchmarks/multiagent.py, --algo mappo), and `coltra train` runs it."""
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import multiagent
    finally:
        sys.path.remove(str(root / "benchmarks"))
    path = root / "scripts" / "configs" / "spread_mappo.yaml"
    shipped = yaml.safe_load(path.read_text())
    task = multiagent.with_algorithm(multiagent.TASKS["simple_spread_v3"], "mappo")
    for section in ("env", "model", "ppo"):
        assert shipped[section] == task.config[section], section
    assert shipped["trainer"]["steps"] == task.config["trainer"]["steps"]
    copies = shipped["env"]["workers"] * shipped["env"]["envs_per_worker"]
    steps = shipped["trainer"]["iterations"] * copies * shipped["trainer"]["steps"]
    assert steps == round(task.phases[0].env_steps / (copies * 100)) * copies * 100
    run_dir = tmp_path / "run"
    overrides = ["trainer.iterations=1", "trainer.steps=25", "env.envs_per_worker=1"]
    assert main(["train", "-c", str(path), "--run-dir", str(run_dir), "--set", *overrides]) == 0
    assert (run_dir / "metrics.csv").is_file()
