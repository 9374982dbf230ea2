"""MLPModel on real observations: CartPole-v1, Pendulum-v1 and pursuit_v5 (7x7x3 images)."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from pettingzoo.sisl import pursuit_v5
from torch import nn
from torch.distributions import Categorical

from coltra.buffers import Observation
from coltra.configs import ConfigError, MLPConfig
from coltra.envs import MultiAgentEnv, MultiGymEnv, PettingZooEnv
from coltra.models import BaseModel, MLPModel, fused
from coltra.models.distributions import DiagNormal, MultiCategorical, ScaledBeta
from coltra.models.fused import POLICY, VALUE
from coltra.models.mlp import mlp_layers

pytestmark = pytest.mark.timeout(60)


def _observations(env: MultiAgentEnv, steps: int = 3) -> Observation:
    """A batch of real observations: the first few steps of ``env`` under random actions."""
    from coltra.buffers import Action

    rng = np.random.default_rng(0)
    env.action_space.seed(0)
    seen = []
    obs = env.reset(seed=0)
    for _ in range(steps):
        seen.extend(obs.values())
        actions = {}
        for name in obs:
            sample = env.action_space.sample()
            field = "discrete" if isinstance(env.action_space, gym.spaces.Discrete) else None
            actions[name] = Action(discrete=sample) if field else Action(continuous=sample)
        obs, _, _, _ = env.step(actions)
    rng.shuffle(seen)
    env.close()
    return Observation.stack(seen)


@pytest.fixture(scope="module")
def cartpole() -> tuple[gym.Space, gym.Space, Observation]:
    env = MultiGymEnv(env_name="CartPole-v1")
    return env.observation_space, env.action_space, _observations(env)


@pytest.fixture(scope="module")
def pendulum() -> tuple[gym.Space, gym.Space, Observation]:
    env = MultiGymEnv(env_name="Pendulum-v1")
    return env.observation_space, env.action_space, _observations(env)


@pytest.fixture(scope="module")
def pursuit() -> tuple[gym.Space, gym.Space, Observation]:
    env = PettingZooEnv(pursuit_v5.parallel_env, max_cycles=5)
    return env.observation_space, env.action_space, _observations(env, steps=1)


# ---------------------------------------------------------------------------- construction


def test_seed_call_with_sizes_in_the_config(cartpole: tuple) -> None:
    _, action_space, obs = cartpole
    model = MLPModel(
        {"input_size": 4, "num_actions": 2, "discrete": True}, action_space=action_space
    )
    distribution, state, extra = model(obs.tensor())
    assert isinstance(model, BaseModel) and isinstance(model, nn.Module)
    assert isinstance(distribution, Categorical)
    assert distribution.logits.shape == (obs.batch_size, 2)
    assert state == () and extra == {}
    assert model.get_initial_state(obs.batch_size) == ()
    assert model.device == torch.device("cpu")
    assert model.discrete


def test_device_follows_the_parameters_after_to(cartpole: tuple) -> None:
    """``device`` is cached; moving the model (here to the meta device, which every build
    has) must update it, or acting would build its tensors on the old device."""
    obs_space, action_space, _ = cartpole
    model = MLPModel({}, observation_space=obs_space, action_space=action_space)
    assert model.device == torch.device("cpu")
    model.to("meta")
    assert model.device == torch.device("meta")
    assert model.policy_head is not None and model.policy_head.weight.is_meta
    model.to_empty(device="cpu")
    assert model.device == torch.device("cpu")


def test_sizes_come_from_the_spaces(cartpole: tuple, pendulum: tuple, pursuit: tuple) -> None:
    for (obs_space, action_space, _), features, actions, discrete in (
        (cartpole, 4, 2, True),
        (pendulum, 3, 1, False),
        (pursuit, 7 * 7 * 3, 5, True),
    ):
        model = MLPModel({}, observation_space=obs_space, action_space=action_space)
        assert (model.config.input_size, model.config.num_actions) == (features, actions)
        assert model.discrete is discrete
        assert model.observation_space == obs_space and model.action_space == action_space


def test_config_may_be_a_typed_config_or_none(cartpole: tuple) -> None:
    obs_space, action_space, _ = cartpole
    typed = MLPModel(MLPConfig(hidden_sizes=[8]), obs_space, action_space)
    assert typed.hidden is not None and typed.hidden.sizes == [8]
    default = MLPModel(None, observation_space=obs_space, action_space=action_space)
    assert default.hidden is not None
    assert [*default.hidden.sizes, default.policy_head.out_features] == [64, 64, 2]


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"input_size": 5}, ["input_size=5", "4 features"]),
        ({"num_actions": 3}, ["num_actions=3", "Discrete(2)", "2 outputs"]),
        ({"discrete": False}, ["discrete=False", "Discrete(2)", "discrete=True"]),
    ],
)
def test_config_contradicting_a_space_names_both(
    cartpole: tuple, config: dict, named: list[str]
) -> None:
    obs_space, action_space, _ = cartpole
    with pytest.raises(ValueError) as error:
        MLPModel(config, observation_space=obs_space, action_space=action_space)
    for text in named:
        assert text in str(error.value)


def test_continuous_config_against_a_discrete_space_is_refused(pendulum: tuple) -> None:
    with pytest.raises(ValueError, match=r"discrete=True contradicts .*Box"):
        MLPModel({"input_size": 3, "discrete": True}, action_space=pendulum[1])


def test_missing_sizes_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="input_size"):
        MLPModel({}, action_space=gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="num_actions and discrete"):
        MLPModel({"input_size": 4})


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"hidden_sizes": [64, "wide"]}, "hidden_sizes[1]"),
        ({"hidden_sizes": [64, -1]}, "hidden_sizes[1]"),
        ({"hiden_sizes": [64]}, "hiden_sizes"),
        ({"activation": "sigmoid"}, "activation"),
        ({"discrete": "yes"}, "discrete"),
        ({"sigma0": 0.0}, "sigma0"),
        ({"continuous_mode": "gaussian"}, "continuous_mode"),
    ],
)
def test_bad_config_key_or_type_names_the_key(config: dict, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        MLPModel({"input_size": 4, **config}, action_space=gym.spaces.Discrete(2))
    assert error.value.key == key
    assert str(error.value).startswith(f"{key}: ")


def test_unsupported_spaces_and_options_are_refused(pursuit: tuple) -> None:
    with pytest.raises(TypeError, match="1-D MultiBinary"):
        MLPModel({"input_size": 4}, action_space=gym.spaces.MultiBinary((2, 3)))
    with pytest.raises(TypeError, match="Discrete, MultiDiscrete, MultiBinary and Box actions"):
        MLPModel({"input_size": 4}, action_space=gym.spaces.Text(3))
    with pytest.raises(ValueError, match="Box parts of a Dict or Tuple action"):
        MLPModel(
            {"input_size": 4, "continuous_mode": "beta"},
            action_space=gym.spaces.Tuple([gym.spaces.Box(-1, 1, (2,))]),
        )
    with pytest.raises(TypeError, match="1-D nvec"):
        MLPModel({"input_size": 4}, action_space=gym.spaces.MultiDiscrete([[2, 3], [4, 5]]))
    with pytest.raises(ValueError, match="finite bounds"):
        MLPModel(
            {"input_size": 4, "continuous_mode": "beta"},
            action_space=gym.spaces.Box(-np.inf, np.inf, (2,)),
        )
    with pytest.raises(ValueError, match="image observation space"):
        MLPModel({"image_encoder": "cnn"}, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    with pytest.raises(TypeError, match="dict or MLPConfig"):
        MLPModel([64, 64], action_space=pursuit[1])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- initialisation


def test_orthogonal_init_with_a_small_policy_head(cartpole: tuple) -> None:
    obs_space, action_space, _ = cartpole
    model = MLPModel({}, observation_space=obs_space, action_space=action_space)
    # Linear(4, 64) of each network: orthogonal columns scaled by sqrt(2) (CleanRL's
    # layer_init), drawn separately for the policy and the value network.
    assert model.hidden is not None
    first = {network: model.hidden.layer(0, network)[0] for network in (POLICY, VALUE)}
    for weight in first.values():  # [out, in], as in nn.Linear
        assert weight.shape == (64, 4)
        torch.testing.assert_close(weight.T @ weight, 2.0 * torch.eye(4), atol=1e-5, rtol=0)
    assert not torch.equal(first[POLICY], first[VALUE])
    # Policy head Linear(64, 2), gain 0.01: orthonormal rows scaled by 0.01.
    head = model.policy_head
    torch.testing.assert_close(head.weight @ head.weight.T, 1e-4 * torch.eye(2), atol=1e-8, rtol=0)
    assert head.weight.abs().max() <= 0.01 + 1e-7
    assert model.value_head.weight.norm().item() == pytest.approx(1.0, rel=1e-5)
    for layer in [*model.hidden.layers, model.policy_head, model.value_head]:
        assert torch.count_nonzero(layer.bias) == 0


def test_near_uniform_policy_at_start(pursuit: tuple) -> None:
    obs_space, action_space, obs = pursuit
    model = MLPModel({}, observation_space=obs_space, action_space=action_space)
    probs = model(obs.tensor())[0].probs
    torch.testing.assert_close(probs, torch.full_like(probs, 0.2), atol=0.02, rtol=0)


@pytest.mark.parametrize(
    ("activation", "module"),
    [
        ("tanh", nn.Tanh),
        ("relu", nn.ReLU),
        ("leaky_relu", nn.LeakyReLU),
        ("elu", nn.ELU),
        ("gelu", nn.GELU),
    ],
)
def test_activation_choices(cartpole: tuple, activation: str, module: type) -> None:
    obs_space, action_space, obs = cartpole
    model = MLPModel(
        {"activation": activation, "hidden_sizes": [32, 16, 8]}, obs_space, action_space
    )
    assert model.hidden is not None and model.hidden.sizes == [32, 16, 8]
    # Each network is Linear -> activation per hidden layer -> head, as nn.Sequential would be.
    features = model.encode(obs)
    for network, head in ((POLICY, model.policy_head), (VALUE, model.value_head)):
        layers: list[nn.Module] = []
        for k in range(len(model.hidden.sizes)):
            weight, bias = model.hidden.layer(k, network)
            linear = nn.Linear(weight.shape[1], weight.shape[0])
            linear.weight.data, linear.bias.data = weight.detach(), bias.detach()
            layers += [linear, module()]
        expected = nn.Sequential(*layers, head)(features)
        torch.testing.assert_close(model.heads(features)[network].reshape(expected.shape), expected)
    assert model(obs.tensor(), get_value=True)[2]["value"].shape == (obs.batch_size,)


@pytest.mark.parametrize("initializer", ["kaiming_uniform", "xavier_uniform", "default"])
def test_other_initializers_build_working_models(cartpole: tuple, initializer: str) -> None:
    obs_space, action_space, obs = cartpole
    model = MLPModel({"initializer": initializer}, obs_space, action_space)
    assert torch.isfinite(model(obs.tensor())[0].logits).all()


def test_policy_and_value_networks_are_separate(cartpole: tuple) -> None:
    obs_space, action_space, obs = cartpole
    model = MLPModel({}, obs_space, action_space)
    model.value(obs).sum().backward()
    # The value touches no policy weight: the policy's halves of the stacked hidden layers
    # get zero gradients, its head none at all.
    assert model.policy_head.weight.grad is None
    assert model.hidden is not None
    for layer in model.hidden.layers:
        assert torch.count_nonzero(layer.weight.grad[POLICY]) == 0
        assert torch.count_nonzero(layer.bias.grad[POLICY]) == 0
        assert torch.count_nonzero(layer.weight.grad[VALUE]) > 0
    assert model.value_head.weight.grad is not None


# ---------------------------------------------------------------------------- discrete outputs


def test_categorical_logprob_and_entropy_are_exact(pursuit: tuple) -> None:
    obs_space, action_space, obs = pursuit
    model = MLPModel({}, obs_space, action_space)
    with torch.no_grad():  # a zero policy head gives exactly uniform probabilities
        model.policy_head.weight.zero_()
        model.policy_head.bias.zero_()
    distribution = model(obs.tensor())[0]
    actions = torch.arange(obs.batch_size) % 5
    torch.testing.assert_close(distribution.log_prob(actions), torch.full((8,), -math.log(5)))
    torch.testing.assert_close(distribution.entropy(), torch.full((8,), math.log(5)))

    with torch.no_grad():  # known logits: bias (0, 1, 2, 3, 4)
        model.policy_head.bias.copy_(torch.arange(5.0))
    distribution = model(obs.tensor())[0]
    expected = torch.log_softmax(torch.arange(5.0), 0)
    torch.testing.assert_close(distribution.log_prob(actions), expected[actions])


def test_multidiscrete_logprob_is_the_sum_of_the_parts(cartpole: tuple) -> None:
    obs_space, _, obs = cartpole
    space = gym.spaces.MultiDiscrete([3, 2])
    model = MLPModel({}, observation_space=obs_space, action_space=space)
    assert model.config.num_actions == 5
    distribution, _, _ = model(obs.tensor())
    assert isinstance(distribution, MultiCategorical)
    logits, _ = model.heads(model.encode(obs))
    first, second = torch.log_softmax(logits[:, :3], -1), torch.log_softmax(logits[:, 3:], -1)
    actions = torch.stack([torch.arange(obs.batch_size) % 3, torch.arange(obs.batch_size) % 2], 1)
    rows = torch.arange(obs.batch_size)
    expected = first[rows, actions[:, 0]] + second[rows, actions[:, 1]]
    torch.testing.assert_close(distribution.log_prob(actions), expected)
    entropy = -(first.exp() * first).sum(-1) - (second.exp() * second).sum(-1)
    torch.testing.assert_close(distribution.entropy(), entropy)
    mode = distribution.mode
    assert torch.equal(mode, torch.stack([first.argmax(-1), second.argmax(-1)], 1))
    assert distribution.sample().shape == (obs.batch_size, 2)


# ---------------------------------------------------------------------------- continuous outputs


@pytest.mark.parametrize("sigma0", [0.5, 0.2, 1.0])
def test_state_independent_logstd_starts_at_sigma0(pendulum: tuple, sigma0: float) -> None:
    obs_space, action_space, obs = pendulum
    model = MLPModel({"sigma0": sigma0}, obs_space, action_space)
    distribution = model(obs.tensor())[0]
    assert isinstance(distribution, DiagNormal)
    torch.testing.assert_close(distribution.stddev, torch.full((obs.batch_size, 1), sigma0))
    assert dict(model.named_parameters())["log_std"].shape == (1,)
    # Exact Gaussian log-density at the mean: -log(sigma) - log(2 pi) / 2 per dimension.
    expected = -math.log(sigma0) - 0.5 * math.log(2 * math.pi)
    logprob = distribution.log_prob(distribution.mean)
    torch.testing.assert_close(logprob, torch.full((obs.batch_size,), expected))
    entropy = 0.5 + 0.5 * math.log(2 * math.pi) + math.log(sigma0)
    torch.testing.assert_close(distribution.entropy(), torch.full((obs.batch_size,), entropy))


def test_std_head_starts_near_sigma0(pendulum: tuple) -> None:
    obs_space, action_space, obs = pendulum
    model = MLPModel({"continuous_mode": "std_head", "sigma0": 0.3}, obs_space, action_space)
    distribution = model(obs.tensor())[0]
    assert "log_std" not in dict(model.named_parameters())
    assert model.policy_head.out_features == 2  # mean and std for one action dimension
    torch.testing.assert_close(
        distribution.stddev, torch.full((obs.batch_size, 1), 0.3), atol=0.03, rtol=0
    )
    # The std depends on the observation (unlike the state-independent log-std).
    assert distribution.stddev.std() > 0


def test_beta_samples_stay_within_the_bounds() -> None:
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 10.0], np.float32))
    model = MLPModel({"input_size": 3, "continuous_mode": "beta"}, action_space=space)
    obs = Observation(np.random.default_rng(0).normal(size=(2000, 3)).astype(np.float32))
    distribution = model(obs.tensor())[0]
    assert isinstance(distribution, ScaledBeta)
    sample = distribution.sample()
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    assert sample.shape == (2000, 2)
    assert bool(((sample >= low) & (sample <= high)).all())
    assert sample[:, 1].max() > 5  # spread over the second dimension's [0, 10] range
    mean = distribution.mean
    assert bool(((mean > low) & (mean < high)).all())
    assert torch.isfinite(distribution.log_prob(sample)).all()
    # log-density = Beta log-density of the unit sample - log(width), summed over dimensions
    unit = (sample - low) / (high - low)
    beta = torch.distributions.Beta(
        distribution.beta.concentration1, distribution.beta.concentration0
    )
    expected = (beta.log_prob(unit.clamp(1e-6, 1 - 1e-6)) - torch.log(high - low)).sum(-1)
    torch.testing.assert_close(distribution.log_prob(sample), expected)


def test_beta_on_pendulum(pendulum: tuple) -> None:
    obs_space, action_space, obs = pendulum
    model = MLPModel({"continuous_mode": "beta"}, obs_space, action_space)
    sample = model(obs.tensor())[0].sample((50,))
    assert float(sample.min()) >= -2.0 and float(sample.max()) <= 2.0


def test_float64_box_bounds_give_float32_outputs(cartpole: tuple) -> None:
    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float64)
    model = MLPModel({"continuous_mode": "beta"}, cartpole[0], space)
    assert model(cartpole[2].tensor())[0].sample().dtype == torch.float32


# ---------------------------------------------------------------------------- observations


def test_pursuit_images_are_flattened(pursuit: tuple) -> None:
    obs_space, action_space, obs = pursuit
    assert obs.keys() == ["image"] and obs.image.shape == (8, 7, 7, 3)
    model = MLPModel({}, obs_space, action_space)
    assert model.policy_encoder is None and model.hidden is not None
    assert model.hidden.layer(0, POLICY)[0].shape[1] == 147
    distribution, _, extra = model(obs.tensor(), get_value=True)
    assert distribution.logits.shape == (8, 5) and extra["value"].shape == (8,)


def test_pursuit_images_through_a_cnn(pursuit: tuple) -> None:
    obs_space, action_space, obs = pursuit
    model = MLPModel({"image_encoder": "cnn", "cnn_channels": [4, 8]}, obs_space, action_space)
    # A CNN each for the policy and the value network (issue 17), so two plain stacks.
    assert model.policy_encoder is not None and model.value_encoder is not None
    assert model.policy_hidden is not None and model.policy_hidden[0].in_features == 8 * 7 * 7
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [conv.out_channels for conv in convs] == [4, 8, 4, 8]
    distribution, _, extra = model(obs.tensor(), get_value=True)
    assert distribution.logits.shape == (8, 5)
    torch.testing.assert_close(extra["value"], model.value(obs.tensor()))
    extra["value"].sum().backward()  # the value's loss trains the value's CNN alone
    assert [conv.weight.grad is not None for conv in convs] == [False, False, True, True]
    distribution.logits.sum().backward()
    assert all(conv.weight.grad is not None for conv in convs)


def test_wrong_observation_size_names_both_sizes(cartpole: tuple) -> None:
    action_space = cartpole[1]
    model = MLPModel(
        {"input_size": 4, "num_actions": 2, "discrete": True}, action_space=action_space
    )
    wide = Observation(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"observation has 5 features .*expects 4"):
        model(wide.tensor())
    with pytest.raises(ValueError, match=r"observation has 5 features .*expects 4"):
        model.value(wide)


def test_wrong_image_shape_for_the_cnn_names_both_shapes(pursuit: tuple) -> None:
    obs_space, action_space, _ = pursuit
    model = MLPModel({"image_encoder": "cnn"}, obs_space, action_space)
    for shape in [(2, 7, 7, 4), (2, 5, 5, 3)]:
        expected = f"shape {list(shape[1:])} per item, the CNN encoder expects [7, 7, 3]"
        with pytest.raises(ValueError, match=re.escape(expected)):
            model(Observation(image=np.zeros(shape, np.float32)))
    with pytest.raises(ValueError, match=r"needs the field\(s\) \['image'\]"):
        model(Observation(np.zeros((2, 147), np.float32)))


def test_flat_model_given_the_wrong_image_names_the_sizes(pursuit: tuple) -> None:
    obs_space, action_space, _ = pursuit
    model = MLPModel({}, obs_space, action_space)
    with pytest.raises(ValueError, match=r"196 features \(image\[2, 7, 7, 4\]\).*expects 147"):
        model(Observation(image=np.zeros((2, 7, 7, 4), np.float32)))


def test_single_item_and_numpy_observations(cartpole: tuple) -> None:
    obs_space, action_space, obs = cartpole
    model = MLPModel({}, obs_space, action_space)
    with pytest.raises(ValueError, match=r"batch of observations.*Observation.stack"):
        model(obs[0])
    # A numpy batch (float64 too) works like the tensor batch.
    as_numpy = model(obs.map(lambda value: value.astype(np.float64)))[0].logits
    torch.testing.assert_close(as_numpy, model(obs.tensor())[0].logits)


def test_dict_observation_fields_follow_the_space_order() -> None:
    space = gym.spaces.Dict(
        {"goal": gym.spaces.Box(-1, 1, (2,)), "position": gym.spaces.Box(-1, 1, (3,))}
    )
    model = MLPModel({}, observation_space=space, action_space=gym.spaces.Discrete(3))
    assert model.config.input_size == 5
    rng = np.random.default_rng(0)
    goal, position = rng.normal(size=(4, 2)), rng.normal(size=(4, 3))
    forward = model(Observation(goal=goal, position=position))[0].logits
    backward = model(Observation(position=position, goal=goal))[0].logits
    torch.testing.assert_close(forward, backward)
    with pytest.raises(ValueError, match=r"fields \['goal'\].*\['goal', 'position'\]"):
        model(Observation(goal=np.zeros((4, 5))))


def test_value_matches_forward(pendulum: tuple) -> None:
    obs_space, action_space, obs = pendulum
    model = MLPModel({}, obs_space, action_space)
    _, _, extra = model(obs.tensor(), get_value=True)
    torch.testing.assert_close(extra["value"], model.value(obs.tensor()))
    assert extra["value"].shape == (obs.batch_size,)


def test_describe_rebuilds_the_same_architecture(pursuit: tuple) -> None:
    obs_space, action_space, obs = pursuit
    model = MLPModel({"image_encoder": "cnn", "hidden_sizes": [16]}, obs_space, action_space)
    twin = MLPModel.from_description(model.describe())
    twin.load_state_dict(model.state_dict())
    torch.testing.assert_close(twin(obs.tensor())[0].logits, model(obs.tensor())[0].logits)
    assert twin.observation_space == obs_space and twin.action_space == action_space


def test_large_batches_give_the_same_outputs_as_fused_ones(
    cartpole: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above FUSED_MAX_ROWS the networks run one after the other: same numbers, same grads."""
    obs_space, action_space, _ = cartpole
    model = MLPModel({"hidden_sizes": [16, 8]}, obs_space, action_space)
    features = torch.randn(fused.FUSED_MAX_ROWS + 1, 4)
    results = []
    for fused_max_rows in (0, fused.FUSED_MAX_ROWS + 1):  # per network, then fused
        monkeypatch.setattr(fused, "FUSED_MAX_ROWS", fused_max_rows)
        model.zero_grad()
        logits, value = model.heads(features)
        (logits.sum() + value.sum()).backward()
        results.append((logits, value, [p.grad.clone() for p in model.parameters()]))
    (logits_a, value_a, grads_a), (logits_b, value_b, grads_b) = results
    torch.testing.assert_close(logits_a, logits_b)
    torch.testing.assert_close(value_a, value_b)
    for grad_a, grad_b in zip(grads_a, grads_b):  # sums over 4097 rows, in other orders
        torch.testing.assert_close(grad_a, grad_b, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------- layouts


def test_a_shared_backbone_is_one_trunk_under_both_heads(cartpole: tuple) -> None:
    obs_space, action_space, obs = cartpole
    model = MLPModel({"shared_backbone": True, "hidden_sizes": [32, 16]}, obs_space, action_space)
    assert model.hidden is None and model.trunk is not None
    assert [layer.out_features for layer in model.trunk] == [32, 16]
    separate = MLPModel({"hidden_sizes": [32, 16]}, obs_space, action_space)
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in separate.parameters()) - (4 * 32 + 32 + 32 * 16 + 16)
    # Trunk -> head, as nn.Sequential would compute it.
    features = model.encode(obs)
    trunk = nn.Sequential(*(module for layer in model.trunk for module in (layer, nn.Tanh())))
    logits, value = model.heads(features)
    torch.testing.assert_close(logits, model.policy_head(trunk(features)))
    torch.testing.assert_close(value, model.value_head(trunk(features)).squeeze(-1))
    # The value loss trains the trunk (the policy's layers too: they are the same).
    model.value(obs).sum().backward()
    assert all(layer.weight.grad is not None for layer in model.trunk)
    assert model.policy_head.weight.grad is None


