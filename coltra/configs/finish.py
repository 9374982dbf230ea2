"""The run config in force, finished in one place before anything uses it.

A config as written leaves some values to the run: ``trainer.seed: null`` (draw one),
``trainer.run_dir: null`` (a new ``runs/<name>_<timestamp>``), ``ppo.anneal_iterations: null``
(anneal over the whole run). :func:`finish_run_config` fixes them all and derives
``ppo.seed`` from ``trainer.seed``; the result is what the run uses and what its
``config.yaml`` records, and nothing edits it afterwards. A resumed or extended run gets its
config from :func:`resume_run_config` / :func:`extend_run_config`, which say in notes what
they changed.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from coltra.configs.errors import ConfigError
from coltra.configs.sections import RunConfig

__all__ = [
    "check_same_setup",
    "draw_seed",
    "extend_run_config",
    "finish_run_config",
    "first_difference",
    "resume_run_config",
]

#: Env keys that decide what the agents see and do; the others (copies, backend) may change
#: when a run is resumed.
SETUP_ENV_KEYS = ("kind", "env_name", "env_kwargs")


def draw_seed() -> int:
    """A fresh seed from the OS's entropy, for ``trainer.seed: null``."""
    return int(np.random.SeedSequence().generate_state(1)[0]) % 2**31


def finish_run_config(
    config: RunConfig, *, built_in_python: bool = False, now: datetime | None = None
) -> RunConfig:
    """``config`` with every value the run leaves open fixed: the seed drawn (and recorded),
    ``ppo.seed`` = ``trainer.seed``, the annealing length, the run directory's path (a new
    one is not created here). ``built_in_python``: the agents and env were not built from
    the config, so its ``model`` and ``env`` sections are recorded as null."""
    trainer = config.trainer
    seed = trainer.seed if trainer.seed is not None else draw_seed()
    run_dir = trainer.run_dir if trainer.run_dir is not None else _new_run_dir(trainer.name, now)
    changes: dict[str, Any] = {
        "trainer": {"seed": seed, "run_dir": run_dir},
        "ppo": {"seed": seed, "anneal_iterations": _schedule_length(config)},
    }
    if built_in_python:
        if config.policies:
            raise ConfigError(
                "describes the policies a config builds, but this group was built in Python: "
                "give PPOCrowdTrainer policy_ppo= and snapshots= instead, or build the run "
                "with PPOCrowdTrainer.from_config",
                key="policies",
            )
        changes.update(model=None, env=None)
    return config.update(changes)


def resume_run_config(
    saved: RunConfig, requested: RunConfig, run_dir: Path
) -> tuple[RunConfig, list[str]]:
    """The config of a run resumed in ``run_dir``: ``requested`` (usually the saved config
    with the user's changes) in the saved run's directory, refused if it changes the env or
    the model. Returns it with notes for the person resuming: a changed seed, the annealing
    schedule (see :func:`extend_run_config`)."""
    check_same_setup(saved, requested, run_dir)
    seed = requested.trainer.seed if requested.trainer.seed is not None else saved.trainer.seed
    config = requested.update(
        {
            "trainer": {"run_dir": str(run_dir), "seed": seed},
            "ppo": {"seed": seed},
        }
    )
    if config.ppo.anneal_iterations is None:  # a config file that leaves it to the run
        config = config.update({"ppo": {"anneal_iterations": _schedule_length(config)}})
    config, notes = _extended(saved, config)
    if seed != saved.trainer.seed:
        notes.insert(0, f"trainer.seed is now {seed} (the run was seeded {saved.trainer.seed})")
    return config, notes


def extend_run_config(config: RunConfig, iterations: int) -> tuple[RunConfig, list[str]]:
    """``config`` of a run that goes on to ``iterations`` in all (``train(n)`` past the
    planned end); notes say what happened to the learning-rate schedule."""
    return _extended(config, config.update({"trainer": {"iterations": iterations}}))


