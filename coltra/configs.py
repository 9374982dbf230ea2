"""Typed, documented, immutable configs: one convention for every part of Coltra.

A config is a frozen dataclass inheriting :class:`Config`. Every field is declared with
:func:`option`, which carries a one-line doc (for ``describe()`` and the README table) and an
optional check such as :data:`positive`::

    @dataclass(frozen=True)
    class PPOConfig(Config):
        lr: float = option(2.5e-4, doc="Adam learning rate (CleanRL ppo.py).", check=positive)

Values are converted and checked against the type hints when a config is built, however it is
built (``PPOConfig(...)``, ``from_dict``, ``from_yaml``, ``update``, ``override``), so a config
object that exists is valid. Configs are immutable: ``update`` and ``override`` return new
objects, which makes a config safe to share between the trainer, checkpoints and workers.
(List fields stay lists, as the hints say; do not mutate them in place.)

Every problem raises :class:`ConfigError` naming the full key, what was expected and what was
found: ``ppo.lr: expected a float > 0, got -1.0``.

YAML is read with PyYAML's safe loader, so a config file can never run code, with YAML 1.2
rules in place of YAML 1.1 ones where 1.1 surprises people: only ``true``/``false`` are booleans
(``yes``, ``no``, ``on``, ``off`` stay strings), ``1e-4`` is a float, ``2024-01-01`` is a string
(not a date); and a key given twice is an error rather than silently the last one.
"""

import dataclasses
import difflib
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, Union

import yaml

from coltra.files import atomic_write_text

__all__ = [
    "Check",
    "Config",
    "ConfigError",
    "EnvConfig",
    "FieldInfo",
    "MLPConfig",
    "PPOConfig",
    "RunConfig",
    "TrainerConfig",
    "in_range",
    "load_yaml_mapping",
    "non_negative",
    "option",
    "positive",
    "probability",
]

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config key, value or file that cannot be used; the message says where and why.

    ``key`` is the full dotted path of the offending entry (``model.hidden_sizes[1]``), or ""
    when the problem is not about one key (a missing file); ``source`` is where the values came
    from (a file, a command-line override), when known.
    """

    def __init__(self, problem: str, *, key: str = "", source: str | None = None) -> None:
        self.problem = problem
        self.key = key
        self.source = source
        where = f"{key}: " if key else ""
        origin = f" (in {source})" if source else ""
        super().__init__(f"{where}{problem}{origin}")

    def within(self, prefix: str) -> "ConfigError":
        """The same error seen from a parent config whose field ``prefix`` holds this one."""
        return ConfigError(self.problem, key=_join(prefix, self.key), source=self.source)

    def from_source(self, source: str) -> "ConfigError":
        """The same error, saying which file or override it came from."""
        return ConfigError(self.problem, key=self.key, source=self.source or source)


# ----------------------------------------------------------------------------- field helpers


@dataclass(frozen=True)
class Check:
    """A condition on a value; ``description`` finishes the sentence "expected a float ..."."""

    description: str
    test: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        return bool(self.test(value))


def in_range(
    lo: float, hi: float, *, lo_inclusive: bool = True, hi_inclusive: bool = True
) -> Check:
    """A check that a number lies between ``lo`` and ``hi``; ``[``/``]`` mark inclusive ends."""

    def test(value: float) -> bool:
        above = value >= lo if lo_inclusive else value > lo
        below = value <= hi if hi_inclusive else value < hi
        return above and below

    left, right = "[" if lo_inclusive else "(", "]" if hi_inclusive else ")"
    return Check(f"in {left}{lo:g}, {hi:g}{right}", test)


positive = Check("> 0", lambda value: value > 0)
non_negative = Check(">= 0", lambda value: value >= 0)
probability = in_range(0.0, 1.0)
_not_empty = Check("that is not empty", lambda value: len(value) > 0)
_device = Check(
    "that is 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'",
    lambda value: re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?|mps", value) is not None,
)


def option(
    default: Any = MISSING,
    *,
    doc: str,
    check: Check | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare a config field with its doc and optional check.

    ``check`` applies to the value, or to each item of a list, tuple or dict field, and is
    skipped for ``None``. A list or dict ``default`` is copied for each config, so
    ``option([64, 64], ...)`` is as safe as a ``default_factory``.
    """
    metadata = {"doc": doc, "check": check}
    if isinstance(default, list | dict):
        if default_factory is not None:
            raise TypeError("option() takes a default or a default_factory, not both")
        value = default
        default_factory, default = (lambda: _copy_plain(value)), MISSING
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class FieldInfo(NamedTuple):
    """One row of :meth:`Config.describe`: a key, its type, its default and its doc."""

    key: str
    type: str
    default: Any
    doc: str


