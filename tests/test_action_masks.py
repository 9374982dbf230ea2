"""Action masks: an ``action_mask`` observation field that policies obey exactly.

The masked probe (``coltra.envs.probe_envs.MaskedActionEnv``): action 0 pays the most but is
never legal, the others are legal at random; with ``illegal="raise"`` an illegal action
crashes the env, as an env that enforces legality does.
"""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from coltra.agents import DAgent, RandomAgent
from coltra.buffers import Action, Observation
from coltra.checks import NoLegalActionError
from coltra.collectors import CrowdCollector
from coltra.configs import RunConfig
from coltra.envs.probe_envs import MaskedActionEnv
from coltra.evaluation import evaluate_episodes
from coltra.groups import HomogeneousGroup
from coltra.models import MLPModel
from coltra.models.mlp import MASKED_LOGIT
from coltra.trainers import PPOCrowdTrainer

pytestmark = pytest.mark.timeout(120)

MASKED = gym.spaces.Dict(
    {"vector": gym.spaces.Box(-1, 1, (2,)), "action_mask": gym.spaces.Box(0, 1, (4,), np.int8)}
)


def masked_obs(mask: list[list[int]]) -> Observation:
    rows = len(mask)
    vector = np.linspace(-1, 1, rows * 2, dtype=np.float32).reshape(rows, 2)
    return Observation(vector=vector, action_mask=np.array(mask, np.int8))


def test_the_masked_distribution_is_the_categorical_over_legal_actions() -> None:
    torch.manual_seed(0)
    model = MLPModel({"policy_head_gain": 1.0}, MASKED, gym.spaces.Discrete(4))
    assert model.features == 2  # the mask masks; it is not a feature
    obs = masked_obs([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]])
    head = model.policy_head(model.hidden(model.encode(obs))[0]).detach()  # type: ignore[misc]
    distribution, _, _ = model(obs)
    for row, mask in enumerate(obs["action_mask"]):
        legal = np.flatnonzero(mask)
        logits = head[row, legal].double()
        expected = torch.softmax(logits, 0)
        probs = distribution.probs[row].double()
        assert probs[mask == 0].tolist() == [0.0] * int((mask == 0).sum())  # exactly 0
        torch.testing.assert_close(probs[legal], expected, rtol=1e-5, atol=1e-7)
        for action in legal:
            got = distribution.log_prob(torch.tensor([action] * 3))[row].double()
            assert got.item() == pytest.approx(
                torch.log(expected[list(legal).index(action)]).item(), rel=1e-5
            )
        entropy = -(expected * expected.log()).sum()
        assert distribution.entropy()[row].item() == pytest.approx(entropy.item(), rel=1e-5)
    agent = DAgent(model)
    best, _, _ = agent.act(obs, deterministic=True)
    legal_best = [
        int(np.flatnonzero(m)[head[r, np.flatnonzero(m)].argmax()])
        for r, m in enumerate(obs["action_mask"])
    ]
    assert best["discrete"].tolist() == legal_best
    many = Observation(
        vector=np.zeros((2000, 2), np.float32),
        action_mask=np.tile([[0, 1, 0, 1]], (2000, 1)).astype(np.int8),
    )
    sampled, _, _ = agent.act(many)
    assert set(sampled["discrete"].tolist()) == {1, 3}


def test_multidiscrete_masks_are_per_dimension_and_the_mask_may_be_a_feature() -> None:
    space = gym.spaces.Dict(
        {"vector": gym.spaces.Box(-1, 1, (2,)), "action_mask": gym.spaces.MultiBinary(5)}
    )
    torch.manual_seed(0)
    model = MLPModel({"action_mask_input": True}, space, gym.spaces.MultiDiscrete([2, 3]))
    assert model.features == 7
    obs = Observation(
        vector=np.zeros((500, 2), np.float32),
        action_mask=np.tile([[0, 1, 1, 0, 1]], (500, 1)).astype(np.float32),
    )
    action, _, extra = DAgent(model).act(obs)
    assert set(action["discrete"][:, 0].tolist()) == {1}
    assert set(action["discrete"][:, 1].tolist()) == {0, 2}
    # log p = log 1 (dimension 0 has one legal choice) + log p(dimension 1)
    assert np.all(extra["logprob"] > math.log(1e-6))


def test_masks_with_the_wrong_size_or_continuous_actions_are_refused() -> None:
    with pytest.raises(ValueError, match=r"the action mask has 4 entries.*Discrete\(3\) has 3"):
        MLPModel({}, MASKED, gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match=r"masks categorical actions.*continuous"):
        MLPModel({}, MASKED, gym.spaces.Box(-1, 1, (4,)))
    only_mask = gym.spaces.Dict({"action_mask": gym.spaces.MultiBinary(2)})
    with pytest.raises(ValueError, match=r"only an 'action_mask' field"):
        MLPModel({}, only_mask, gym.spaces.Discrete(2))


class DeadEnd(MaskedActionEnv):
    """agent_1 is left without a legal action at the second step."""

    def _observe(self) -> Observation:
        obs = super()._observe()
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 2:
            self.legal[1] = False
            obs = self._current_obs()
        return obs