def test_a_shared_backbone_round_trips_and_learns(cartpole: tuple) -> None:
    from coltra.agents import DAgent
    from coltra.collectors import CrowdCollector
    from coltra.envs.probe_envs import ObsActionRewardEnv
    from coltra.groups import HomogeneousGroup
    from coltra.policy_optimization import CrowdPPOptimizer

    torch.manual_seed(0)
    env = ObsActionRewardEnv(num_agents=16)
    model = MLPModel(
        {"shared_backbone": True, "hidden_sizes": [16]}, env.observation_space, env.action_space
    )
    twin = MLPModel.from_description(model.describe())
    assert twin.trunk is not None and twin.config.shared_backbone
    group = HomogeneousGroup(DAgent(model))
    collector = CrowdCollector(group, env, seed=0)
    optimizer = CrowdPPOptimizer(group, {"lr": 1e-2})
    for _ in range(30):
        records, _, _ = collector.collect(16)
        optimizer.train_on_data(records)
    assert records["crowd"].reward.mean() > 0.9  # follows the observed sign


def test_weights_of_the_layout_before_twin_mlp_still_load(cartpole: tuple) -> None:
    """Checkpoints from before issue 12 stored the hidden layers as hidden.<k>.*."""
    obs_space, action_space, obs = cartpole
    model = MLPModel({}, obs_space, action_space)
    old = {
        key.replace("hidden.layers.", "hidden."): value for key, value in model.state_dict().items()
    }
    assert "hidden.0.weight" in old
    twin = MLPModel({}, obs_space, action_space)
    from coltra.agents import load_weights

    load_weights(twin, old, "an old checkpoint")
    torch.testing.assert_close(twin(obs.tensor())[0].logits, model(obs.tensor())[0].logits)


