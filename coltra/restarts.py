"""``trainer.restart_crashed_envs``: a crashed env is rebuilt and the iteration collected
again from new episodes, a limited number of times per session, with a warning."""

from __future__ import annotations

import logging
from collections.abc import Callable

from coltra.envs import EnvCrashedError, MultiAgentEnv

__all__ = ["EnvRestarts"]

logger = logging.getLogger("coltra.trainers")


class EnvRestarts:
    """Rebuilds crashed envs with ``env_factory(seed)``, at most ``limit`` times."""

    def __init__(
        self, limit: int, env_factory: Callable[[int | None], MultiAgentEnv] | None
    ) -> None:
        self.limit = limit
        self.env_factory = env_factory
        self.done = 0  # restarts in this session

    def rebuild(
        self, env: MultiAgentEnv, crash: EnvCrashedError, seed: int, iteration: int
    ) -> tuple[MultiAgentEnv, str]:
        """A fresh env in place of ``env`` (closed), and the warning that says so; the
        crash itself when no restart is left (or none was asked for)."""
        if self.done >= self.limit or self.env_factory is None:
            if self.limit and hasattr(crash, "add_note"):
                crash.add_note(f"the env was rebuilt {self.limit} times already")
            raise crash
        self.done += 1
        summary = str(crash).strip().splitlines()[0] if str(crash).strip() else repr(crash)
        message = (
            f"{summary}; rebuilding the env and collecting iteration {iteration} again from "
            f"new episodes (restart {self.done} of at most {self.limit}; "
            "trainer.restart_crashed_envs)"
        )
        logger.warning(message)
        try:
            env.close()  # after a crash the workers are stopped already
        except Exception:  # best effort: the env is broken anyway
            pass
        return self.env_factory(seed), message
