"""Teams: several policies over agents with their own spaces, trained from a config.

The proof of issue 13 on the two-team probe env (``coltra.envs.probe_envs.TwoTeamsEnv``):
team a sees 3 numbers and picks one of 2 actions, team b sees 5 and picks one of 4, and a
random team earns 0.5 and 0.25 per step, a correct one 1. Both teams learn in one
``coltra train`` run of the shipped YAML; frozen policies keep their weights to the bit;
``init_from`` loads exactly the saved weights; each policy makes one forward pass per step;
snapshots copy a learner into its frozen opponent on schedule.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from gymnasium.spaces import Box, Discrete
from pettingzoo import ParallelEnv

from coltra.agents import Agent
from coltra.cli import main
from coltra.collectors import CrowdCollector
from coltra.configs import ConfigError, MLPConfig, RunConfig
from coltra.envs.pettingzoo_env import PettingZooEnv
from coltra.envs.probe_envs import TwoTeamsEnv
from coltra.factory import make_agent, make_env, make_group
from coltra.groups import MacroAgent, MultiPolicyGroup
from coltra.trainers import PPOCrowdTrainer, TrainerError

ROOT = Path(__file__).resolve().parents[1]
TEAMS_CONFIG = ROOT / "scripts" / "configs" / "teams_config.yaml"

TEAMS: dict[str, Any] = {
    "trainer": {"name": "teams", "steps": 8, "iterations": 3, "save_every": 1, "progress": False},
    "ppo": {"lr": 1e-2, "epochs": 2, "num_minibatches": 2},
    "model": {"hidden_sizes": [8]},
    "env": {
        "kind": "probe",
        "env_name": "teams",
        "env_kwargs": {"team_a": 2, "team_b": 1},
        "workers": 2,
    },
    "policies": {"red": {"agents": ["a_"]}, "blue": {"agents": ["b_"]}},
}


def teams_config(run_dir: Path, **changes: Any) -> RunConfig:
    """The two-team config in ``run_dir``, with ``changes`` by section (``policies={...}``
    replaces the policies; other sections update key by key)."""
    config = RunConfig.from_dict(TEAMS).update({"trainer": {"run_dir": str(run_dir)}})
    return config.update(changes)


def red_and_blue(red: dict[str, Any] | None = None, blue: dict[str, Any] | None = None) -> Any:
    """The two policies of TEAMS (red for team a, blue for team b), with extra keys."""
    return {"red": {"agents": ["a_"], **(red or {})}, "blue": {"agents": ["b_"], **(blue or {})}}


def read_csv(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def weights(agent: Agent) -> dict[str, torch.Tensor]:
    assert agent.model is not None
    return {key: value.detach().clone() for key, value in agent.model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def saved_policy(run_dir: Path, policy: str) -> Agent:
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    return MacroAgent.load(run_dir / "checkpoints" / latest / "agents").policies[policy]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's two-team YAML, trained once by ``coltra train`` (a few seconds)."""
    run_dir = tmp_path_factory.mktemp("teams") / "run"
    argv = ["train", "-c", str(TEAMS_CONFIG), "--run-dir", str(run_dir), "--no-progress"]
    assert main(argv) == 0
    return run_dir


# ----------------------------------------------------------------------------- learning


def test_both_teams_learn_in_one_coltra_train_run_from_yaml(trained_run: Path) -> None:
    rows = read_csv(trained_run)
    last = rows[-1]
    # Random play earns 0.5 (team a) and 0.25 (team b); the best actions earn 1.
    assert float(last["attackers/charts/episode_return_window"]) >= 0.95
    assert float(last["defenders/charts/episode_return_window"]) >= 0.95
    assert float(last["attackers/eval/return_mean"]) == 1.0
    assert float(last["defenders/eval/return_mean"]) == 1.0
    # The run stopped at the per-policy target, before its 60 iterations.
    assert int(float(last["iteration"])) < 60