def test_twin_mlp_computes_two_separate_networks() -> None:
    torch.manual_seed(0)
    policy = [nn.Linear(3, 5), nn.Linear(5, 4)]
    value = [nn.Linear(3, 5), nn.Linear(5, 4)]
    twin = fused.TwinMLP(policy, value, torch.relu)
    x = torch.randn(7, 3)
    policy_x, value_x = twin(x)
    for layers, got in ((policy, policy_x), (value, value_x)):
        expected = x
        for layer in layers:
            expected = torch.relu(layer(expected))
        torch.testing.assert_close(got, expected)
    with pytest.raises(ValueError, match="same sizes"):
        fused.TwinMLP(policy, [nn.Linear(3, 6), nn.Linear(6, 4)], torch.relu)


# ---------------------------------------------------------------------------- critic: state

STATE_OBS = gym.spaces.Dict(
    {"vector": gym.spaces.Box(-1, 1, (3,)), "state": gym.spaces.Box(-1, 1, (7,))}
)


def _state_batch(rows: int, seed: int) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        vector=rng.normal(size=(rows, 3)).astype(np.float32),
        state=rng.normal(size=(rows, 7)).astype(np.float32),
    )


def test_state_critic_reads_the_state_and_the_policy_everything_else() -> None:
    torch.manual_seed(0)
    model = MLPModel({"critic": "state"}, STATE_OBS, gym.spaces.Discrete(4))
    assert (model.features, model.state_features) == (3, 7)
    assert model.config.input_size == 3  # the policy's input
    assert model.policy_hidden is not None and model.value_hidden is not None
    # The value network: the state, then the agent's own 3 numbers (critic_own_obs).
    assert model.policy_hidden[0].in_features == 3 and model.value_hidden[0].in_features == 10
    a, b = _state_batch(5, 0), _state_batch(5, 1)
    same_state = Observation(vector=b["vector"], state=a["state"])
    same_vector = Observation(vector=a["vector"], state=b["state"])
    dist_a, _, extra_a = model(a, get_value=True)
    dist_v, _, _ = model(same_state, get_value=True)
    dist_s, _, extra_s = model(same_vector, get_value=True)
    torch.testing.assert_close(dist_a.logits, dist_s.logits)  # policy: never the state
    assert not torch.allclose(extra_a["value"], extra_s["value"])
    assert not torch.allclose(dist_a.logits, dist_v.logits)
    state_only = MLPModel(
        {"critic": "state", "critic_own_obs": False}, STATE_OBS, gym.spaces.Discrete(4)
    )
    assert state_only.value_hidden is not None and state_only.value_hidden[0].in_features == 7
    torch.testing.assert_close(  # value: the state only
        state_only(a, get_value=True)[2]["value"],
        state_only(same_state, get_value=True)[2]["value"],
    )
    # Deployment: the policy acts without the critic's field (and with a mask field absent).
    torch.testing.assert_close(model(Observation(vector=a["vector"]))[0].logits, dist_a.logits)
    torch.testing.assert_close(model.value(a), extra_a["value"])
    acting, _, none = model(a)  # acting alone runs the policy alone
    assert none == {}
    torch.testing.assert_close(acting.logits, dist_a.logits)