def test_an_agent_without_a_legal_action_is_an_error_that_names_it() -> None:
    env = DeadEnd.get_venv(1, num_agents=2, seed=0)
    torch.manual_seed(0)
    agents = HomogeneousGroup(DAgent(MLPModel({}, env.observation_space, env.action_space)))
    with pytest.raises(
        NoLegalActionError,
        match=r"agent 'agent_1&env=0' has no legal action: its action_mask is \[0, 0, 0, 0\] "
        r"\(returned by step 1 of iteration 7\)",
    ):
        CrowdCollector(agents, env, seed=0).collect(4, label="iteration 7")
    env.close()


def test_masks_are_stored_in_the_rollout_and_used_again_in_the_update() -> None:
    env = MaskedActionEnv.get_venv(2, num_agents=4, seed=0)
    torch.manual_seed(0)
    agent = DAgent(MLPModel({"policy_head_gain": 1.0}, env.observation_space, env.action_space))
    data, _, _ = CrowdCollector(HomogeneousGroup(agent), env, seed=0).collect(16)
    record = data["crowd"]
    assert record.obs["action_mask"].shape == (8, 16, 4)
    taken = record.action["discrete"]
    mask = record.obs["action_mask"]
    assert np.take_along_axis(mask, taken[..., None], -1).all()  # only legal actions
    flat = record.obs.map(lambda a: a.reshape(-1, *a.shape[2:]))
    actions = record.action.map(lambda a: a.reshape(-1, *a.shape[2:]))
    logprob, _, _ = agent.evaluate(flat, actions)
    np.testing.assert_allclose(
        logprob.detach().numpy(), record.logprob.reshape(-1), rtol=1e-5, atol=1e-6
    )
    env.close()


def test_random_agents_obey_masks() -> None:
    obs = Observation(
        vector=np.zeros((1000, 1), np.float32),
        action_mask=np.tile([[0, 0, 1, 1]], (1000, 1)).astype(np.int8),
    )
    action, _, extra = RandomAgent(gym.spaces.Discrete(4), seed=0).act(obs)
    assert set(action["discrete"].tolist()) == {2, 3}
    assert np.allclose(extra["logprob"], math.log(0.5))


def test_the_masked_probe_is_learned_from_a_config_and_never_crashes(tmp_path: Path) -> None:
    config = RunConfig.from_dict(
        {
            "trainer": {
                "run_dir": str(tmp_path / "run"), "steps": 16, "iterations": 30, "seed": 0,
                "progress": False, "save_every": 30, "eval_episodes": 64,
            },
            "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 2},
            "model": {"hidden_sizes": [16], "action_mask_input": True},
            "env": {
                "kind": "probe", "env_name": "masked", "workers": 2,
                "env_kwargs": {"num_agents": 4, "illegal": "raise"},
            },
        }
    )  # fmt: skip
    with PPOCrowdTrainer.from_config(config) as trainer:
        summary = trainer.train()
        agent = trainer.group.policies["crowd"]
    assert summary["eval/return_mean"] >= 0.58  # the best legal action: 4.25 / 7 ~ 0.607
    obs = Observation(
        vector=np.ones((3, 1), np.float32),
        action_mask=np.array([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]], np.int8),
    )
    best, _, _ = agent.act(obs, deterministic=True)
    assert best["discrete"].tolist() == [1, 2, 3]
    assert agent.model is not None
    distribution, _, _ = agent.model(obs)
    assert distribution.probs[:, 0].tolist() == [0.0, 0.0, 0.0]


def test_without_masks_an_env_that_enforces_legality_crashes() -> None:
    env = MaskedActionEnv(2, masks=False)
    env.reset_batch(seed=0)
    with pytest.raises(ValueError, match=r"agent 'agent_\d' took action 0, which its action mask"):
        env.step_batch(Action(discrete=np.zeros(2, np.int64)))
    random = evaluate_episodes(
        HomogeneousGroup(RandomAgent(gym.spaces.Discrete(4), seed=0)),
        MaskedActionEnv.get_venv(4, num_agents=2, illegal="penalty", masks=False, seed=0),
        400,
        deterministic=False,
        seed=0,
    )
    assert random.returns.mean() < 0.0  # illegal actions pay -1
    assert MASKED_LOGIT == -1e8


def test_random_agents_obey_multidiscrete_masks_per_dimension() -> None:
    mask = np.tile([[1, 0, 0, 1, 1]], (500, 1)).astype(np.int8)  # dimension 0: {0}; 1: {1, 2}
    obs = Observation(vector=np.zeros((500, 1), np.float32), action_mask=mask)
    action, _, extra = RandomAgent(gym.spaces.MultiDiscrete([2, 3]), seed=0).act(obs)
    assert set(action["discrete"][:, 0].tolist()) == {0}
    assert set(action["discrete"][:, 1].tolist()) == {1, 2}
    assert np.allclose(extra["logprob"], math.log(0.5))


def test_a_state_critic_policy_with_a_mask_acts_without_the_state() -> None:
    space = gym.spaces.Dict({**MASKED.spaces, "state": gym.spaces.Box(-1, 1, (6,))})
    torch.manual_seed(0)
    agent = DAgent(MLPModel({"critic": "state"}, space, gym.spaces.Discrete(4)))
    obs = masked_obs([[0, 1, 0, 0], [0, 0, 1, 1]])  # vector and action_mask, no state
    action, _, _ = agent.act(obs, deterministic=True)
    assert action["discrete"][0] == 1 and action["discrete"][1] in (2, 3)
