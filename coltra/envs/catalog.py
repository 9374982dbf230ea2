"""What a config can name as its env (``coltra envs``): by ``env.kind``, the names this
installation has, each with one line saying what it is.

Found without building any env: Gymnasium's registry, the PettingZoo-API packages'
modules (``pettingzoo`` families that step in parallel, ``mpe2``, ``magent2``) listed by
file name, Coltra's probe envs and classes, and the names registered with
:func:`coltra.envs.register` in this process.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from dataclasses import dataclass

from coltra.envs import registry

__all__ = ["COLTRA_CLASSES", "PARALLEL_PACKAGES", "EnvEntry", "env_catalog"]

#: Packages whose env modules have a ``parallel_env`` (PettingZoo's classic board and card
#: games step one player at a time, which Coltra's PettingZoo adapter does not do).
PARALLEL_PACKAGES = (
    "pettingzoo.butterfly",
    "pettingzoo.sisl",
    "pettingzoo.atari",
    "mpe2",
    "magent2.environments",
)
#: What a package's envs need besides the package itself (Atari: the emulator, which
#: ``pip install 'pettingzoo[atari]'`` brings; its ROMs come separately).
PACKAGE_NEEDS = {"pettingzoo.atari": "multi_agent_ale_py"}
#: Coltra's own MultiAgentEnv classes that a config names with ``kind: coltra``.
COLTRA_CLASSES = {
    "coltra.envs.crowd:CrowdEnv": "a crowd in the batch view, numpy over all agents (no dicts)",
}
_VERSIONED = re.compile(r".+_v\d+")


@dataclass(frozen=True)
class EnvEntry:
    """One name a config can give as ``env.env_name`` with ``env.kind: kind``."""

    kind: str
    name: str
    about: str


def env_catalog() -> list[EnvEntry]:
    """Every env name this installation offers, grouped by kind (gym, pettingzoo, probe,
    coltra, registered) and sorted by name within a kind."""
    return [
        *_gym_entries(),
        *_pettingzoo_entries(),
        *_probe_entries(),
        *(EnvEntry("coltra", name, about) for name, about in COLTRA_CLASSES.items()),
        *(
            EnvEntry("registered", name, "registered with coltra.envs.register")
            for name in registry.registered_names()
        ),
    ]


def _gym_entries() -> list[EnvEntry]:
    import gymnasium as gym

    entries = []
    for env_id, spec in sorted(gym.registry.items()):
        entry_point = spec.entry_point if isinstance(spec.entry_point, str) else ""
        family = re.fullmatch(r"gymnasium\.envs\.(\w+)\..*", entry_point)
        where = family[1] if family else entry_point.partition(":")[0] or "(made by a function)"
        entries.append(EnvEntry("gym", env_id, f"Gymnasium {where}"))
    return entries


def _pettingzoo_entries() -> list[EnvEntry]:
    """The versioned env modules (``pursuit_v5``) of each parallel package installed."""
    entries = []
    for package in PARALLEL_PACKAGES:
        if importlib.util.find_spec(package.partition(".")[0]) is None:
            continue
        needs = PACKAGE_NEEDS.get(package)
        if needs is not None and importlib.util.find_spec(needs) is None:
            continue
        try:
            module = importlib.import_module(package)
        except ImportError:  # e.g. an extra whose own dependencies are missing
            continue
        for found in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if _VERSIONED.fullmatch(found.name):
                entries.append(EnvEntry("pettingzoo", f"{package}.{found.name}", package))
    return sorted(entries, key=lambda entry: entry.name)


def _probe_entries() -> list[EnvEntry]:
    from coltra.envs.probe_envs import all_probe_envs

    probes = all_probe_envs()
    return [
        EnvEntry("probe", name, _first_line(env_class.__doc__) or env_class.__name__)
        for name, env_class in sorted(probes.items())
    ]


def _first_line(doc: str | None) -> str:
    """The first sentence of a docstring, on one line."""
    text = " ".join((doc or "").replace("``", "").split())
    return text.split(". ")[0].rstrip(".")
