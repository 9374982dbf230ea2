"""Blocks: agents with their own observation and action spaces (coltra.envs.blocks).

The layout itself (grouping, names, rows of vector copies, the one block of a policy), the
two-team probe env in both views and both vectorisation backends, the NaN checks on a
block's fields, and the collector over several blocks (records, masks of absent agents).
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from coltra.buffers import Action, Observation
from coltra.checks import NonFiniteError
from coltra.collectors import CrowdCollector, join_policy_actions, plan_policies, policy_views
from coltra.configs import MLPConfig
from coltra.envs.base import MultiAgentEnv, StepBatch
from coltra.envs.blocks import BlockLayout, block_view, with_prefix
from coltra.envs.probe_envs import TwoTeamsEnv
from coltra.envs.vector import InProcessVecEnv, VecEnv
from coltra.factory import make_agent
from coltra.groups import HomogeneousGroup, MultiPolicyGroup

pytestmark = pytest.mark.timeout(60)

BOX2 = gym.spaces.Box(0.0, 10.0, (2,), np.float32)
BOX3 = gym.spaces.Box(0.0, 10.0, (3,), np.float32)
D2 = gym.spaces.Discrete(2)
D3 = gym.spaces.Discrete(3)


def block_names(layout: BlockLayout) -> list[str]:
    return [block.name for block in layout.blocks]


def block_rows(layout: BlockLayout) -> dict[str, list[int]]:
    return {block.name: block.rows.tolist() for block in layout.blocks}


def team_actions(a: list[int] | np.ndarray, b: list[int] | np.ndarray) -> Action:
    """A batch-view Action of TwoTeamsEnv: one value per row in each block's field."""
    return Action(
        **{
            "a/discrete": np.asarray(a, dtype=np.int64),
            "b/discrete": np.asarray(b, dtype=np.int64),
        }
    )


def best_of(obs: Observation, layout: BlockLayout) -> np.ndarray:
    """The action TwoTeamsEnv pays each row for, read off its one-hot observation. [rows]"""
    best = np.zeros(len(layout.block_of_row), np.int64)
    for block, actions in zip(layout.blocks, (2, 4)):
        best[block.rows] = np.argmax(obs[f"{block.name}/vector"][block.rows], axis=1) % actions
    return best


def block_group(env: MultiAgentEnv, seed: int = 0) -> MultiPolicyGroup:
    """One small policy per block of ``env``, each mapped to its block's name stem."""
    torch.manual_seed(seed)
    policies = {
        block.name: make_agent(MLPConfig(hidden_sizes=[8]), block) for block in env.layout.blocks
    }
    return MultiPolicyGroup(policies, {name: name for name in policies})


# ----------------------------------------------------------------------------- layout


def test_agents_are_grouped_by_their_spaces_in_first_seen_order() -> None:
    names = ["adversary_0", "agent_0", "adversary_1"]
    layout = BlockLayout.of_agents(names, [(BOX3, D2), (BOX2, D3), (BOX3, D2)])
    assert block_names(layout) == ["adversary", "agent"]
    assert block_rows(layout) == {"adversary": [0, 2], "agent": [1]}
    assert layout.block_of_row.tolist() == [0, 1, 0]
    assert not layout.is_single
    adversary, agent = layout.blocks
    assert adversary.prefix == "adversary/" and agent.prefix == "agent/"
    assert adversary.observation_space == BOX3 and adversary.action_space == D2
    assert agent.observation_space == BOX2 and agent.action_space == D3
    assert layout.block("agent") is agent
    with pytest.raises(KeyError, match=r"no block 'prey'; blocks: \['adversary', 'agent'\]"):
        layout.block("prey")


def test_only_equal_observation_and_action_spaces_share_a_block() -> None:
    # Same observation space, other actions: a block of its own (and first seen first).
    layout = BlockLayout.of_agents(
        ["speaker_0", "listener_0", "listener_1"], [(BOX3, D3), (BOX3, D2), (BOX3, D2)]
    )
    assert block_rows(layout) == {"speaker": [0], "listener": [1, 2]}
    layout = BlockLayout.of_agents(["x_0", "y_0"], [(BOX2, D2), (BOX3, D2)])
    assert block_rows(layout) == {"x": [0], "y": [1]}


def test_stems_drop_the_index_and_the_copy_of_vectorised_names() -> None:
    layout = BlockLayout.of_agents(
        ["pursuer-3&env=1", "pursuer_12&env=1", "evader&env=1"],
        [(BOX2, D2), (BOX2, D2), (BOX3, D3)],
    )
    assert block_rows(layout) == {"pursuer": [0, 1], "evader": [2]}


def test_a_block_without_one_common_stem_is_named_by_its_position() -> None:
    # adversary_0 and agent_0 share spaces but not a stem: "block0".
    layout = BlockLayout.of_agents(
        ["adversary_0", "agent_0", "prey_0"], [(BOX3, D2), (BOX3, D2), (BOX2, D3)]
    )
    assert block_names(layout) == ["block0", "prey"]
    assert block_rows(layout) == {"block0": [0, 1], "prey": [2]}
    assert layout.blocks[0].prefix == "block0/"
    # A name that is only a number has no stem at all.
    layout = BlockLayout.of_agents(["7", "agent_0"], [(BOX3, D2), (BOX2, D3)])
    assert block_names(layout) == ["block0", "agent"]


def test_two_blocks_with_one_stem_do_not_share_a_name() -> None:
    layout = BlockLayout.of_agents(
        ["agent_0", "agent_1", "agent_2"], [(BOX3, D2), (BOX2, D3), (BOX3, D2)]
    )
    assert block_names(layout) == ["agent", "block1"]
    assert block_rows(layout) == {"agent": [0, 2], "block1": [1]}


