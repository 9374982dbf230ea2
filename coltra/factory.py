"""Build the environment and the group a :class:`~coltra.configs.RunConfig` describes.

``make_env(config.env, seed)`` and ``make_group(config, env)`` (one shared policy,
``make_agents``, or a policy per entry of ``policies:``) are what the command line and
:meth:`coltra.trainers.PPOCrowdTrainer.from_config` use; call them yourself to get the same
env and group in a notebook. ``model.class`` picks the model among those
registered with :func:`coltra.agents.register_model`. Every problem with the config (an
unknown env id, a PettingZoo module that does not exist, env keywords the env does not
take, model sizes that contradict the env) is a :class:`~coltra.configs.ConfigError`
naming the key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from coltra.agents import Agent, CAgent, DAgent, JointAgent
from coltra.checkpoints import copy_agent_weights, weights_mismatch
from coltra.configs import ConfigError, EnvConfig, ModelConfig, RunConfig, WrapperConfig
from coltra.envs import MultiAgentEnv, MultiGymEnv, PettingZooEnv, make_vec_env, registry
from coltra.envs.blocks import Block
from coltra.envs.probe_envs import all_probe_envs
from coltra.groups import (
    HomogeneousGroup,
    MacroAgent,
    MultiPolicyGroup,
    PolicyMappingError,
    map_policy_rows,
)
from coltra.models import build_model
from coltra.saved_policies import SavedPolicyError, find_saved_policy
from coltra.serialization import CheckpointError

__all__ = [
    "RunParts",
    "eval_env_config",
    "make_agent",
    "make_agents",
    "make_env",
    "make_group",
    "make_parts",
    "pettingzoo_env_fn",
]

#: More evaluation episodes than this many env copies are played in turns.
MAX_EVAL_COPIES = 32


@dataclass(frozen=True)
class RunParts:
    """What a training run built from a config trains with: the env (copies seeded from
    ``trainer.seed``), the group, a function that builds the evaluation env, and one that
    builds a fresh env from a seed (to replace a crashed one)."""

    env: MultiAgentEnv
    group: MacroAgent
    eval_env: Callable[[], MultiAgentEnv]
    env_factory: Callable[[int | None], MultiAgentEnv]


def make_parts(config: RunConfig, resuming: bool = False) -> RunParts:
    """The env and group of ``config`` (which must describe both: a run built in Python
    records them as null), built in that order. ``resuming``: the weights come from the
    run's checkpoint, so no policy is loaded from its ``init_from``."""
    env_cfg, model_cfg = config.env, config.model
    if env_cfg is None or model_cfg is None:
        raise ConfigError(
            "this run was built in Python (its config.yaml records no env and model): resume "
            "it in Python with PPOCrowdTrainer.resume(run_dir, agents, env)",
            key="env" if env_cfg is None else "model",
        )
    env = make_env(env_cfg, seed=config.trainer.seed)
    try:
        group = make_group(config, env, init=not resuming)
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
    seeded ``seed + i`` at its first reset. Names are imported only from allowed modules
    (:mod:`coltra.envs.registry`)."""
    vec_kwargs: dict[str, Any] = {
        "workers": env_cfg.workers,
        "envs_per_worker": env_cfg.envs_per_worker,
        "backend": None if env_cfg.backend == "auto" else env_cfg.backend,
        "seed": seed,
        "step_timeout": env_cfg.step_timeout,
    }
    if env_cfg.shared_memory:
        vec_kwargs["shared_memory"] = True
    if env_cfg.backend == "ray":
        vec_kwargs.update(ray_address=env_cfg.ray_address, ray_num_cpus=env_cfg.ray_num_cpus)
    elif env_cfg.ray_address is not None:
        raise ConfigError(
            f"ray_address {env_cfg.ray_address!r} is for env.backend: ray, and the backend is "
            f"{env_cfg.backend!r}; set env.backend=ray (or drop ray_address)",
            key="env.ray_address",
        )
    kwargs = dict(env_cfg.env_kwargs)
    wrappers = [_wrapper(spec, i) for i, spec in enumerate(env_cfg.wrappers)]
    for key, field in (
        ("global_state", "state"),
        ("team_observations", "team"),
        ("agent_ids", "agent_id"),
        ("info_action_masks", "action_mask"),
    ):
        if getattr(env_cfg, key) and env_cfg.kind != "pettingzoo":
            raise ConfigError(
                f"{key} adds to a PettingZoo env's observations; a {env_cfg.kind} env gives its "
                f"agents a '{field}' observation field itself",
                key=f"env.{key}",
            )
    if env_cfg.shared_reward and env_cfg.kind != "pettingzoo":
        raise ConfigError(
            f"shared_reward wraps a PettingZoo env; a {env_cfg.kind} env rewards its agents "
            "itself (give each the team's sum there)",
            key="env.shared_reward",
        )
    if env_cfg.kind == "gym":
        _check_gym_id(env_cfg.env_name)
        _refuse_keys(kwargs, ("env", "env_fn", "wrappers", "agent_name"), "gymnasium.make keywords")
        return _build(
            env_cfg,
            MultiGymEnv,
            env_name=env_cfg.env_name,
            wrappers=wrappers,
            **vec_kwargs,
            **kwargs,
        )
    if env_cfg.kind == "pettingzoo":
        _refuse_keys(kwargs, ("env_fn",), "parallel_env keywords; env.env_name names the module")
        env_fn = pettingzoo_env_fn(env_cfg.env_name)
        if env_cfg.info_action_masks:
            from coltra.envs.info_masks import InfoActionMasks

            wrappers.append(InfoActionMasks)
        if env_cfg.shared_reward:
            from coltra.envs.shared_reward import SharedReward

            wrappers.append(SharedReward)
        # Last, in this order: the team's observations are of the agents' own parts only.
        if env_cfg.team_observations:
            from coltra.envs.critic_inputs import TeamObservations

            wrappers.append(TeamObservations)
        if env_cfg.global_state:
            from coltra.envs.critic_inputs import GlobalState

            wrappers.append(GlobalState)
        if env_cfg.agent_ids:
            from coltra.envs.critic_inputs import AgentIds

            wrappers.append(AgentIds)
        if wrappers:
            env_fn = functools.partial(_wrapped, env_fn, wrappers)
        return _build(env_cfg, PettingZooEnv, env_fn=env_fn, **vec_kwargs, **kwargs)
    if wrappers:
        raise ConfigError(
            f"wrappers apply to gym and pettingzoo envs, not to {env_cfg.kind} envs",
            key="env.wrappers",
        )
    if env_cfg.kind == "coltra":
        env_class = _named(env_cfg.env_name, "env.env_name")
        if not (isinstance(env_class, type) and issubclass(env_class, MultiAgentEnv)):
            raise ConfigError(
                f"{env_cfg.env_name!r} is {env_class!r}, not a coltra MultiAgentEnv class",
                key="env.env_name",
            )
        return _build(env_cfg, env_class, **vec_kwargs, **kwargs)
    if env_cfg.kind == "registered":
        try:
            creator = registry.registered(env_cfg.env_name)
        except KeyError as exc:
            raise ConfigError(exc.args[0], key="env.env_name") from None
        copy = functools.partial(_registered_copy, creator, kwargs)
        if vec_kwargs["backend"] is None:
            vec_kwargs["backend"] = "inprocess"
        return _build(env_cfg, None, env_fn=copy, **vec_kwargs)
    probes = all_probe_envs()
    if env_cfg.env_name not in probes:
        raise ConfigError(
            f"unknown probe env {env_cfg.env_name!r}; expected one of {sorted(probes)}",
            key="env.env_name",
        )
    return _build(env_cfg, probes[env_cfg.env_name], **vec_kwargs, **kwargs)


def pettingzoo_env_fn(module_path: str) -> Any:
    """The ``parallel_env`` function of a PettingZoo environment module: PettingZoo's own
    (``"pettingzoo.sisl.pursuit_v5"``), ``mpe2``'s, ``magent2``'s, or an allowed package's."""
    try:
        module = registry.import_allowed(module_path)
    except registry.ModuleNotAllowed as exc:
        raise ConfigError(str(exc), key="env.env_name") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"no environment module {module_path!r} ({exc}); e.g. 'pettingzoo.sisl.pursuit_v5' "
            "or 'mpe2.simple_tag_v3'",
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


