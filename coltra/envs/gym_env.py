"""Any Gymnasium environment as a one-agent MultiAgentEnv."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np

from coltra.buffers import Action, Observation
from coltra.envs.base import MultiAgentEnv, StepBatch, StepBuffers
from coltra.envs.spaces import ActionCodec, ObservationCodec

if TYPE_CHECKING:
    from coltra.envs.vector import VecEnv

__all__ = ["MultiGymEnv"]


def make_gym_env(env_name: str, **make_kwargs: Any) -> gym.Env:
    """``gym.make`` with an error that names the id when it is unknown."""
    if not isinstance(env_name, str) or not env_name:
        raise ValueError(f"env_name must be a Gymnasium id such as 'CartPole-v1', got {env_name!r}")
    try:
        return gym.make(env_name, **make_kwargs)
    except gym.error.UnregisteredEnv as exc:
        # Name, version and namespace misses all derive from UnregisteredEnv; other
        # gymnasium errors (e.g. a missing Box2D) are not about the id and pass through.
        raise ValueError(
            f"unknown Gymnasium env id '{env_name}': {exc} "
            "(see gymnasium.pprint_registry() for the ids there are)"
        ) from None


class MultiGymEnv(MultiAgentEnv):
    """A Gymnasium env seen as a multi-agent env with one agent (``agent_name``).

    The env is ``gymnasium.make(env_name, **make_kwargs)``, ``env_fn()`` (a function that
    builds a new env: for envs that are not registered), or a ready-made ``env`` (one copy
    only: copies of one object would all step the same env). Terminated and truncated stay
    apart (``info["truncated"]``); at the end of each episode the info carries
    ``e_episode_reward`` and ``e_episode_length``. The env does not reset itself: the
    vectorised env around it does, in the same step.
    """

    default_backend: ClassVar[str] = "inprocess"

    def __init__(
        self,
        env_name: str | None = None,
        *,
        env: gym.Env | None = None,
        env_fn: Callable[[], gym.Env] | None = None,
        wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
        agent_name: str = "agent",
        **make_kwargs: Any,
    ) -> None:
        given = [
            name
            for name, value in (("env_name", env_name), ("env", env), ("env_fn", env_fn))
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "MultiGymEnv needs exactly one of env_name='CartPole-v1', env_fn= (a function "
                f"that builds a new env) or env=, got {given or 'none'}"
            )
        if make_kwargs and env_name is None:
            raise ValueError(
                f"make kwargs {sorted(make_kwargs)} only apply with env_name, not {given[0]}="
            )
        if env_name is not None:
            env = make_gym_env(env_name, **make_kwargs)
        elif env_fn is not None:
            if not callable(env_fn):
                raise TypeError(f"env_fn must be a function that builds an env, got {env_fn!r}")
            env = env_fn()
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        for wrapper in wrappers:
            env = wrapper(env)
        self.env = env
        self.env_name = env_name
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.agent_names = [agent_name]
        self._obs_codec = ObservationCodec(env.observation_space)
        self._action_codec = ActionCodec(env.action_space)
        self._episode_reward = 0.0
        self._episode_length = 0

    @classmethod
    def get_venv(cls, workers: int = 8, envs_per_worker: int = 1, **kwargs: Any) -> VecEnv:
        """``MultiAgentEnv.get_venv``; refuses a ready-made ``env=`` for more than one copy,
        which would make every copy step that one env object."""
        from coltra.envs.vector.base import check_copy_count

        copies = check_copy_count("workers", workers) * check_copy_count(
            "envs_per_worker", envs_per_worker
        )
        if kwargs.get("env") is not None and copies > 1:
            raise ValueError(
                f"MultiGymEnv.get_venv({workers}, env={kwargs['env']}) would make all {copies} "
                "copies step that one env object; pass env_name='CartPole-v1' (with "
                "gymnasium.make keywords) or env_fn= (a function that builds a new env) instead"
            )
        return super().get_venv(workers, envs_per_worker, **kwargs)

    def _observation(self, raw: Any) -> Observation:
        return Observation(**{k: v[None] for k, v in self._obs_codec.encode(raw).items()})

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        raw, _ = self.env.reset(seed=seed)
        self._episode_reward, self._episode_length = 0.0, 0
        return self._remember(StepBatch.first(self._observation(raw)))

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_ready()
        values = self._action_codec.check_batch(actions, 1)
        raw, reward, terminated, truncated, _ = self.env.step(self._action_codec.to_env(values[0]))
        self._episode_reward += float(reward)
        self._episode_length += 1
        obs = self._observation(raw)
        done = bool(terminated or truncated)
        batch = StepBatch(
            obs=obs,
            reward=np.array([reward], dtype=np.float32),
            terminated=np.array([bool(terminated)]),
            truncated=np.array([bool(truncated) and not terminated]),
            active=np.array([not done]),
        )
        if done:
            batch.final_obs = obs
            batch.metrics = self._episode_metrics()
        return self._remember(batch)

    def step_into(self, values: np.ndarray, out: StepBuffers, rows: slice) -> None:
        """The fast path of ``step_batch``: the same step, written straight into ``out``."""
        row = rows.start
        raw, reward, terminated, truncated, _ = self.env.step(self._action_codec.to_env(values[0]))
        self._obs_codec.write(out.obs, row, raw)
        truncated = truncated and not terminated
        out.reward[row] = reward
        out.terminated[row] = terminated
        out.truncated[row] = truncated
        out.active[row] = not (terminated or truncated)
        self._episode_reward += float(reward)
        self._episode_length += 1
        if terminated or truncated:
            out.save_final(rows)
            out.add_metrics(self._episode_metrics())

    def reset_into(self, out: StepBuffers, rows: slice, seed: int | None = None) -> None:
        raw, _ = self.env.reset(seed=seed)
        self._episode_reward, self._episode_length = 0.0, 0
        self._obs_codec.write(out.obs, rows.start, raw)
        out.active[rows] = True

    def _episode_metrics(self) -> dict[str, np.ndarray]:
        return {
            "e_episode_reward": np.array([self._episode_reward], dtype=np.float32),
            "e_episode_length": np.array([self._episode_length], dtype=np.float32),
        }

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()
