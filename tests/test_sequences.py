"""Training sequences of recurrent policies (issue 17): the split of a rollout, and that the
stored first states and resets give back collection's log-probabilities and values exactly
before the first gradient step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from coltra.buffers import Action, MemoryRecord, Observation
from coltra.collectors import CrowdCollector
from coltra.configs import ConfigError, PPOConfig, RunConfig
from coltra.envs import MultiAgentEnv
from coltra.factory import make_env, make_group
from coltra.groups import MacroAgent
from coltra.policy_optimization import CrowdPPOptimizer
from coltra.sequences import SequenceMinibatches, sequences_per_minibatch, split_sequences
from coltra.trainers import PPOCrowdTrainer

pytestmark = pytest.mark.timeout(300)


def hand_record(mask: np.ndarray, starts: np.ndarray, every: int) -> MemoryRecord:
    agents, steps = mask.shape
    zeros = np.zeros((agents, steps), np.float32)
    # State part 0 holds, for row a at kept step j, the number 10 * a + j.
    kept = -(-steps // every)
    state = (10 * np.arange(agents)[:, None] + np.arange(kept)).astype(np.float32)[..., None]
    return MemoryRecord(
        obs=Observation(vector=zeros[..., None]),
        action=Action(discrete=zeros.astype(np.int64)),
        logprob=zeros,
        reward=zeros,
        value=zeros,
        terminated=np.zeros((agents, steps), bool),
        truncated=np.zeros((agents, steps), bool),
        mask=mask,
        bootstrap_value=zeros,
        last_value=np.zeros(agents, np.float32),
        episode_start=starts,
        initial_state=(state,),
        state_every=every,
    )


def test_pieces_without_a_trained_step_are_left_out_and_padding_resets() -> None:
    mask = np.array([[1, 1, 1, 1, 1], [0, 0, 1, 1, 0]], bool)
    starts = np.array([[1, 0, 0, 1, 0], [1, 1, 1, 0, 1]], bool)
    sequences = split_sequences(hand_record(mask, starts, every=2), 2)
    # Row 1's steps 0-1 and its step 4 (+ padding) train nothing: left out.
    assert sequences.entries.tolist() == [[0, 1], [2, 3], [4, 4], [7, 8]]
    assert sequences.valid.tolist() == [[True, True], [True, True], [True, False], [True, True]]
    assert sequences.starts.tolist() == [[True, False], [False, True], [False, True], [True, False]]
    # The state of each piece is the one kept at its first step (every 2 steps: j = t / 2).
    assert sequences.state[0][:, 0].tolist() == [0.0, 1.0, 2.0, 11.0]


def test_pieces_must_start_where_the_collector_kept_a_state() -> None:
    record = hand_record(np.ones((1, 4), bool), np.zeros((1, 4), bool), every=4)
    with pytest.raises(ValueError, match="sequence_length 2 is not a multiple of 4"):
        split_sequences(record, 2)
    plain = hand_record(np.ones((1, 4), bool), np.zeros((1, 4), bool), every=1)
    plain.initial_state = ()
    with pytest.raises(ValueError, match="not collected with a recurrent policy"):
        split_sequences(plain, 2)


def test_minibatches_are_whole_sequences() -> None:
    assert sequences_per_minibatch(PPOConfig(num_minibatches=4), 10) == 2
    assert sequences_per_minibatch(PPOConfig(minibatch_size=64, sequence_length=16), 10) == 4
    assert sequences_per_minibatch(PPOConfig(minibatch_size=8, sequence_length=16), 10) == 1
    with pytest.raises(ConfigError) as error:
        sequences_per_minibatch(PPOConfig(num_minibatches=8, sequence_length=16), 5)
    assert str(error.value) == (
        "ppo.num_minibatches: 8 minibatches do not fit in the 5 sequences of 16 steps "
        "collected per iteration (a recurrent policy trains on whole sequences)"
    )


def recurrent_run(env: dict[str, Any], model: dict[str, Any]) -> RunConfig:
    return RunConfig.from_dict(
        {
            "trainer": {"steps": 10, "seed": 0, "progress": False},
            "model": {"hidden_sizes": [16], "recurrent_size": 8, **model},
            "env": {"workers": 2, "backend": "inprocess", **env},
        }
    )


@contextmanager
def group_and_env(config: RunConfig) -> Iterator[tuple[MacroAgent, MultiAgentEnv]]:
    """The config's env (seed 0) and its group, the env closed afterwards. Torch is seeded
    too: the actions sampled, and so which agents die when, do not depend on the tests that
    ran before."""
    torch.manual_seed(0)
    env = make_env(config.env, seed=0)  # type: ignore[arg-type]
    try:
        yield make_group(config, env), env
    finally:
        env.close()


def assert_sequences_give_back_collection(
    group: MacroAgent, records: dict[str, MemoryRecord]
) -> None:
    for policy, record in records.items():
        agent = group.policies[policy]
        sequences = SequenceMinibatches(record, 4, torch.device("cpu"))
        with torch.no_grad():
            index, logprob, value, _ = sequences.evaluate(agent, torch.arange(len(sequences)))
        valid = record.mask.reshape(-1)
        assert sorted(index.tolist()) == list(range(int(valid.sum())))  # every sample once
        expected_logprob = record.logprob.reshape(-1)[valid][index.numpy()]
        expected_value = record.value.reshape(-1)[valid][index.numpy()]
        np.testing.assert_allclose(logprob.numpy(), expected_logprob, rtol=0, atol=1e-5)
        np.testing.assert_allclose(value.numpy(), expected_value, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stored_states_and_resets_reproduce_collection_on_the_memory_probe(kind: str) -> None:
    """Two copies of 3 agents, episodes of 3 steps, rollouts of 10 steps (pieces of 4,
    the last padded): the second rollout starts from the state the first left."""
    config = recurrent_run(
        {"kind": "probe", "env_name": "memory", "env_kwargs": {"num_agents": 3, "delay": 2}},
        {"recurrent": kind},
    )
    with group_and_env(config) as (group, env):
        collector = CrowdCollector(group, env, seed=0, state_every=4)
        for rollout in range(2):
            records, _, _ = collector.collect(10)
            record = records["crowd"]
            # Episodes of 3 steps: the state was reset before steps 0, 3, 6, 9 of the first
            # rollout and 2, 5, 8 of the second (steps 12, 15, 18); it was kept at 0, 4, 8.
            reset_at = [0, 3, 6, 9] if rollout == 0 else [2, 5, 8]
            assert record.episode_start is not None
            assert record.episode_start.tolist() == [
                [t in reset_at for t in range(10)] for _ in range(6)
            ]
            parts = 4 if kind == "lstm" else 2  # (h, c) or h, of the policy and value cores
            assert [part.shape for part in record.initial_state] == [(6, 3, 8)] * parts
            # The state before step 0: zeros in the first rollout, carried on in the second.
            for part in record.initial_state:
                assert (part[:, 0] == 0).all() == (rollout == 0)
            assert_sequences_give_back_collection(group, records)


def test_with_agents_that_die_masks_and_a_recurrent_state_critic() -> None:
    """knights_archers_zombies: agents die mid-rollout (masked, their state reset), two
    policies with a recurrent critic on the env's global state."""
    config = recurrent_run(
        {
            "kind": "pettingzoo",
            "env_name": "pettingzoo.butterfly.knights_archers_zombies_v11",
            "env_kwargs": {"max_cycles": 150, "spawn_delay": 2, "line_death": True},
            "workers": 1,
            "global_state": True,
        },
        {"recurrent": "lstm", "critic": "state"},
    )
    config = config.update({"policies": {"archer": {}, "knight": {}}})
    with group_and_env(config) as (group, env):
        collector = CrowdCollector(group, env, seed=0, state_every=4)
        died = False
        for _ in range(8):
            records, _, _ = collector.collect(20)
            assert_sequences_give_back_collection(group, records)
            died |= any(not record.mask.all() for record in records.values())
        assert died, "no agent died in 160 steps"


