"""coltra.evaluation.evaluate: whole episodes, deterministic acting, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from coltra.agents import ConstantAgent, RandomAgent
from coltra.buffers import Action
from coltra.envs import MultiGymEnv
from coltra.envs.probe_envs import ActionRewardEnv, ConstantRewardEnv
from coltra.envs.vector import InProcessVecEnv
from coltra.evaluation import episodes_per_row, evaluate, evaluate_episodes
from coltra.groups import HomogeneousGroup


def test_returns_of_whole_episodes_on_a_plain_env() -> None:
    env = ConstantRewardEnv(num_agents=2, episode_length=4)
    agents = HomogeneousGroup(ConstantAgent(Action(discrete=np.int64(0))))
    np.testing.assert_array_equal(evaluate(agents, env, 5), [4.0] * 5)


def test_the_policy_decides_the_return() -> None:
    env = ActionRewardEnv(num_agents=3)
    paying = HomogeneousGroup(ConstantAgent(Action(discrete=np.int64(1))))
    idle = HomogeneousGroup(ConstantAgent(Action(discrete=np.int64(0))))
    assert evaluate(paying, env, 6).tolist() == [1.0] * 6
    assert evaluate(idle, env, 6).tolist() == [0.0] * 6


def test_vectorised_cartpole_episodes_are_counted_once_each() -> None:
    env = MultiGymEnv.get_venv(2, env_name="CartPole-v1", max_episode_steps=20)
    agents = HomogeneousGroup(RandomAgent(env.action_space, seed=0))
    returns = evaluate(agents, env, 6, seed=0)
    assert returns.shape == (6,)
    assert ((returns >= 1) & (returns <= 20)).all()
    env.close()


def test_bad_episode_count() -> None:
    env = ConstantRewardEnv()
    agents = HomogeneousGroup(ConstantAgent(Action(discrete=np.int64(0))))
    with pytest.raises(ValueError, match="num_episodes must be a whole number >= 1, got 0"):
        evaluate(agents, env, 0)


def short_and_long_copies() -> InProcessVecEnv:
    """Copy 0's episodes last 1 step, copy 1's 3 steps; reward 1 per step."""
    return InProcessVecEnv(
        [lambda: ConstantRewardEnv(episode_length=1), lambda: ConstantRewardEnv(episode_length=3)]
    )


def test_every_row_plays_its_share_so_short_episodes_are_not_favoured() -> None:
    agents = HomogeneousGroup(ConstantAgent(Action(discrete=np.int64(0))))
    # Episode 0 of each row, then episode 1 of each row. Taking the first 4 episodes to end
    # would give [1, 1, 1, 3]: copy 0 ends three episodes while copy 1 plays one.
    played = evaluate_episodes(agents, short_and_long_copies(), 4)
    assert played.returns.tolist() == [1.0, 3.0, 1.0, 3.0]
    assert played.lengths.tolist() == [1, 3, 1, 3]
    assert evaluate(agents, short_and_long_copies(), 3).tolist() == [1.0, 3.0, 1.0]


def test_episodes_that_never_end_are_an_error_naming_the_count() -> None:
    env = ConstantRewardEnv(episode_length=50)
    agents = HomogeneousGroup(ConstantAgent(Action(discrete=np.int64(0))))
    with pytest.raises(RuntimeError, match="only 0 of the 2 episodes it waits for end in 10 steps"):
        evaluate(agents, env, 2, max_steps=10)


def test_episodes_are_dealt_out_over_the_rows_in_order() -> None:
    assert episodes_per_row(10, 4).tolist() == [3, 3, 2, 2]
    assert episodes_per_row(3, 5).tolist() == [1, 1, 1, 0, 0]
    assert episodes_per_row(20, 4).tolist() == [5, 5, 5, 5]
