"""Agents on CartPole-v1, Pendulum-v1 and pursuit_v5 observations; checkpoints and abuse."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from pettingzoo.sisl import pursuit_v5
from torch.distributions import Categorical

from coltra.agents import Agent, CAgent, ConstantAgent, DAgent, RandomAgent
from coltra.agents import DAgent as DAgentOfColtra
from coltra.buffers import Action, Observation
from coltra.envs import MultiGymEnv, PettingZooEnv
from coltra.models import BaseModel, MLPModel
from coltra.models.base import State
from coltra.serialization import CheckpointError

pytestmark = pytest.mark.timeout(60)

Env = tuple[gym.Space, gym.Space, Observation]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny networks are much faster on one thread on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reset_obs(env: MultiGymEnv | PettingZooEnv, copies: int = 1) -> Observation:
    items: list[Observation] = []
    for seed in range(copies):
        items.extend(env.reset(seed=seed).values())
    env.close()
    return Observation.stack(items)


@pytest.fixture(scope="module")
def cartpole() -> Env:
    env = MultiGymEnv(env_name="CartPole-v1")
    return env.observation_space, env.action_space, _reset_obs(env, copies=6)


@pytest.fixture(scope="module")
def pendulum() -> Env:
    env = MultiGymEnv(env_name="Pendulum-v1")
    return env.observation_space, env.action_space, _reset_obs(env, copies=6)


@pytest.fixture(scope="module")
def pursuit() -> Env:
    env = PettingZooEnv(pursuit_v5.parallel_env, max_cycles=5)
    return env.observation_space, env.action_space, _reset_obs(env)


def _dagent(env: Env, **config: object) -> DAgent:
    return DAgent(MLPModel(dict(config), observation_space=env[0], action_space=env[1]))


def _cagent(env: Env, **config: object) -> CAgent:
    return CAgent(MLPModel(dict(config), observation_space=env[0], action_space=env[1]))


# ---------------------------------------------------------------------------- agent classes


def test_agent_classes_refuse_models_they_cannot_serve(cartpole: Env, pendulum: Env) -> None:
    with pytest.raises(TypeError, match=r"DAgent needs a model with discrete actions.*CAgent"):
        DAgent(MLPModel({}, pendulum[0], pendulum[1]))
    with pytest.raises(TypeError, match=r"CAgent needs a model with continuous actions.*DAgent"):
        CAgent(MLPModel({}, cartpole[0], cartpole[1]))
    with pytest.raises(TypeError, match="BaseModel"):
        DAgent("not a model")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- acting


def test_dagent_acts_on_a_batch(cartpole: Env) -> None:
    agent = _dagent(cartpole)
    obs = cartpole[2]
    action, state, extra = agent.act(obs, get_value=True)
    assert action.keys() == ["discrete"] and action.discrete.shape == (6,)
    assert action.discrete.dtype == np.int64
    assert all(cartpole[1].contains(int(a)) for a in action.discrete)
    assert state == ()
    assert isinstance(extra["logprob"], np.ndarray) and extra["logprob"].shape == (6,)
    assert extra["value"].shape == (6,)
    np.testing.assert_allclose(
        extra["value"], agent.value(obs).detach().numpy(), rtol=1e-6, atol=1e-7
    )  # float rounding: acting on few rows goes through numpy
    assert "value" not in agent.act(obs)[2]
    # logprob is the model's log-probability of the chosen actions
    logprob, _, _ = agent.evaluate(obs, action)
    np.testing.assert_allclose(extra["logprob"], logprob.detach().numpy(), rtol=1e-6)


def test_act_on_a_single_observation(cartpole: Env, pendulum: Env) -> None:
    action, _, extra = _dagent(cartpole).act(cartpole[2][0], get_value=True)
    assert action.discrete.shape == () and not action.is_batch
    assert extra["logprob"].shape == () and extra["value"].shape == ()
    action, _, extra = _cagent(pendulum).act(pendulum[2][0])
    assert action.continuous.shape == (1,) and extra["logprob"].shape == ()


def test_deterministic_acting_is_repeatable_and_takes_the_argmax(pursuit: Env) -> None:
    agent = _dagent(pursuit)
    obs = pursuit[2]
    first = agent.act(obs, deterministic=True)[0].discrete
    for _ in range(3):
        assert np.array_equal(agent.act(obs, deterministic=True)[0].discrete, first)
    logits = agent.model(obs.tensor())[0].logits  # type: ignore[misc]
    assert np.array_equal(first, logits.argmax(-1).numpy())
    # Sampling, in contrast, varies.
    samples = {tuple(agent.act(obs)[0].discrete) for _ in range(5)}
    assert len(samples) > 1


@pytest.mark.parametrize("mode", ["logstd", "std_head", "beta"])
def test_cagent_deterministic_action_is_the_mean(pendulum: Env, mode: str) -> None:
    agent = _cagent(pendulum, continuous_mode=mode)
    obs = pendulum[2]
    action, _, _ = agent.act(obs, deterministic=True)
    mean = agent.model(obs.tensor())[0].mean  # type: ignore[misc]
    np.testing.assert_allclose(action.continuous, mean.detach().numpy(), rtol=1e-6)
    assert action.continuous.dtype == np.float32 and action.continuous.shape == (6, 1)


def test_cagent_keeps_the_unclipped_sample(pendulum: Env) -> None:
    agent = _cagent(pendulum, sigma0=10.0)  # wide enough to leave [-2, 2] often
    obs = Observation.stack([pendulum[2][0]] * 200)
    action, _, extra = agent.act(obs)
    assert np.abs(action.continuous).max() > 2.0  # the env adapter clips; the agent does not
    logprob, _, _ = agent.evaluate(obs, action)
    np.testing.assert_allclose(extra["logprob"], logprob.detach().numpy(), rtol=1e-5)


def test_beta_agent_acts_within_the_bounds(pendulum: Env) -> None:
    obs = Observation.stack([pendulum[2][0]] * 500)
    action, _, _ = _cagent(pendulum, continuous_mode="beta").act(obs)
    assert action.continuous.min() >= -2.0 and action.continuous.max() <= 2.0


def test_discrete_spaces_with_a_start_offset(cartpole: Env) -> None:
    space = gym.spaces.Discrete(3, start=-1)
    agent = DAgent(MLPModel({}, cartpole[0], space))
    actions = np.concatenate([agent.act(cartpole[2])[0].discrete for _ in range(20)])
    assert set(actions.tolist()) == {-1, 0, 1}
    action, _, extra = agent.act(cartpole[2])
    logprob, _, _ = agent.evaluate(cartpole[2], action)
    np.testing.assert_allclose(extra["logprob"], logprob.detach().numpy(), rtol=1e-6)

    multi = gym.spaces.MultiDiscrete([2, 3], start=[1, 10])
    agent = DAgent(MLPModel({}, cartpole[0], multi))
    action, _, extra = agent.act(cartpole[2])
    assert all(multi.contains(row) for row in action.discrete)
    np.testing.assert_allclose(
        extra["logprob"], agent.evaluate(cartpole[2], action)[0].detach().numpy(), rtol=1e-6
    )


# ---------------------------------------------------------------------------- evaluate


def test_evaluate_has_gradients_and_batch_shapes(pursuit: Env, pendulum: Env) -> None:
    for agent, obs in ((_dagent(pursuit), pursuit[2]), (_cagent(pendulum), pendulum[2])):
        action, _, _ = agent.act(obs)
        logprobs, values, entropies = agent.evaluate(obs, action)
        for tensor in (logprobs, values, entropies):
            assert tensor.shape == (obs.batch_size,) and tensor.requires_grad
        (logprobs.sum() + values.sum() + entropies.sum()).backward()
        assert all(p.grad is not None for p in agent.parameters())


def test_entropy_of_a_uniform_policy_is_log_n(pursuit: Env) -> None:
    agent = _dagent(pursuit)
    with torch.no_grad():
        agent.model.policy_head.weight.zero_()  # type: ignore[union-attr]
    _, _, entropies = agent.evaluate(pursuit[2], Action(discrete=np.zeros(8, np.int64)))
    torch.testing.assert_close(entropies, torch.full((8,), math.log(5)))


def test_evaluate_refuses_actions_of_the_wrong_shape(cartpole: Env, pendulum: Env) -> None:
    obs = cartpole[2]
    # [batch, 1] against a [batch] categorical would broadcast to [batch, batch].
    with pytest.raises(ValueError, match=r"shape \[6, 1\], expected \[6\]"):
        _dagent(cartpole).evaluate(obs, Action(discrete=np.zeros((6, 1), np.int64)))
    with pytest.raises(ValueError, match=r"shape \[5, 1\], expected \[6, 1\]"):
        _cagent(pendulum).evaluate(pendulum[2], Action(continuous=np.zeros((5, 1))))
    with pytest.raises(ValueError, match="the action holds a single item"):
        _cagent(pendulum).evaluate(pendulum[2], Action(continuous=np.zeros(6)))
    with pytest.raises(ValueError, match=r"evaluates Action\(discrete=...\)"):
        _dagent(cartpole).evaluate(obs, Action(continuous=np.zeros((6, 2))))


# ---------------------------------------------------------------------------- toy agents


def test_random_agent_is_seeded_and_within_the_space(cartpole: Env, pendulum: Env) -> None:
    for space, obs in (
        (cartpole[1], cartpole[2]),
        (pendulum[1], pendulum[2]),
        (gym.spaces.MultiDiscrete([3, 4], start=[0, 5]), cartpole[2]),
    ):
        first, second = RandomAgent(space, seed=3), RandomAgent(space, seed=3)
        runs = [[agent.act(obs)[0] for _ in range(5)] for agent in (first, second)]
        assert runs[0] == runs[1]
        field = "continuous" if isinstance(space, gym.spaces.Box) else "discrete"
        values = np.concatenate([action[field] for action in runs[0]])
        assert all(
            space.contains(np.asarray(v, dtype=space.dtype).reshape(space.shape)) for v in values
        )
        assert RandomAgent(space, seed=4).act(obs)[0] != runs[0][0]
    _, _, extra = RandomAgent(pendulum[1], seed=0).act(pendulum[2], get_value=True)
    np.testing.assert_allclose(extra["logprob"], -math.log(4.0))
    np.testing.assert_array_equal(extra["value"], np.zeros(6))
    _, _, extra = RandomAgent(cartpole[1], seed=0).act(cartpole[2][0])
    assert extra["logprob"] == pytest.approx(-math.log(2))


def test_random_agent_refuses_unbounded_boxes() -> None:
    with pytest.raises(ValueError, match="finite Box bounds"):
        RandomAgent(gym.spaces.Box(-np.inf, np.inf, (2,)))
    with pytest.raises(TypeError, match="MultiBinary, Box, and Dict or Tuple of those, got Text"):
        RandomAgent(gym.spaces.Text(3))
    with pytest.raises(TypeError, match="action space Text"):
        RandomAgent(gym.spaces.Tuple([gym.spaces.Text(3)]))


def test_random_agent_with_a_dict_action_draws_each_part() -> None:
    space = gym.spaces.Dict(
        {"move": gym.spaces.Discrete(3, start=-1), "aim": gym.spaces.Box(-1, 1, (2,))}
    )
    agent = RandomAgent(space, seed=0)
    action, _, extra = agent.act(Observation(vector=np.zeros((400, 1), np.float32)))
    joint = action["joint"]  # aim (2 slots), then move
    assert joint.shape == (400, 3) and set(np.unique(joint[:, 2])) == {-1.0, 0.0, 1.0}
    assert np.abs(joint[:, :2]).max() <= 1.0
    np.testing.assert_allclose(extra["logprob"], -np.log(3) - np.log(4), rtol=1e-6)


def test_random_agent_with_multibinary_actions() -> None:
    agent = RandomAgent(gym.spaces.MultiBinary(3), seed=0)
    action, _, extra = agent.act(Observation(vector=np.zeros((500, 1), np.float32)))
    assert action.discrete.shape == (500, 3) and set(np.unique(action.discrete)) == {0, 1}
    assert abs(action.discrete.mean() - 0.5) < 0.05
    np.testing.assert_allclose(extra["logprob"], 3 * np.log(0.5), rtol=1e-6)


def test_constant_agent(cartpole: Env) -> None:
    agent = ConstantAgent(Action(discrete=1))
    action, state, extra = agent.act(cartpole[2], get_value=True)
    assert action.discrete.tolist() == [1] * 6 and state == ()
    np.testing.assert_array_equal(extra["logprob"], np.zeros(6))
    assert agent.act(cartpole[2][0])[0] == Action(discrete=1)
    assert agent.parameters() == [] and agent.model is None
    with pytest.raises(TypeError, match="cannot be trained"):
        agent.evaluate(cartpole[2], action)
    with pytest.raises(TypeError, match="single Action with one field"):
        ConstantAgent(Action(discrete=np.array([1, 2])))


# ---------------------------------------------------------------------------- checkpoints


def _roundtrip(agent: Agent, path: Path) -> Agent:
    agent.save(path)
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["agent.json"] + (["weights.pt"] if agent.model is not None else [])
    )
    json.loads((path / "agent.json").read_text())  # plain JSON
    return Agent.load(path)


def test_roundtrip_dagent_cartpole(cartpole: Env, tmp_path: Path) -> None:
    agent = _dagent(cartpole, hidden_sizes=[32])
    loaded = _roundtrip(agent, tmp_path / "agent")
    assert type(loaded) is DAgent
    expected = agent.act(cartpole[2], deterministic=True)[0]
    assert loaded.act(cartpole[2], deterministic=True)[0] == expected
    for mine, theirs in zip(agent.parameters(), loaded.parameters()):
        assert torch.equal(mine, theirs)
    assert DAgent.load(tmp_path / "agent").model.config == agent.model.config  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["logstd", "std_head", "beta"])
def test_roundtrip_cagent_each_mode(pendulum: Env, tmp_path: Path, mode: str) -> None:
    agent = _cagent(pendulum, continuous_mode=mode, sigma0=0.3)
    with torch.no_grad():  # trained-looking weights, not the initial ones
        for parameter in agent.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    loaded = _roundtrip(agent, tmp_path / mode)
    assert type(loaded) is CAgent
    expected = agent.act(pendulum[2], deterministic=True)[0].continuous
    np.testing.assert_array_equal(
        loaded.act(pendulum[2], deterministic=True)[0].continuous, expected
    )
    np.testing.assert_array_equal(
        agent.evaluate(pendulum[2], Action(continuous=expected))[0].detach().numpy(),
        loaded.evaluate(pendulum[2], Action(continuous=expected))[0].detach().numpy(),
    )


def test_roundtrip_cnn_on_pursuit(pursuit: Env, tmp_path: Path) -> None:
    agent = _dagent(pursuit, image_encoder="cnn", cnn_channels=[4])
    with torch.no_grad():
        agent.model.policy_head.bias.copy_(torch.tensor([0.0, 0.1, 0.2, 0.3, 0.05]))  # type: ignore[union-attr]
    loaded = _roundtrip(agent, tmp_path / "cnn")
    expected = agent.act(pursuit[2], deterministic=True)
    actual = loaded.act(pursuit[2], deterministic=True, get_value=True)
    np.testing.assert_array_equal(actual[0].discrete, expected[0].discrete)
    np.testing.assert_array_equal(actual[2]["logprob"], expected[2]["logprob"])


def test_roundtrip_toy_agents(pendulum: Env, tmp_path: Path) -> None:
    random_agent = RandomAgent(pendulum[1], seed=7)
    expected = random_agent.act(pendulum[2])[0]
    loaded = _roundtrip(random_agent, tmp_path / "random")
    assert isinstance(loaded, RandomAgent) and loaded.action_space == pendulum[1]
    assert loaded.act(pendulum[2])[0] == expected  # same seed, same first actions

    constant = ConstantAgent(Action(continuous=np.array([0.5], np.float32)))
    loaded = _roundtrip(constant, tmp_path / "constant")
    action = loaded.act(pendulum[2])[0]
    assert action == constant.act(pendulum[2])[0] and action.continuous.dtype == np.float32


def test_load_as_the_wrong_class(cartpole: Env, tmp_path: Path) -> None:
    _dagent(cartpole).save(tmp_path / "d")
    with pytest.raises(CheckpointError, match="holds a DAgent, not a CAgent"):
        CAgent.load(tmp_path / "d")


def test_a_users_class_named_like_ours_does_not_replace_it(cartpole: Env, tmp_path: Path) -> None:
    class DAgent(DAgentOfColtra):  # a user's subclass that happens to share the name
        pass

    ours, theirs = _dagent(cartpole), DAgent(_dagent(cartpole).model)  # type: ignore[arg-type]
    ours.save(tmp_path / "ours")
    theirs.save(tmp_path / "theirs")
    assert json.loads((tmp_path / "ours" / "agent.json").read_text())["agent"] == "DAgent"
    recorded = json.loads((tmp_path / "theirs" / "agent.json").read_text())["agent"]
    assert recorded == f"{__name__}.{DAgent.__qualname__}"
    assert type(Agent.load(tmp_path / "ours")) is DAgentOfColtra
    assert type(Agent.load(tmp_path / "theirs")) is DAgent


def test_a_users_class_saved_under_its_bare_name_still_loads(cartpole: Env, tmp_path: Path) -> None:
    """Checkpoints from before full names were recorded name a user's class bare."""

    class UniquelyNamedAgent(DAgentOfColtra):
        pass

    UniquelyNamedAgent(_dagent(cartpole).model).save(tmp_path / "old")  # type: ignore[arg-type]
    meta_file = tmp_path / "old" / "agent.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "agent": "UniquelyNamedAgent"}))
    assert type(Agent.load(tmp_path / "old")) is UniquelyNamedAgent


