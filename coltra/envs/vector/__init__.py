"""Vectorised environments: many copies of an env as one MultiAgentEnv.

Two backends share one interface (``VecEnv``): ``inprocess`` steps every copy in this
process (best for cheap envs like CartPole), ``subprocess`` spreads them over worker
processes, ``envs_per_worker`` copies each (best for envs that cost more than the
inter-process round trip, like pursuit).
"""

from __future__ import annotations

from coltra.envs.vector.base import EnvCreator, VecEnv, check_copy_count
from coltra.envs.vector.inprocess import InProcessVecEnv
from coltra.envs.vector.subprocess import SubprocVecEnv

__all__ = ["BACKENDS", "InProcessVecEnv", "SubprocVecEnv", "VecEnv", "make_vec_env"]

BACKENDS = ("inprocess", "subprocess")


def make_vec_env(
    env_fn: EnvCreator,
    workers: int = 8,
    envs_per_worker: int = 1,
    *,
    backend: str = "inprocess",
    seed: int | None = None,
    start_method: str | None = None,
    step_timeout: float | None = None,
) -> VecEnv:
    """``workers * envs_per_worker`` copies of ``env_fn()`` as one env. Copy ``i`` gets
    seed ``seed + i``."""
    workers = check_copy_count("workers", workers)
    envs_per_worker = check_copy_count("envs_per_worker", envs_per_worker)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if step_timeout is not None and (
        isinstance(step_timeout, bool)
        or not isinstance(step_timeout, int | float)
        or not step_timeout > 0
    ):
        raise ValueError(
            f"step_timeout must be a number of seconds > 0 (or None to wait forever), "
            f"got {step_timeout!r}"
        )
    env_fns = [env_fn] * (workers * envs_per_worker)
    if backend == "inprocess":
        return InProcessVecEnv(env_fns, seed=seed)
    return SubprocVecEnv(
        env_fns,
        envs_per_worker=envs_per_worker,
        seed=seed,
        start_method=start_method,
        step_timeout=step_timeout,
    )
