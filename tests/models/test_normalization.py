"""Running statistics: exact mean and variance, bit-exact save and restore, and the
obs_norm / value_norm options of MLPModel."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from coltra.agents import Agent, DAgent
from coltra.buffers import Observation
from coltra.models import MLPModel
from coltra.models.normalization import RunningMeanStd

pytestmark = pytest.mark.timeout(60)

BOX = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)


def test_statistics_are_those_of_everything_seen() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.normal(5.0, 3.0, size=(n, 3)) for n in (1, 7, 100, 2)]
    stats = RunningMeanStd((3,))
    for part in parts:
        stats.update(torch.from_numpy(part))
    seen = np.concatenate(parts)
    np.testing.assert_allclose(stats.mean.numpy(), seen.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.var.numpy(), seen.var(0), rtol=1e-12)
    assert stats.count.item() == len(seen)
    x = torch.from_numpy(seen[:4]).float()
    expected = (seen[:4] - seen.mean(0)) / np.sqrt(seen.var(0) + 1e-8)
    np.testing.assert_allclose(stats.normalize(x).numpy(), expected, rtol=1e-5)
    torch.testing.assert_close(stats.denormalize(stats.normalize(x)), x)


def test_before_any_update_nothing_changes_then_clip_and_floor_apply() -> None:
    x = torch.tensor([[-50.0], [0.5], [50.0]])
    fresh = RunningMeanStd((1,), clip=10.0)
    assert torch.equal(fresh.normalize(x), x) and torch.equal(fresh.denormalize(x), x)
    fresh.update(torch.tensor([[-1.0], [1.0]]))  # mean 0, variance 1
    assert fresh.normalize(x).tolist() == [[-10.0], [pytest.approx(0.5)], [10.0]]
    floored = RunningMeanStd((), min_var=1e-2)
    floored.update(torch.full((5,), 3.0))  # constant: variance 0, floored at 0.01
    assert floored.std().item() == pytest.approx(0.1)
    assert floored.normalize(torch.tensor([3.1])).item() == pytest.approx(1.0, rel=1e-5)


def test_statistics_are_restored_bit_for_bit() -> None:
    stats = RunningMeanStd((3,))
    stats.update(torch.randn(10, 3, dtype=torch.float64) * 1e3 + 1 / 3)
    again = RunningMeanStd((3,))
    again.load_state_dict(stats.state_dict())
    for key, value in stats.state_dict().items():
        assert torch.equal(again.state_dict()[key], value)
    assert again.state_dict()["mean"].dtype == torch.float64


def test_obs_norm_uses_the_statistics_the_update_gave_it() -> None:
    torch.manual_seed(0)
    model = MLPModel({"obs_norm": True}, BOX, gym.spaces.Discrete(2))
    rng = np.random.default_rng(1)
    obs = Observation(vector=rng.normal([10.0, -4.0, 0.0], [5.0, 0.1, 1.0], (500, 3)))
    raw = model.raw_features(obs)
    assert torch.equal(model.encode(obs), raw)  # no update yet: unchanged, not even clipped
    model.observe(obs)
    features = model.encode(obs)
    torch.testing.assert_close(features.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(features.std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"obs_norm normalises flat input features.*cnn"):
        image = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)
        MLPModel({"obs_norm": True, "image_encoder": "cnn"}, image, gym.spaces.Discrete(2))


def test_value_norm_reports_values_in_return_units() -> None:
    torch.manual_seed(0)
    model = MLPModel({"value_norm": True}, BOX, gym.spaces.Discrete(2))
    obs = Observation(vector=np.ones((4, 3), np.float32))
    head = model.value(obs).detach()  # statistics at their start: mean 0, std 1
    normalizer = model.value_normalizer()
    assert normalizer is not None
    normalizer.update(torch.tensor([10.0, 20.0, 30.0]))
    std = np.sqrt(200.0 / 3 + 1e-8)
    torch.testing.assert_close(model.value(obs).detach(), head * std + 20.0, rtol=1e-5, atol=1e-4)
    assert MLPModel({}, BOX, gym.spaces.Discrete(2)).value_normalizer() is None


def test_a_saved_agent_acts_and_values_exactly_as_before(tmp_path: Path) -> None:
    state_obs = gym.spaces.Dict({"vector": BOX, "state": gym.spaces.Box(-1, 1, (5,))})
    torch.manual_seed(0)
    config = {"obs_norm": True, "value_norm": True, "critic": "state"}
    agent = DAgent(MLPModel(config, state_obs, gym.spaces.Discrete(3)))
    rng = np.random.default_rng(2)
    obs = Observation(
        vector=rng.normal(3.0, 2.0, (64, 3)).astype(np.float32),
        state=rng.normal(-1.0, 4.0, (64, 5)).astype(np.float32),
    )
    assert agent.model is not None
    agent.model.observe(obs)
    normalizer = agent.model.value_normalizer()
    assert normalizer is not None
    normalizer.update(torch.from_numpy(rng.normal(7.0, 3.0, 64)))
    agent.save(tmp_path / "agent")
    loaded = Agent.load(tmp_path / "agent")
    assert loaded.model is not None
    for key, value in agent.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded.value(obs), agent.value(obs))
        before, _, _ = agent.model(obs)
        after, _, _ = loaded.model(obs)
    assert torch.equal(before.logits, after.logits)