def test_one_group_of_spaces_is_the_single_block() -> None:
    layout = BlockLayout.of_agents(["a_0", "b_0", "c_0"], [(BOX3, D2)] * 3)
    assert layout.blocks == BlockLayout.single(BOX3, D2, 3).blocks
    assert layout.is_single
    (block,) = layout.blocks
    assert block.name == "" and block.prefix == ""
    assert block.rows.tolist() == [0, 1, 2] and block.rows.dtype == np.int64
    assert layout.block_of_row.tolist() == [0, 0, 0]
    assert block.observation_space == BOX3 and block.action_space == D2
    assert layout.describe() == f"all: 3 agents, {BOX3} / {D2}"


def test_equal_layouts_compare_equal() -> None:
    names = ["a_0", "a_1", "b_0"]
    spaces = [(BOX3, D2), (BOX3, D2), (BOX2, D3)]
    assert BlockLayout.of_agents(names, spaces) == BlockLayout.of_agents(names, spaces)
    assert BlockLayout.single(BOX3, D2, 3) != BlockLayout.of_agents(names, spaces)


def test_block_rows_are_read_only() -> None:
    mixed = BlockLayout.of_agents(["a_0", "b_0"], [(BOX3, D2), (BOX2, D3)])
    single = BlockLayout.single(BOX3, D2, 2)
    joined = BlockLayout.joined([mixed, mixed])
    for layout in (mixed, single, joined):
        for block in layout.blocks:
            assert not block.rows.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                block.rows[0] = 5


def test_describe_names_every_block_with_its_agents_and_spaces() -> None:
    layout = TwoTeamsEnv(team_a=2, team_b=1).layout
    assert layout.describe() == (
        "a: 2 agents, Box(0.0, 1.0, (3,), float32) / Discrete(2), "
        "b: 1 agents, Box(0.0, 1.0, (5,), float32) / Discrete(4)"
    )


# ----------------------------------------------------------------------------- joined


def test_joined_copies_offset_each_copys_rows() -> None:
    one = TwoTeamsEnv(team_a=2, team_b=1).layout
    joined = BlockLayout.joined([one, one, one])
    assert block_names(joined) == ["a", "b"]
    assert block_rows(joined) == {"a": [0, 1, 3, 4, 6, 7], "b": [2, 5, 8]}
    assert joined.block_of_row.tolist() == [0, 0, 1] * 3
    assert joined.blocks[0].same_spaces(one.blocks[0])
    # Copies may hold different numbers of agents, as long as their blocks match.
    other = TwoTeamsEnv(team_a=1, team_b=2).layout
    assert block_rows(BlockLayout.joined([one, other])) == {"a": [0, 1, 3], "b": [2, 4, 5]}
    # Single blocks join into one single block.
    single = BlockLayout.joined([BlockLayout.single(BOX3, D2, 2)] * 3)
    assert single.is_single and single.blocks[0].rows.tolist() == list(range(6))
    assert BlockLayout.joined([one]).blocks == one.blocks


