"""Config files: YAML read safely, with YAML 1.2's rules where YAML 1.1 surprises people.

PyYAML's safe loader never builds Python objects, so a config file cannot run code; tags such
as ``!!python/object/apply`` are refused before anything is constructed. On top of it: only
``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay strings), ``1e-4`` is a
float, ``2024-01-01`` stays a string (not a date), and a key given twice is an error instead of
silently the last one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from coltra.configs.errors import ConfigError, show

__all__ = ["dump_yaml", "inline_yaml", "load_yaml_mapping", "parse_yaml_value"]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIME_TAG = "tag:yaml.org,2002:timestamp"
# Exponent floats without a dot or exponent sign, which YAML 1.1 leaves as strings.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans, floats and no dates, refusing duplicate
    keys (PyYAML would silently keep the last of two ``ppo:`` sections)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                identity = (key_node.tag, key_node.value)
                if identity in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {key_node.value!r} twice",
                        key_node.start_mark,
                    )
                seen.add(identity)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper; quotes strings that either YAML 1.1 or 1.2 would read as
    non-strings ('yes', '1e3'), and writes lists of scalars on one line."""


_SafeLoader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+0123456789."))
for _resolvers in _SafeLoader.yaml_implicit_resolvers.values():  # no yes/no/on/off, no dates
    _resolvers[:] = [(tag, rx) for tag, rx in _resolvers if tag not in (_BOOL_TAG, _TIME_TAG)]
_SafeLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Dumper.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+0123456789."))


def _represent_list(dumper: _Dumper, data: Sequence[Any]) -> yaml.Node:
    flow = all(not isinstance(item, list | tuple | dict) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def load_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The top-level mapping of a YAML file, read safely; ConfigError saying why if it cannot be.

    An empty file is an empty mapping. Python-specific tags (``!!python/object/apply``) are
    refused before anything is constructed, so a hostile file cannot run code.
    """
    where = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {where!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {where!r} is a directory, not a YAML file") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {where!r} is not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {where!r}: {err.strerror}") from None
    try:
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.MarkedYAMLError as err:
        raise ConfigError(_yaml_problem(where, err)) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        problem = f"top level must be a mapping of keys, got a {type(data).__name__}: {show(data)}"
        raise ConfigError(f"{where}: {problem}")
    return data


def parse_yaml_value(text: str) -> Any:
    """One value written as YAML (a ``--set`` override's right-hand side); text that is not
    valid YAML is the text itself."""
    try:
        return yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError:
        return text.strip()


def dump_yaml(data: Any) -> str:
    """Plain data as block-style YAML that :func:`load_yaml_mapping` reads back unchanged."""
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False))


def inline_yaml(value: Any) -> str:
    """A value as it would be written in a YAML file, on one line."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=10**9)
    return str(text).removesuffix("\n...\n").strip()


def _yaml_problem(where: str, err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark or err.context_mark
    place = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
    problem = err.problem or "unknown problem"
    tag = re.search(r"tag '([^']*)'", problem)
    if isinstance(err, yaml.constructor.ConstructorError) and tag:
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        if name.startswith("!!python/"):
            return (
                f"{place}: refused the Python tag {name!r}: config files hold plain data only, "
                "and Python objects in YAML can run code"
            )
        return f"{place}: unsupported YAML tag {name!r}"
    context = f" ({err.context})" if err.context else ""
    return f"{place}: not valid YAML: {problem}{context}"
