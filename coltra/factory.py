"""Build the environment and the group a :class:`~coltra.configs.RunConfig` describes.

``make_env(config.env, seed)`` and ``make_agents(config.model, env)`` are what the command
line and :meth:`coltra.trainers.PPOCrowdTrainer.from_config` use; call them yourself to get
the same env and group in a notebook. ``model.class`` picks the model among those
registered with :func:`coltra.agents.register_model`. Every problem with the config (an
unknown env id, a PettingZoo module that does not exist, env keywords the env does not
take, model sizes that contradict the env) is a :class:`~coltra.configs.ConfigError`
naming the key.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from coltra.agents import Agent, CAgent, DAgent
from coltra.configs import ConfigError, EnvConfig, ModelConfig, RunConfig
from coltra.envs import MultiAgentEnv, MultiGymEnv, PettingZooEnv
from coltra.envs.probe_envs import PROBE_ENVS
from coltra.groups import HomogeneousGroup
from coltra.models import build_model

__all__ = [
    "RunParts",
    "eval_env_config",
    "make_agents",
    "make_env",
    "make_parts",
    "pettingzoo_env_fn",
]

#: More evaluation episodes than this many env copies are played in turns.
MAX_EVAL_COPIES = 32

# A config file names a module to import; only PettingZoo's own modules may be imported, so a
# config cannot make Coltra import (and so run) arbitrary code.
_PETTINGZOO_MODULE = re.compile(r"pettingzoo(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class RunParts:
    """What a training run built from a config trains with: the env (copies seeded from
    ``trainer.seed``), the group, a function that builds the evaluation env, and one that
    builds a fresh env from a seed (to replace a crashed one)."""

    env: MultiAgentEnv
    group: HomogeneousGroup
    eval_env: Callable[[], MultiAgentEnv]
    env_factory: Callable[[int | None], MultiAgentEnv]


def make_parts(config: RunConfig) -> RunParts:
    """The env and group of ``config`` (which must describe both: a run built in Python
    records them as null), built in that order."""
    env_cfg, model_cfg = config.env, config.model
    if env_cfg is None or model_cfg is None:
        raise ConfigError(
            "this run was built in Python (its config.yaml records no env and model): resume "
            "it in Python with PPOCrowdTrainer.resume(run_dir, agents, env)",
            key="env" if env_cfg is None else "model",
        )
    env = make_env(env_cfg, seed=config.trainer.seed)
    try:
        group = make_agents(model_cfg, env)
        eval_cfg = eval_env_config(env_cfg, env, config.trainer.eval_episodes)
    except BaseException:
        env.close()
        raise
    return RunParts(
        env,
        group,
        eval_env=lambda: make_env(eval_cfg, seed=None),
        env_factory=lambda seed: make_env(env_cfg, seed=seed),
    )


def make_env(env_cfg: EnvConfig, seed: int | None = None) -> MultiAgentEnv:
    """The vectorised env of ``env_cfg``: ``workers * envs_per_worker`` copies, copy ``i``
    seeded ``seed + i`` at its first reset."""
    vec_kwargs: dict[str, Any] = {
        "workers": env_cfg.workers,
        "envs_per_worker": env_cfg.envs_per_worker,
        "backend": None if env_cfg.backend == "auto" else env_cfg.backend,
        "seed": seed,
        "step_timeout": env_cfg.step_timeout,
    }
    kwargs = dict(env_cfg.env_kwargs)
    if env_cfg.kind == "gym":
        _check_gym_id(env_cfg.env_name)
        reserved = sorted({"env", "wrappers", "agent_name"} & set(kwargs))
        if reserved:
            raise ConfigError(
                f"{reserved} cannot be set from a config (only gymnasium.make keywords)",
                key="env.env_kwargs",
            )
        return _build(env_cfg, MultiGymEnv, env_name=env_cfg.env_name, **vec_kwargs, **kwargs)
    if env_cfg.kind == "pettingzoo":
        if "env_fn" in kwargs:
            raise ConfigError(
                "env_fn cannot be set from a config; env.env_name names the module",
                key="env.env_kwargs",
            )
        env_fn = pettingzoo_env_fn(env_cfg.env_name)
        return _build(env_cfg, PettingZooEnv, env_fn=env_fn, **vec_kwargs, **kwargs)
    if env_cfg.env_name not in PROBE_ENVS:
        raise ConfigError(
            f"unknown probe env {env_cfg.env_name!r}; expected one of {sorted(PROBE_ENVS)}",
            key="env.env_name",
        )
    return _build(env_cfg, PROBE_ENVS[env_cfg.env_name], **vec_kwargs, **kwargs)


def pettingzoo_env_fn(module_path: str) -> Any:
    """The ``parallel_env`` function of a PettingZoo environment module such as
    ``"pettingzoo.sisl.pursuit_v5"``. Only modules inside the ``pettingzoo`` package are
    imported."""
    if not _PETTINGZOO_MODULE.fullmatch(module_path):
        raise ConfigError(
            "expected a PettingZoo module path such as 'pettingzoo.sisl.pursuit_v5', got "
            f"{module_path!r} (only modules inside the pettingzoo package may be imported)",
            key="env.env_name",
        )
    try:
        importlib.import_module("pettingzoo")
    except ImportError:
        raise ConfigError(
            "PettingZoo is not installed: pip install 'coltra[pettingzoo]'", key="env.env_name"
        ) from None
    try:
        with warnings.catch_warnings():
            # PettingZoo 1.27 warns on every env module import that a registry will replace
            # module imports some day; module paths are how configs name envs until then.
            warnings.filterwarnings(
                "ignore", "The old environment creation API", category=DeprecationWarning
            )
            module = importlib.import_module(module_path)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"no PettingZoo environment module {module_path!r} ({exc}); "
            "e.g. 'pettingzoo.sisl.pursuit_v5'",
            key="env.env_name",
        ) from None
    except ImportError as exc:  # e.g. an optional dependency of that env family is missing
        raise ConfigError(f"cannot import {module_path!r}: {exc}", key="env.env_name") from None
    env_fn = getattr(module, "parallel_env", None)
    if not callable(env_fn):
        raise ConfigError(
            f"module {module_path!r} has no parallel_env function; name an environment module "
            "such as 'pettingzoo.sisl.pursuit_v5'",
            key="env.env_name",
        )
    return env_fn


def make_agents(model_cfg: ModelConfig, env: MultiAgentEnv) -> HomogeneousGroup:
    """One policy shared by every agent of ``env``: a ``DAgent`` for Discrete and
    MultiDiscrete actions, a ``CAgent`` for Box actions, on the model ``model_cfg`` names
    (``model.class``), sized from the env's spaces."""
    space = env.action_space
    agent_class: type[Agent]
    if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete):
        agent_class = DAgent
    elif isinstance(space, gym.spaces.Box):
        agent_class = CAgent
    else:
        raise ConfigError(
            f"no agent for the action space {space}; expected Discrete, MultiDiscrete or Box",
            key="env",
        )
    model = build_model(model_cfg, env.observation_space, env.action_space)
    try:
        return HomogeneousGroup(agent_class(model))
    except TypeError as exc:  # a model whose actions do not suit the agent
        raise ConfigError(str(exc), key="model") from None


