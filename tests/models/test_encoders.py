"""Per-field encoders (issue 17): an encoder per observation field, combined, and by default
one set per network."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from coltra.agents import Agent, DAgent
from coltra.buffers import Observation
from coltra.models import MLPModel
from coltra.models.encoders import FieldEncoders
from coltra.serialization import load_json, load_tensors, save_json, save_tensors

SPACE = gym.spaces.Dict(
    {
        "image": gym.spaces.Box(0, 255, (5, 5, 3), np.uint8),
        "rays": gym.spaces.Box(-1, 1, (6,), np.float32),
        "goal": gym.spaces.Box(-1, 1, (2,), np.float32),
    }
)
ACTIONS = gym.spaces.Discrete(3)


def batch(rows: int = 4, seed: int = 0) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        image=rng.integers(0, 255, (rows, 5, 5, 3)).astype(np.uint8),
        rays=rng.uniform(-1, 1, (rows, 6)).astype(np.float32),
        goal=rng.uniform(-1, 1, (rows, 2)).astype(np.float32),
    )


def test_each_field_goes_through_its_own_encoder_then_they_are_concatenated() -> None:
    config = {
        "encoders": {"image": "cnn", "rays": "mlp"},
        "cnn_channels": [4],
        "encoder_sizes": [16, 8],
        "hidden_sizes": [32],
    }
    model = MLPModel(config, SPACE, ACTIONS)
    encoder = model.policy_encoder
    assert isinstance(encoder, FieldEncoders)
    assert encoder.names == ["goal", "image", "rays"]  # Gymnasium sorts a Dict's keys
    assert encoder.kinds == ["flatten", "cnn", "mlp"]
    assert encoder.out_size == 4 * 5 * 5 + 8 + 2 == model.features
    obs = batch()
    distribution, _, extra = model(obs.tensor(), get_value=True)
    assert distribution.logits.shape == (4, 3) and extra["value"].shape == (4,)
    torch.testing.assert_close(model.value(obs.tensor()), extra["value"])
    # The goal field passes as it is: the encoding starts with it.
    features = model.raw_features(obs.tensor())
    torch.testing.assert_close(features[:, :2], torch.as_tensor(obs["goal"]))


def test_policy_and_value_have_encoders_of_their_own_unless_shared() -> None:
    own = MLPModel({"encoders": {"rays": "mlp"}}, SPACE, ACTIONS)
    assert own.value_encoder is not None and own.hidden is None  # two plain stacks
    policy_weights = own.policy_encoder.parts[2].layers[0].weight  # type: ignore[union-attr,index]
    value_weights = own.value_encoder.parts[2].layers[0].weight  # type: ignore[index,union-attr]
    assert not torch.equal(policy_weights, value_weights)
    obs = batch().tensor()
    own.value(obs).sum().backward()
    assert policy_weights.grad is None and value_weights.grad is not None

    shared = MLPModel({"encoders": {"rays": "mlp"}, "share_encoders": True}, SPACE, ACTIONS)
    assert shared.value_encoder is None and shared.hidden is not None  # the fused twin
    backbone = MLPModel({"image_encoder": "cnn", "shared_backbone": True}, SPACE, ACTIONS)
    assert backbone.value_encoder is None and backbone.trunk is not None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"encoders": {"lidar": "mlp"}}, r"encoders names field\(s\) \['lidar'\] the policy does"),
        ({"encoders": {"rays": "cnn"}}, r"field 'rays' has items of shape \[6\]"),
        (
            {"encoders": {"rays": "mlp"}, "shared_backbone": True, "share_encoders": False},
            "needs one set of field encoders",
        ),
        ({"encoders": {"rays": "mlp"}, "obs_norm": True}, "obs_norm normalises flat input"),
    ],
)
def test_encoders_that_cannot_work_are_refused(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MLPModel(config, SPACE, ACTIONS)


def test_a_checkpoint_from_before_field_encoders_loads_and_acts_as_before(
    tmp_path: Path,
) -> None:
    """Before issue 17 one CNN (``image_encoder.*``) served both networks; such a
    checkpoint still loads, with one shared encoder, and gives the same actions."""
    torch.manual_seed(0)
    model = MLPModel(
        {"image_encoder": "cnn", "cnn_channels": [4], "share_encoders": True}, SPACE, ACTIONS
    )
    agent = DAgent(model)
    agent.save(tmp_path)
    # Rewrite it as the old layout: the CNN's weights under image_encoder., no new keys.
    weights = load_tensors(tmp_path / "weights.pt")
    old = {
        key.replace("policy_encoder.parts.1.", "image_encoder."): value  # image: field 1
        for key, value in weights.items()
    }
    save_tensors(tmp_path / "weights.pt", old)
    meta = load_json(tmp_path / "agent.json")
    saved = meta["model_description"]["config"]
    for key in ("encoders", "encoder_sizes", "share_encoders", "recurrent", "recurrent_size"):
        saved.pop(key)
    save_json(tmp_path / "agent.json", meta)
    loaded = Agent.load(tmp_path)
    assert isinstance(loaded.model, MLPModel) and loaded.model.value_encoder is None
    obs = batch(rows=8, seed=1)
    with torch.no_grad():
        before = model(obs.tensor(), get_value=True)
        after = loaded.model(obs.tensor(), get_value=True)
    torch.testing.assert_close(after[0].logits, before[0].logits)
    torch.testing.assert_close(after[2]["value"], before[2]["value"])
    assert sum(isinstance(m, nn.Conv2d) for m in loaded.model.modules()) == 1