# ---------------------------------------------------------------------------- bad checkpoints


@pytest.fixture
def saved(cartpole: Env, tmp_path: Path) -> Path:
    path = tmp_path / "agent"
    _dagent(cartpole).save(path)
    return path


def test_load_from_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no agent checkpoint at .*nowhere"):
        Agent.load(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["agent.json", "weights.pt"])
def test_load_with_a_missing_file(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(CheckpointError, match=rf"missing checkpoint file .*{name}"):
        Agent.load(saved)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "coltra-agent", "version": 1,', "corrupted checkpoint file"),
        ("\udcff".encode("utf-8", "surrogateescape").decode("latin-1"), "corrupted"),
        ('["a list"]', "not a Coltra agent file"),
        ('{"format": "coltra-agent", "version": 99, "agent": "DAgent"}', "version 99"),
        ('{"format": "coltra-agent", "version": 1, "agent": "os.system"}', "agent class"),
    ],
)
def test_load_with_a_corrupted_agent_file(saved: Path, text: str, message: str) -> None:
    (saved / "agent.json").write_text(text, encoding="latin-1")
    with pytest.raises(CheckpointError, match=message):
        Agent.load(saved)


def test_load_with_a_tampered_description(saved: Path) -> None:
    meta = json.loads((saved / "agent.json").read_text())
    for change, message in (
        ({"model": "subprocess.Popen"}, "names model class 'subprocess.Popen'"),
        ({"model_description": {"config": {"hidden_sizes": "big"}}}, "invalid model description"),
        ({"agent": "CAgent"}, "CAgent needs a model with continuous actions"),
        ({"agent": "RandomAgent", "model": None}, "not describe a valid RandomAgent"),
    ):
        (saved / "agent.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(CheckpointError, match=message):
            Agent.load(saved)


def test_load_truncated_weights(saved: Path) -> None:
    weights = saved / "weights.pt"
    data = weights.read_bytes()
    for broken in (data[: len(data) // 2], b"", b"not a torch file at all"):
        weights.write_bytes(broken)
        with pytest.raises(CheckpointError) as error:
            Agent.load(saved)
        assert "corrupted" in str(error.value) and "weights.pt" in str(error.value)


def test_load_weights_of_a_different_architecture(saved: Path, cartpole: Env) -> None:
    _dagent(cartpole, hidden_sizes=[32]).save(saved.parent / "other")
    (saved / "weights.pt").write_bytes((saved.parent / "other" / "weights.pt").read_bytes())
    with pytest.raises(
        CheckpointError, match=r"do not fit the MLPModel.*shape mismatches"
    ) as error:
        Agent.load(saved)
    assert "hidden.layers.0.weight: checkpoint (2, 4, 32) vs model (2, 4, 64)" in str(error.value)
    torch.save({"something": torch.zeros(1)}, saved / "weights.pt")
    with pytest.raises(CheckpointError, match=r"missing \['hidden.layers.0.bias'"):
        Agent.load(saved)
    torch.save({"hidden.0.weight": 3}, saved / "weights.pt")
    with pytest.raises(CheckpointError, match="names -> tensors"):
        Agent.load(saved)


class _Payload:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_payload_is_live_when_unpickled_naively(tmp_path: Path) -> None:
    """Guards the next test: the crafted payload really runs code under plain pickle."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["torch_zip", "torch_legacy", "raw_pickle"])
def test_pickled_payload_in_weights_is_refused(saved: Path, tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    state = {"hidden.0.weight": torch.zeros(2, 4, 64), "payload": _Payload(marker)}
    weights = saved / "weights.pt"
    if container == "raw_pickle":
        weights.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, weights, _use_new_zipfile_serialization=container == "torch_zip")
    with pytest.raises(CheckpointError) as error:
        Agent.load(saved)
    message = str(error.value)
    assert "refusing to load" in message and "could run code" in message
    assert "Nothing from the file was executed" in message
    if container != "raw_pickle":
        assert "io.open" in message  # names the object it refused
    assert "weights_only" not in message  # no advice to turn the protection off
    assert not marker.exists()


class _RecurrentModel(BaseModel):
    """A state that mixes the observation in through a weight: gradients must reach it."""

    discrete = True
    observation_space = None
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        super().__init__()
        self.mix = torch.nn.Parameter(torch.ones(1))

    def forward(
        self, obs: Observation, state: State = (), get_value: bool = False
    ) -> tuple[Categorical, State, dict[str, torch.Tensor]]:
        (memory,) = state or self.get_initial_state(obs.batch_size)
        memory = memory + self.mix * obs.vector.float().sum(-1)
        logits = torch.stack([memory, -memory], dim=-1)
        return Categorical(logits=logits), (memory,), {"value": memory} if get_value else {}

    def get_initial_state(self, batch_size: int) -> State:
        return (torch.zeros(batch_size),)


def test_state_from_act_is_usable_with_gradients() -> None:
    """act runs in inference mode; the state it returns must still work in evaluate()."""
    agent = DAgent(_RecurrentModel())
    obs = Observation(vector=np.ones((3, 2), np.float32))
    action, state, _ = agent.act(obs)
    assert not state[0].is_inference() and not state[0].requires_grad
    logprob, value, _ = agent.evaluate(obs, action, state)
    (logprob.sum() + value.sum()).backward()
    assert agent.model.mix.grad is not None  # type: ignore[union-attr]


def test_acting_on_what_is_not_an_observation_says_what_to_pass(cartpole: Env) -> None:
    """Issue 12 (h): agent.act(step_batch) raised a raw AttributeError."""
    from coltra.envs import MultiGymEnv
    from coltra.groups import HomogeneousGroup

    agent = _dagent(cartpole)
    env = MultiGymEnv.get_venv(2, env_name="CartPole-v1", seed=0)
    batch = env.reset_batch()
    with pytest.raises(
        TypeError,
        match=r"DAgent\.act takes an Observation, got a StepBatch; pass its observations: "
        r"DAgent\.act\(batch\.obs\)",
    ):
        agent.act(batch)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"dict of observations by agent name is for a group"):
        agent.act(env.reset())  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"wrap the array: DAgent\.evaluate\(Observation\(vector=array\)\)"
    ):
        agent.evaluate(batch.obs.vector, Action(discrete=np.zeros(2)))  # type: ignore[arg-type]
    group = HomogeneousGroup(agent)
    with pytest.raises(
        TypeError, match=r"HomogeneousGroup\.act takes a dict of Observations .*act_batch"
    ):
        group.act(batch)  # type: ignore[arg-type]
    assert agent.act(batch.obs)[0].discrete.shape == (2,)  # the call the error names
    env.close()