class _Spec(NamedTuple):
    name: str
    hint: Any
    doc: str
    check: Check | None
    field: "dataclasses.Field[Any]"


_SPECS: dict[type, tuple[_Spec, ...]] = {}


def _specs(cls: type["Config"]) -> tuple[_Spec, ...]:
    """The fields of a config class with resolved hints (cached); checks the class's rules."""
    if cls in _SPECS:
        return _SPECS[cls]
    if "__dataclass_params__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} must be decorated with @dataclass(frozen=True)")
    hints = typing.get_type_hints(cls)
    specs = []
    for field in dataclasses.fields(cls):
        doc = field.metadata.get("doc", "")
        if not doc:
            raise TypeError(
                f"{cls.__name__}.{field.name} has no doc; declare it with option(..., doc=...)"
            )
        _type_name(hints[field.name])  # raises TypeError for a hint we cannot check
        specs.append(_Spec(field.name, hints[field.name], doc, field.metadata.get("check"), field))
    _SPECS[cls] = tuple(specs)
    return _SPECS[cls]


# ----------------------------------------------------------------------------- the base class


@dataclass(frozen=True)
class Config:
    """Base of every Coltra config: a frozen dataclass whose fields are declared with option().

    Subclasses must be ``@dataclass(frozen=True)``. Override :meth:`validate` for rules that
    involve several fields.
    """

    def __post_init__(self) -> None:
        for spec in _specs(type(self)):
            value = _checked(getattr(self, spec.name), spec.hint, spec.check, spec.name)
            object.__setattr__(self, spec.name, value)  # frozen: the one place values are set
        self.validate()

    def validate(self) -> None:
        """Cross-field rules; raise ``ConfigError(problem, key=field_name)`` when broken."""

    # --------------------------------------------------------------------- building

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """A config from a (nested) mapping; missing keys keep their defaults."""
        return cls._build(data, prefix="")

    @classmethod
    def from_yaml(cls: type[C], path: str | os.PathLike[str]) -> C:
        """A config from a YAML file holding a (nested) mapping of keys."""
        data = load_yaml_mapping(path)
        try:
            return cls.from_dict(data)
        except ConfigError as err:
            raise err.from_source(os.fspath(path)) from None

    def update(self: C, changes: Mapping[str, Any]) -> C:
        """A new config with ``changes`` applied; nested mappings update nested configs key by
        key, any other value (a list, a dict field's value) replaces the old one."""
        return self._updated(changes, prefix="")

    def override(self: C, assignments: Iterable[str]) -> C:
        """A new config with command-line style ``key.path=value`` assignments applied.

        Each value is read as YAML (``ppo.lr=1e-4``, ``model.hidden_sizes=[32, 32]``) and
        checked against its field at once; a text field takes the raw text when YAML reads
        something else (``trainer.name=2024`` is the name "2024"). A path may go into a dict
        field: ``env.env_kwargs.max_cycles=100`` sets one keyword and keeps the others. Rules
        across fields are checked once all assignments are in, so their order does not matter.
        """
        if isinstance(assignments, str):
            assignments = [assignments]
        data = self.to_dict()
        texts = list(assignments)
        for text in texts:
            try:
                _assign(type(self), data, text)
            except ConfigError as err:
                raise err.from_source(f"override {text!r}") from None
        try:
            return type(self).from_dict(data)
        except ConfigError as err:
            raise err.from_source("overrides " + ", ".join(map(repr, texts))) from None

    # --------------------------------------------------------------------- exporting

    def to_dict(self) -> dict[str, Any]:
        """A nested dict of plain YAML values (lists for tuples), sharing nothing with self."""
        return {spec.name: _copy_plain(getattr(self, spec.name)) for spec in _specs(type(self))}

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The config as YAML text, also written to ``path`` (atomically) when given."""
        text = yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False)
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def describe(cls) -> list[FieldInfo]:
        """Every key (nested configs flattened to dotted keys) with its type, default and doc."""
        return _describe(cls, None, prefix="")

    @classmethod
    def describe_markdown(cls) -> str:
        """:meth:`describe` as a markdown table, for the README."""
        lines = ["| key | type | default | doc |", "| --- | --- | --- | --- |"]
        for row in cls.describe():
            cells = (f"`{row.key}`", row.type, f"`{_yaml_inline(row.default)}`", row.doc)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines) + "\n"

    # --------------------------------------------------------------------- internals

    @classmethod
    def _build(cls: type[C], data: Any, prefix: str) -> C:
        try:
            _check_keys(cls, data, require_all=True)
            return cls(**data)
        except ConfigError as err:
            raise err.within(prefix) from None

    def _updated(self: C, changes: Any, prefix: str) -> C:
        try:
            _check_keys(type(self), changes, require_all=False)
            values = {}
            for name, new in changes.items():
                current = getattr(self, name)
                if isinstance(current, Config) and isinstance(new, Mapping):
                    values[name] = current._updated(new, prefix=name)
                else:
                    values[name] = new
            return dataclasses.replace(self, **values)
        except ConfigError as err:
            raise err.within(prefix) from None


def _assign(cls: type[Config], data: dict[str, Any], text: str) -> None:
    """Apply one ``key.path=value`` assignment to ``data``, the plain dict of a ``cls`` config."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("expected key=value, e.g. ppo.lr=3e-4")
    parts = key.split(".")
    hint: Any = cls
    check: Check | None = None
    node = data
    path = ""
    for i, part in enumerate(parts):  # walk the type hints and the plain dict side by side
        hint = _without_none(hint)
        if _is_config(hint):
            _check_keys(hint, {part: None}, require_all=False, prefix=path)
            spec = next(spec for spec in _specs(hint) if spec.name == part)
            hint, check = spec.hint, spec.check
        elif hint is Any or hint is dict or typing.get_origin(hint) is dict:
            hint = typing.get_args(hint)[1] if typing.get_args(hint) else Any
        else:
            raise ConfigError(f"holds a single value, so it has no key {part!r}", key=path)
        path = _join(path, part)
        if i + 1 < len(parts):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                problem = f"holds a single value, so it has no key {parts[i + 1]!r}"
                raise ConfigError(problem, key=path)
            node = child
    if _is_config(_without_none(hint)):
        example = f"{key}.{_specs(_without_none(hint))[0].name}=..."
        raise ConfigError(f"is a section; set its keys one by one, e.g. {example}", key=key)
    try:
        value = yaml.load(raw, Loader=_SafeLoader)
    except yaml.YAMLError:
        value = raw.strip()
    try:
        node[parts[-1]] = _copy_plain(_checked(value, hint, check, key))
    except ConfigError as err:
        if isinstance(value, str) or err.key != key:
            raise
        try:  # a text field given something YAML reads as a number, a date, a list...
            node[parts[-1]] = _checked(raw.strip(), hint, check, key)
        except ConfigError:
            raise err from None