@pytest.mark.parametrize(
    "other",
    [
        BlockLayout.single(BOX3, D2, 3),  # fewer blocks
        BlockLayout.of_agents(["a_0", "c_0"], [(BOX3, D2), (BOX2, D3)]),  # another name
        BlockLayout.of_agents(["a_0", "b_0"], [(BOX3, D3), (BOX2, D3)]),  # other spaces
    ],
)
def test_copies_with_other_blocks_do_not_join(other: BlockLayout) -> None:
    first = BlockLayout.of_agents(["a_0", "b_0"], [(BOX3, D2), (BOX2, D3)])
    expected = (
        f"env copies have different blocks of agents: {first.describe()} and {other.describe()}"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        BlockLayout.joined([first, first, other])


def test_a_vectorised_env_refuses_copies_with_other_blocks() -> None:
    teams = iter([TwoTeamsEnv(team_a=1, team_b=1), MixedEnv()])
    with pytest.raises(ValueError, match=r"env copies 0\.\.: env copies have different blocks"):
        InProcessVecEnv([lambda: next(teams)] * 2)


# ----------------------------------------------------------------------------- block_of


def test_block_of_rows_within_one_block() -> None:
    layout = BlockLayout.joined([TwoTeamsEnv(team_a=2, team_b=1).layout] * 2)
    a, b = layout.blocks
    assert layout.block_of(np.array([0, 1, 3]), "policy 'x'") is a
    assert layout.block_of(np.array([5]), "policy 'x'") is b
    assert layout.block_of(np.array([2, 5]), "policy 'x'") is b


def test_block_of_rows_spanning_two_blocks_is_an_error() -> None:
    layout = TwoTeamsEnv(team_a=2, team_b=1).layout
    expected = (
        "policy 'crowd' spans agents with different spaces (blocks 'a', 'b'); give each "
        "block its own policy"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        layout.block_of(np.array([1, 2]), "policy 'crowd'")


# ----------------------------------------------------------------------------- views


def test_block_view_strips_and_with_prefix_adds_the_block_prefix() -> None:
    layout = BlockLayout.of_agents(["a_0", "ab_0"], [(BOX3, D2), (BOX2, D3)])
    a, ab = layout.blocks
    assert (a.name, ab.name) == ("a", "ab")
    batch = Observation(
        **{
            "a/vector": np.arange(6, dtype=np.float32).reshape(2, 3),
            "a/extra": np.ones((2, 1), np.float32),
            "ab/vector": np.full((2, 2), 7.0, np.float32),
        }
    )
    view = block_view(batch, a)
    assert isinstance(view, Observation)
    assert view.keys() == ["vector", "extra"]  # not ab's fields: "a/" is the prefix
    np.testing.assert_array_equal(view.vector, [[0, 1, 2], [3, 4, 5]])
    assert block_view(batch, ab).keys() == ["vector"]
    np.testing.assert_array_equal(block_view(batch, ab).vector, 7.0)
    actions = Action(**{"a/discrete": np.array([1, 0]), "ab/discrete": np.array([0, 2])})
    action_view = block_view(actions, ab)
    assert isinstance(action_view, Action)
    assert action_view.keys() == ["discrete"]
    assert action_view.discrete.tolist() == [0, 2]
    fields = {"vector": np.zeros((2, 3), np.float32)}
    prefixed = with_prefix(fields, a)
    assert list(prefixed) == ["a/vector"] and prefixed["a/vector"] is fields["vector"]
    # The two are inverse.
    assert block_view(Observation(**with_prefix(fields, ab)), ab).keys() == ["vector"]


def test_block_view_and_with_prefix_leave_a_single_block_alone() -> None:
    (block,) = BlockLayout.single(BOX3, D2, 2).blocks
    batch = Observation(vector=np.zeros((2, 3), np.float32))
    assert block_view(batch, block) is batch
    actions = Action(discrete=np.array([0, 1]))
    assert block_view(actions, block) is actions
    fields = {"vector": np.zeros((2, 3), np.float32)}
    assert with_prefix(fields, block) is fields


# ----------------------------------------------------------------------------- TwoTeamsEnv


def test_two_teams_spaces_and_layout() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    assert env.agent_names == ["a_0", "a_1", "b_0"]
    assert env.num_agents == 3
    assert block_names(env.layout) == ["a", "b"]
    assert block_rows(env.layout) == {"a": [0, 1], "b": [2]}
    assert env.observation_space is None and env.action_space is None
    assert env.agent_observation_space("b_0") == gym.spaces.Box(0.0, 1.0, (5,), np.float32)
    assert env.agent_observation_space("a_1") == gym.spaces.Box(0.0, 1.0, (3,), np.float32)
    assert env.agent_action_space("a_0") == gym.spaces.Discrete(2)
    assert env.agent_action_space("b_0") == gym.spaces.Discrete(4)
    assert env.agent_block("b_0") is env.layout.blocks[1]
    with pytest.raises(KeyError, match="no agent 'c_0' in TwoTeamsEnv"):
        env.agent_block("c_0")


@pytest.mark.parametrize("key", ["team_a", "team_b", "episode_length"])
@pytest.mark.parametrize("value", [0, True, 1.5])
def test_two_teams_refuses_bad_sizes(key: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"{key} must be a whole number >= 1"):
        TwoTeamsEnv(**{key: value})


def test_two_teams_reset_gives_one_hots_in_each_blocks_own_rows() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    first = env.reset_batch(seed=0)
    assert sorted(first.obs.keys()) == ["a/vector", "b/vector"]
    a, b = first.obs["a/vector"], first.obs["b/vector"]
    assert a.shape == (3, 3) and b.shape == (3, 5)
    assert a.dtype == np.float32 and b.dtype == np.float32
    np.testing.assert_array_equal(a[2], 0.0)  # b_0's row of a's field
    np.testing.assert_array_equal(b[:2], 0.0)  # a_0's and a_1's rows of b's field
    for row in (a[0], a[1], b[2]):  # one-hots
        assert sorted(row.tolist()) == [0.0] * (len(row) - 1) + [1.0]
    assert first.active.tolist() == [True] * 3
    assert first.reward.tolist() == [0.0] * 3
    assert not first.done.any() and first.final_obs is None
    assert env.best_actions().tolist() == best_of(first.obs, env.layout).tolist()


def test_two_teams_pays_the_best_action_only() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1, episode_length=3)
    env.reset_batch(seed=1)
    best = env.best_actions()
    # Row 2 of a's field and rows 0, 1 of b's field are not read: any value will do.
    step = env.step_batch(team_actions([best[0], best[1], 99], [-5, 99, best[2]]))
    assert step.reward.tolist() == [1.0, 1.0, 1.0]
    assert step.reward.dtype == np.float32
    best = env.best_actions()
    wrong = (best + 1) % np.array([2, 2, 4])
    step = env.step_batch(team_actions(wrong, wrong))
    assert step.reward.tolist() == [0.0, 0.0, 0.0]
    best = env.best_actions()
    step = env.step_batch(team_actions([best[0], 1 - best[1], 0], [0, 0, best[2]]))
    assert step.reward.tolist() == [1.0, 0.0, 1.0]
    assert step.done.all()
    np.testing.assert_array_equal(step.metrics["e_episode_reward"], [2.0, 1.0, 2.0])


def test_two_teams_checks_each_blocks_actions_in_its_own_rows() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    env.reset_batch(seed=0)
    with pytest.raises(ValueError, match=r"action value\(s\) \[2\] outside Discrete\(2\)"):
        env.step_batch(team_actions([0, 2, 0], [0, 0, 0]))
    with pytest.raises(ValueError, match=r"action value\(s\) \[4\] outside Discrete\(4\)"):
        env.step_batch(team_actions([0, 0, 0], [0, 0, 4]))
    with pytest.raises(ValueError, match=r"expected Action\(b/discrete=\.\.\.\)"):
        env.step_batch(Action(**{"a/discrete": np.zeros(3, np.int64)}))
    with pytest.raises(ValueError, match=r"'a/discrete' has shape \(2,\), expected \(3,\)"):
        env.step_batch(team_actions([0, 0], [0, 0]))
    with pytest.raises(ValueError, match="fields disagree on the batch size"):
        team_actions([0, 0], [0, 0, 0])


def test_two_teams_episode_ends_after_its_length() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1, episode_length=2)
    env.reset_batch(seed=0)
    best = env.best_actions()
    step = env.step_batch(team_actions(best, best))
    assert not step.done.any() and step.active.all()
    assert step.final_obs is None and step.metrics == {}
    best = env.best_actions()
    last_obs = step.obs
    wrong_a0 = best.copy()
    wrong_a0[0] = 1 - wrong_a0[0]
    step = env.step_batch(team_actions(wrong_a0, best))
    assert step.terminated.tolist() == [True] * 3
    assert step.truncated.tolist() == [False] * 3
    assert step.active.tolist() == [False] * 3
    assert step.final_obs is not None
    assert sorted(step.final_obs.keys()) == ["a/vector", "b/vector"]
    assert step.final_obs["a/vector"].shape == (3, 3)
    assert step.final_obs["b/vector"].shape == (3, 5)
    assert sorted(step.metrics) == ["e_episode_length", "e_episode_reward"]
    np.testing.assert_array_equal(step.metrics["e_episode_reward"], [1.0, 2.0, 2.0])
    np.testing.assert_array_equal(step.metrics["e_episode_length"], [2.0, 2.0, 2.0])
    assert not np.array_equal(step.obs["a/vector"], np.zeros((3, 3)))  # a real observation
    assert last_obs is not step.obs
    with pytest.raises(RuntimeError, match="every agent of TwoTeamsEnv is done"):
        env.step_batch(team_actions(best, best))
    # The next episode starts from zero.
    env.reset_batch()
    best = env.best_actions()
    env.step_batch(team_actions(best, best))
    step = env.step_batch(team_actions(env.best_actions(), env.best_actions()))
    np.testing.assert_array_equal(step.metrics["e_episode_reward"], [2.0, 2.0, 2.0])