def _named(dotted: str, key: str) -> Any:
    """What ``module.name`` or ``module:name`` names, from an allowed module."""
    try:
        return registry.resolve_name(dotted)
    except registry.ModuleNotAllowed as exc:
        raise ConfigError(str(exc), key=key) from None
    except ImportError as exc:
        raise ConfigError(f"cannot import {dotted!r}: {exc}", key=key) from None


def _wrapper(spec: WrapperConfig, index: int) -> Callable[[Any], Any]:
    """An env wrapper of the config (a Gymnasium wrapper class, a SuperSuit function), with
    its keywords."""
    wrapper = _named(spec.name, f"env.wrappers[{index}].name")
    if not callable(wrapper):
        raise ConfigError(f"{spec.name!r} is not callable", key=f"env.wrappers[{index}].name")
    return functools.partial(wrapper, **spec.kwargs) if spec.kwargs else wrapper


def _wrapped(
    env_fn: Callable[..., Any], wrappers: list[Callable[[Any], Any]], **kwargs: Any
) -> Any:
    """``env_fn(**kwargs)`` with ``wrappers`` applied in order (picklable for workers)."""
    env = env_fn(**kwargs)
    for wrapper in wrappers:
        env = wrapper(env)
    return env


def _registered_copy(creator: Callable[..., Any], kwargs: dict[str, Any]) -> MultiAgentEnv:
    """One copy of a registered env, as a coltra env (PettingZoo and Gymnasium envs wrapped)."""
    env = creator(**kwargs)
    if isinstance(env, MultiAgentEnv):
        return env
    if isinstance(env, gym.Env):
        return MultiGymEnv(env=env)
    return PettingZooEnv(env_fn=lambda: env)


