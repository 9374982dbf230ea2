"""Overlapped collection gives exactly the records of collection without the overlap: the
same forward passes in the same order (stochastic actions), and the records of plain
lock-step collection with deterministic actions. It steps aside for envs that cannot step
part of their copies, and for steps the collector must check before anyone acts on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from pettingzoo.sisl import pursuit_v5

import coltra.overlap as overlap_module
from coltra.agents import DAgent
from coltra.buffers import Action, MemoryRecord
from coltra.checks import NonFiniteError
from coltra.collectors import CrowdCollector
from coltra.envs import MultiAgentEnv, PettingZooEnv
from coltra.envs.base import StepBatch
from coltra.envs.probe_envs import ConstantRewardEnv, MaskedActionEnv
from coltra.groups import HomogeneousGroup
from coltra.models import MLPModel
from coltra.overlap import can_overlap

Records = list[tuple[dict[str, MemoryRecord], dict[str, np.ndarray]]]


def pursuit(
    workers: int = 2, copies: int = 2, backend: str = "subprocess", shared_memory: bool = False
) -> MultiAgentEnv:
    """Pursuit copies whose episodes (30 steps) end inside the rollouts."""
    return PettingZooEnv.get_venv(
        workers,
        copies,
        backend=backend,
        seed=3,
        env_fn=pursuit_v5.parallel_env,
        max_cycles=30,
        shared_memory=shared_memory,
    )


def collect(
    env: MultiAgentEnv,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
    deterministic: bool = False,
    steps: int = 40,
) -> Records:
    """Two rollouts of ``steps`` steps: ``mode`` "overlap", "parts" (by parts, no overlap)
    or "lockstep" (one forward pass over every row, the plain collector)."""
    torch.manual_seed(0)
    model = MLPModel(
        {"hidden_sizes": [16]},
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    group = HomogeneousGroup(DAgent(model))
    collector = CrowdCollector(group, env, seed=3, overlap=mode != "lockstep")  # on by default
    if mode == "parts":
        original = overlap_module.PartSteps.__init__

        def without_overlap(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **{**kwargs, "overlap": False})

        monkeypatch.setattr(overlap_module.PartSteps, "__init__", without_overlap)
    try:
        return [collector.collect(steps, deterministic)[:2] for _ in range(2)]
    finally:
        monkeypatch.undo()
        env.close()


def assert_same_records(first: Records, second: Records) -> None:
    for (records_a, metrics_a), (records_b, metrics_b) in zip(first, second, strict=True):
        assert records_a.keys() == records_b.keys()
        for policy, a in records_a.items():
            b = records_b[policy]
            for field in (
                "logprob",
                "value",
                "reward",
                "terminated",
                "truncated",
                "mask",
                "bootstrap_value",
                "last_value",
            ):
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field), field)
            np.testing.assert_array_equal(a.action.discrete, b.action.discrete)
            for name, value in a.obs.items():
                np.testing.assert_array_equal(value, b.obs[name], name)
        # Episodes end on the same rows; the env's e_* metrics come part by part.
        assert sorted(metrics_a["episode_return"]) == sorted(metrics_b["episode_return"])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shared_memory", [False, True], ids=["pipes", "shared-memory"])
def test_overlap_gives_the_records_of_collection_by_parts(
    monkeypatch: pytest.MonkeyPatch, shared_memory: bool
) -> None:
    overlapped = collect(pursuit(shared_memory=shared_memory), "overlap", monkeypatch)
    assert sum(len(m["episode_return"]) for _, m in overlapped) > 0  # episodes ended inside
    assert_same_records(overlapped, collect(pursuit(), "parts", monkeypatch))


@pytest.mark.timeout(120)
def test_deterministic_overlap_gives_the_records_of_lockstep_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overlapped = collect(pursuit(), "overlap", monkeypatch, deterministic=True)
    assert_same_records(overlapped, collect(pursuit(), "lockstep", monkeypatch, deterministic=True))


@pytest.mark.timeout(120)
def test_uneven_parts_and_masked_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three copies per worker (parts of 2 and 1), an action mask in the observations."""

    def masked() -> MultiAgentEnv:
        return MaskedActionEnv.get_venv(2, 3, backend="subprocess", seed=5, num_agents=2)

    env = masked()
    parts = env.part_rows()  # type: ignore[attr-defined]
    assert parts is not None
    assert [rows.tolist() for rows in parts] == [[0, 1, 2, 3, 6, 7, 8, 9], [4, 5, 10, 11]]
    overlapped = collect(env, "overlap", monkeypatch, steps=6)
    assert_same_records(overlapped, collect(masked(), "parts", monkeypatch, steps=6))


def test_envs_that_cannot_step_part_of_their_copies_collect_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one_copy_each = pursuit(workers=2, copies=1)
    in_process = pursuit(backend="inprocess")
    assert not can_overlap(one_copy_each) and not can_overlap(in_process)
    assert_same_records(
        collect(one_copy_each, "overlap", monkeypatch, deterministic=True, steps=8),
        collect(pursuit(2, 1), "lockstep", monkeypatch, deterministic=True, steps=8),
    )
    assert_same_records(
        collect(in_process, "overlap", monkeypatch, deterministic=True, steps=8),
        collect(pursuit(backend="inprocess"), "lockstep", monkeypatch, deterministic=True, steps=8),
    )


class NaNAtStep(ConstantRewardEnv):
    """Copy 0 (seeded 100) returns a NaN observation at its third step; episodes of 10."""

    def __init__(self) -> None:
        super().__init__(episode_length=10)
        self.bad = False

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        if seed is not None:
            self.bad = seed == 100
        return super().reset_batch(seed)

    def step_batch(self, actions: Action) -> StepBatch:
        batch = super().step_batch(actions)
        if self.bad and self._t == 3:
            batch.obs.vector[0, 0] = np.nan
        return batch


@pytest.mark.timeout(60)
def test_a_bad_observation_is_reported_before_anyone_acts_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = NaNAtStep.get_venv(2, 2, backend="subprocess", seed=100)
    torch.manual_seed(0)
    model = MLPModel(
        {"hidden_sizes": [8]},
        observation_space=env.observation_space,
        action_space=env.action_space,
    )
    collector = CrowdCollector(HomogeneousGroup(DAgent(model)), env, seed=100, overlap=True)
    acted_on: list[bool] = []
    original = overlap_module.PartSteps._send

    def spy(self: Any, part: int, obs: Any) -> None:
        acted_on.append(not all(np.isfinite(value).all() for _, value in obs.items()))
        original(self, part, obs)

    monkeypatch.setattr(overlap_module.PartSteps, "_send", spy)
    try:
        with pytest.raises(NonFiniteError, match=r"agent 'agent_0&env=0'.*step 3"):
            collector.collect(8, label="iteration 1")
    finally:
        env.close()
    assert acted_on and not any(acted_on)  # the policy never saw the NaN


@pytest.mark.timeout(120)
def test_env_overlap_in_a_config_trains(tmp_path: Path) -> None:
    from coltra.cli import main

    config: dict[str, Any] = {
        "trainer": {
            "name": "overlap",
            "steps": 16,
            "iterations": 2,
            "run_dir": str(tmp_path / "r"),
        },
        "env": {
            "kind": "pettingzoo",
            "env_name": "pettingzoo.sisl.pursuit_v5",
            "env_kwargs": {"max_cycles": 20},
            "workers": 2,
            "envs_per_worker": 2,
            "overlap": True,
        },
        "model": {"hidden_sizes": [16]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", "-c", str(path), "--no-progress"]) == 0
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["env"]["overlap"] is True