def _extended(before: RunConfig, after: RunConfig) -> tuple[RunConfig, list[str]]:
    """A schedule that spanned the whole run (``anneal_iterations`` = the run's length,
    unchanged by the user) grows with it; notes say when the schedule changed, or when it
    ends before the run does and the learning rate is 0 from there."""
    notes: list[str] = []
    anneals = _any_anneals(after)
    old_total, new_total = before.trainer.iterations, after.trainer.iterations
    old_length = before.ppo.anneal_iterations
    if anneals and new_total > old_total and after.ppo.anneal_iterations == old_total == old_length:
        after = after.update({"ppo": {"anneal_iterations": new_total}})
    length = after.ppo.anneal_iterations
    if anneals and old_length is not None and length != old_length:
        notes.append(
            f"the annealing schedule now runs over {length} iterations (was {old_length}; "
            "ppo.anneal_iterations)"
        )
    if after.ppo.anneal_lr and length is not None and new_total > length:
        notes.append(
            f"the learning rate anneals to 0 by iteration {length} (ppo.anneal_iterations), "
            f"so the iterations after it do not change the weights; set "
            f"ppo.anneal_iterations={new_total} to keep learning"
        )
    return after, notes


def check_same_setup(saved: RunConfig, new: RunConfig, run_dir: Path) -> None:
    """Refuse to resume a run with a different env or model than it was trained with."""
    pairs: list[tuple[str, Any, Any]] = [
        ("model", _plain(saved.model), _plain(new.model)),
        ("env", _setup_keys(saved), _setup_keys(new)),
        ("policies", _policy_setup(saved), _policy_setup(new)),
    ]
    for section, old, current in pairs:
        found = first_difference(old, current, section)
        if found:
            key, was, now = found
            raise ConfigError(
                f"the run in {run_dir} was trained with {json.dumps(was)}, this config has "
                f"{json.dumps(now)}; a run resumes with the env and model it was trained with",
                key=key,
            )


def _plain(section: Any) -> Any:
    return None if section is None else section.to_dict()


def _setup_keys(config: RunConfig) -> dict[str, Any] | None:
    if config.env is None:
        return None
    env = config.env.to_dict()
    return {key: env[key] for key in SETUP_ENV_KEYS}


def _policy_setup(config: RunConfig) -> dict[str, Any]:
    """What each policy is: its agents and its model (its PPO keys may change on resume;
    init_from matters only at the start, a resumed run loads its own checkpoint)."""
    return {
        name: {"agents": policy.prefixes(name), "model": _plain(policy.model)}
        for name, policy in config.policies.items()
    }


def first_difference(a: Any, b: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first key path where two plain-data trees differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [key for key in b if key not in a]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                return sub, a.get(key, "<missing>"), b.get(key, "<missing>")
            found = first_difference(a[key], b[key], sub)
            if found:
                return found
        return None
    return None if a == b else (path, a, b)


def _schedule_length(config: RunConfig) -> int | None:
    """``ppo.anneal_iterations``, or the whole run when the config (or a policy's own PPO
    keys) anneals without one."""
    ppo = config.ppo
    if ppo.anneal_iterations is not None:
        return ppo.anneal_iterations
    return config.trainer.iterations if _any_anneals(config) else None


def _any_anneals(config: RunConfig) -> bool:
    """The run's PPO config, or one policy's, anneals its learning rate or entropy weight."""
    base = config.ppo.to_dict()
    return any(
        bool(ppo["anneal_lr"]) or ppo["ent_coef_final"] is not None
        for ppo in [base, *({**base, **policy.ppo} for policy in config.policies.values())]
    )


def _new_run_dir(name: str, now: datetime | None) -> str:
    """``runs/<name>_<YYYYmmdd-HHMMSS>``, with a suffix when that exists already (two runs
    started in the same second)."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"expected a run name usable in a directory name (no '/'), got {name!r} (or set "
            "trainer.run_dir)",
            key="trainer.name",
        )
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}_{stamp}"
    suffix = 2
    while path.exists():
        path = Path("runs") / f"{name}_{stamp}-{suffix}"
        suffix += 1
    return str(path)
