"""Watching policies play (``coltra enjoy``): episodes of one env copy, scored per policy,
optionally recorded from the env's ``rgb_array`` render or shown in its window.

The env is the run's own (``config.yaml``), built as a single in-process copy with the
render mode asked for; Gymnasium and PettingZoo-API envs take it as their ``render_mode``
keyword. Actions are deterministic (the mode) unless asked otherwise, as in the run's
evaluation. A random policy (``random=True``) plays the same env with each policy replaced
by uniformly random actions: the baseline a trained policy is compared against.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coltra.agents import Agent, RandomAgent
from coltra.collectors import check_agents_fit_env, plan_policies
from coltra.configs import ConfigError, EnvConfig, RunConfig
from coltra.envs import MultiAgentEnv
from coltra.evaluation import Episodes, evaluate_episodes
from coltra.factory import make_env, make_group
from coltra.groups import MacroAgent, MultiPolicyGroup
from coltra.video import VideoWriter

__all__ = [
    "RENDER_KINDS",
    "PolicyScore",
    "WatchError",
    "build_group",
    "check_fits",
    "frames_per_second",
    "play",
    "random_policies",
    "scores_by_policy",
    "watch_env",
]

#: Env kinds whose envs take a ``render_mode`` keyword (Gymnasium and PettingZoo's API).
RENDER_KINDS = ("gym", "pettingzoo")
#: Env steps after which watching gives up on episodes that do not end.
WATCH_MAX_STEPS = 100_000


class WatchError(ValueError):
    """What was asked to be watched cannot be: an env without the render mode, no display
    for a window, an env that does not fit the saved policies."""


@dataclass(frozen=True)
class PolicyScore:
    """One policy's agents over the episodes watched: their returns and lengths (agent
    steps), one entry per agent-episode."""

    policy: str
    returns: np.ndarray
    lengths: np.ndarray

    def line(self) -> str:
        return (
            f"{self.policy}: return {self.returns.mean():.2f} +- {self.returns.std():.2f}, "
            f"length {self.lengths.mean():.1f} over {len(self.returns)} agent-episodes"
        )


def watch_env(config: RunConfig, render_mode: str | None) -> MultiAgentEnv:
    """One in-process copy of the run's env, rendering in ``render_mode`` (``rgb_array``,
    ``human``, or None for no rendering)."""
    if config.env is None:
        raise WatchError(
            "the run's env was built in Python (its config has env: null), so it cannot be "
            "built again here: give one with -c CONFIG"
        )
    env_cfg: EnvConfig = config.env.update(
        {"workers": 1, "envs_per_worker": 1, "backend": "inprocess", "step_timeout": None}
    )
    if render_mode is not None:
        if env_cfg.kind not in RENDER_KINDS:
            raise WatchError(
                f"a {env_cfg.kind} env ({env_cfg.env_name}) takes no render_mode; videos and "
                f"windows are for {' and '.join(RENDER_KINDS)} envs"
            )
        if render_mode == "human":
            _check_display()
        elif "SDL_VIDEODRIVER" not in os.environ and not _has_display():
            os.environ["SDL_VIDEODRIVER"] = "dummy"  # pygame renders off-screen
        env_cfg = env_cfg.update({"env_kwargs": {**env_cfg.env_kwargs, "render_mode": render_mode}})
    env = make_env(env_cfg, seed=None)
    if render_mode is not None:
        modes = _render_modes(env)
        if modes is not None and render_mode not in modes:
            env.close()
            raise WatchError(
                f"{env_cfg.env_name} cannot render as {render_mode!r}; its render modes are {modes}"
            )
    return env


def random_policies(
    group: MacroAgent, env: MultiAgentEnv, seed: int, policies: Sequence[str] | None = None
) -> MacroAgent:
    """``group`` with ``policies`` (default: all) replaced by uniformly random agents on
    their agents' action spaces, frozen; the policy mapping stays."""
    plans = plan_policies(group, env)
    agents: dict[str, Agent] = dict(group.policies)
    chosen = list(group.policies) if policies is None else list(policies)
    for k, policy in enumerate(chosen):
        agents[policy] = RandomAgent(plans[policy].block.action_space, seed=seed + k)
    frozen = sorted(set(group.frozen) | set(chosen))
    return MultiPolicyGroup(agents, group.policy_mapping, frozen=frozen)


def play(
    group: MacroAgent,
    env: MultiAgentEnv,
    episodes: int,
    deterministic: bool = True,
    seed: int | None = None,
    video: VideoWriter | None = None,
) -> list[PolicyScore]:
    """``episodes`` episodes of ``env``'s copy (every agent present at the start plays
    each), each policy's agents scored apart; with ``video``, a frame after the reset and
    after each step but the last: one per step played."""
    check_fits(group, env)

    def record() -> None:
        assert video is not None
        video.add(env.render())

    played = evaluate_episodes(
        group,
        env,
        episodes,
        deterministic=deterministic,
        seed=seed,
        max_steps=WATCH_MAX_STEPS,
        each_agent=True,
        on_step=record if video is not None else None,
    )
    return scores_by_policy(group, env, played)


def check_fits(group: MacroAgent, env: MultiAgentEnv) -> None:
    """A WatchError unless ``group``'s policies can act for every agent of ``env``."""
    try:
        check_agents_fit_env(group, env)
        plan_policies(group, env)
    except (ValueError, TypeError) as exc:
        raise WatchError(f"the saved policies do not fit this env: {exc}") from None


def scores_by_policy(group: MacroAgent, env: MultiAgentEnv, played: Episodes) -> list[PolicyScore]:
    rows = group.policy_rows(env.agent_names)
    scores = []
    for policy in group.policy_names:
        mine = played.select(rows[policy])
        if len(mine.returns):
            scores.append(PolicyScore(policy, mine.returns, mine.lengths))
    return scores


def build_group(config: RunConfig, env: MultiAgentEnv) -> MacroAgent:
    """The run's group, freshly built (the shape that ``random`` replaces)."""
    try:
        return make_group(config, env, init=False)
    except ConfigError as exc:
        raise WatchError(f"cannot build the run's policies for this env: {exc}") from None


def frames_per_second(env: MultiAgentEnv, default: float = 30.0) -> float:
    """The env's ``render_fps`` (its metadata), else ``default``."""
    for metadata in _metadatas(env):
        fps = metadata.get("render_fps")
        if isinstance(fps, int | float) and fps > 0:
            return float(fps)
    return default


def _render_modes(env: MultiAgentEnv) -> list[str] | None:
    for metadata in _metadatas(env):
        modes = metadata.get("render_modes")
        if isinstance(modes, list | tuple):
            return list(modes)
    return None


def _metadatas(env: MultiAgentEnv) -> list[dict[str, Any]]:
    """The metadata of the env inside copy 0 (Gymnasium's or PettingZoo's), if it shows."""
    found = []
    copy: Any = getattr(env, "envs", [env])[0]
    for candidate in (
        copy,
        getattr(copy, "env", None),
        getattr(getattr(copy, "env", None), "unwrapped", None),
    ):
        metadata = getattr(candidate, "metadata", None)
        if isinstance(metadata, dict):
            found.append(metadata)
    return found


def _has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def _check_display() -> None:
    if not _has_display():
        raise WatchError(
            "--human opens a window, and there is no display here (DISPLAY is not set); "
            "record a video instead: --video out.mp4"
        )
