"""Groups: policy mapping, one forward pass per policy, several networks in one call, disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from pettingzoo.sisl import pursuit_v5
from torch.distributions import Categorical

from coltra.agents import ConstantAgent, DAgent, RandomAgent
from coltra.buffers import Action, Observation
from coltra.envs import MultiGymEnv, PettingZooEnv
from coltra.groups import (
    HomogeneousGroup,
    MacroAgent,
    MultiPolicyGroup,
    PolicyMappingError,
)
from coltra.models import BaseModel, MLPModel, State
from coltra.serialization import CheckpointError

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny networks are much faster on one thread on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pursuit_env() -> Iterator[PettingZooEnv]:
    env = PettingZooEnv(pursuit_v5.parallel_env, max_cycles=5)
    yield env
    env.close()


@pytest.fixture(scope="module")
def pursuit_obs(pursuit_env: PettingZooEnv) -> dict[str, Observation]:
    return pursuit_env.reset(seed=0)


def _pursuit_agent(env: PettingZooEnv, **config: object) -> DAgent:
    return DAgent(MLPModel(dict(config), env.observation_space, env.action_space))


def _rigged(agent: DAgent, favourite: int) -> DAgent:
    """Make ``agent`` strongly prefer action ``favourite`` (deterministic = argmax)."""
    with torch.no_grad():
        bias = agent.model.policy_head.bias  # type: ignore[union-attr]
        bias.zero_()
        bias[favourite] = 10.0
    return agent


def _group(mapping: dict[str, str]) -> MacroAgent:
    policies = {name: ConstantAgent(Action(discrete=0)) for name in set(mapping.values())}
    return MultiPolicyGroup(policies, mapping)


# ---------------------------------------------------------------------------- policy mapping


def test_longest_prefix_wins() -> None:
    group = _group({"p": "pursuer", "": "evader"})
    assert group.policy_for("pursuer_3") == "pursuer"
    assert group.policy_for("evader_1") == "evader"
    assert group.policy_for("xyz") == "evader"


def test_ordering_is_by_key_length_not_policy_name_length() -> None:
    # Sorting by the policy *name* would try "" first (its policy name is longer) and send
    # every agent to "bbbbbbbb".
    group = _group({"pursuer": "a", "": "bbbbbbbb"})
    assert group.policy_for("pursuer_0") == "a"
    assert group.policy_for("evader_0") == "bbbbbbbb"
    nested = _group({"pursuer": "pack", "pursuer_1": "leader", "": "rest"})
    assert nested.policy_for("pursuer_1") == "leader"
    assert nested.policy_for("pursuer_10") == "leader"  # prefixes are prefixes
    assert nested.policy_for("pursuer_2") == "pack"


def test_vectorised_names_match_on_their_base_name() -> None:
    group = _group({"pursuer": "pursuer", "evader": "evader"})
    assert group.policy_for("pursuer_0&env=3") == "pursuer"
    assert group.policy_for("evader_12&env=0") == "evader"
    rows = group.policy_rows(["pursuer_0&env=0", "evader_0&env=0", "pursuer_0&env=1"])
    assert {policy: rows.tolist() for policy, rows in rows.items()} == {
        "pursuer": [0, 2],
        "evader": [1],
    }


def test_no_match_names_the_agent_and_the_mapping() -> None:
    group = _group({"pursuer": "pursuer", "evader": "evader"})
    with pytest.raises(PolicyMappingError) as error:  # a KeyError
        group.policy_for("walker_0&env=2")
    assert isinstance(error.value, KeyError)
    message = str(error.value)
    assert "walker_0&env=2" in message and "{'pursuer': 'pursuer', 'evader': 'evader'}" in message
    with pytest.raises(KeyError, match="walker_0"):
        group.act({"walker_0": Observation(np.zeros(3, np.float32))})


def test_bad_mappings_and_policies_are_refused() -> None:
    agent = ConstantAgent(Action(discrete=0))
    with pytest.raises(ValueError, match=r"sends prefix 'e' to policy 'evader'.*\['pursuer'\]"):
        MultiPolicyGroup({"pursuer": agent}, {"p": "pursuer", "e": "evader"})
    with pytest.raises(ValueError, match="non-empty dict of agent-name prefix"):
        MultiPolicyGroup({"pursuer": agent}, {})
    with pytest.raises(TypeError, match="prefixes"):
        MultiPolicyGroup({"pursuer": agent}, {0: "pursuer"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match=r"must be a coltra\.agents\.Agent"):
        MultiPolicyGroup({"pursuer": "agent"}, {"": "pursuer"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"frozen policies \['ghost'\]"):
        MultiPolicyGroup({"pursuer": agent}, {"": "pursuer"}, frozen=["ghost"])
    with pytest.raises(TypeError, match="list of policy names"):
        MultiPolicyGroup({"pursuer": agent}, {"": "pursuer"}, frozen="pursuer")


@pytest.mark.parametrize("name", ["../escape", "", "a/b", ".hidden", "x\\y", "name with space"])
def test_unsafe_policy_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="checkpoint directory"):
        HomogeneousGroup(ConstantAgent(Action(discrete=0)), policy_name=name)


def test_homogeneous_group_maps_everything_to_one_policy() -> None:
    agent = ConstantAgent(Action(discrete=0))
    group = HomogeneousGroup(agent)
    assert group.policy_mapping == {"": "crowd"} and group.policy_names == ["crowd"]
    assert group.agent is agent and group.policies == {"crowd": agent}
    assert group.policy_for("anything&env=5") == "crowd"
    named = HomogeneousGroup(agent, policy_name="shared")
    assert named.policy_mapping == {"": "shared"}
    named.policy_mapping[""] = "other"  # a copy: the group's mapping cannot drift
    assert named.policy_for("x") == "shared"


def test_rows_cache_stays_bounded() -> None:
    group = _group({"": "crowd"})
    for step in range(600):  # agents leaving and joining give new name sets every step
        group.policy_rows([f"agent_{i}" for i in range(step % 300 + 1)])
    assert len(group._rows_cache) <= 256


# ---------------------------------------------------------------------------- acting


def test_homogeneous_group_acts_on_pursuit(
    pursuit_env: PettingZooEnv, pursuit_obs: dict[str, Observation]
) -> None:
    group = HomogeneousGroup(_pursuit_agent(pursuit_env))
    actions, states, extra = group.act(pursuit_obs)  # no state_dict: feed-forward
    assert list(actions) == list(pursuit_obs) and states == {name: () for name in pursuit_obs}
    assert set(extra) == {"logprob"}
    for action in actions.values():
        assert action.discrete.shape == () and pursuit_env.action_space.contains(
            int(action.discrete)
        )
        assert action.numpy() == action  # holds arrays, not numpy scalars
    actions, _, extra = group.act(pursuit_obs, get_value=True, state_dict={})
    values = group.value(pursuit_obs)
    assert set(values) == set(pursuit_obs)
    for name in pursuit_obs:
        assert extra["value"][name] == pytest.approx(values[name], rel=1e-5)
    pursuit_env.step(actions)  # what the group returns is what the env takes


def test_two_networks_in_one_call(
    pursuit_env: PettingZooEnv, pursuit_obs: dict[str, Observation]
) -> None:
    # pursuers 0-3 keep their names; 4-7 play "evaders" with a different network (a CNN).
    obs = {
        (name if int(name[-1]) < 4 else f"evader_{name[-1]}"): value
        for name, value in pursuit_obs.items()
    }
    pursuer = _rigged(_pursuit_agent(pursuit_env), favourite=1)
    evader = _rigged(_pursuit_agent(pursuit_env, image_encoder="cnn", cnn_channels=[4]), 3)
    group = MultiPolicyGroup({"pursuer": pursuer, "evader": evader}, {"p": "pursuer", "": "evader"})
    actions, _, extra = group.act(obs, deterministic=True, get_value=True)
    assert {name: int(a.discrete) for name, a in actions.items()} == {
        **{f"pursuer_{i}": 1 for i in range(4)},
        **{f"evader_{i}": 3 for i in range(4, 8)},
    }
    # each agent's logprob and value come from its own policy's network
    for name, policy in (("pursuer_0", pursuer), ("evader_5", evader)):
        _, _, own = policy.act(obs[name], deterministic=True, get_value=True)
        assert extra["logprob"][name] == pytest.approx(own["logprob"], rel=1e-5)
        assert extra["value"][name] == pytest.approx(own["value"], rel=1e-5)


def test_policies_may_see_differently_shaped_observations(
    pursuit_env: PettingZooEnv, pursuit_obs: dict[str, Observation]
) -> None:
    cartpole = MultiGymEnv(env_name="CartPole-v1")
    pole_obs = cartpole.reset(seed=0)["agent"]
    group = MultiPolicyGroup(
        {
            "pursuer": _pursuit_agent(pursuit_env),
            "pole": DAgent(MLPModel({}, cartpole.observation_space, cartpole.action_space)),
        },
        {"pursuer": "pursuer", "pole": "pole"},
    )
    obs = {**pursuit_obs, "pole_0": pole_obs, "pole_1": pole_obs}
    actions, _, _ = group.act(obs, deterministic=True)
    assert actions["pole_0"] == actions["pole_1"] and int(actions["pole_0"].discrete) in (0, 1)
    assert set(group.value(obs)) == set(obs)
    cartpole.close()


def test_one_forward_pass_per_policy_per_call(
    pursuit_env: PettingZooEnv, pursuit_obs: dict[str, Observation]
) -> None:
    pack, leader = _pursuit_agent(pursuit_env), _pursuit_agent(pursuit_env)
    group = MultiPolicyGroup({"pack": pack, "leader": leader}, {"pursuer_0": "leader", "": "pack"})
    batches: dict[str, list[int]] = {"pack": [], "leader": []}
    for name, agent in (("pack", pack), ("leader", leader)):
        assert agent.model is not None
        agent.model.register_forward_hook(
            lambda _m, args, _out, name=name: batches[name].append(args[0].batch_size)
        )
    group.act(pursuit_obs, get_value=True)
    assert batches == {"pack": [7], "leader": [1]}
    # the array API used by the collector: rows of a stacked batch, one pass per policy
    names = list(pursuit_obs)
    stacked = Observation.stack([pursuit_obs[name] for name in names])
    outputs = group.act_batch(stacked, group.policy_rows(names), get_value=True)
    assert batches == {"pack": [7, 7], "leader": [1, 1]}
    assert outputs["pack"][0].discrete.shape == (7,) and outputs["leader"][2]["value"].shape == (1,)


def test_multi_policy_group_on_a_vectorised_pursuit() -> None:
    env = PettingZooEnv.get_venv(
        2, env_fn=pursuit_v5.parallel_env, backend="inprocess", max_cycles=5, seed=0
    )
    leader = RandomAgent(env.action_space, seed=0)
    pack = _rigged(_pursuit_agent(env), favourite=2)  # type: ignore[arg-type]
    group = MultiPolicyGroup({"leader": leader, "pack": pack}, {"pursuer_0": "leader", "": "pack"})
    obs = env.reset()
    assert "pursuer_0&env=1" in obs
    for _ in range(3):
        actions, _, extra = group.act(obs, deterministic=True, get_value=True)
        assert all(int(actions[name].discrete) == 2 for name in obs if "pursuer_0&" not in name)
        assert extra["value"]["pursuer_0&env=0"] == 0.0  # the toy agent has no critic
        obs, _, _, _ = env.step(actions)
    env.close()


# ---------------------------------------------------------------------------- training view


def test_evaluate_is_keyed_by_policy(
    pursuit_env: PettingZooEnv, pursuit_obs: dict[str, Observation]
) -> None:
    group = HomogeneousGroup(_pursuit_agent(pursuit_env))
    stacked = Observation.stack(list(pursuit_obs.values()))
    action, _, extra = group.agent.act(stacked)
    results = group.evaluate({"crowd": stacked}, {"crowd": action})
    logprobs, values, entropies = results["crowd"]
    assert logprobs.shape == values.shape == entropies.shape == (8,)
    assert logprobs.requires_grad
    np.testing.assert_allclose(logprobs.detach().numpy(), extra["logprob"], rtol=1e-5)
    with pytest.raises(KeyError, match=r"unknown policies \['pursuer'\]"):
        group.evaluate({"pursuer": stacked}, {"pursuer": action})
    with pytest.raises(KeyError, match="same policies"):
        group.evaluate({"crowd": stacked}, {})


def test_parameters_are_deduplicated_and_exclude_frozen(pursuit_env: PettingZooEnv) -> None:
    shared, other = _pursuit_agent(pursuit_env), _pursuit_agent(pursuit_env, hidden_sizes=[8])
    group = MultiPolicyGroup(
        {"a": shared, "b": shared, "c": other}, {"a": "a", "b": "b", "": "c"}, frozen=["c"]
    )
    assert group.trainable_policies == ["a", "b"] and group.frozen == {"c"}
    ids = [id(p) for p in group.parameters()]
    assert len(ids) == len(set(ids)) == len(shared.parameters())
    assert {id(p) for p in other.parameters()}.isdisjoint(ids)
    assert HomogeneousGroup(RandomAgent(gym.spaces.Discrete(2))).parameters() == []


# ---------------------------------------------------------------------------- disk


def test_homogeneous_group_roundtrip(
    pursuit_env: PettingZooEnv, pursuit_obs: dict[str, Observation], tmp_path: Path
) -> None:
    group = HomogeneousGroup(_pursuit_agent(pursuit_env, image_encoder="cnn"), policy_name="hive")
    group.save(tmp_path / "group")
    assert json.loads((tmp_path / "group" / "group.json").read_text())["policy_mapping"] == {
        "": "hive"
    }
    loaded = HomogeneousGroup.load(tmp_path / "group")
    assert isinstance(loaded, HomogeneousGroup) and loaded.policy_name == "hive"
    assert (
        loaded.act(pursuit_obs, deterministic=True)[0]
        == group.act(pursuit_obs, deterministic=True)[0]
    )


def test_multi_policy_group_roundtrip(
    pursuit_env: PettingZooEnv, pursuit_obs: dict[str, Observation], tmp_path: Path
) -> None:
    group = MultiPolicyGroup(
        {
            "leader": _rigged(_pursuit_agent(pursuit_env, hidden_sizes=[16]), favourite=4),
            "pack": _pursuit_agent(pursuit_env),
            "idle": ConstantAgent(Action(discrete=0)),
        },
        {"pursuer_0": "leader", "pursuer_7": "idle", "": "pack"},
        frozen=["leader"],
    )
    group.save(tmp_path / "group")
    loaded = MacroAgent.load(tmp_path / "group")
    assert isinstance(loaded, MultiPolicyGroup)
    assert loaded.policy_mapping == group.policy_mapping and loaded.frozen == {"leader"}
    assert loaded.trainable_policies == ["pack", "idle"]
    expected = group.act(pursuit_obs, deterministic=True)[0]
    assert loaded.act(pursuit_obs, deterministic=True)[0] == expected
    assert int(expected["pursuer_0"].discrete) == 4 and int(expected["pursuer_7"].discrete) == 0
    with pytest.raises(CheckpointError, match="holds a MultiPolicyGroup, not a HomogeneousGroup"):
        HomogeneousGroup.load(tmp_path / "group")


def test_group_checkpoint_problems(pursuit_env: PettingZooEnv, tmp_path: Path) -> None:
    path = tmp_path / "group"
    with pytest.raises(CheckpointError, match=r"missing checkpoint file .*group\.json"):
        MacroAgent.load(path)
    HomogeneousGroup(_pursuit_agent(pursuit_env)).save(path)
    meta = json.loads((path / "group.json").read_text())
    for change, message in (
        ({"policies": ["../../etc"]}, "policy name '../../etc'"),
        ({"policies": "crowd"}, "must be a list"),
        ({"version": 2}, "version 2"),
        ({"format": "something"}, "not a Coltra group file"),
        ({"type": "MultiPolicyGroup", "policy_mapping": {"": "ghost"}}, "'ghost'"),
    ):
        (path / "group.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(CheckpointError, match=message):
            MacroAgent.load(path)
    (path / "group.json").write_text(json.dumps(meta))
    (path / "policies" / "crowd" / "weights.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupted"):
        MacroAgent.load(path)


# ---------------------------------------------------------------------------- the seed's example


def test_try_groups_example_runs() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "try_groups.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "8 agents acted" in result.stdout


class _CountingModel(BaseModel):
    """A model with a recurrent state that counts the steps of each agent."""

    discrete = True
    observation_space = None
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(2))

    def forward(
        self, obs: Observation, state: State = (), get_value: bool = False
    ) -> tuple[Categorical, State, dict[str, torch.Tensor]]:
        (count,) = state or self.get_initial_state(obs.batch_size)
        extra = {"value": count.float()} if get_value else {}
        return Categorical(logits=self.logits.expand(obs.batch_size, 2)), (count + 1,), extra

    def get_initial_state(self, batch_size: int) -> State:
        return (torch.zeros(batch_size, dtype=torch.int64),)


def test_recurrent_state_travels_per_agent(pursuit_obs: dict[str, Observation]) -> None:
    group = HomogeneousGroup(DAgent(_CountingModel()))
    state_dict = {name: (torch.tensor(i),) for i, name in enumerate(pursuit_obs)}
    _, states, extra = group.act(pursuit_obs, state_dict=state_dict, get_value=True)
    for i, name in enumerate(pursuit_obs):
        assert int(states[name][0]) == i + 1 and extra["value"][name] == i
    _, states, _ = group.act(pursuit_obs)  # no state given: the model's initial state
    assert all(int(state[0]) == 1 for state in states.values())


def test_a_recurrent_group_acts_from_zeros_for_an_agent_without_a_state() -> None:
    """Issue 17 review: one agent's missing state dropped every agent's."""
    import gymnasium as gym

    from coltra.agents import DAgent
    from coltra.models import MLPModel

    torch.manual_seed(0)
    model = MLPModel({"recurrent": "gru", "recurrent_size": 4}, gym.spaces.Box(-1, 1, (2,)),
                     gym.spaces.Discrete(3))  # fmt: skip
    group = HomogeneousGroup(DAgent(model))
    obs = {name: Observation(vector=np.ones(2, np.float32)) for name in ("a", "b")}
    _, states, _ = group.act(obs, deterministic=True)
    _, full, extra = group.act(obs, deterministic=True, state_dict=states, get_value=True)
    _, partial, _ = group.act(obs, deterministic=True, state_dict={"b": states["b"]})
    assert torch.equal(partial["b"][0], full["b"][0])  # b keeps its memory
    assert torch.equal(partial["a"][0], states["a"][0])  # a starts again from zeros
    values = group.value(obs, state_dict=states)
    assert values["a"] == pytest.approx(float(extra["value"]["a"]), abs=1e-6)
    with pytest.raises(ValueError, match=r"policies \['crowd'\] are recurrent"):
        group.evaluate({"crowd": Observation(vector=np.ones((2, 2), np.float32))},
                       {"crowd": Action(discrete=np.zeros(2, np.int64))})  # fmt: skip