def test_masked_actions_with_a_recurrent_policy() -> None:
    config = recurrent_run({"kind": "probe", "env_name": "masked"}, {"recurrent": "gru"})
    with group_and_env(config) as (group, env):
        collector = CrowdCollector(group, env, seed=0, state_every=4)
        records, _, _ = collector.collect(12)
        assert_sequences_give_back_collection(group, records)
        mask = records["crowd"].obs["action_mask"]
        taken = records["crowd"].action["discrete"]
        assert np.take_along_axis(mask, taken[..., None], -1).all()  # never an illegal one


def test_the_first_update_starts_at_ratio_one(tmp_path: Path) -> None:
    """PPO on sequences: the first minibatch's approx KL is 0 (the log-probabilities it
    recomputes are collection's), and training changes the weights."""
    config = recurrent_run(
        {"kind": "probe", "env_name": "memory", "env_kwargs": {"num_agents": 2}},
        {"recurrent": "lstm"},
    )
    with group_and_env(config) as (group, env):
        optimizer = CrowdPPOptimizer(
            group, {"epochs": 1, "num_minibatches": 1, "sequence_length": 4, "lr": 1e-3}
        )
        collector = CrowdCollector(group, env, seed=0, state_every=4)
        records, _, shape = collector.collect(16)
        before = [p.detach().clone() for p in group.policies["crowd"].parameters()]
        metrics = optimizer.train_on_data(records, shape)
        assert metrics["losses/approx_kl"] == pytest.approx(0.0, abs=1e-7)
        assert metrics["losses/updates"] == 1.0
        after = list(group.policies["crowd"].parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_a_recurrent_policy_solves_the_memory_probe_a_feed_forward_one_cannot(
    tmp_path: Path,
) -> None:
    """The sign is hidden for 3 steps before it must be acted on: the optimal return is 1
    exactly; without memory the last observation says nothing (1/2 expected)."""

    def final_score(recurrent: str) -> float:
        config = RunConfig.from_dict(
            {
                "trainer": {
                    "run_dir": str(tmp_path / recurrent), "steps": 32, "iterations": 40,
                    "seed": 0, "progress": False, "save_every": 40, "eval_episodes": 64,
                },
                "ppo": {"lr": 3e-3, "epochs": 4, "num_minibatches": 2, "ent_coef": 0.01,
                        "sequence_length": 8},
                "model": {"hidden_sizes": [32], "recurrent": recurrent, "recurrent_size": 32},
                "env": {"kind": "probe", "env_name": "memory", "workers": 2,
                        "backend": "inprocess", "env_kwargs": {"num_agents": 4, "delay": 3}},
            }
        )  # fmt: skip
        with PPOCrowdTrainer.from_config(config) as trainer:
            summary = trainer.train()
        return summary["eval/return_mean"]

    assert final_score("gru") == 1.0
    assert final_score("none") < 0.8


def test_too_few_sequences_for_the_minibatches_is_refused_before_the_run() -> None:
    config = RunConfig.from_dict(
        {
            "trainer": {"steps": 16, "progress": False},
            "ppo": {"num_minibatches": 4, "sequence_length": 32},
            "model": {"recurrent": "gru"},
            "env": {"kind": "probe", "env_name": "memory", "workers": 2, "backend": "inprocess"},
        }
    )
    with pytest.raises(ConfigError) as error:
        PPOCrowdTrainer.from_config(config)
    assert str(error.value) == (
        "ppo.num_minibatches: policy 'crowd': 4 minibatches do not fit in the 2 sequences of "
        "32 steps collected per iteration (a recurrent policy trains on whole sequences) "
        "(trainer.steps 16, 2 agent rows)"
    )


def test_a_rollout_with_fewer_sequences_than_minibatches_trains_on_what_there_is() -> None:
    """Pieces in which every agent was absent are left out, so the sequences of a rollout
    vary (KAZ: dead agents); the update then cuts its minibatches to fit, with a warning."""
    config = recurrent_run(
        {"kind": "probe", "env_name": "memory", "env_kwargs": {"num_agents": 2}},
        {"recurrent": "gru"},
    )
    with group_and_env(config) as (group, env):
        optimizer = CrowdPPOptimizer(
            group, {"epochs": 2, "num_minibatches": 4, "sequence_length": 4}
        )
        records, _, shape = CrowdCollector(group, env, seed=0, state_every=4).collect(8)
        record = records["crowd"]  # 4 rows x 2 pieces
        record.mask[1:] = False  # only row 0 trains: 2 sequences
        with pytest.warns(UserWarning, match="only 2 sequences with steps to train on"):
            metrics = optimizer.train_on_data(records, shape)
        assert metrics["losses/updates"] == 4.0  # 2 epochs x 2 minibatches of one sequence