def _check_keys(cls: type[Config], data: Any, *, require_all: bool, prefix: str = "") -> None:
    """Refuse a non-mapping, unknown keys (suggesting close ones) and missing required keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of keys, got {_show(data)}", key=prefix)
    names = [spec.name for spec in _specs(cls)]
    for key in data:
        if key not in names:
            shown = key if isinstance(key, str) and key else repr(key)
            problem = f"unknown key{_suggest(key, names)} (known keys: {', '.join(names)})"
            raise ConfigError(problem, key=_join(prefix, shown))
    if require_all:
        for spec in _specs(cls):
            no_default = spec.field.default is MISSING and spec.field.default_factory is MISSING
            if no_default and spec.name not in data:
                raise ConfigError("required key is missing", key=_join(prefix, spec.name))


def _describe(cls: type[Config], instance: Config | None, prefix: str) -> list[FieldInfo]:
    rows = []
    for spec in _specs(cls):
        if instance is not None:
            default = getattr(instance, spec.name)
        elif spec.field.default_factory is not MISSING:
            default = spec.field.default_factory()
        else:
            default = None if spec.field.default is MISSING else spec.field.default
        key = _join(prefix, spec.name)
        if isinstance(default, Config):  # a nested config: list its keys, with its defaults
            rows.extend(_describe(type(default), default, prefix=key))
        else:
            rows.append(FieldInfo(key, _type_name(spec.hint), default, spec.doc))
    return rows


# ----------------------------------------------------------------------------- conversion

_NONE = type(None)
# Floats as YAML 1.2 writes them; YAML 1.1 (PyYAML) reads '1e-4' and '3e5' as strings.
_FLOAT_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _convert(value: Any, hint: Any, path: str) -> Any:
    """``value`` converted to the type ``hint`` describes, or a ConfigError naming ``path``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return _plain_yaml(value, path)
    if hint is _NONE:
        if value is None:
            return None
    elif _is_config(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return hint._build(value, prefix=path)
        raise ConfigError(f"expected a mapping of keys, got {_show(value)}", key=path)
    elif hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected bool (true or false), got {_show(value)}", key=path)
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif hint is float:
        return _to_float(value, path)
    elif hint is str:
        if isinstance(value, str):
            return str(value)
    elif origin is Literal:
        for choice in args:
            if value == choice and type(value) is type(choice):
                return choice
        words = [arg for arg in args if isinstance(arg, str)]
        problem = f"expected {_type_name(hint)}, got {_show(value)}{_suggest(value, words)}"
        raise ConfigError(problem, key=path)
    elif origin in (Union, types.UnionType):
        return _convert_union(value, args, path)
    elif origin in (list, tuple) or hint in (list, tuple):
        return _convert_sequence(value, hint, path)
    elif origin is dict or hint is dict:
        return _convert_dict(value, hint, path)
    else:
        raise TypeError(f"config field {path!r}: unsupported type hint {hint!r}")
    raise ConfigError(f"expected {_type_name(hint)}, got {_show(value)}", key=path)


def _checked(value: Any, hint: Any, check: Check | None, path: str) -> Any:
    """``value`` converted to ``hint`` and passed through ``check``."""
    value = _convert(value, hint, path)
    if check is not None:
        _check(value, check, hint, path)
    return value


def _is_config(hint: Any) -> bool:
    return typing.get_origin(hint) is None and isinstance(hint, type) and issubclass(hint, Config)


def _without_none(hint: Any) -> Any:
    """``X`` for ``X | None``; any other hint unchanged."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not _NONE]
        if len(members) == 1:
            return members[0]
    return hint


def _to_float(value: Any, path: str) -> float:
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value):
        result = float(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            result = float(value)
        except OverflowError:
            raise ConfigError(f"expected float, got {_show(value)} (too large)", key=path) from None
    else:
        raise ConfigError(f"expected float, got {_show(value)}", key=path)
    if math.isnan(result):  # NaN passes every range check and breaks equality: refuse it
        raise ConfigError(f"expected float, got {_show(value)}", key=path)
    return result


def _convert_union(value: Any, members: tuple[Any, ...], path: str) -> Any:
    if value is None and _NONE in members:
        return None
    for member in members:
        if member is _NONE:
            continue
        try:
            return _convert(value, member, path)
        except ConfigError as err:
            if err.key != path:  # the error is inside the value (a list item): more precise
                raise
    union_name = " or ".join(_type_name(member) for member in members)
    raise ConfigError(f"expected {union_name}, got {_show(value)}", key=path)


def _convert_sequence(value: Any, hint: Any, path: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"expected {_type_name(hint)}, got {_show(value)}", key=path)
    origin = typing.get_origin(hint) or hint
    args = typing.get_args(hint)
    if origin is list or not args or (len(args) == 2 and args[1] is Ellipsis):
        item_hints = [args[0] if args else Any] * len(value)
    else:  # a fixed-length tuple such as tuple[int, int]
        if len(value) != len(args):
            raise ConfigError(f"expected {len(args)} items, got {_show(value)}", key=path)
        item_hints = list(args)
    items = [
        _convert(item, h, f"{path}[{i}]") for i, (item, h) in enumerate(zip(value, item_hints))
    ]
    return items if origin is list else tuple(items)


def _convert_dict(value: Any, hint: Any, path: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected {_type_name(hint)}, got {_show(value)}", key=path)
    key_hint, value_hint = typing.get_args(hint) or (Any, Any)
    result = {}
    for key, item in value.items():
        try:
            new_key = _convert(key, key_hint, path)
        except ConfigError:
            problem = f"keys must be {_type_name(key_hint)}, got {_show(key)}"
            raise ConfigError(problem, key=path) from None
        result[new_key] = _convert(item, value_hint, _join(path, str(key)))
    return result


def _plain_yaml(value: Any, path: str) -> Any:
    """``value`` as plain YAML data (what ``Any`` means in a config), numpy numbers included."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain_yaml(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            if not (key is None or isinstance(key, str | numbers.Real)):
                raise ConfigError(
                    f"keys must be null, bool, number or str, got {_show(key)}", key=path
                )
            result[_plain_yaml(key, path)] = _plain_yaml(item, _join(path, str(key)))
        return result
    problem = (
        f"expected a YAML value (null, bool, number, string, list or mapping), got {_show(value)}"
    )
    raise ConfigError(problem, key=path)


def _check(value: Any, check: Check, hint: Any, path: str) -> None:
    """Apply a field's check to its value, or to each item of a collection; None is exempt."""
    if value is None:
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, check, hint, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check(item, check, hint, _join(path, str(key)))
        return
    if not check(value):
        noun = type(value).__name__
        article = "an" if noun[0] in "aeiou" else "a"
        or_null = " or null" if _NONE in typing.get_args(hint) else ""
        problem = f"expected {article} {noun} {check.description}{or_null}, got {_show(value)}"
        raise ConfigError(problem, key=path)


def _type_name(hint: Any) -> str:
    """How a type hint reads in errors and the README; TypeError for hints we cannot check."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "any YAML value"
    if hint is _NONE:
        return "null"
    if hint in (bool, int, float, str):
        return str(hint.__name__)
    if _is_config(hint):
        return f"{hint.__name__} mapping"
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in sorted(args, key=lambda a: a is _NONE))
    if origin is list or hint is list:
        return f"list of {_type_name(args[0] if args else Any)}"
    if origin is tuple or hint is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return f"list of {_type_name(args[0] if args else Any)}"
        return f"list of ({', '.join(_type_name(arg) for arg in args)})"
    if origin is dict or hint is dict:
        key_hint, value_hint = args or (Any, Any)
        return f"mapping of {_type_name(key_hint)} to {_type_name(value_hint)}"
    raise TypeError(f"unsupported config type hint {hint!r}")


def _suggest(word: Any, options: list[str]) -> str:
    """The "; did you mean 'x'?" hint for the option closest to ``word`` (any case), or ""."""
    if not isinstance(word, str):
        return ""
    lowered = {option.lower(): option for option in options}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    if not key:
        return prefix
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _copy_plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_copy_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy_plain(item) for key, item in value.items()}
    return value


# ----------------------------------------------------------------------------- YAML files

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
        problem = f"top level must be a mapping of keys, got a {type(data).__name__}: {_show(data)}"
        raise ConfigError(f"{where}: {problem}")
    return data


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


def _yaml_inline(value: Any) -> str:
    """A value as it would be written in a YAML file, on one line."""
    text = yaml.dump(_copy_plain(value), Dumper=_Dumper, default_flow_style=True, width=10**9)
    return text.removesuffix("\n...\n").strip()


# ----------------------------------------------------------------------------- Coltra's configs
# Each field: type, default, a one-line doc (what it is, its unit, where the default comes from)
# and a check. RUF009 is silenced for list, dict and nested-config fields: option() builds a
# dataclasses.field with a default_factory, so nothing mutable is shared between configs.


@dataclass(frozen=True)
class MLPConfig(Config):
    """The policy and value networks (``coltra.models``)."""

    input_size: int = option(
        0,
        doc="Length of the flat observation vector; 0 = derive it from the observation space.",
        check=non_negative,
    )
    num_actions: int = option(
        0,
        doc="Discrete actions, or continuous action dimensions; 0 = derive from the action space.",
        check=non_negative,
    )
    discrete: bool | None = option(
        None,
        doc="Categorical (true) or continuous (false) policy; null = derive from the action space.",
    )
    hidden_sizes: list[int] = option(
        [64, 64],
        doc="Units per hidden layer, input to output ([64, 64] as in CleanRL and SB3).",
        check=positive,
    )
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = option(
        "tanh",
        doc="Hidden-layer activation (tanh, as in CleanRL's ppo.py).",
    )
    initializer: Literal["orthogonal", "kaiming_uniform", "xavier_uniform", "default"] = option(
        "orthogonal",
        doc="Init of linear layers (orthogonal, gain sqrt(2), as CleanRL); 'default' = PyTorch's.",
    )
    policy_head_gain: float = option(
        0.01,
        doc="Orthogonal gain of the policy's last layer; small = near-uniform start (CleanRL).",
        check=non_negative,
    )
    value_head_gain: float = option(
        1.0,
        doc="Orthogonal gain of the value network's last layer (CleanRL).",
        check=non_negative,
    )
    continuous_mode: Literal["logstd", "std_head", "beta"] = option(
        "logstd",
        doc="Continuous actions: Gaussian with a learned log-std (CleanRL), std head, or Beta.",
    )
    sigma0: float = option(
        0.5,
        doc="Initial std of continuous actions, in action units (Coltra's choice; CleanRL: 1).",
        check=positive,
    )
    image_encoder: Literal["flatten", "cnn"] = option(
        "flatten",
        doc="Encoder for image observations: flatten into the MLP, or a small CNN first.",
    )
    cnn_channels: list[int] = option(
        [16, 32],
        doc="Output channels of each conv layer when image_encoder is 'cnn' (Coltra's choice).",
        check=positive,
    )
    shared_backbone: bool = option(
        False,
        doc="Reserved: share hidden layers between policy and value; false = separate networks.",
    )


@dataclass(frozen=True)
class PPOConfig(Config):
    """The PPO update (``coltra.policy_optimization``); defaults from CleanRL's ppo.py."""

    lr: float = option(
        2.5e-4,
        doc="Adam learning rate (CleanRL ppo.py).",
        check=positive,
    )
    gamma: float = option(
        0.99,
        doc="Discount factor per env step (CleanRL).",
        check=probability,
    )
    gae_lambda: float = option(
        0.95,
        doc="GAE lambda, the bias/variance trade-off of advantages (CleanRL).",
        check=probability,
    )
    epochs: int = option(
        4,
        doc="Passes over each rollout per iteration (update_epochs in CleanRL).",
        check=positive,
    )
    num_minibatches: int = option(
        4,
        doc="Minibatches per epoch (CleanRL); ignored when minibatch_size is set.",
        check=positive,
    )
    minibatch_size: int | None = option(
        None,
        doc="Samples per minibatch; when set, overrides num_minibatches.",
        check=positive,
    )
    clip_coef: float = option(
        0.2,
        doc="Clipping range epsilon of the PPO surrogate objective (CleanRL).",
        check=positive,
    )
    clip_vloss: bool = option(
        True,
        doc="Also clip the value loss around the old values (CleanRL).",
    )
    vf_coef: float = option(
        0.5,
        doc="Weight of the value loss (CleanRL).",
        check=non_negative,
    )
    ent_coef: float = option(
        0.0,
        doc="Weight of the entropy bonus (CleanRL: 0.01 for discrete/Atari, 0.0 for MuJoCo).",
        check=non_negative,
    )
    ent_coef_final: float | None = option(
        None,
        doc="If set, entropy weight goes linearly from ent_coef to this over anneal_iterations.",
        check=non_negative,
    )
    max_grad_norm: float = option(
        0.5,
        doc="Clip the global gradient norm to this (CleanRL).",
        check=positive,
    )
    target_kl: float | None = option(
        None,
        doc="Stop an iteration's epochs once approx KL exceeds this; null = never (CleanRL).",
        check=positive,
    )
    norm_adv: bool = option(
        True,
        doc="Normalise advantages per minibatch (CleanRL).",
    )
    anneal_lr: bool = option(
        False,
        doc="Decay lr linearly to 0 over anneal_iterations (CleanRL: on; off by default here).",
    )
    anneal_iterations: int | None = option(
        None,
        doc="Iterations to anneal lr/entropy over; required by anneal_lr and ent_coef_final.",
        check=positive,
    )
    adam_eps: float = option(
        1e-5,
        doc="Adam epsilon (CleanRL; PyTorch's default is 1e-8).",
        check=positive,
    )
    seed: int = option(
        0,
        doc="Seed of the minibatch shuffling generator.",
        check=non_negative,
    )

    def validate(self) -> None:
        if self.anneal_iterations is not None:
            return
        if self.anneal_lr or self.ent_coef_final is not None:
            why = "anneal_lr is true" if self.anneal_lr else "ent_coef_final is set"
            raise ConfigError(
                f"must be set when {why}: the number of iterations to anneal over, "
                "usually trainer.iterations",
                key="anneal_iterations",
            )


@dataclass(frozen=True)
class EnvConfig(Config):
    """Which environment to train on and how its copies are vectorised (``coltra.envs``)."""

    kind: Literal["gym", "pettingzoo", "probe"] = option(
        "gym",
        doc="Environment family: Gymnasium, PettingZoo, or one of Coltra's probe envs.",
    )
    env_name: str = option(
        "CartPole-v1",
        doc="Gym id, PettingZoo module ('pettingzoo.sisl.pursuit_v5') or probe name (CleanRL).",
        check=_not_empty,
    )
    env_kwargs: dict[str, Any] = option(
        {},
        doc="Env keywords: gymnasium.make's, parallel_env's (PettingZoo) or the probe class's.",
    )
    workers: int = option(
        8,
        doc="Env workers; with the subprocess backend, one process each (Coltra's choice).",
        check=positive,
    )
    envs_per_worker: int = option(
        1,
        doc="Env copies stepped one after another by each worker.",
        check=positive,
    )
    backend: Literal["auto", "inprocess", "subprocess"] = option(
        "auto",
        doc="Where copies run; 'auto' = the env's default (subprocess for PettingZoo, else here).",
    )
    step_timeout: float | None = option(
        None,
        doc="Seconds to wait for a worker's step before failing (subprocess backend); null = "
        "wait forever.",
        check=positive,
    )


@dataclass(frozen=True)
class TrainerConfig(Config):
    """The training run: its length, saving, logging and device (``coltra.trainers``)."""

    name: str = option(
        "run",
        doc="Run name, used in the run directory and logs.",
        check=_not_empty,
    )
    run_dir: str | None = option(
        None,
        doc="Directory for checkpoints, config.yaml and logs; null = runs/<name>_<timestamp>.",
    )
    steps: int = option(
        128,
        doc="Env steps per env copy per iteration (num_steps in CleanRL).",
        check=positive,
    )
    iterations: int = option(
        100,
        doc="Training iterations, each a rollout and an update.",
        check=positive,
    )
    save_every: int = option(
        10,
        doc="Save a checkpoint every this many iterations (and always at the end).",
        check=positive,
    )
    keep_checkpoints: int = option(
        3,
        doc="How many of the newest checkpoints to keep; older ones are deleted.",
        check=positive,
    )
    stop_at_return: float | None = option(
        None,
        doc="Stop early once the mean return of the last return_window episodes reaches this.",
    )
    return_window: int = option(
        20,
        doc="Finished episodes averaged for the reported return and stop_at_return (CleanRL: 20).",
        check=positive,
    )
    eval_episodes: int = option(
        0,
        doc="Episodes of deterministic evaluation at the end, on fresh env copies; 0 = none.",
        check=non_negative,
    )
    seed: int | None = option(
        0,
        doc="Seed of envs, torch, numpy, random and PPO shuffling; null = draw one (saved).",
        check=non_negative,
    )
    device: str = option(
        "auto",
        doc="Torch device: 'auto' (CUDA if available, else CPU), 'cpu', 'cuda', 'cuda:N', 'mps'.",
        check=_device,
    )
    torch_threads: int | None = option(
        1,
        doc="torch.set_num_threads of the learner (1 leaves cores to env workers); null = as is.",
        check=positive,
    )
    log_every: int = option(
        1,
        doc="Log metrics every this many iterations.",
        check=positive,
    )
    on_nonfinite: Literal["raise", "drop"] = option(
        "raise",
        doc="NaN/inf from the env: 'raise' an error naming agent and step, or 'drop' the step "
        "(counted in charts/nonfinite_dropped).",
    )
    restart_crashed_envs: int = option(
        0,
        doc="Rebuild a crashed env and go on (with a warning), at most this many times per "
        "session; 0 = a crash stops the run.",
        check=non_negative,
    )
    progress: bool = option(
        True,
        doc="Show progress: a bar on a terminal, else a log line every ~10 s (on stderr).",
    )
    wandb: bool = option(
        False,
        doc="Also log to Weights & Biases (pip install wandb; WANDB_MODE=offline: no account).",
    )
    wandb_project: str = option(
        "coltra",
        doc="Weights & Biases project name.",
        check=_not_empty,
    )
    wandb_entity: str | None = option(
        None,
        doc="Weights & Biases entity (user or team); null = your default entity.",
    )


@dataclass(frozen=True)
class RunConfig(Config):
    """The full config of a training run, as saved to the run directory's config.yaml."""

    trainer: TrainerConfig = option(
        default_factory=TrainerConfig,
        doc="Run length, saving, logging and device.",
    )
    ppo: PPOConfig = option(
        default_factory=PPOConfig,
        doc="PPO update hyperparameters.",
    )
    model: MLPConfig = option(
        default_factory=MLPConfig,
        doc="Policy and value networks.",
    )
    env: EnvConfig = option(
        default_factory=EnvConfig,
        doc="Environment and vectorisation.",
    )
