"""Agent names of vectorised envs: agent ``pursuer_0`` of copy 3 is ``pursuer_0&env=3``.

A leaf module so that environments (which make such names) and groups (which map them to
policies) share one definition without depending on each other.
"""

from __future__ import annotations

import re

__all__ = ["parse_agent_name", "vec_agent_name"]

_VEC_NAME = re.compile(r"^(?P<base>.*)&env=(?P<index>\d+)$")


def vec_agent_name(base: str, env_index: int) -> str:
    """The name of agent ``base`` in copy ``env_index`` of a vectorised env."""
    return f"{base}&env={env_index}"


def parse_agent_name(name: str) -> tuple[str, int | None]:
    """Split ``'pursuer_0&env=3'`` into ``('pursuer_0', 3)``; a plain name gives
    ``(name, None)``."""
    match = _VEC_NAME.match(name)
    if match is None:
        return name, None
    return match["base"], int(match["index"])