def eval_env_config(env_cfg: EnvConfig, env: MultiAgentEnv, episodes: int) -> EnvConfig:
    """The env of an evaluation of ``episodes`` episodes: fresh in-process copies, enough
    for every agent row to play one episode side by side (at most ``MAX_EVAL_COPIES``)."""
    agents_per_copy = max(len(env.agent_names) // int(getattr(env, "num_envs", 1)), 1)
    copies = -(-episodes // agents_per_copy)
    return env_cfg.update(
        {
            "workers": min(max(copies, 1), MAX_EVAL_COPIES),
            "envs_per_worker": 1,
            "backend": "inprocess",
            "step_timeout": None,
        }
    )


def _check_gym_id(env_name: str) -> None:
    """Refuse an unknown Gymnasium id before any env copy (or worker) is started."""
    try:
        gym.spec(env_name)
    except gym.error.Error as exc:
        raise ConfigError(
            f"unknown Gymnasium env id {env_name!r}: {exc}", key="env.env_name"
        ) from None


def _build(env_cfg: EnvConfig, env_class: type[MultiAgentEnv], **kwargs: Any) -> MultiAgentEnv:
    """``env_class.get_venv(**kwargs)``; a constructor that refuses the config's keywords is
    a config error, naming the env and the keywords."""
    backend = env_class.default_backend if env_cfg.backend == "auto" else env_cfg.backend
    if env_cfg.step_timeout is not None and backend != "subprocess":
        # A copy stepped in this process cannot be stopped when it hangs: the timeout would
        # be silently ignored.
        raise ConfigError(
            f"needs env.backend: subprocess (the {env_cfg.kind} env {env_cfg.env_name!r} "
            f"runs on the {backend} backend here, where a hung copy cannot be stopped); "
            "set env.backend=subprocess or env.step_timeout=null",
            key="env.step_timeout",
        )
    try:
        return env_class.get_venv(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"{env_cfg.kind} env {env_cfg.env_name!r} does not take env_kwargs "
            f"{dict(env_cfg.env_kwargs)}: {exc}",
            key="env.env_kwargs",
        ) from exc
