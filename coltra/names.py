"""Agent names of vectorised envs: agent ``pursuer_0`` of copy 3 is ``pursuer_0&env=3``.

A leaf module so that environments (which make such names), groups (which map them to
policies) and configs (which name policies) share one definition without depending on each
other.
"""

from __future__ import annotations

import re

__all__ = ["POLICY_NAME", "check_policy_name", "parse_agent_name", "vec_agent_name"]

_VEC_NAME = re.compile(r"^(?P<base>.*)&env=(?P<index>\d+)$")
#: A policy name: it names a checkpoint directory and prefixes metric names.
POLICY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_policy_name(name: object) -> str:
    """``name`` if it can name a policy, else a ValueError saying what may."""
    if not isinstance(name, str) or not POLICY_NAME.match(name):
        raise ValueError(
            f"policy name {name!r} must be letters, digits, '_', '-' or '.' (it names a "
            "checkpoint directory)"
        )
    return name


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
