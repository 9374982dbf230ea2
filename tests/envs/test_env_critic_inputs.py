"""What centralised critics see: GlobalState (the env's state() as a 'state' field) and
TeamObservations (the team's observations with presence flags as a 'team' field)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from mpe2 import simple_speaker_listener_v4
from pettingzoo import ParallelEnv
from pettingzoo.sisl import pursuit_v5

from coltra.buffers import Action
from coltra.configs import ConfigError, EnvConfig
from coltra.envs import PettingZooEnv
from coltra.envs.critic_inputs import GlobalState, TeamObservations, team_by_name
from coltra.factory import make_env

pytestmark = pytest.mark.timeout(60)


def speaker_listener(**kwargs: Any) -> GlobalState:
    return GlobalState(simple_speaker_listener_v4.parallel_env(max_cycles=25, **kwargs))


def test_every_observation_carries_the_state_after_its_step() -> None:
    env = speaker_listener()
    observations, _ = env.reset(seed=3)
    for _ in range(3):
        state = env.unwrapped.state()
        for agent, parts in observations.items():
            assert sorted(parts) == ["state", "vector"]
            np.testing.assert_array_equal(parts["state"], state)
            assert env.observation_space(agent).contains(parts)
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, *_ = env.step(actions)
    # The state is the agents' own observations side by side (MPE's state()).
    np.testing.assert_array_equal(
        observations["speaker_0"]["state"],
        np.concatenate([observations[a]["vector"] for a in env.possible_agents]),
    )


def test_the_batch_view_has_a_state_row_per_agent() -> None:
    env = PettingZooEnv(speaker_listener)
    batch = env.reset_batch(seed=0)
    assert sorted(batch.obs.keys()) == [
        "listener/state",
        "listener/vector",
        "speaker/state",
        "speaker/vector",
    ]
    np.testing.assert_array_equal(batch.obs["speaker/state"][0], batch.obs["listener/state"][1])
    assert batch.obs["speaker/state"].shape == (2, 14)
    assert batch.obs["speaker/vector"].shape == (2, 3)


def test_state_rides_through_the_subprocess_backend_and_final_obs() -> None:
    config = {
        "kind": "pettingzoo",
        "env_name": "mpe2.simple_speaker_listener_v4",
        "env_kwargs": {"max_cycles": 2},
        "workers": 2,
        "backend": "subprocess",
    }
    env = make_env(EnvConfig.from_dict(config), seed=0)
    wrapped = make_env(EnvConfig.from_dict({**config, "global_state": True}), seed=0)
    try:
        plain, batch = env.reset_batch(seed=0), wrapped.reset_batch(seed=0)
        np.testing.assert_array_equal(batch.obs["listener/vector"], plain.obs["listener/vector"])
        actions = Action(
            **{
                "speaker/discrete": np.zeros(4, np.int64),
                "listener/discrete": np.zeros(4, np.int64),
            }
        )
        wrapped.step_batch(actions)
        batch = wrapped.step_batch(actions)
        assert batch.truncated.all() and batch.final_obs is not None
        final = batch.final_obs
        # Copy k's rows: speaker_0 and listener_0 of that copy see the same state.
        speaker_rows = [r for r, n in enumerate(wrapped.agent_names) if n.startswith("speaker")]
        listener_rows = [r for r, n in enumerate(wrapped.agent_names) if n.startswith("listener")]
        np.testing.assert_array_equal(
            final["speaker/state"][speaker_rows], final["listener/state"][listener_rows]
        )
        np.testing.assert_array_equal(
            final["listener/state"][listener_rows][:, 3:], final["listener/vector"][listener_rows]
        )
    finally:
        env.close()
        wrapped.close()


def test_image_observations_keep_their_field() -> None:
    env = GlobalState(pursuit_v5.parallel_env(max_cycles=5))
    space = env.observation_space("pursuer_0")
    assert sorted(space.spaces) == ["image", "state"]
    assert space["state"].shape == (16, 16, 3)
    batch = PettingZooEnv(lambda: env).reset_batch(seed=0)
    assert batch.obs["state"].shape == (8, 16 * 16 * 3)  # flattened: only "image" stays 3-D
    assert batch.obs["image"].shape == (8, 7, 7, 3)


class NoState(ParallelEnv):
    """One agent, no state()."""

    metadata: dict[str, Any] = {"name": "no_state"}
    possible_agents = ["a_0"]

    def observation_space(self, agent: str) -> gym.Space:
        return gym.spaces.Box(-1, 1, (2,))

    def action_space(self, agent: str) -> gym.Space:
        return gym.spaces.Discrete(2)


class StateInDict(NoState):
    state_space = gym.spaces.Box(-1, 1, (2,))

    def observation_space(self, agent: str) -> gym.Space:
        return gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (2,))})


def test_refusals_name_the_problem() -> None:
    with pytest.raises(TypeError, match=r"NoState gives no global state .*critic: state"):
        GlobalState(NoState())
    with pytest.raises(ValueError, match=r"'a_0' already has a 'state' part.*GlobalState"):
        GlobalState(StateInDict())
    gym_env = EnvConfig.from_dict({"env_name": "CartPole-v1", "global_state": True})
    with pytest.raises(ConfigError, match=r"env.global_state.*a gym env gives its agents"):
        make_env(gym_env)
    team_env = EnvConfig.from_dict({"env_name": "CartPole-v1", "team_observations": True})
    with pytest.raises(ConfigError, match=r"env.team_observations.*its agents a 'team'"):
        make_env(team_env)


def test_team_observations_are_the_team_side_by_side_with_presence_flags() -> None:
    from mpe2 import simple_tag_v3

    env = TeamObservations(simple_tag_v3.parallel_env(max_cycles=25))
    assert env.observation_space("adversary_0")["team"].shape == (3 * (16 + 1),)
    assert env.observation_space("agent_0")["team"].shape == (14 + 1,)
    observations, _ = env.reset(seed=0)
    team = observations["adversary_1"]["team"]
    expected = np.concatenate(
        [np.append(observations[f"adversary_{i}"]["vector"], 1.0) for i in range(3)]
    )
    np.testing.assert_array_equal(team, expected)
    np.testing.assert_array_equal(observations["adversary_0"]["team"], team)  # one per team
    np.testing.assert_array_equal(
        observations["agent_0"]["team"], np.append(observations["agent_0"]["vector"], 1.0)
    )
    assert [team_by_name(n) for n in ("adversary_0", "agent_12", "speaker", "a_b_3")] == [
        "adversary", "agent", "speaker", "a_b",
    ]  # fmt: skip


class LeavingTeam(ParallelEnv):
    """Team ``a`` of two; ``a_1`` terminates at the first step, ``a_0`` plays on."""

    metadata: dict[str, Any] = {"name": "leaving_team"}
    possible_agents = ["a_0", "a_1"]

    def observation_space(self, agent: str) -> gym.Space:
        return gym.spaces.Dict(
            {
                "vector": gym.spaces.Box(-9, 9, (2,)),
                "action_mask": gym.spaces.Box(0, 1, (2,), np.int8),
            }
        )

    def action_space(self, agent: str) -> gym.Space:
        return gym.spaces.Discrete(2)

    def _obs(self, agent: str) -> dict[str, np.ndarray]:
        row = self.possible_agents.index(agent)
        vector = np.array([self.t, row + 1], np.float32)
        return {"vector": vector, "action_mask": np.ones(2, np.int8)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple:
        self.t, self.agents = 0, list(self.possible_agents)
        return {a: self._obs(a) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple:
        self.t += 1
        done = {a: a == "a_1" for a in self.agents}
        observations = {a: self._obs(a) for a in self.agents}
        self.agents = [a for a in self.agents if not done[a]]
        zero = {a: 0.0 for a in done}
        return observations, zero, done, dict.fromkeys(done, False), {a: {} for a in done}


def test_an_absent_team_member_is_zeros_and_a_zero_flag() -> None:
    env = TeamObservations(LeavingTeam())
    observations, _ = env.reset()
    np.testing.assert_array_equal(observations["a_0"]["team"], [0, 1, 1, 0, 2, 1])  # no mask
    observations, *_ = env.step({"a_0": 0, "a_1": 0})
    np.testing.assert_array_equal(observations["a_1"]["team"], [1, 1, 1, 1, 2, 1])  # its last
    observations, *_ = env.step({"a_0": 0})
    assert list(observations) == ["a_0"]
    np.testing.assert_array_equal(observations["a_0"]["team"], [2, 1, 1, 0, 0, 0])
