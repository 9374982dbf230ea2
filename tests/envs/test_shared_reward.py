"""SharedReward: every agent gets the step's summed reward; observations, endings and the
agents present stay the env's own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pettingzoo.butterfly import knights_archers_zombies_v11

from coltra.buffers import Action
from coltra.configs import ConfigError, EnvConfig
from coltra.envs.shared_reward import SharedReward
from coltra.factory import make_env

pytestmark = pytest.mark.timeout(120)

KAZ = {"max_cycles": 400, "max_zombies": 10}


def kaz() -> Any:
    return knights_archers_zombies_v11.parallel_env(**KAZ)


def test_every_agent_gets_the_sum_of_the_step_s_rewards() -> None:
    raw, shared = kaz(), SharedReward(kaz())
    raw_obs, _ = raw.reset(seed=4)
    shared_obs, _ = shared.reset(seed=4)
    rng = np.random.default_rng(0)
    kills = 0.0
    while raw.agents:
        actions = {agent: int(rng.integers(6)) for agent in raw.agents}
        raw_obs, raw_rewards, raw_term, raw_trunc, _ = raw.step(actions)
        shared_obs, rewards, term, trunc, _ = shared.step(actions)
        assert rewards.keys() == raw_rewards.keys()
        assert set(rewards.values()) <= {sum(raw_rewards.values())}
        kills += sum(raw_rewards.values())
        assert term == raw_term and trunc == raw_trunc
        for agent in raw_obs:
            np.testing.assert_array_equal(shared_obs[agent], raw_obs[agent])
    assert kills > 0  # some zombie was killed: a step where one agent's reward was shared


def test_the_config_key_wraps_the_copies() -> None:
    """The same copy, seed and actions with and without ``env.shared_reward``: at every step
    each agent's reward is the sum of the unshared ones."""
    base = {"kind": "pettingzoo", "env_name": "pettingzoo.butterfly.knights_archers_zombies_v11"}
    base.update(env_kwargs=KAZ, workers=1)
    own_env, shared_env = (
        make_env(EnvConfig.from_dict({**base, "shared_reward": shared}), seed=1)
        for shared in (False, True)
    )
    own_env.reset_batch(seed=1)
    shared_env.reset_batch(seed=1)
    rng = np.random.default_rng(2)
    kills = 0.0
    for _ in range(300):
        actions = Action(discrete=rng.integers(6, size=len(own_env.agent_names)))
        own, shared = own_env.step_batch(actions), shared_env.step_batch(actions)
        np.testing.assert_array_equal(shared.done, own.done)
        kills += own.reward.sum()
        present = own.active | own.done  # the agents that acted at this step
        np.testing.assert_allclose(shared.reward[present], own.reward.sum())
        assert not shared.reward[~present].any()
    own_env.close()
    shared_env.close()
    assert kills > 0


def test_only_pettingzoo_envs_take_it() -> None:
    config = EnvConfig.from_dict({"kind": "gym", "env_name": "CartPole-v1", "shared_reward": True})
    with pytest.raises(ConfigError, match="shared_reward wraps a PettingZoo env"):
        make_env(config)
