"""Saved policies by name: what ``policies.<name>.init_from`` points at.

A policy can start from weights saved by another run (a fixed opponent trained before, a
team that goes on learning). The text names where they are, in any of the forms a run
leaves on disk, with ``:POLICY`` to pick one of several policies saved there::

    runs/tag_prey                     a run directory: its newest checkpoint
    runs/tag_prey/checkpoints/iter_000100
    runs/tag_prey/checkpoints/iter_000100/agents   (a saved group)
    runs/tag_prey:prey                the policy 'prey' of that run
    my_agent                          a directory written by Agent.save

Without ``:POLICY`` the policy of the same name is taken, or the only one saved there.
Loading reads JSON and tensors only (nothing is unpickled).
"""

from __future__ import annotations

from pathlib import Path

from coltra.agents import AGENT_FILE, Agent
from coltra.groups import GROUP_FILE, MacroAgent
from coltra.run_dir import RunDirectory

__all__ = ["SavedPolicyError", "find_saved_policy", "split_policy_source"]


class SavedPolicyError(ValueError):
    """``init_from`` names nothing that holds the policy asked for."""


def split_policy_source(text: str) -> tuple[Path, str | None]:
    """``("runs/x", "prey")`` for ``"runs/x:prey"``; the policy is None without a colon (a
    colon followed by a path is part of the path)."""
    path, sep, policy = text.rpartition(":")
    if sep and path and policy and "/" not in policy and "\\" not in policy:
        return Path(path), policy
    return Path(text), None


def find_saved_policy(text: str, name: str) -> tuple[Agent, str]:
    """The agent ``text`` names for the policy called ``name`` here, and where it was
    found (for messages): ``<group dir>:<policy>`` or the agent directory."""
    path, wanted = split_policy_source(text)
    if not path.exists():
        raise SavedPolicyError(f"{str(path)!r} does not exist")
    if (path / AGENT_FILE).is_file():
        if wanted is not None:
            raise SavedPolicyError(
                f"{path} holds one agent (it has {AGENT_FILE}), so it has no policy {wanted!r} "
                "to pick: leave out the :POLICY part"
            )
        return Agent.load(path), str(path)
    group_dir = _group_directory(path)
    group = MacroAgent.load(group_dir)
    policy = _choose(group, wanted, name, group_dir)
    return group.policies[policy], f"{group_dir}:{policy}"


def _group_directory(path: Path) -> Path:
    """The saved group in a run directory (its newest checkpoint), a checkpoint or a group."""
    if (path / GROUP_FILE).is_file():
        return path
    if (path / RunDirectory.AGENTS / GROUP_FILE).is_file():  # a checkpoint
        return path / RunDirectory.AGENTS
    run = RunDirectory(path)
    if run.has_checkpoint():
        return run.latest_checkpoint() / RunDirectory.AGENTS
    raise SavedPolicyError(
        f"{path} holds no saved policy: expected a run directory with checkpoints, a "
        f"checkpoint (with {RunDirectory.AGENTS}/{GROUP_FILE}), a saved group ({GROUP_FILE}) or "
        f"a saved agent ({AGENT_FILE})"
    )


def _choose(group: MacroAgent, wanted: str | None, name: str, where: Path) -> str:
    saved = group.policy_names
    if wanted is not None:
        if wanted not in group.policies:
            raise SavedPolicyError(f"{where} has no policy {wanted!r} (it has {saved})")
        return wanted
    if name in group.policies:
        return name
    if len(saved) == 1:
        return saved[0]
    raise SavedPolicyError(
        f"{where} has several policies {saved} and none called {name!r}: pick one with "
        f"{where}:POLICY"
    )
