"""coltra.saved_policies: the places ``init_from`` may name, and what it says when wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from coltra.configs import MLPConfig
from coltra.envs.probe_envs import TwoTeamsEnv
from coltra.factory import make_agent
from coltra.groups import MultiPolicyGroup
from coltra.saved_policies import SavedPolicyError, find_saved_policy, split_policy_source


def test_a_policy_name_follows_the_last_colon_unless_a_path_does() -> None:
    assert split_policy_source("runs/x:prey") == (Path("runs/x"), "prey")
    assert split_policy_source("runs/x") == (Path("runs/x"), None)
    assert split_policy_source("C:/runs/x") == (Path("C:/runs/x"), None)
    assert split_policy_source("runs/x:") == (Path("runs/x:"), None)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, MultiPolicyGroup]:
    env = TwoTeamsEnv(1, 1)
    red, blue = (make_agent(MLPConfig(hidden_sizes=[4]), block) for block in env.layout.blocks)
    group = MultiPolicyGroup({"red": red, "blue": blue}, {"a": "red", "b": "blue"})
    group.save(tmp_path / "group")
    red.save(tmp_path / "agent")
    return tmp_path, group


def test_groups_and_agents_are_found_by_name(saved: tuple[Path, MultiPolicyGroup]) -> None:
    root, group = saved
    for text, name, expected in (
        (f"{root / 'group'}:blue", "anything", "blue"),
        (str(root / "group"), "red", "red"),  # the same name
        (str(root / "agent"), "whatever", "red"),  # an agent directory holds one
    ):
        agent, _ = find_saved_policy(text, name)
        assert agent.model is not None and group.policies[expected].model is not None
        saved_state = group.policies[expected].model.state_dict()
        assert all(torch.equal(v, saved_state[k]) for k, v in agent.model.state_dict().items())


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("{root}/nothing", "red", "does not exist"),
        ("{root}", "red", "holds no saved policy: expected a run directory with checkpoints"),
        ("{root}/group:green", "red", "has no policy 'green' (it has ['red', 'blue'])"),
        ("{root}/group", "green", "has several policies ['red', 'blue'] and none called 'green'"),
        ("{root}/agent:red", "red", "holds one agent (it has agent.json)"),
    ],
)
def test_what_holds_no_such_policy_says_why(
    text: str, name: str, message: str, saved: tuple[Path, MultiPolicyGroup]
) -> None:
    root, _ = saved
    with pytest.raises(SavedPolicyError, match=re.escape(message)):
        find_saved_policy(text.format(root=root), name)
