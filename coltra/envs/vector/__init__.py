"""Vectorised environments: many copies of an env as one MultiAgentEnv.

Three backends share one interface (``VecEnv``): ``inprocess`` steps every copy in this
process (best for cheap envs like CartPole), ``subprocess`` spreads them over worker
processes, ``envs_per_worker`` copies each (best for envs that cost more than the
inter-process round trip, like pursuit), and ``ray`` over Ray actors, on this machine or a
cluster (for envs that cost more than a Ray call, or more cores than one machine has).
"""

from __future__ import annotations

from coltra.envs.vector.base import EnvCreator, VecEnv, check_copy_count
from coltra.envs.vector.inprocess import InProcessVecEnv
from coltra.envs.vector.subprocess import SubprocVecEnv

__all__ = ["BACKENDS", "InProcessVecEnv", "SubprocVecEnv", "VecEnv", "make_vec_env"]

BACKENDS = ("inprocess", "subprocess", "ray")


def make_vec_env(
    env_fn: EnvCreator,
    workers: int = 8,
    envs_per_worker: int = 1,
    *,
    backend: str = "inprocess",
    seed: int | None = None,
    start_method: str | None = None,
    step_timeout: float | None = None,
    ray_address: str | None = None,
    ray_num_cpus: float = 1.0,
    shared_memory: bool = False,
) -> VecEnv:
    """``workers * envs_per_worker`` copies of ``env_fn()`` as one env. Copy ``i`` gets
    seed ``seed + i``. ``ray_address`` (a cluster's, None = a local Ray session) and
    ``ray_num_cpus`` (CPUs each actor reserves) apply to the ray backend, ``shared_memory``
    (results through shared memory, not pipes) to the subprocess backend."""
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
    if shared_memory and backend != "subprocess":
        raise ValueError(
            f"shared_memory=True is for the subprocess backend's workers, got backend {backend!r}"
        )
    env_fns = [env_fn] * (workers * envs_per_worker)
    if backend == "inprocess":
        return InProcessVecEnv(env_fns, seed=seed)
    if backend == "ray":
        from coltra.envs.vector.ray_backend import RayVecEnv  # imports Ray: only when used

        return RayVecEnv(
            env_fns,
            envs_per_worker=envs_per_worker,
            seed=seed,
            step_timeout=step_timeout,
            address=ray_address,
            num_cpus=ray_num_cpus,
        )
    return SubprocVecEnv(
        env_fns,
        envs_per_worker=envs_per_worker,
        seed=seed,
        start_method=start_method,
        step_timeout=step_timeout,
        shared_memory=shared_memory,
    )