def _refuse_keys(kwargs: dict[str, Any], reserved: tuple[str, ...], what: str) -> None:
    found = sorted(set(reserved) & set(kwargs))
    if found:
        raise ConfigError(
            f"{found} cannot be set from a config (only {what})", key="env.env_kwargs"
        )


def make_group(config: RunConfig, env: MultiAgentEnv, init: bool = True) -> MacroAgent:
    """The group of ``config`` for ``env``: one shared policy (``make_agents``) without a
    ``policies:`` section, else a :class:`MultiPolicyGroup` with one agent per policy, each
    sized from its agents' block and, with ``init`` (a new run), loaded from its
    ``init_from``."""
    if not config.policies:
        if config.model is None:
            raise ConfigError("the run's model section is null", key="model")
        return make_agents(config.model, env)
    mapping = {
        prefix: name for name, policy in config.policies.items() for prefix in policy.prefixes(name)
    }
    try:
        rows = map_policy_rows(env.agent_names, mapping)
    except PolicyMappingError as exc:
        raise ConfigError(
            f"{exc} (add a policy with agents: [''] for every other agent)", key="policies"
        ) from None
    layout = env.layout
    agents: dict[str, Agent] = {}
    for name, policy in config.policies.items():
        key = f"policies.{name}"
        if name not in rows:
            shown = ", ".join(env.agent_names[:6]) + (", ..." if env.num_agents > 6 else "")
            raise ConfigError(
                f"no agent of the env takes this policy: none of {policy.prefixes(name)} is the "
                f"longest matching prefix of an agent name (agents: {shown})",
                key=f"{key}.agents",
            )
        try:
            block = layout.block_of(np.asarray(rows[name]), f"policy {name!r}")
        except ValueError as exc:
            raise ConfigError(str(exc), key=f"{key}.agents") from None
        model_cfg = policy.model if policy.model is not None else config.model
        if model_cfg is None:
            raise ConfigError("needs a model section (the run's is null)", key=f"{key}.model")
        try:
            agents[name] = make_agent(model_cfg, block)
        except ConfigError as exc:
            within = "model" if policy.model is not None else ""
            raise ConfigError(exc.problem, key=f"{key}.{within or exc.key}") from None
        if init and policy.init_from is not None:
            _init_from(agents[name], policy.init_from, name)
    for name, policy in config.policies.items():
        if policy.snapshot_of is not None:
            problem = weights_mismatch(agents[policy.snapshot_of], agents[name])
            if problem:
                raise ConfigError(
                    f"policy {policy.snapshot_of!r} cannot be copied into {name!r}: its agent "
                    f"{problem}; self-play needs two policies with the same model and spaces",
                    key=f"policies.{name}.snapshot_of",
                )
    frozen = [name for name, policy in config.policies.items() if policy.frozen]
    return MultiPolicyGroup(agents, mapping, frozen=frozen)


