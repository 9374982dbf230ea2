"""coltra.models.numpy_acting: the numpy acting pass gives the torch forward's numbers and
samples, sees every change to the parameters, and steps aside for everything it does not
cover."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from coltra.agents import DAgent
from coltra.buffers import Observation
from coltra.models import MLPModel
from coltra.models.distributions import distribution_mode
from coltra.models.numpy_acting import NUMPY_MAX_ROWS


def plain(features: int = 4, actions: int = 2, **config: Any) -> MLPModel:
    torch.manual_seed(0)
    return MLPModel(
        {"hidden_sizes": [16, 16], **config},
        observation_space=gym.spaces.Box(-5.0, 5.0, (features,)),
        action_space=gym.spaces.Discrete(actions),
    )


def rows(count: int, features: int = 4, seed: int = 1) -> Observation:
    x = np.random.default_rng(seed).normal(size=(count, features)).astype(np.float32)
    return Observation(vector=x)


def torch_pass(
    model: MLPModel, obs: Observation, deterministic: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the torch path computes: actions, their log-probabilities, values."""
    with torch.inference_mode():
        distribution, _, extra = model(obs, (), get_value=True)
        sample = distribution_mode(distribution) if deterministic else distribution.sample()
        logprob = distribution.log_prob(sample)
    return sample.numpy(), logprob.numpy(), extra["value"].numpy()


def numpy_pass(
    model: MLPModel, obs: Observation, deterministic: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    found = model.act_numpy(obs, deterministic, get_value=True)
    assert found is not None, "the plain model should act through numpy"
    actions, logprob, value = found
    assert value is not None
    return actions, logprob, value


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("features, actions", [(4, 2), (147, 5)])
def test_the_numbers_are_the_torch_forward_s(activation: str, features: int, actions: int) -> None:
    model = plain(features, actions, activation=activation)
    obs = rows(8, features)
    torch.manual_seed(3)
    _, _, torch_values = torch_pass(model, obs)
    for deterministic in (False, True):
        torch.manual_seed(3)
        picked, logprob, value = numpy_pass(model, obs, deterministic)
        assert picked.dtype == np.int64 and picked.shape == (8,)
        assert logprob.dtype == np.float32 and value.dtype == np.float32
        with torch.inference_mode():
            distribution, _, _ = model(obs, (), get_value=True)
            expected = distribution.log_prob(torch.as_tensor(picked)).numpy()
        np.testing.assert_allclose(logprob, expected, atol=2e-6)
        np.testing.assert_allclose(value, torch_values, rtol=1e-5, atol=2e-6)
    mode = torch_pass(model, obs, deterministic=True)[0]
    np.testing.assert_array_equal(numpy_pass(model, obs, deterministic=True)[0], mode)


@pytest.mark.parametrize("count, actions", [(8, 2), (200, 3), (256, 5)])
def test_a_seed_gives_the_torch_path_s_actions(count: int, actions: int) -> None:
    """Below and above the 1,024 race numbers where the draws change stream, over several
    calls in a row (the same stream position after each)."""
    model = plain(4, actions)
    obs = rows(count)
    torch.manual_seed(11)
    expected = [torch_pass(model, obs)[0] for _ in range(3)]
    torch.manual_seed(11)
    for want in expected:
        np.testing.assert_array_equal(numpy_pass(model, obs)[0], want)
    assert model.act_numpy(obs, False, get_value=False)[2] is None  # type: ignore[index]


def test_actions_follow_the_policy_s_probabilities() -> None:
    """A biased policy (bias +1 on action 2 of 3): frequencies over 256 rows x 200 calls."""
    model = plain(4, 3)
    with torch.no_grad():
        model.policy_head.weight.zero_()
        model.policy_head.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    obs = rows(NUMPY_MAX_ROWS)
    torch.manual_seed(5)
    counts = np.zeros(3)
    for _ in range(200):
        counts += np.bincount(numpy_pass(model, obs)[0], minlength=3)
    expected = np.exp([0.0, 0.0, 1.0]) / np.exp([0.0, 0.0, 1.0]).sum()
    draws = counts.sum()
    # 5 standard deviations of a binomial count
    assert np.all(np.abs(counts - draws * expected) < 5 * np.sqrt(draws * expected))


def test_the_agent_acts_through_numpy_with_the_same_results() -> None:
    model = plain(4, 2)
    agent = DAgent(model)
    obs = rows(8)
    torch.manual_seed(2)
    action, state, extra = agent.act(obs, get_value=True)
    torch.manual_seed(2)
    picked, logprob, value = torch_pass(model, obs)
    assert state == ()
    np.testing.assert_array_equal(action.discrete, picked)
    np.testing.assert_allclose(extra["logprob"], logprob, atol=2e-6)
    np.testing.assert_allclose(extra["value"], value, rtol=1e-5, atol=2e-6)
    one, _, one_extra = agent.act(obs[0], deterministic=True)  # a single item
    assert one.discrete.shape == () and one_extra["logprob"].shape == ()
    assert int(one.discrete) == int(torch_pass(model, obs[:1], deterministic=True)[0][0])


def test_parameter_changes_are_seen() -> None:
    model = plain(4, 2)
    obs = rows(8)
    numpy_pass(model, obs)  # builds the views
    with torch.no_grad():  # as an optimizer step: in place
        model.value_head.bias.add_(3.0)
        model.hidden.layers[0].weight.mul_(0.5)
    np.testing.assert_allclose(numpy_pass(model, obs)[2], torch_pass(model, obs)[2], atol=2e-6)
    other = plain(4, 2, hidden_sizes=[16, 16])
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.25)
    model.load_state_dict(other.state_dict(), assign=True)  # new parameter objects
    np.testing.assert_allclose(numpy_pass(model, obs)[2], torch_pass(model, obs)[2], atol=2e-6)
    model.double()  # float64 parameters: the torch path
    assert model.act_numpy(obs, False, True) is None
    model.float()
    assert model.act_numpy(obs, False, True) is not None
    model.hidden.activation = torch.relu  # another activation: read from the layers
    np.testing.assert_allclose(numpy_pass(model, obs)[2], torch_pass(model, obs)[2], atol=2e-6)
    model.policy_head = torch.nn.Linear(16, 2)  # a new layer
    np.testing.assert_allclose(
        numpy_pass(model, obs, deterministic=True)[1],
        torch_pass(model, obs, deterministic=True)[1],
        atol=2e-6,
    )


