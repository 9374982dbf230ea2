"""coltra.self_play.Snapshots: a frozen opponent copied from its learner on schedule."""

from __future__ import annotations

import pytest
import torch

from coltra.configs import MLPConfig
from coltra.envs.probe_envs import TwoTeamsEnv
from coltra.factory import make_agent
from coltra.groups import MultiPolicyGroup
from coltra.self_play import Snapshots


def group(frozen: tuple[str, ...] = ("opponent",)) -> MultiPolicyGroup:
    a, b = TwoTeamsEnv(2, 1).layout.blocks
    policies = {
        "learner": make_agent(MLPConfig(hidden_sizes=[4]), a),
        "opponent": make_agent(MLPConfig(hidden_sizes=[4]), a),
        "blue": make_agent(MLPConfig(hidden_sizes=[4]), b),
    }
    return MultiPolicyGroup(
        policies, {"a_0": "learner", "a_1": "opponent", "b": "blue"}, frozen=frozen
    )


def same(one: MultiPolicyGroup, a: str, b: str) -> bool:
    left, right = one.policies[a].model, one.policies[b].model
    assert left is not None and right is not None
    return all(
        torch.equal(x, y) for x, y in zip(left.state_dict().values(), right.state_dict().values())
    )


def test_snapshots_are_taken_every_n_iterations() -> None:
    teams = group()
    snapshots = Snapshots(teams, {"opponent": "learner"}, every=3)
    assert not same(teams, "learner", "opponent")
    assert snapshots.after_iteration(2) == {"opponent/charts/snapshot_iteration": 0.0}
    assert not same(teams, "learner", "opponent")
    assert snapshots.after_iteration(3) == {"opponent/charts/snapshot_iteration": 3.0}
    assert same(teams, "learner", "opponent")


@pytest.mark.parametrize(
    ("pairs", "frozen", "every", "message"),
    [
        ({"opponent": "learner"}, ("opponent",), 0, "every >= 1"),
        ({"opponent": "nobody"}, ("opponent",), 1, "no policy 'nobody'"),
        ({"opponent": "learner"}, (), 1, "snapshot target 'opponent' must be frozen"),
        ({"opponent": "learner"}, ("opponent", "learner"), 1, "source 'learner' is frozen"),
        ({"blue": "learner"}, ("blue",), 1, "cannot be copied into 'blue'"),
    ],
)
def test_snapshots_that_cannot_work_are_refused(
    pairs: dict[str, str], frozen: tuple[str, ...], every: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Snapshots(group(frozen), pairs, every)
