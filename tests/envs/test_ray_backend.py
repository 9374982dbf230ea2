"""The Ray backend on a real local Ray cluster (``ray start --head`` on 127.0.0.1, joined by
address): the same rows as the subprocess backend for a seed (CartPole, pursuit, teams of
different spaces), training from a config with ``--ray-address``, and the failures of the
subprocess backend (a copy that raises, an actor that is killed or hangs, a copy that cannot
be built), each a clear error with no actor left running."""

from __future__ import annotations

import csv
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
import yaml
from pettingzoo.sisl import pursuit_v5
from test_env_faults import BAD_COPY, BrokenBuild, check_stopped, faulty_venv, step_twice

from coltra.buffers import Action
from coltra.configs import ConfigError
from coltra.envs import EnvCrashedError, MultiAgentEnv, MultiGymEnv, PettingZooEnv, VecEnv
from coltra.envs.probe_envs import TwoTeamsEnv
from coltra.envs.spaces import LayoutActions

AssertGone = Callable[[Iterable[int]], None]

pytestmark = pytest.mark.usefixtures("ray_cluster")


def random_actions(env: MultiAgentEnv, rng: np.random.Generator) -> Action:
    """Legal random actions for every row of ``env`` (Discrete blocks), whatever its blocks."""
    rows = len(env.agent_names)
    codecs = LayoutActions(env.layout).codecs
    return Action(
        **{
            codec.field: rng.integers(0, int(block.action_space.n), rows)  # type: ignore[attr-defined]
            for codec, block in zip(codecs, env.layout.blocks, strict=True)
        }
    )