def test_two_teams_seeded_resets_are_reproducible() -> None:
    def run(env: TwoTeamsEnv, seed: int) -> list[np.ndarray]:
        seen = [np.concatenate([env.reset_batch(seed=seed).obs[f"{k}/vector"] for k in "ab"], 1)]
        for _ in range(3):
            step = env.step_batch(team_actions([0, 0, 0], [0, 0, 0]))
            seen.append(np.concatenate([step.obs[f"{k}/vector"] for k in "ab"], 1))
            seen.append(step.reward)
        return seen

    env = TwoTeamsEnv(team_a=2, team_b=1, episode_length=5)
    first = run(env, 7)
    again = run(env, 7)  # the same env, reseeded
    fresh = run(TwoTeamsEnv(team_a=2, team_b=1, episode_length=5), 7)
    for x, y, z in zip(first, again, fresh):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, z)
    other = run(env, 8)
    assert any(not np.array_equal(x, y) for x, y in zip(first, other))


# ----------------------------------------------------------------------------- dict view


def test_two_teams_dict_view_speaks_each_agents_own_fields() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1, episode_length=2)
    obs = env.reset(seed=0)
    assert list(obs) == ["a_0", "a_1", "b_0"]
    for name, size in (("a_0", 3), ("a_1", 3), ("b_0", 5)):
        assert obs[name].keys() == ["vector"]
        assert obs[name].vector.shape == (size,)
        assert obs[name].vector.sum() == 1.0
    best = env.best_actions()
    np.testing.assert_array_equal(np.argmax(obs["b_0"].vector) % 4, best[2])
    actions = {
        "a_0": Action(discrete=int(best[0])),
        "a_1": Action(discrete=int(1 - best[1])),
        "b_0": Action(discrete=int(best[2])),
    }
    obs, reward, done, info = env.step(actions)
    assert reward == {"a_0": 1.0, "a_1": 0.0, "b_0": 1.0}
    assert done == {"a_0": False, "a_1": False, "b_0": False}
    assert "final_obs" not in info and "truncated" not in info
    assert [obs[name].vector.shape for name in obs] == [(3,), (3,), (5,)]
    best = env.best_actions()
    obs, reward, done, info = env.step(
        {name: Action(discrete=int(best[row])) for row, name in enumerate(env.agent_names)}
    )
    assert obs == {}
    assert reward == {"a_0": 1.0, "a_1": 1.0, "b_0": 1.0}
    assert done == {"a_0": True, "a_1": True, "b_0": True}
    assert info["truncated"] == {"a_0": False, "a_1": False, "b_0": False}
    assert [info["final_obs"][name].keys() for name in env.agent_names] == [["vector"]] * 3
    assert info["final_obs"]["b_0"].vector.shape == (5,)
    np.testing.assert_array_equal(info["e_episode_reward"], [2.0, 1.0, 2.0])


def test_two_teams_dict_view_checks_every_agents_action_against_its_own_space() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    env.reset(seed=0)
    ok = {"a_0": Action(discrete=1), "a_1": Action(discrete=0)}
    with pytest.raises(
        ValueError,
        match=re.escape("action for agent 'b_0': action value(s) [4] outside Discrete(4)"),
    ):
        env.step({**ok, "b_0": Action(discrete=4)})
    with pytest.raises(
        ValueError,
        match=re.escape("action for agent 'a_1': action value(s) [3] outside Discrete(2)"),
    ):
        env.step({**ok, "a_1": Action(discrete=3), "b_0": Action(discrete=3)})
    with pytest.raises(ValueError, match=re.escape("no action for live agents ['b_0']")):
        env.step(ok)
    with pytest.raises(ValueError, match=re.escape("actions given for unknown agents ['c_0']")):
        env.step({**ok, "b_0": Action(discrete=0), "c_0": Action(discrete=0)})
    with pytest.raises(TypeError, match=r"action for agent 'a_0'.*must be integers"):
        env.step({**ok, "a_0": Action(discrete=0.5), "b_0": Action(discrete=0)})
    # Nothing above stepped the env; a valid step still works (3 is fine for b_0).
    _, reward, _, _ = env.step({**ok, "b_0": Action(discrete=3)})
    assert list(reward) == ["a_0", "a_1", "b_0"]