def test_state_critic_networks_are_built_as_two_mlps() -> None:
    torch.manual_seed(0)
    model = MLPModel({"critic": "state", "hidden_sizes": [16]}, STATE_OBS, gym.spaces.Discrete(2))
    torch.manual_seed(0)
    expected_policy = mlp_layers(3, [16], 2, "orthogonal", 0.01)
    expected_value = mlp_layers(7 + 3, [16], 1, "orthogonal", 1.0)
    got_policy = [*model.policy_hidden, model.policy_head]  # type: ignore[misc]
    got_value = [*model.value_hidden, model.value_head]  # type: ignore[misc]
    for got, expected in zip([*got_policy, *got_value], [*expected_policy, *expected_value]):
        torch.testing.assert_close(got.weight, expected.weight)
        torch.testing.assert_close(got.bias, expected.bias)


def test_state_critic_refusals_name_the_problem() -> None:
    vector = gym.spaces.Box(-1, 1, (3,))
    with pytest.raises(ValueError, match=r"needs an observation with a 'state' field.*global_st"):
        MLPModel({"critic": "state"}, vector, gym.spaces.Discrete(2))
    only_state = gym.spaces.Dict({"state": vector})
    with pytest.raises(
        ValueError, match=r"only the critics' fields \['state'\], which the policy must not see"
    ):
        MLPModel({"critic": "state"}, only_state, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match=r"shared_backbone needs one input.*critic='state'"):
        MLPModel({"critic": "state", "shared_backbone": True}, STATE_OBS, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match=r"needs observation_space="):
        MLPModel({"critic": "state", "input_size": 3, "num_actions": 2, "discrete": True})
    model = MLPModel({"critic": "state"}, STATE_OBS, gym.spaces.Discrete(2))
    with pytest.raises(
        ValueError, match=r"needs a 'state' observation field \(its value network reads"
    ):
        model.value(Observation(vector=np.zeros((2, 3), np.float32)))
    wrong = Observation(vector=np.zeros((2, 3), np.float32), state=np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"'state' field has 5 numbers per item.*expects 7"):
        model.value(wrong)
    with pytest.raises(ConfigError, match=r"critic"):
        MLPModel({"critic": "team-ish"}, STATE_OBS, gym.spaces.Discrete(2))


def test_the_order_of_parameters_is_kept_for_saved_optimizer_states() -> None:
    """An optimizer's saved state follows the model's parameter order: a checkpoint of an
    earlier version resumes only while the order stays the same."""
    model = MLPModel({}, gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    assert [name for name, _ in model.named_parameters()] == [
        "hidden.layers.0.weight", "hidden.layers.0.bias", "hidden.layers.1.weight",
        "hidden.layers.1.bias", "policy_head.weight", "policy_head.bias",
        "value_head.weight", "value_head.bias",
    ]  # fmt: skip
