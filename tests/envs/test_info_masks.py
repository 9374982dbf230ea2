"""Action masks in ``info`` (PettingZoo's other convention): ``env.info_action_masks`` moves
them into an ``action_mask`` observation field, so policies obey them as any other mask."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from coltra.configs import RunConfig
from coltra.envs.info_mask_probe import InfoMaskedEnv
from coltra.envs.info_masks import InfoActionMasks, mask_space
from coltra.trainers import PPOCrowdTrainer

pytestmark = pytest.mark.timeout(300)


def test_the_info_mask_becomes_an_observation_part_at_reset_and_every_step() -> None:
    env = InfoActionMasks(InfoMaskedEnv(num_agents=2, max_cycles=3))
    space = env.observation_space("agent_0")
    assert sorted(space.spaces) == ["action_mask", "vector"]
    assert space["action_mask"] == gym.spaces.Box(0, 1, (4,), np.int8)
    observations, infos = env.reset(seed=0)
    for _ in range(3):
        for agent, parts in observations.items():
            np.testing.assert_array_equal(parts["action_mask"], infos[agent]["action_mask"])
            assert parts["action_mask"].dtype == np.int8 and space.contains(parts)
        legal = {
            agent: int(np.flatnonzero(parts["action_mask"])[0])
            for agent, parts in observations.items()
        }
        observations, _, _, _, infos = env.step(legal)


class NoMaskAtStep(InfoMaskedEnv):
    def step(self, actions: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
        observations, rewards, terminations, truncations, _ = super().step(actions)
        return observations, rewards, terminations, truncations, {"agent_0": {"other": 1}}


def test_refusals_name_the_agent_the_step_and_what_was_expected() -> None:
    env = InfoActionMasks(NoMaskAtStep(num_agents=1))
    env.reset(seed=0)
    with pytest.raises(
        ValueError,
        match=r"'agent_0' has no 'action_mask' in its info at step 1 \(info keys \['other'\]\)",
    ):
        env.step({"agent_0": int(np.flatnonzero(env.env._legal["agent_0"])[0])})  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match=r"Discrete and \(1-D\) MultiDiscrete actions, got Box"):
        mask_space(gym.spaces.Box(-1, 1, (2,)))
    assert mask_space(gym.spaces.MultiDiscrete([3, 2])).shape == (5,)


def run(tmp_path: Path, info_action_masks: bool) -> Path:
    config = RunConfig.from_dict(
        {
            "trainer": {"run_dir": str(tmp_path), "steps": 20, "iterations": 25, "seed": 0,
                        "progress": False, "save_every": 25},
            "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 2},
            "model": {"hidden_sizes": [16]},
            "env": {"kind": "pettingzoo", "env_name": "coltra.envs.info_mask_probe",
                    "env_kwargs": {"num_agents": 2, "max_cycles": 5}, "workers": 2,
                    "backend": "inprocess", "info_action_masks": info_action_masks},
        }
    )  # fmt: skip
    with PPOCrowdTrainer.from_config(config) as trainer:
        trainer.train()
    return tmp_path


def test_with_info_masks_it_learns_the_best_legal_action_without_them_it_crashes(
    tmp_path: Path,
) -> None:
    with (run(tmp_path / "masked", True) / "metrics.csv").open(newline="") as file:
        last = list(csv.DictReader(file))[-1]
    per_step = float(last["charts/episode_return_mean"]) / 5
    assert per_step > 0.55, per_step  # best legal play: 0.607; uniform legal play: 0.5
    with pytest.raises(Exception, match=r"took action \d, which its action mask"):
        run(tmp_path / "unmasked", False)
