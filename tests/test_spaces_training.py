"""Every space Coltra supports trains through ``coltra train`` (issue 17): an env of each
kind, two iterations, then the saved policy plays (``coltra enjoy``). The envs are tiny
Gymnasium envs written to a module that a config names (``module:EnvId``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from coltra.cli import main

pytestmark = pytest.mark.timeout(300)

SPACE_ENVS = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces

OBSERVATIONS = {
    "multidiscrete": spaces.MultiDiscrete([3, 2]),
    "multibinary": spaces.MultiBinary(4),
    "tuple": spaces.Tuple([spaces.Discrete(3), spaces.Box(-1, 1, (2,), np.float32)]),
    "nested_dict": spaces.Dict({
        "pos": spaces.Box(-1, 1, (2,), np.float32),
        "more": spaces.Dict({"flag": spaces.Discrete(2), "bits": spaces.MultiBinary(3)}),
    }),
    "image": spaces.Box(0, 255, (6, 6, 3), np.uint8),
    "image_and_vector": spaces.Dict({
        "image": spaces.Box(0, 255, (6, 6, 3), np.uint8),
        "vector": spaces.Box(-1, 1, (3,), np.float32),
    }),
}
ACTIONS = {
    "discrete": spaces.Discrete(3),
    "multidiscrete": spaces.MultiDiscrete([2, 3]),
    "multibinary": spaces.MultiBinary(4),
    "box": spaces.Box(-1, 1, (2,), np.float32),
    "dict": spaces.Dict({
        "move": spaces.Discrete(3, start=-1),
        "aim": spaces.Box(-1, 1, (2,), np.float32),
        "flags": spaces.MultiBinary(2),
    }),
    "tuple": spaces.Tuple([spaces.MultiDiscrete([2, 3]), spaces.Discrete(4)]),
}


class SpaceEnv(gym.Env):
    """Observations of one kind, actions of another; pays 1 for an action of the space."""

    metadata = {"render_modes": []}

    def __init__(self, observation="tuple", action="discrete"):
        self.observation_space = OBSERVATIONS[observation]
        self.action_space = ACTIONS[action]
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        reward = float(self.action_space.contains(action))
        return self.observation_space.sample(), reward, False, self._t >= 5, {}


gym.register("SpaceEnv-v0", entry_point=SpaceEnv)
'''

CASES = [
    ("multidiscrete", "discrete", {}),
    ("multibinary", "multibinary", {}),
    ("tuple", "multidiscrete", {}),
    ("nested_dict", "box", {"encoders": {"pos": "mlp"}}),
    ("image", "discrete", {"image_encoder": "cnn"}),
    ("image_and_vector", "multibinary", {"encoders": {"image": "cnn", "vector": "mlp"}}),
    ("tuple", "dict", {}),
    ("multibinary", "tuple", {}),
]


@pytest.mark.parametrize(("observation", "action", "model"), CASES)
def test_each_space_trains_two_iterations_and_plays(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    observation: str,
    action: str,
    model: dict[str, object],
) -> None:
    (tmp_path / "space_envs.py").write_text(SPACE_ENVS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {
        "trainer": {"steps": 8, "iterations": 2, "save_every": 2, "seed": 0},
        "ppo": {"num_minibatches": 2, "epochs": 1},
        "model": {"hidden_sizes": [8], **model},
        "env": {
            "kind": "gym",
            "env_name": "space_envs:SpaceEnv-v0",
            "env_kwargs": {"observation": observation, "action": action},
            "workers": 2,
            "backend": "inprocess",
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run = tmp_path / "run"
    allow = ["--allow-module", "space_envs"]
    argv = ["train", "-c", str(path), "--run-dir", str(run), "--no-progress", *allow]
    assert main(argv) == 0
    metrics = (run / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert len(metrics) == 3  # a header and two iterations
    capsys.readouterr()
    assert main(["enjoy", str(run), "--episodes", "2", *allow]) == 0
    out = capsys.readouterr().out
    # Every action the env got was one of its space: 1 per step, 5 steps per episode.
    assert "crowd: return 5.00 +- 0.00, length 5.0 over 2 agent-episodes" in out


def test_blackjack_tuple_observations_train_and_reload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Blackjack-v1: Tuple(Discrete(32), Discrete(11), Discrete(2)), refused before."""
    config = {
        "trainer": {"steps": 16, "iterations": 2, "save_every": 2, "seed": 0},
        "env": {"kind": "gym", "env_name": "Blackjack-v1", "workers": 2, "backend": "inprocess"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run = tmp_path / "run"
    assert main(["train", "-c", str(path), "--run-dir", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["enjoy", str(run), "--episodes", "4"]) == 0
    scores = [line for line in capsys.readouterr().out.splitlines() if "crowd: return" in line]
    assert len(scores) == 1
    value = float(scores[0].split("return ")[1].split(" ")[0])
    assert -1.0 <= value <= 1.0 and np.isfinite(value)  # Blackjack pays -1, 0 or 1 per hand


def test_multibinary_actions_learn_the_bits_probe(tmp_path: Path) -> None:
    """The bits probe pays the fraction of observed bits the MultiBinary action copies: a
    correct learner earns exactly 1 (random: 1/2)."""
    config = {
        "trainer": {"steps": 16, "iterations": 30, "save_every": 30, "seed": 0,
                    "eval_episodes": 16, "run_dir": str(tmp_path / "run"), "progress": False},
        "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 2},
        "model": {"hidden_sizes": [32]},
        "env": {"kind": "probe", "env_name": "bits", "workers": 2, "backend": "inprocess",
                "env_kwargs": {"num_agents": 4, "bits": 4}},
    }  # fmt: skip
    from coltra.configs import RunConfig
    from coltra.trainers import PPOCrowdTrainer

    with PPOCrowdTrainer.from_config(RunConfig.from_dict(config)) as trainer:
        summary = trainer.train()
    assert summary["eval/return_mean"] == 1.0


def test_an_unsupported_part_of_an_action_is_a_clear_error() -> None:
    import gymnasium as gym

    from coltra.envs.spaces import ActionCodec

    with pytest.raises(TypeError) as error:
        ActionCodec(gym.spaces.Dict({"say": gym.spaces.Text(4), "move": gym.spaces.Discrete(2)}))
    assert str(error.value).startswith("action space Text(")
    assert "expected Discrete, MultiDiscrete, MultiBinary, Box, or a Dict or Tuple" in str(
        error.value
    )
    with pytest.raises(TypeError, match=r"action space Tuple\(\) has no parts"):
        ActionCodec(gym.spaces.Tuple([]))