def test_a_wrong_action_field_in_the_dict_view_names_the_agents_own_field() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action for agent 'a_0'") as error:
        env.step(
            {
                "a_0": Action(continuous=np.zeros(1, np.float32)),
                "a_1": Action(discrete=0),
                "b_0": Action(discrete=0),
            }
        )
    message = str(error.value)
    assert "Action(discrete=...)" in message
    assert "a/" not in message  # the agent never saw the batch view's names


# ----------------------------------------------------------------------------- vectorised


def test_vectorised_two_teams_layout_offsets_rows_per_copy() -> None:
    with TwoTeamsEnv.get_venv(3, backend="inprocess", seed=0, team_a=2, team_b=1) as venv:
        assert isinstance(venv, VecEnv)
        assert venv.num_envs == 3
        assert venv.agent_names[:3] == ["a_0&env=0", "a_1&env=0", "b_0&env=0"]
        assert venv.agent_names[-1] == "b_0&env=2"
        assert block_names(venv.layout) == ["a", "b"]
        assert block_rows(venv.layout) == {"a": [0, 1, 3, 4, 6, 7], "b": [2, 5, 8]}
        assert venv.layout.block_of_row.tolist() == [0, 0, 1] * 3
        assert venv.observation_space is None and venv.action_space is None
        assert venv.agent_observation_space("b_0&env=2") == gym.spaces.Box(
            0.0, 1.0, (5,), np.float32
        )
        assert venv.agent_action_space("a_1&env=1") == gym.spaces.Discrete(2)
        first = venv.reset_batch()
        assert first.obs["a/vector"].shape == (9, 3) and first.obs["b/vector"].shape == (9, 5)
        np.testing.assert_array_equal(first.obs["a/vector"][[2, 5, 8]], 0.0)
        np.testing.assert_array_equal(first.obs["b/vector"][[0, 1, 3, 4, 6, 7]], 0.0)


def vec_run(backend: str, steps: int, episode_length: int) -> list[StepBatch]:
    """Steps of 3 copies of TwoTeamsEnv(2, 1) with actions that follow the observations
    (best for most rows, wrong for some), so that both backends get the same actions."""
    batches = []
    with TwoTeamsEnv.get_venv(
        3, backend=backend, seed=0, team_a=2, team_b=1, episode_length=episode_length
    ) as venv:
        assert block_rows(venv.layout) == {"a": [0, 1, 3, 4, 6, 7], "b": [2, 5, 8]}
        batch = venv.reset_batch()
        batches.append(batch)
        for t in range(steps):
            actions = best_of(batch.obs, venv.layout)
            flip = (np.arange(9) + t) % 3 == 0
            actions[flip] = (actions[flip] + 1) % np.array([2, 2, 4] * 3)[flip]
            batch = venv.step_batch(team_actions(actions, actions))
            batches.append(batch)
    return batches


def assert_same_batches(first: list[StepBatch], second: list[StepBatch]) -> None:
    assert len(first) == len(second)
    for x, y in zip(first, second):
        assert sorted(x.obs.keys()) == sorted(y.obs.keys()) == ["a/vector", "b/vector"]
        for name in ("a/vector", "b/vector"):
            np.testing.assert_array_equal(x.obs[name], y.obs[name])
        np.testing.assert_array_equal(x.reward, y.reward)
        np.testing.assert_array_equal(x.terminated, y.terminated)
        np.testing.assert_array_equal(x.truncated, y.truncated)
        np.testing.assert_array_equal(x.active, y.active)
        assert (x.final_obs is None) == (y.final_obs is None)
        if x.final_obs is not None and y.final_obs is not None:
            for name in ("a/vector", "b/vector"):
                np.testing.assert_array_equal(x.final_obs[name], y.final_obs[name])
        assert sorted(x.metrics) == sorted(y.metrics)
        for key in x.metrics:
            np.testing.assert_array_equal(x.metrics[key], y.metrics[key])


def test_both_backends_step_two_teams_alike() -> None:
    inprocess = vec_run("inprocess", steps=5, episode_length=2)
    subprocess = vec_run("subprocess", steps=5, episode_length=2)
    assert_same_batches(inprocess, subprocess)
    rewards = np.array([batch.reward for batch in inprocess[1:]])
    flips = np.array([(np.arange(9) + t) % 3 == 0 for t in range(5)])
    np.testing.assert_array_equal(rewards, np.where(flips, 0.0, 1.0))
    dones = [bool(batch.done.all()) for batch in inprocess[1:]]
    assert dones == [False, True, False, True, False]
    assert [batch.final_obs is not None for batch in inprocess[1:]] == dones
    # Copies are seeded 0, 1, 2: they differ.
    first = inprocess[0].obs["b/vector"]
    assert not (np.array_equal(first[2], first[5]) and np.array_equal(first[5], first[8]))


def test_both_backends_keep_the_final_observation_of_one_step_episodes() -> None:
    inprocess = vec_run("inprocess", steps=3, episode_length=1)
    subprocess = vec_run("subprocess", steps=3, episode_length=1)
    assert_same_batches(inprocess, subprocess)
    for batch in inprocess[1:]:
        assert batch.terminated.all() and batch.active.all()  # reset in the same step
        assert batch.final_obs is not None
        assert batch.final_obs["a/vector"].shape == (9, 3)
        assert batch.final_obs["b/vector"].shape == (9, 5)
        np.testing.assert_array_equal(batch.final_obs["a/vector"][[2, 5, 8]], 0.0)
        np.testing.assert_array_equal(batch.final_obs["b/vector"][[0, 1, 3, 4, 6, 7]], 0.0)
        np.testing.assert_array_equal(batch.metrics["e_episode_length"], 1.0)
        np.testing.assert_array_equal(batch.metrics["e_episode_reward"], batch.reward)


