"""ConfigError: a config key, value or file that cannot be used, said the way a person reads it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

__all__ = ["ConfigError", "join_key", "show", "suggest"]


class ConfigError(ValueError):
    """A config key, value or file that cannot be used; the message says where and why.

    ``key`` is the full dotted path of the offending entry (``model.hidden_sizes[1]``), or ""
    when the problem is not about one key (a missing file); ``source`` is where the values came
    from (a file, a command-line override), when known::

        ppo.lr: expected a float > 0, got -1.0 (in override 'ppo.lr=-1')
    """

    def __init__(self, problem: str, *, key: str = "", source: str | None = None) -> None:
        self.problem = problem
        self.key = key
        self.source = source
        where = f"{key}: " if key else ""
        origin = f" (in {source})" if source else ""
        super().__init__(f"{where}{problem}{origin}")

    def within(self, prefix: str) -> ConfigError:
        """The same error seen from a parent config whose field ``prefix`` holds this one."""
        return ConfigError(self.problem, key=join_key(prefix, self.key), source=self.source)

    def from_source(self, source: str) -> ConfigError:
        """The same error, saying which file or override it came from."""
        return ConfigError(self.problem, key=self.key, source=self.source or source)


def join_key(prefix: str, key: str) -> str:
    """``prefix.key``, or ``prefix[3]`` for a list index written ``[3]``."""
    if not prefix:
        return key
    if not key:
        return prefix
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def show(value: Any) -> str:
    """A value in an error message: its repr, cut at 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def suggest(word: Any, options: Iterable[str]) -> str:
    """The "; did you mean 'x'?" hint for the option closest to ``word`` (any case), or ""."""
    if not isinstance(word, str):
        return ""
    lowered = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""