def test_every_policy_has_its_own_metrics(trained_run: Path) -> None:
    header = set(read_csv(trained_run)[0])
    for policy in ("attackers", "defenders"):
        for key in (
            "charts/episode_return_mean",
            "charts/episode_length_mean",
            "charts/agent_SPS",
            "losses/policy_loss",
            "losses/value_loss",
            "losses/entropy",
            "losses/approx_kl",
            "losses/explained_variance",
        ):
            assert f"{policy}/{key}" in header, f"{policy}/{key}"
    # Team a has two agents per copy: their summed return is the team's.
    assert "attackers/charts/team_return_mean" in header
    assert "defenders/charts/team_return_mean" not in header  # one agent: its own return
    # Only the policy with its own PPO keys logs its own learning rate.
    assert "defenders/charts/learning_rate" in header
    assert "attackers/charts/learning_rate" not in header


def test_each_policy_is_saved_in_the_checkpoint_with_its_own_model(trained_run: Path) -> None:
    latest = (trained_run / "checkpoints" / "latest").read_text().strip()
    group = MacroAgent.load(trained_run / "checkpoints" / latest / "agents")
    assert isinstance(group, MultiPolicyGroup)
    assert group.policy_mapping == {"a_": "attackers", "b_": "defenders"}
    assert (trained_run / "checkpoints" / latest / "agents" / "policies" / "attackers").is_dir()
    attackers, defenders = group.policies["attackers"].model, group.policies["defenders"].model
    assert attackers is not None and defenders is not None
    assert attackers.observation_space == Box(0.0, 1.0, (3,), np.float32)
    assert attackers.action_space == Discrete(2)
    assert defenders.observation_space == Box(0.0, 1.0, (5,), np.float32)
    assert defenders.action_space == Discrete(4)
    assert defenders.describe()["config"]["hidden_sizes"] == [64]  # its own model section


def test_the_optimizer_uses_each_policys_ppo_keys(tmp_path: Path) -> None:
    cfg = teams_config(
        tmp_path / "run",
        policies={
            "red": {"agents": ["a_"], "ppo": {"lr": 0.5, "epochs": 1}},
            "blue": {"agents": ["b_"]},
        },
    )
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        configs = trainer.optimizer.configs
        assert (configs["red"].lr, configs["red"].epochs) == (0.5, 1)
        assert (configs["blue"].lr, configs["blue"].epochs) == (1e-2, 2)
        metrics = trainer.optimizer.train_on_data(trainer.collector.collect(8)[0])
    assert trainer.optimizer.optimizers["red"].param_groups[0]["lr"] == 0.5
    assert metrics["red/losses/epochs"] == 1.0 and metrics["blue/losses/epochs"] == 2.0
    assert metrics["red/charts/learning_rate"] == 0.5


# ------------------------------------------------------------------------ one forward per policy


