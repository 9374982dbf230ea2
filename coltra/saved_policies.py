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

:func:`find_saved_group` reads the same forms as a whole group, for watching and exporting
a run (``coltra enjoy``, ``coltra export``): a run directory gives its best evaluated
checkpoint (``checkpoints/best``) if it has one, else its newest, and the pointer files
``checkpoints/best`` and ``checkpoints/latest`` name theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coltra.agents import AGENT_FILE, Agent
from coltra.configs import ConfigError, RunConfig
from coltra.groups import GROUP_FILE, HomogeneousGroup, MacroAgent
from coltra.run_dir import RunDirectory

__all__ = [
    "SavedGroup",
    "SavedPolicyError",
    "find_saved_group",
    "find_saved_policy",
    "split_policy_source",
]


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


@dataclass(frozen=True)
class SavedGroup:
    """A group loaded from disk, with the config of the run that saved it (None for a group
    or agent saved outside a run directory) and which checkpoint it is, in words."""

    group: MacroAgent
    source: Path  # the directory it was loaded from
    config: RunConfig | None
    which: str  # e.g. "checkpoints/best (iter_000040, eval/return_mean 487.5)"


def find_saved_group(text: str | Path) -> SavedGroup:
    """The group that ``text`` names: a run directory (its best checkpoint, else its
    newest), ``checkpoints/best`` or ``checkpoints/latest``, a checkpoint, a saved group
    or a saved agent (as a one-policy group)."""
    path = Path(text)
    if not path.exists():
        raise SavedPolicyError(f"{str(path)!r} does not exist")
    path = path.resolve()  # a relative "best" or "iter_000040" needs its parents
    which = ""
    if path.is_file() and path.name in (RunDirectory.BEST, RunDirectory.LATEST):
        run, pointer = RunDirectory(path.parent.parent), path.name
        path, which = _pointed(run, pointer)
    elif not (path / GROUP_FILE).is_file() and not (path / AGENT_FILE).is_file():
        run = RunDirectory(path)
        if (run.checkpoints / RunDirectory.BEST).is_file():
            path, which = _pointed(run, RunDirectory.BEST)
        elif run.has_checkpoint():
            path, which = _pointed(run, RunDirectory.LATEST)
    if (path / AGENT_FILE).is_file():
        group: MacroAgent = HomogeneousGroup(Agent.load(path))
        directory = path
    else:
        directory = _group_directory(path)
        group = MacroAgent.load(directory)
    config = _run_config(directory)
    return SavedGroup(group, directory, config, which or str(directory))


def _pointed(run: RunDirectory, pointer: str) -> tuple[Path, str]:
    """The checkpoint ``best`` or ``latest`` names, and how to say which it is."""
    if pointer == RunDirectory.BEST:
        best = run.best_checkpoint()
        if best is None:
            raise SavedPolicyError(f"{run.checkpoints / pointer} is not a checkpoint pointer")
        return (
            best.path,
            f"{run.path}/checkpoints/best ({best.path.name}, {best.metric} {best.score:g})",
        )
    path = run.latest_checkpoint()
    return path, f"{run.path}/checkpoints/latest ({path.name})"


def _run_config(directory: Path) -> RunConfig | None:
    """The config of the run a saved group's directory belongs to (``<run>/checkpoints/
    iter_N/agents``), or None outside a run directory."""
    for parent in directory.parents[:4]:
        if (parent / RunDirectory.CONFIG).is_file() and (
            parent / RunDirectory.CHECKPOINTS
        ).is_dir():
            try:
                return RunDirectory(parent).read_config()
            except ConfigError as exc:
                raise SavedPolicyError(
                    f"{parent / RunDirectory.CONFIG} does not load: {exc}"
                ) from None
    return None
