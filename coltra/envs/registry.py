"""Environments by name, and which modules a name may make Coltra import.

A config file names its env (``env.env_name``) and wrappers (``env.wrappers``), and naming a
module means importing it, which runs its code. So a name is only imported from a module
that is allowed: PettingZoo's and Gymnasium's own, ``mpe2`` and ``magent2`` (which left
PettingZoo), SuperSuit's wrappers, Coltra's own, and whatever *you* allow, in Python
(:func:`allow_module`) or on the command line (``coltra train --allow-module mypkg``), never
because a config file says so: a config from a stranger cannot run code. Envs of your own
can also be registered by name (:func:`register`) and named in a config as
``env.kind: registered``.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "ModuleNotAllowed",
    "allow_module",
    "allowed_modules",
    "import_allowed",
    "register",
    "registered",
    "registered_names",
    "resolve_name",
]

#: Packages a config file may name modules of (Coltra's own for its probe envs and classes).
DEFAULT_ALLOWED_MODULES = ("pettingzoo", "mpe2", "magent2", "gymnasium", "supersuit", "coltra")
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_allowed: list[str] = list(DEFAULT_ALLOWED_MODULES)
_registry: dict[str, Callable[..., Any]] = {}


class ModuleNotAllowed(ValueError):
    """A config named a module outside the allowed packages."""


def allow_module(name: str) -> None:
    """Let configs name modules of package ``name`` (and its submodules), as
    ``--allow-module name`` does: only for code you trust."""
    if not isinstance(name, str) or not _MODULE_PATH.fullmatch(name):
        raise ValueError(f"expected a module or package name such as 'mypkg', got {name!r}")
    if name not in _allowed:
        _allowed.append(name)


def allowed_modules() -> list[str]:
    return list(_allowed)


def _is_allowed(module: str) -> bool:
    return any(module == allowed or module.startswith(allowed + ".") for allowed in _allowed)


def import_allowed(module: str) -> ModuleType:
    """Import ``module`` if it is in an allowed package: :class:`ModuleNotAllowed` if not,
    ImportError (with the reason) if it cannot be imported."""
    if not isinstance(module, str) or not _MODULE_PATH.fullmatch(module):
        raise ModuleNotAllowed(
            f"expected a module path such as 'mpe2.simple_tag_v3', got {module!r}"
        )
    if not _is_allowed(module):
        raise ModuleNotAllowed(
            f"module {module!r} is not in an allowed package ({', '.join(_allowed)}): a config "
            f"file alone cannot make Coltra import code; allow it with --allow-module "
            f"{module.split('.')[0]} (or coltra.envs.allow_module), or register the env with "
            "coltra.envs.register"
        )
    with warnings.catch_warnings():
        # PettingZoo 1.27 warns on every env module import that a registry will replace
        # module imports some day; module paths are how configs name envs until then.
        warnings.filterwarnings(
            "ignore", "The old environment creation API", category=DeprecationWarning
        )
        return importlib.import_module(module)


def resolve_name(dotted: str) -> Any:
    """The object a dotted name (``gymnasium.wrappers.FlattenObservation``) or a
    ``module:attribute`` name points to, from an allowed module."""
    module, sep, attribute = dotted.partition(":")
    if not sep:
        module, _, attribute = dotted.rpartition(".")
    if not module or not attribute:
        raise ModuleNotAllowed(
            f"expected module.name or module:name (e.g. gymnasium.wrappers.FlattenObservation), "
            f"got {dotted!r}"
        )
    found = import_allowed(module)
    try:
        value = getattr(found, attribute)
    except AttributeError:
        raise ModuleNotAllowed(f"module {module!r} has no {attribute!r}") from None
    # What an allowed module merely imported (`from os import system`) is not allowed.
    home = getattr(value, "__module__", None)
    if not isinstance(home, str) or not _is_allowed(home):
        raise ModuleNotAllowed(
            f"{dotted!r} is defined in {home!r}, not in an allowed package ({', '.join(_allowed)})"
        )
    return value


def register(name: str, creator: Callable[..., Any]) -> None:
    """Name an env of your own for configs (``env: {kind: registered, env_name: <name>}``).
    ``creator(**env.env_kwargs)`` returns a coltra MultiAgentEnv, a PettingZoo parallel env
    or a Gymnasium env (the last two are wrapped). Registering from Python is trusting the
    code: nothing is imported by name."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an env name must be a non-empty string, got {name!r}")
    if not callable(creator):
        raise TypeError(f"register needs a function or class that builds the env, got {creator!r}")
    _registry[name] = creator


def registered(name: str) -> Callable[..., Any]:
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none yet"
        raise KeyError(
            f"no env is registered as {name!r} (registered: {known}; coltra.envs.register)"
        ) from None


def registered_names() -> list[str]:
    return sorted(_registry)