class CountingAgent:
    """Wraps an agent's ``act`` to count calls and the rows of each call."""

    def __init__(self, agent: Agent) -> None:
        self.calls: list[int] = []
        self._act = agent.act
        agent.act = self.act  # type: ignore[method-assign]

    def act(self, obs: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(obs.batch_size)
        return self._act(obs, *args, **kwargs)


def test_the_collector_makes_one_forward_pass_per_policy_per_step() -> None:
    env = TwoTeamsEnv.get_venv(3, backend="inprocess", seed=0, team_a=2, team_b=1)
    try:
        red, blue = (make_agent(MLPConfig(hidden_sizes=[8]), block) for block in env.layout.blocks)
        group = MultiPolicyGroup({"red": red, "blue": blue}, {"a": "red", "b": "blue"})
        counters = {"red": CountingAgent(red), "blue": CountingAgent(blue)}
        records, _, _ = CrowdCollector(group, env, seed=0).collect(10)
    finally:
        env.close()
    # One call per step per policy, each over all of that policy's rows (3 copies).
    assert counters["red"].calls == [6] * 10
    assert counters["blue"].calls == [3] * 10
    assert records["red"].obs.vector.shape == (6, 10, 3)
    assert records["blue"].obs.vector.shape == (3, 10, 5)


# ----------------------------------------------------------------------------- frozen and init_from


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-team run whose weights other runs start from."""
    run_dir = tmp_path_factory.mktemp("source") / "run"
    with PPOCrowdTrainer.from_config(teams_config(run_dir)) as trainer:
        trainer.train()
    return run_dir


def test_init_from_loads_exactly_the_saved_weights(source_run: Path, tmp_path: Path) -> None:
    cfg = teams_config(
        tmp_path / "run",
        policies={
            "red": {"agents": ["a_"], "init_from": str(source_run)},  # same name there
            "blue": {"agents": ["b_"], "init_from": f"{source_run}:blue"},
        },
    )
    group = make_group(cfg, TwoTeamsEnv(2, 1))
    for policy in ("red", "blue"):
        assert same_weights(
            weights(group.policies[policy]), weights(saved_policy(source_run, policy))
        )
    # A checkpoint directory and a saved group work too; a fresh build does not match.
    checkpoint = source_run / "checkpoints" / "iter_000003"
    for source in (str(checkpoint), f"{checkpoint / 'agents'}:red"):
        cfg = teams_config(
            tmp_path / "run",
            policies={"red": {"agents": ["a_"], "init_from": source}, "blue": {"agents": ["b_"]}},
        )
        loaded = make_group(cfg, TwoTeamsEnv(2, 1))
        assert same_weights(
            weights(loaded.policies["red"]), weights(saved_policy(source_run, "red"))
        )
        assert not same_weights(
            weights(loaded.policies["blue"]), weights(saved_policy(source_run, "blue"))
        )


def test_a_frozen_policy_keeps_its_weights_while_the_other_learns(
    source_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    cfg = teams_config(
        run_dir, policies=red_and_blue(blue={"frozen": True, "init_from": str(source_run)})
    )
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        red_before = weights(trainer.group.policies["red"])
        trainer.train()
        red_after = weights(trainer.group.policies["red"])
    assert same_weights(
        weights(saved_policy(run_dir, "blue")), weights(saved_policy(source_run, "blue"))
    )
    assert not same_weights(red_before, red_after)
    header = set(read_csv(run_dir)[0])
    assert "red/losses/policy_loss" in header and "blue/losses/policy_loss" not in header
    assert "blue/charts/episode_return_mean" in header  # a frozen policy's play is still logged


def test_a_resumed_run_keeps_its_weights_instead_of_init_from(
    source_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    cfg = teams_config(run_dir, policies=red_and_blue(red={"init_from": str(source_run)}))
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        trainer.train()
        trained = weights(trainer.group.policies["red"])
    with PPOCrowdTrainer.resume(run_dir, config={"trainer": {"iterations": 4}}) as resumed:
        assert same_weights(weights(resumed.group.policies["red"]), trained)


# ----------------------------------------------------------------------------- self-play


def test_snapshots_copy_the_learner_into_the_frozen_opponent_on_schedule(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = teams_config(
        run_dir,
        trainer={"iterations": 5, "snapshot_every": 2},
        policies={
            "learner": {"agents": ["a_0"]},
            "opponent": {"agents": ["a_1"], "frozen": True, "snapshot_of": "learner"},
            "blue": {"agents": ["b_"]},
        },
    )
    seen: list[tuple[int, bool]] = []
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        learner, opponent = trainer.group.policies["learner"], trainer.group.policies["opponent"]
        assert same_weights(weights(learner), weights(opponent))  # the start is a snapshot
        for _ in range(5):
            before = weights(learner)
            trainer.train(1)
            seen.append((trainer.counters.iteration, same_weights(weights(opponent), before)))
            assert not same_weights(weights(learner), before)
            if trainer.counters.iteration % 2 == 0:
                assert same_weights(weights(opponent), weights(learner))
    # Between snapshots the opponent acts with the weights of the last one.
    assert [iteration for iteration, _ in seen] == [1, 2, 3, 4, 5]
    assert [float(row["opponent/charts/snapshot_iteration"]) for row in read_csv(run_dir)] == [
        0.0, 2.0, 2.0, 4.0, 4.0
    ]  # fmt: skip


# ----------------------------------------------------------------------------- stop and resume


def test_stop_at_return_can_name_a_policy(tmp_path: Path) -> None:
    # Team b is frozen at its random start (about 0.25), so only team a can reach 0.9.
    cfg = teams_config(
        tmp_path / "run",
        trainer={"iterations": 40, "stop_at_return": {"red": 0.9}},
        ppo={"lr": 3e-3},
        model={"hidden_sizes": [32]},
        policies={"red": {"agents": ["a_"]}, "blue": {"agents": ["b_"], "frozen": True}},
    )
    with PPOCrowdTrainer.from_config(cfg) as trainer:
        summary = trainer.train()
    assert summary["solved"] == 1.0 and summary["iterations"] < 40
    assert summary["red/return_mean"] >= 0.9 and summary["blue/return_mean"] < 0.6


def test_a_resume_that_changes_a_policys_agents_or_model_is_refused(
    source_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for change, key in (
        ("policies.red.agents=[a_0]", "policies.red.agents"),
        ("policies.blue.model.hidden_sizes=[4]", "policies.blue.model"),
    ):
        assert main(["train", "--resume", str(source_run), "-i", "9", "--set", change]) == 2
        err = capsys.readouterr().err
        assert f"error: {key}" in err and "a run resumes with the env and model" in err


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("policies", "key", "message"),
    [
        ({"all": {"agents": [""]}}, "policies.all.agents", "spans agents with different spaces"),
        ({"red": {"agents": ["a_"]}}, "policies", "no policy for agent 'b_0"),
        (
            {"red": {"agents": ["a_"]}, "blue": {"agents": ["b_"]}, "green": {"agents": ["c"]}},
            "policies.green.agents",
            "no agent of the env takes this policy",
        ),
        (
            {
                "red": {"agents": ["a_"]},
                "blue": {"agents": ["b_"], "init_from": "/nonexistent/run"},
            },
            "policies.blue.init_from",
            "'/nonexistent/run' does not exist",
        ),
        (
            {
                "red": {"agents": ["a_"]},
                "blue": {"agents": ["b_"], "frozen": True, "snapshot_of": "red"},
            },
            "policies.blue.snapshot_of",
            "self-play needs two policies with the same model and spaces",
        ),
    ],
)
def test_policies_that_do_not_fit_the_env_are_config_errors(
    policies: dict[str, Any], key: str, message: str
) -> None:
    cfg = RunConfig.from_dict({**TEAMS, "policies": policies, "trainer": {"snapshot_every": 1}})
    with pytest.raises(ConfigError) as caught:
        make_group(cfg, TwoTeamsEnv(2, 1))
    assert caught.value.key == key and message in caught.value.problem


def test_init_from_a_model_of_another_size_says_which_key_differs(
    source_run: Path, tmp_path: Path
) -> None:
    cfg = teams_config(
        tmp_path / "run",
        policies={
            "red": {"agents": ["a_"], "init_from": str(source_run), "model": {"hidden_sizes": [4]}},
            "blue": {"agents": ["b_"]},
        },
    )
    with pytest.raises(ConfigError, match=r"hidden_sizes = \[8\] there, \[4\] here"):
        make_group(cfg, TwoTeamsEnv(2, 1))


def test_one_shared_policy_for_agents_with_different_spaces_is_refused() -> None:
    cfg = RunConfig.from_dict({k: v for k, v in TEAMS.items() if k != "policies"})
    with pytest.raises(ConfigError, match="give each block a policy in a policies: section"):
        make_group(cfg, TwoTeamsEnv(2, 1))


def test_a_group_built_in_python_takes_policy_keys_as_arguments(tmp_path: Path) -> None:
    env = make_env(RunConfig.from_dict(TEAMS).env, seed=0)  # type: ignore[arg-type]
    try:
        group = make_group(RunConfig.from_dict(TEAMS), env)
        with pytest.raises(ConfigError, match="this group was built in Python"):
            PPOCrowdTrainer(group, env, teams_config(tmp_path / "a"))
        plain = {k: v for k, v in TEAMS.items() if k != "policies"}
        with pytest.raises(TrainerError, match="snapshot target 'blue' must be frozen"):
            PPOCrowdTrainer(
                group,
                env,
                RunConfig.from_dict(plain).update(
                    {"trainer": {"run_dir": str(tmp_path / "b"), "snapshot_every": 1}}
                ),
                snapshots={"blue": "red"},
            )
        with pytest.raises(TrainerError, match=r"names policies \['green'\]"):
            PPOCrowdTrainer(
                group,
                env,
                RunConfig.from_dict(plain).update(
                    {"trainer": {"run_dir": str(tmp_path / "d"), "stop_at_return": {"green": 1}}}
                ),
            )
        cfg = RunConfig.from_dict(plain).update({"trainer": {"run_dir": str(tmp_path / "c")}})
        with PPOCrowdTrainer(group, env, cfg, policy_ppo={"blue": {"lr": 0.25}}) as trainer:
            assert trainer.optimizer.configs["blue"].lr == 0.25
            assert trainer.optimizer.configs["red"].lr == 1e-2
    finally:
        env.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"kind": "pettingzoo", "env_name": "os"}, "module 'os' is not in an allowed package"),
        (
            {"kind": "coltra", "env_name": "mypkg.envs:Arena"},
            "module 'mypkg.envs' is not in an allowed",
        ),
        ({"kind": "registered", "env_name": "my-arena"}, "my-arena"),
    ],
)
def test_a_config_cannot_name_code_outside_the_allowed_packages(
    env: dict[str, Any], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TEAMS, "env": env}))
    assert main(["train", "-c", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "error: env.env_name" in err and message in err
    assert not (tmp_path / "run").exists()


class LateJoinerEnv(ParallelEnv):
    """``early_0`` plays from the start; ``late_0`` joins after step 6; both are truncated at
    step 10. Observation [t / 10]; reward 1 for action 1."""

    metadata = {"name": "late_joiner_v0"}
    possible_agents = ["early_0", "late_0"]

    def __init__(self) -> None:
        self.agents: list[str] = []
        self.t = 0

    def observation_space(self, agent: str) -> Box:
        return Box(-1.0, 2.0, (1,), np.float32)

    def action_space(self, agent: str) -> Discrete:
        return Discrete(2)

    def _obs(self, agents: list[str]) -> dict[str, np.ndarray]:
        return {name: np.array([self.t / 10], np.float32) for name in agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.t = ["early_0"], 0
        return self._obs(self.agents), {name: {} for name in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        acting = list(self.agents)
        rewards = {name: float(actions[name] == 1) for name in acting}
        over = {name: self.t == 10 for name in acting}
        self.agents = [] if self.t == 10 else acting + (["late_0"] if self.t == 6 else [])
        obs = self._obs(acting + (["late_0"] if self.t == 6 else []))
        return obs, rewards, dict.fromkeys(acting, False), over, {name: {} for name in obs}


def test_a_policy_whose_agents_are_absent_for_a_whole_rollout_skips_that_update(
    tmp_path: Path,
) -> None:
    # Iteration 1 (steps 1-4): late_0 has not joined, so its policy has nothing to train on;
    # the run goes on and trains it once it has data.
    plain = {
        "trainer": {"steps": 4, "iterations": 3, "progress": False, "run_dir": str(tmp_path)},
        "ppo": {"epochs": 1, "num_minibatches": 1},
        "model": {"hidden_sizes": [8]},
        "env": {"workers": 1, "backend": "inprocess"},
    }
    policies = {"early": {"agents": ["early_"]}, "late": {"agents": ["late_"]}}
    env = PettingZooEnv(LateJoinerEnv)
    try:
        group = make_group(RunConfig.from_dict({**plain, "policies": policies}), env)
        late = [p.clone() for p in group.policies["late"].model.parameters()]
        with pytest.warns(UserWarning, match="policy 'late' has no valid samples"):
            with PPOCrowdTrainer(group, env, RunConfig.from_dict(plain)) as trainer:
                trainer.train()
    finally:
        env.close()
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [row["late/losses/skipped"] for row in rows] == ["1.0", "0.0", "0.0"]
    assert [row["early/losses/skipped"] for row in rows] == ["0.0", "0.0", "0.0"]
    assert rows[0]["late/losses/policy_loss"] == "" and rows[1]["late/losses/policy_loss"] != ""
    trained = list(group.policies["late"].model.parameters())
    assert not all(torch.equal(a, b) for a, b in zip(late, trained))