def test_vectorised_two_teams_checks_each_blocks_actions(backend: str) -> None:
    """``backend``: the conftest fixture, once per backend."""
    with TwoTeamsEnv.get_venv(2, backend=backend, seed=0, team_a=1, team_b=1) as venv:
        venv.reset_batch()
        with pytest.raises(ValueError, match=r"action value\(s\) \[4\] outside Discrete\(4\)"):
            venv.step_batch(team_actions([0, 0, 0, 0], [0, 0, 0, 4]))
        # a's field in b's rows (and b's in a's) is never read.
        step = venv.step_batch(team_actions([0, 7, 1, 7], [9, 0, 9, 3]))
        assert step.reward.shape == (4,)


# ----------------------------------------------------------------------------- NaN checks


class NanBlockEnv(MultiAgentEnv):
    """``a_0`` (obs 2, 2 actions) and ``b_0`` (obs 3, 3 actions), never ending; each sees
    ``[t, t, ...]`` after step ``t``. The observation returned by step ``nan_step`` holds a
    NaN: in b_0's own ``b/vector`` row (``where="b"``), or in the ``b/vector`` row of a_0,
    which belongs to the other block and is read by nobody (``where="filler"``)."""

    default_backend = "inprocess"

    def __init__(self, nan_step: int = 2, where: str = "b") -> None:
        self.agent_names = ["a_0", "b_0"]
        self.set_agent_spaces({"a_0": BOX2, "b_0": BOX3}, {"a_0": D2, "b_0": D3})
        self.nan_step = nan_step
        self.where = where
        self.t = 0

    def _obs(self) -> Observation:
        a = np.zeros((2, 2), np.float32)
        b = np.zeros((2, 3), np.float32)
        a[0] = self.t
        b[1] = self.t
        if self.t == self.nan_step:
            if self.where == "b":
                b[1, 1] = np.nan
            else:
                b[0, 0] = np.nan
        return Observation(**{"a/vector": a, "b/vector": b})

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        self.t = 0
        return self._remember(StepBatch.first(self._obs()))

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_ready()
        self.t += 1
        return self._remember(
            StepBatch(
                obs=self._obs(),
                reward=np.ones(2, np.float32),
                terminated=np.zeros(2, bool),
                truncated=np.zeros(2, bool),
                active=np.ones(2, bool),
            )
        )


class MixedEnv(NanBlockEnv):
    """NanBlockEnv's blocks ``a`` and ``b`` (2 actions for a), never NaN."""

    def __init__(self) -> None:
        super().__init__(nan_step=-1)


class TimeLimitEnv(MixedEnv):
    """MixedEnv whose episodes are truncated (a time limit) after 2 steps."""

    def step_batch(self, actions: Action) -> StepBatch:
        batch = super().step_batch(actions)
        if self.t == 2:
            batch.truncated[:] = True
            batch.active[:] = False
            batch.final_obs = batch.obs
        return self._remember(batch)


def test_nan_env_has_two_blocks() -> None:
    env = NanBlockEnv()
    assert block_rows(env.layout) == {"a": [0], "b": [1]}
    assert env.observation_space is None


def test_a_nan_in_one_blocks_observation_names_the_agent() -> None:
    env = NanBlockEnv(nan_step=2, where="b")
    collector = CrowdCollector(block_group(env), env)
    expected = (
        "the env returned nan in the observation ('b/vector') of agent 'b_0' returned by "
        "step 2 of the rollout of iteration 1"
    )
    with pytest.raises(NonFiniteError, match=re.escape(expected)):
        collector.collect(4, label="iteration 1")