def test_float64_observations_are_cast_as_torch_casts_them() -> None:
    model = plain(4, 2)
    x = rows(8).vector.astype(np.float64)
    torch.manual_seed(4)
    got = numpy_pass(model, Observation(vector=x))
    torch.manual_seed(4)
    expected = torch_pass(model, Observation(vector=x))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[2], expected[2], atol=2e-6)


def test_a_model_that_acted_still_copies_and_pickles() -> None:
    model = plain()
    obs = rows(8)
    numpy_pass(model, obs)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert "_numpy_actor" not in other.__dict__
        with torch.no_grad():
            other.value_head.bias.add_(1.0)  # its own parameters, not the original's
        np.testing.assert_allclose(numpy_pass(other, obs)[2], torch_pass(other, obs)[2], atol=2e-6)
    np.testing.assert_allclose(numpy_pass(model, obs)[2], torch_pass(model, obs)[2], atol=2e-6)


def test_agent_actions_keep_the_space_s_start() -> None:
    model = MLPModel(
        {"hidden_sizes": [16]},
        observation_space=gym.spaces.Box(-1.0, 1.0, (4,)),
        action_space=gym.spaces.Discrete(3, start=-1),
    )
    agent = DAgent(model)
    obs = rows(64)
    torch.manual_seed(0)
    action, _, _ = agent.act(obs)
    torch.manual_seed(0)
    np.testing.assert_array_equal(action.discrete, torch_pass(model, obs)[0] - 1)
    assert set(action.discrete.tolist()) <= {-1, 0, 1}