def _init_from(agent: Agent, source: str, name: str) -> None:
    """``agent``'s weights from what ``source`` names (:mod:`coltra.saved_policies`)."""
    key = f"policies.{name}.init_from"
    try:
        saved, where = find_saved_policy(source, name)
    except (SavedPolicyError, CheckpointError) as exc:
        raise ConfigError(f"cannot load a policy from {source!r}: {exc}", key=key) from None
    problem = weights_mismatch(saved, agent)
    if problem:
        raise ConfigError(
            f"the policy saved in {where} does not fit policy {name!r}: its agent {problem} "
            f"(give policies.{name}.model the saved model's keys)",
            key=key,
        )
    copy_agent_weights(saved, agent)


def make_agents(model_cfg: ModelConfig, env: MultiAgentEnv) -> HomogeneousGroup:
    """One policy shared by every agent of ``env`` (whose agents must share their spaces),
    on the model ``model_cfg`` names (``model.class``), sized from the env's spaces."""
    layout = env.layout
    if not layout.is_single:
        raise ConfigError(
            f"the env's agents have different spaces ({layout.describe()}); one shared policy "
            "cannot serve them: give each block a policy in a policies: section",
            key="model",
        )
    return HomogeneousGroup(make_agent(model_cfg, layout.blocks[0]))


def make_agent(model_cfg: ModelConfig, block: Block) -> Agent:
    """An agent for ``block``'s agents: a ``DAgent`` for Discrete, MultiDiscrete and
    MultiBinary actions, a ``JointAgent`` for Dict and Tuple ones,
    a ``CAgent`` for Box actions, on the model ``model_cfg`` names, sized from its spaces."""
    space = block.action_space
    agent_class: type[Agent]
    if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        agent_class = DAgent
    elif isinstance(space, gym.spaces.Box):
        agent_class = CAgent
    elif isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        agent_class = JointAgent
    else:
        raise ConfigError(
            f"no agent for the action space {space}; expected Discrete, MultiDiscrete, "
            "MultiBinary, Box, or a Dict or Tuple of those",
            key="env",
        )
    model = build_model(model_cfg, block.observation_space, block.action_space)
    try:
        return agent_class(model)
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
    """Refuse an unknown Gymnasium id before any env copy (or worker) is started. An id
    ``module:EnvId`` makes Gymnasium import ``module``: allowed modules only."""
    module, sep, env_id = env_name.partition(":")
    if sep:
        try:
            registry.import_allowed(module)
        except registry.ModuleNotAllowed as exc:
            raise ConfigError(str(exc), key="env.env_name") from None
        except ImportError as exc:
            raise ConfigError(f"cannot import {module!r}: {exc}", key="env.env_name") from None
    try:
        gym.spec(env_id if sep else env_name)  # gym.make imports the module, gym.spec does not
    except gym.error.Error as exc:
        raise ConfigError(
            f"unknown Gymnasium env id {env_name!r}: {exc}", key="env.env_name"
        ) from None


def _build(
    env_cfg: EnvConfig, env_class: type[MultiAgentEnv] | None, **kwargs: Any
) -> MultiAgentEnv:
    """``env_class.get_venv(**kwargs)`` (or, with no class, copies of ``kwargs["env_fn"]``);
    a constructor that refuses the config's keywords is a config error naming the env."""
    default = env_class.default_backend if env_class is not None else "inprocess"
    backend = kwargs["backend"] or default
    if env_cfg.shared_memory and backend != "subprocess":
        raise ConfigError(
            f"shared memory carries the results of subprocess workers; the {env_cfg.kind} env "
            f"{env_cfg.env_name!r} runs on the {backend} backend here: set "
            "env.backend=subprocess or env.shared_memory=false",
            key="env.shared_memory",
        )
    if env_cfg.step_timeout is not None and backend not in ("subprocess", "ray"):
        # A copy stepped in this process cannot be stopped when it hangs: the timeout would
        # be silently ignored.
        raise ConfigError(
            f"needs env.backend: subprocess or ray (the {env_cfg.kind} env "
            f"{env_cfg.env_name!r} runs on the {backend} backend here, where a hung copy "
            "cannot be stopped); set env.backend=subprocess or env.step_timeout=null",
            key="env.step_timeout",
        )
    try:
        if env_class is None:
            return make_vec_env(**{**kwargs, "backend": backend})
        return env_class.get_venv(**kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"{env_cfg.kind} env {env_cfg.env_name!r} does not take env_kwargs "
            f"{dict(env_cfg.env_kwargs)}: {exc}",
            key="env.env_kwargs",
        ) from exc