def test_a_nan_in_one_blocks_observation_is_dropped_from_its_policys_record() -> None:
    env = NanBlockEnv(nan_step=2, where="b")
    collector = CrowdCollector(block_group(env), env, on_nonfinite="drop")
    records, _, _ = collector.collect(4)
    assert sorted(records) == ["a", "b"]
    a, b = records["a"], records["b"]
    # Entry 1 (the step that returned the NaN) and entry 2 (acting on it) of b_0 are out.
    assert b.mask.tolist() == [[True, False, False, True]]
    assert a.mask.tolist() == [[True, True, True, True]]
    assert collector.nonfinite_dropped == 2
    # The bad value became 0; the finite ones stay.
    np.testing.assert_array_equal(b.obs.vector[0, 2], [2.0, 0.0, 2.0])
    np.testing.assert_array_equal(b.obs.vector[0, :, 0], [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(a.obs.vector[0, :, 0], [0.0, 1.0, 2.0, 3.0])
    assert np.isfinite(b.value).all() and np.isfinite(b.logprob).all()
    # The kept entry before the dropped ones bootstraps from the dropped entry's value.
    assert b.bootstrap_value[0, 0] == b.value[0, 1]
    np.testing.assert_array_equal(a.bootstrap_value, 0.0)


def test_a_nan_in_another_blocks_rows_is_not_an_error() -> None:
    # No policy reads b's field in a_0's row: a_0's entries are not dropped...
    env = NanBlockEnv(nan_step=2, where="filler")
    collector = CrowdCollector(block_group(env), env, on_nonfinite="drop")
    records, _, _ = collector.collect(4)
    assert records["a"].mask.all() and records["b"].mask.all()
    assert collector.nonfinite_dropped == 0
    # ... and the rollout is no error.
    env = NanBlockEnv(nan_step=2, where="filler")
    records, _, _ = CrowdCollector(block_group(env), env).collect(4)
    assert records["a"].mask.all() and records["b"].mask.all()


# ----------------------------------------------------------------------------- collector


def test_a_truncated_block_bootstraps_from_its_own_final_observation() -> None:
    env = TimeLimitEnv()
    group = block_group(env)
    records, _, _ = CrowdCollector(group, env).collect(4)
    a, b = records["a"], records["b"]
    assert a.truncated.tolist() == b.truncated.tolist() == [[False, True, False, True]]
    assert not a.terminated.any() and not b.terminated.any()
    with torch.inference_mode():
        final_a = group.policies["a"].value(Observation(vector=np.full((1, 2), 2.0, np.float32)))
        final_b = group.policies["b"].value(Observation(vector=np.full((1, 3), 2.0, np.float32)))
    np.testing.assert_allclose(a.bootstrap_value, [[0.0, float(final_a[0])] * 2], rtol=1e-6)
    np.testing.assert_allclose(b.bootstrap_value, [[0.0, float(final_b[0])] * 2], rtol=1e-6)
    # After the time limit the env was reset: the next entries act on a first observation.
    np.testing.assert_array_equal(b.obs.vector[0, :, 0], [0.0, 1.0, 0.0, 1.0])


def test_the_collector_gives_each_block_its_own_record() -> None:
    with TwoTeamsEnv.get_venv(2, backend="inprocess", seed=0, team_a=2, team_b=1) as venv:
        group = block_group(venv)
        assert group.policy_mapping == {"a": "a", "b": "b"}
        records, metrics, shape = CrowdCollector(group, venv, seed=0).collect(4)
    assert sorted(records) == ["a", "b"]
    assert shape == (4, 4)
    a, b = records["a"], records["b"]
    assert a.shape == (4, 4) and b.shape == (2, 4)
    assert a.agent_names == ["a_0&env=0", "a_1&env=0", "a_0&env=1", "a_1&env=1"]
    assert b.agent_names == ["b_0&env=0", "b_0&env=1"]
    assert a.obs.keys() == ["vector"] and b.obs.keys() == ["vector"]
    assert a.obs.vector.shape == (4, 4, 3) and b.obs.vector.shape == (2, 4, 5)
    assert a.action.keys() == ["discrete"] and b.action.keys() == ["discrete"]
    assert a.action.discrete.shape == (4, 4) and b.action.discrete.shape == (2, 4)
    assert set(a.action.discrete.ravel().tolist()) <= {0, 1}
    assert set(b.action.discrete.ravel().tolist()) <= {0, 1, 2, 3}
    for record in (a, b):
        assert record.logprob.shape == record.value.shape == record.reward.shape
        assert record.last_value.shape == (record.shape[0],)
        assert record.mask.all() and record.terminated.all()  # one-step episodes
        # Each obs is a one-hot: the policy saw its own rows, not the other block's zeros.
        np.testing.assert_array_equal(record.obs.vector.sum(axis=-1), 1.0)
    # Each policy's actions reached its own agents: the env paid exactly the best ones.
    for record, actions in ((a, 2), (b, 4)):
        best = np.argmax(record.obs.vector, axis=-1) % actions
        np.testing.assert_array_equal(record.reward, (record.action.discrete == best) * 1.0)
    assert metrics["episode_return"].shape == (6 * 4,)
    assert metrics["e_episode_length"].tolist() == [1.0] * 24


def test_policy_views_and_joined_actions_use_each_blocks_rows() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    group = block_group(env)
    plans = plan_policies(group, env)
    assert plans["a"].rows.tolist() == [0, 1] and plans["a"].selector == slice(0, 2)
    assert plans["b"].rows.tolist() == [2] and not plans["a"].all_rows
    assert (plans["a"].env_action_field, plans["b"].env_action_field) == (
        "a/discrete",
        "b/discrete",
    )
    batch = env.reset_batch(seed=0)
    views = policy_views(batch.obs, plans)
    assert views["a"].keys() == ["vector"] and views["a"].vector.shape == (2, 3)
    assert views["b"].keys() == ["vector"] and views["b"].vector.shape == (1, 5)
    outputs: dict[str, tuple[Action, object, object]] = {
        "a": (Action(discrete=np.array([1, 0])), (), {}),
        "b": (Action(discrete=np.array([3])), (), {}),
    }
    joined = join_policy_actions(outputs, plans, 3)
    assert sorted(joined.keys()) == ["a/discrete", "b/discrete"]
    assert joined["a/discrete"].tolist() == [1, 0, 0]
    assert joined["b/discrete"].tolist() == [0, 0, 3]


def test_one_policy_for_every_block_is_refused() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    agent = make_agent(MLPConfig(hidden_sizes=[8]), env.layout.blocks[0])
    expected = "policy 'crowd' spans agents with different spaces (blocks 'a', 'b')"
    for group in (MultiPolicyGroup({"crowd": agent}, {"": "crowd"}), HomogeneousGroup(agent)):
        with pytest.raises(ValueError, match=re.escape(expected)):
            plan_policies(group, env)
    # A policy over part of one block and part of another is refused as well.
    other = make_agent(MLPConfig(hidden_sizes=[8]), env.layout.blocks[0])
    group = MultiPolicyGroup({"x": agent, "y": other}, {"a_0": "x", "": "y"})
    with pytest.raises(ValueError, match=re.escape("policy 'y' spans agents")):
        plan_policies(group, env)


def test_a_policy_built_for_another_block_is_refused() -> None:
    env = TwoTeamsEnv(team_a=2, team_b=1)
    a, b = env.layout.blocks
    group = MultiPolicyGroup(
        {
            "a": make_agent(MLPConfig(hidden_sizes=[8]), b),
            "b": make_agent(MLPConfig(hidden_sizes=[8]), a),
        },
        {"a": "a", "b": "b"},
    )
    with pytest.raises(
        ValueError, match=r"policy 'a': its model was built for the observation space .*block 'a'"
    ):
        plan_policies(group, env)


# ----------------------------------------------------------------------------- absent agents


class LeavingTeamsEnv(MultiAgentEnv):
    """A dict-view env: ``a_0`` (obs 2, 2 actions) plays ``length`` steps, earning 1 a
    step; ``b_0`` (obs 3, 3 actions) earns 2 and leaves the episode after step
    ``b_leaves``. Each sees ``[t, t, ...]`` after step ``t``."""

    def __init__(self, length: int = 3, b_leaves: int = 1) -> None:
        self.agent_names = ["a_0", "b_0"]
        self.set_agent_spaces({"a_0": BOX2, "b_0": BOX3}, {"a_0": D2, "b_0": D3})
        self.length = length
        self.b_leaves = b_leaves
        self.t = 0
        self.received: list[dict[str, int]] = []

    def _obs(self, names: list[str]) -> dict[str, Observation]:
        sizes = {"a_0": 2, "b_0": 3}
        return {
            name: Observation(vector=np.full(sizes[name], self.t, np.float32)) for name in names
        }

    def reset(self, seed: int | None = None) -> dict[str, Observation]:
        self.t = 0
        return self._obs(["a_0", "b_0"])

    def step(
        self, actions: dict[str, Action]
    ) -> tuple[dict[str, Observation], dict[str, float], dict[str, bool], dict[str, Any]]:
        self.received.append({name: int(action.discrete) for name, action in actions.items()})
        self.t += 1
        reward = {"a_0": 1.0}
        done = {"a_0": self.t >= self.length}
        if "b_0" in actions:
            reward["b_0"] = 2.0
            done["b_0"] = self.t >= self.b_leaves
        return self._obs(list(actions)), reward, done, {}


def test_an_agent_that_left_has_an_inactive_row_in_its_blocks_field() -> None:
    env = LeavingTeamsEnv(length=3, b_leaves=1)
    assert block_rows(env.layout) == {"a": [0], "b": [1]}
    first = env.reset_batch()
    assert sorted(first.obs.keys()) == ["a/vector", "b/vector"]
    assert first.active.tolist() == [True, True]
    step = env.step_batch(
        Action(**{"a/discrete": np.array([1, 0]), "b/discrete": np.array([0, 2])})
    )
    assert env.received == [{"a_0": 1, "b_0": 2}]
    assert step.reward.tolist() == [1.0, 2.0]
    assert step.terminated.tolist() == [False, True]
    assert step.active.tolist() == [True, False]
    assert step.final_obs is not None
    np.testing.assert_array_equal(step.final_obs["b/vector"][1], [1.0, 1.0, 1.0])
    # b_0's row keeps its last observation; its action is not sent (any value will do).
    step = env.step_batch(
        Action(**{"a/discrete": np.array([0, 0]), "b/discrete": np.array([0, 99])})
    )
    assert env.received[-1] == {"a_0": 0}
    assert step.active.tolist() == [True, False]
    assert step.reward.tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(step.obs["b/vector"][1], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(step.obs["a/vector"][0], [2.0, 2.0])
    step = env.step_batch(
        Action(**{"a/discrete": np.array([1, 0]), "b/discrete": np.array([0, 0])})
    )
    assert step.terminated.tolist() == [True, False]
    assert step.active.tolist() == [False, False]
    with pytest.raises(RuntimeError, match="every agent of LeavingTeamsEnv is done"):
        env.step_batch(Action(**{"a/discrete": np.array([1, 0]), "b/discrete": np.array([0, 0])}))


def test_the_collector_masks_out_an_absent_agent_of_one_block() -> None:
    env = LeavingTeamsEnv(length=3, b_leaves=1)
    collector = CrowdCollector(block_group(env), env)
    records, metrics, _ = collector.collect(4)
    a, b = records["a"], records["b"]
    assert a.obs.vector.shape == (1, 4, 2) and b.obs.vector.shape == (1, 4, 3)
    # b_0 acts in step 0 and leaves, is absent in steps 1 and 2, and is back after a_0's
    # episode ended (the collector resets the env in step 2), to leave again.
    assert b.mask.tolist() == [[True, False, False, True]]
    assert a.mask.tolist() == [[True, True, True, True]]
    assert b.terminated.tolist() == [[True, False, False, True]]
    assert a.terminated.tolist() == [[False, False, True, False]]
    assert b.reward.tolist() == [[2.0, 0.0, 0.0, 2.0]]
    assert a.reward.tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert [sorted(received) for received in env.received] == [
        ["a_0", "b_0"],
        ["a_0"],
        ["a_0"],
        ["a_0", "b_0"],
    ]
    assert sorted(metrics["episode_return"].tolist()) == [2.0, 2.0, 3.0]
    assert sorted(metrics["episode_length"].tolist()) == [1.0, 1.0, 3.0]
    # b_0's absent entries hold its last observation (of step 1); its next one is a reset's.
    np.testing.assert_array_equal(b.obs.vector[0, :, 0], [0.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(a.obs.vector[0, :, 0], [0.0, 1.0, 2.0, 0.0])


def test_a_block_absent_at_reset_gets_zero_rows_of_its_own_spaces() -> None:
    class LateB(MultiAgentEnv):
        """b_0 joins only after the first step."""

        def __init__(self) -> None:
            self.agent_names = ["a_0", "b_0"]
            self.set_agent_spaces({"a_0": BOX3, "b_0": BOX2}, {"a_0": D2, "b_0": D3})

        def reset(self, seed: int | None = None) -> dict[str, Observation]:
            return {"a_0": Observation(vector=np.ones(3, np.float32))}

        def step(self, actions: dict[str, Action]) -> Any:
            obs = {
                name: Observation(vector=np.ones(n, np.float32))
                for name, n in (("a_0", 3), ("b_0", 2))
            }
            return obs, {"a_0": 1.0}, {"a_0": False}, {}

    env = LateB()
    batch = env.reset_batch()
    assert batch.active.tolist() == [True, False]
    np.testing.assert_array_equal(batch.obs["b/vector"], np.zeros((2, 2), np.float32))
    batch = env.step_batch(
        Action(**{"a/discrete": np.array([1, 0]), "b/discrete": np.array([0, 0])})
    )
    assert batch.active.tolist() == [True, True]
    np.testing.assert_array_equal(batch.obs["b/vector"][1], [1.0, 1.0])