def test_non_finite_logits_take_the_torch_path() -> None:
    model = plain(4, 2)
    with torch.no_grad():
        model.policy_head.bias[0] = float("nan")
    assert model.act_numpy(rows(8), False, True) is None


def hook(model: MLPModel) -> None:
    model.register_forward_hook(lambda *args: None)


def patch_forward(model: MLPModel) -> None:
    model.forward = lambda *args, **kwargs: None  # type: ignore[method-assign]


def patch_head(model: MLPModel) -> None:
    model._policy_head = lambda x: x  # type: ignore[method-assign]


def wrap_hidden(model: MLPModel) -> None:
    class Wrapped(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> Any:
            return self.inner(x)

    model.hidden = Wrapped(model.hidden)  # type: ignore[assignment]


class Doubled(torch.nn.Module):
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return 2 * weight


def parametrize_head(model: MLPModel) -> None:
    parametrize.register_parametrization(model.policy_head, "weight", Doubled())


def other_activation(model: MLPModel) -> None:
    model.hidden.activation = torch.nn.functional.elu


@pytest.mark.parametrize(
    "change",
    [hook, patch_forward, patch_head, wrap_hidden, parametrize_head, other_activation],
    ids=[
        "a forward hook",
        "an instance's own forward",
        "an instance's own head",
        "a wrapped hidden module",
        "a parametrized head",
        "an activation numpy lacks",
    ],
)
def test_a_hooked_or_patched_model_takes_the_torch_path(change: Callable[[MLPModel], None]) -> None:
    model = plain()
    assert model.act_numpy(rows(8), False, True) is not None
    change(model)
    assert model.act_numpy(rows(8), False, True) is None


def test_a_method_patched_on_the_class_takes_the_torch_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = plain()
    assert model.act_numpy(rows(8), False, True) is not None
    monkeypatch.setattr(MLPModel, "heads", lambda self, *args: MLPModel.heads(self, *args))
    assert model.act_numpy(rows(8), False, True) is None


@pytest.mark.parametrize(
    "obs",
    [
        rows(NUMPY_MAX_ROWS + 1),
        Observation(vector=torch.zeros(8, 4)),
        Observation(vector=np.zeros((8, 4), np.float32), extra=np.zeros((8, 1), np.float32)),
        Observation(vector=np.zeros((8, 5), np.float32)),  # wrong size: torch says why
        Observation(vector=np.zeros((8, 4), ">f4")),  # torch refuses the byte order
    ],
    ids=["too many rows", "a tensor", "two fields", "wrong size", "big-endian"],
)
def test_batches_it_does_not_cover_take_the_torch_path(obs: Observation) -> None:
    assert plain().act_numpy(obs, False, True) is None


def boxed(**config: Any) -> MLPModel:
    return MLPModel(
        {"hidden_sizes": [16], **config},
        observation_space=gym.spaces.Box(-1.0, 1.0, (4,)),
        action_space=gym.spaces.Box(-1.0, 1.0, (2,)),
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: plain(obs_norm=True),
        lambda: plain(value_norm=True),
        lambda: plain(activation="elu"),
        lambda: plain(shared_backbone=True),
        lambda: plain(recurrent="gru"),
        lambda: boxed(),
        lambda: MLPModel(
            {"hidden_sizes": [16]},
            observation_space=gym.spaces.Box(-1.0, 1.0, (4,)),
            action_space=gym.spaces.MultiDiscrete([2, 3]),
        ),
    ],
    ids=[
        "obs_norm",
        "value_norm",
        "elu",
        "shared_backbone",
        "recurrent",
        "continuous",
        "MultiDiscrete",
    ],
)
def test_models_it_does_not_cover_take_the_torch_path(build: Callable[[], MLPModel]) -> None:
    assert build().act_numpy(rows(8), False, True) is None


def test_a_subclass_takes_the_torch_path() -> None:
    class Mine(MLPModel):
        pass

    model = Mine(
        {"hidden_sizes": [16]},
        observation_space=gym.spaces.Box(-1.0, 1.0, (4,)),
        action_space=gym.spaces.Discrete(2),
    )
    assert model.act_numpy(rows(8), False, True) is None