def rollout(env: VecEnv, steps: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Every array the env returns over ``steps`` random steps (autoresets included)."""
    rng = np.random.default_rng(seed)
    batch = env.reset_batch(seed=seed)
    records = []
    for _ in range(steps):
        batch = env.step_batch(random_actions(env, rng))
        record = {f"obs/{k}": v.copy() for k, v in batch.obs.items()}
        record |= {"reward": batch.reward, "done": batch.done, "active": batch.active}
        if batch.final_obs is not None:
            record |= {f"final/{k}": v for k, v in batch.final_obs.items()}
        records.append(record)
    env.close()
    return records


def assert_same(first: list[dict[str, np.ndarray]], second: list[dict[str, np.ndarray]]) -> None:
    assert len(first) == len(second)
    for step, (a, b) in enumerate(zip(first, second, strict=True)):
        assert a.keys() == b.keys(), step
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"step {step}, {key}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("build", "steps"),
    [
        (lambda backend: MultiGymEnv.get_venv(2, 2, backend=backend, env_name="CartPole-v1"), 60),
        (
            lambda backend: PettingZooEnv.get_venv(
                2, 1, backend=backend, env_fn=pursuit_v5.parallel_env, max_cycles=20
            ),
            25,
        ),
        (
            lambda backend: TwoTeamsEnv.get_venv(
                2, 2, backend=backend, team_a=2, team_b=1, episode_length=3
            ),
            10,
        ),
    ],
    ids=["cartpole", "pursuit", "two-teams"],
)
def test_same_rows_as_the_subprocess_backend(
    build: Callable[[str], VecEnv], steps: int, assert_gone: AssertGone
) -> None:
    ray_env = build("ray")
    assert type(ray_env).__name__ == "RayVecEnv"
    pids = list(ray_env.pids)  # type: ignore[attr-defined]
    assert len(pids) == 2
    names, blocks = ray_env.agent_names, ray_env.layout
    records = rollout(ray_env, steps, seed=7)
    assert_gone(pids)  # close() stops every actor
    subprocess_env = build("subprocess")
    assert subprocess_env.agent_names == names
    assert [b.prefix for b in subprocess_env.layout.blocks] == [b.prefix for b in blocks.blocks]
    assert_same(records, rollout(subprocess_env, steps, seed=7))


@pytest.mark.timeout(60)
def test_a_copy_that_raises_is_named_with_the_actor_traceback(assert_gone: AssertGone) -> None:
    env = faulty_venv("step", "ray", workers=2, envs_per_worker=2)
    pids = list(env.pids)  # type: ignore[attr-defined]
    env.reset()
    with pytest.raises(EnvCrashedError) as caught:
        step_twice(env)
    message = str(caught.value)
    assert "env copy 2 raised in step: ValueError: step failure in the bad copy" in message
    assert "--- traceback in Ray env actor 1 (copies 2-3" in message and "in step_batch" in message
    assert (caught.value.env_index, caught.value.phase) == (BAD_COPY, "step")
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(60)
def test_a_failing_autoreset_is_a_reset_crash(assert_gone: AssertGone) -> None:
    env = faulty_venv("reset", "ray")
    pids = list(env.pids)  # type: ignore[attr-defined]
    env.reset()
    with pytest.raises(EnvCrashedError, match="env copy 2 raised in reset") as caught:
        step_twice(env)
    assert caught.value.phase == "reset"
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_an_actor_that_dies_mid_run_is_a_clear_error(how: str, assert_gone: AssertGone) -> None:
    env = faulty_venv("exit" if how == "exit" else "none", "ray", workers=2, envs_per_worker=2)
    pids = list(env.pids)  # type: ignore[attr-defined]
    env.reset()
    if how == "sigkill":
        os.kill(pids[1], signal.SIGKILL)  # the actor of copies 2-3, killed from outside
    with pytest.raises(EnvCrashedError) as caught:
        step_twice(env)
    message = str(caught.value)
    assert "Ray env actor 1 (copies 2-3" in message and "died during step" in message
    assert "its env copies are lost and every actor was stopped" in message
    assert caught.value.env_index == BAD_COPY
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(60)
def test_a_hung_actor_times_out(assert_gone: AssertGone) -> None:
    env = faulty_venv("hang", "ray", step_timeout=1.0)
    pids = list(env.pids)  # type: ignore[attr-defined]
    env.reset()
    with pytest.raises(EnvCrashedError) as caught:
        step_twice(env)
    assert "Ray env actor 2 (copy 2" in str(caught.value)
    assert "did not answer step within 1.0 s (step_timeout)" in str(caught.value)
    check_stopped(env, pids, assert_gone)


@pytest.mark.timeout(60)
def test_a_copy_that_cannot_be_built_keeps_its_error() -> None:
    with pytest.raises(ValueError, match="cannot build this env") as caught:
        BrokenBuild.get_venv(2, backend="ray")
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "traceback in Ray env actor 0" in notes


def test_an_unpicklable_creator_starts_no_actor() -> None:
    import threading

    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot be sent to Ray actors"):
        MultiGymEnv.get_venv(2, backend="ray", env_fn=lambda: (lock, MultiGymEnv("CartPole-v1")))


def test_more_cpus_than_the_cluster_has_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match=r"4 Ray actors x 3 CPUs each need 12 CPUs, the Ray cl"):
        MultiGymEnv.get_venv(4, backend="ray", env_name="CartPole-v1", ray_num_cpus=3)


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "env",
    [
        {"kind": "gym", "env_name": "CartPole-v1", "workers": 2, "envs_per_worker": 2},
        {
            "kind": "pettingzoo",
            "env_name": "pettingzoo.sisl.pursuit_v5",
            "env_kwargs": {"max_cycles": 30},
            "workers": 2,
            "envs_per_worker": 1,
        },
    ],
    ids=["cartpole", "pursuit"],
)
def test_training_on_the_cluster_matches_the_subprocess_backend(
    env: dict[str, object], ray_cluster: str, tmp_path: Path
) -> None:
    """``coltra train --ray-address`` trains, and every learning metric equals those of the
    same run on subprocess workers (same seed: same rollouts, so the same updates)."""
    from coltra.cli import main

    config = {
        "trainer": {"name": "ray", "steps": 32, "iterations": 3, "seed": 3},
        "env": env,
        "model": {"hidden_sizes": [32]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    ray_run, local_run = tmp_path / "ray", tmp_path / "local"
    args = ["train", "-c", str(path), "--no-progress", "--run-dir"]
    assert main([*args, str(ray_run), "--ray-address", ray_cluster]) == 0
    # Without overlapped collection, which the Ray backend does not do (it changes the
    # order of the forward passes, so the actions sampled).
    local = ["--set", "env.backend=subprocess", "env.overlap=false"]
    assert main([*args, str(local_run), *local]) == 0
    recorded = yaml.safe_load((ray_run / "config.yaml").read_text())["env"]
    assert (recorded["backend"], recorded["ray_address"]) == ("ray", ray_cluster)
    ray_rows, local_rows = _metrics(ray_run), _metrics(local_run)
    assert len(ray_rows) == len(local_rows) == 3
    compared = [
        key
        for key in ray_rows[0]
        if ("losses/" in key or "episode_return" in key or key.endswith("steps"))
        and "time" not in key
    ]
    assert any("policy_loss" in key for key in compared)
    for ray_row, local_row in zip(ray_rows, local_rows, strict=True):
        assert {k: ray_row[k] for k in compared} == {k: local_row[k] for k in compared}


def test_a_ray_address_without_the_ray_backend_is_a_config_error(tmp_path: Path) -> None:
    from coltra.configs import RunConfig
    from coltra.factory import make_env

    cfg = RunConfig.from_dict(
        {"env": {"kind": "gym", "env_name": "CartPole-v1", "ray_address": "127.0.0.1:1"}}
    )
    with pytest.raises(ConfigError, match=r"env\.ray_address: ray_address '127.0.0.1:1' is for"):
        make_env(cfg.env)  # type: ignore[arg-type]
