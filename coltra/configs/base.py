"""The config convention: frozen pydantic models whose every field says what it is.

A config is a :class:`Config` (a pydantic v2 model: frozen, unknown keys forbidden, no silent
type coercion) and every field has a one-line ``description``, which is also its row in the
README and in ``coltra config --markdown``::

    class PPOConfig(Config):
        lr: Float = Field(2.5e-4, gt=0, description="Adam learning rate (CleanRL ppo.py).")

pydantic checks the values however a config is built (``PPOConfig(...)``, ``from_dict``,
``from_yaml``, ``update``, ``override``), so a config that exists is valid; ``update`` and
``override`` return new objects. What pydantic reports is rewritten here into one
:class:`ConfigError` that names the full key, what was expected and what was found, and where
the value came from::

    ppo.lr: expected a float > 0, got -1.0 (in override 'ppo.lr=-1')
    ppo.lrr: unknown key; did you mean 'lr'? (known keys: lr, gamma, ...)

The field types below (:data:`Float`, :data:`Int`, :data:`List`, :data:`YamlValue`) add what
YAML and numpy users expect to pydantic's strict mode: numpy numbers are numbers, an int is a
float, ``"1e-4"`` is a float, a tuple is a list; a bool is never a number and NaN is refused.
"""

from __future__ import annotations

import math
import numbers
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, TypeVar, Union

import annotated_types
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.fields import FieldInfo as PydanticField
from pydantic_core import PydanticCustomError

from coltra.configs.errors import ConfigError, join_key, show, suggest
from coltra.configs.yaml_io import dump_yaml, inline_yaml, load_yaml_mapping, parse_yaml_value
from coltra.files import atomic_write_text

__all__ = ["Config", "FieldInfo", "Float", "Int", "List", "YamlValue", "custom_error", "type_name"]

C = TypeVar("C", bound="Config")
T = TypeVar("T")


# ----------------------------------------------------------------------------- field types


def custom_error(problem: str, path: str = "") -> PydanticCustomError:
    """A validation error whose ``problem`` text is the message (``path`` goes below the
    field's own key, e.g. into a nested mapping)."""
    return PydanticCustomError("coltra", "{problem}", {"problem": problem, "path": path})


_FLOAT_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _real_to_float(value: Any) -> Any:
    """Numbers (numpy's too) and float text as a float; NaN refused; anything else is left
    for pydantic to refuse."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real):
        try:
            result = float(value)
        except OverflowError:
            raise custom_error(f"expected float, got {show(value)} (too large)") from None
    elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value):
        result = float(value)
    else:
        return value
    if math.isnan(result):  # NaN passes every range check and breaks equality: refuse it
        raise custom_error(f"expected float, got {show(value)}")
    return result


def _integral_to_int(value: Any) -> Any:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _tuple_to_list(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _plain_yaml(value: Any, path: str = "") -> Any:
    """``value`` as plain YAML data (what a free-form value may be), numpy numbers included."""
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
                problem = f"keys must be null, bool, number or str, got {show(key)}"
                raise custom_error(problem, path)
            result[_plain_yaml(key, path)] = _plain_yaml(item, join_key(path, str(key)))
        return result
    problem = (
        f"expected a YAML value (null, bool, number, string, list or mapping), got {show(value)}"
    )
    raise custom_error(problem, path)


#: A float field: ints, numpy numbers and float text are floats; bools and NaN are not.
Float = Annotated[float, BeforeValidator(_real_to_float)]
#: An int field: numpy integers are ints; bools and floats are not.
Int = Annotated[int, BeforeValidator(_integral_to_int)]
#: A list field that also takes a tuple.
List = Annotated[list[T], BeforeValidator(_tuple_to_list)]
#: Any plain YAML value (null, bool, number, string, list, mapping), e.g. an env keyword.
YamlValue = Annotated[Any, BeforeValidator(_plain_yaml)]


# ----------------------------------------------------------------------------- the base class


class FieldInfo(NamedTuple):
    """One row of :meth:`Config.describe`: a key, its type, its default and its doc."""

    key: str
    type: str
    default: Any
    doc: str


class _ConfigMeta(ModelMetaclass):
    """Building a config by calling its class (``PPOConfig(lr=-1)``) reports a ConfigError
    like every other way of building one. (pydantic builds nested sections without calling
    their classes, so their errors arrive here with the full key path.)"""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as err:
            raise _config_error(cls, kwargs, err, _Sources()) from None  # type: ignore[arg-type]


class Config(BaseModel, metaclass=_ConfigMeta):
    """Base of every Coltra config. Declare fields with ``Field(default, description=...)``
    (and pydantic's constraints: ``gt``, ``ge``, ``le``, ``min_length``); a field without a
    description is refused when the class is defined."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=True)

    #: The ``class`` key a section writes where a field may hold one of several config
    #: classes (the model section: see ModelConfig), and that key's doc.
    section_name: ClassVar[str | None] = None
    section_doc: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, field in cls.model_fields.items():
            if not (field.description or "").strip():
                raise TypeError(
                    f"{cls.__name__}.{name} has no doc; declare it with Field(..., description=...)"
                )

    @classmethod
    def section_class(cls, data: Any) -> type[Config]:
        """The config class that reads ``data`` where a field is declared as ``cls``."""
        return cls

    # --------------------------------------------------------------------- building
    @classmethod
    def from_dict(
        cls: type[C],
        data: Mapping[str, Any],
        overrides: Iterable[str] = (),
        source: str | None = None,
    ) -> C:
        """A config from a (nested) mapping, with ``key.path=value`` overrides applied on top
        (see :meth:`override`); missing keys keep their defaults. ``source`` names where
        ``data`` came from (a file) in error messages."""
        if isinstance(overrides, str):
            overrides = [overrides]
        sources = _Sources(source)
        raw: Any = _copy_plain(data) if isinstance(data, Mapping) else data
        # A section's class first: setting it clears the keys of the class it replaces.
        overrides = sorted(overrides, key=lambda text: not _sets_class(text))
        for text in overrides:
            if not isinstance(raw, dict):
                break  # the mapping error below says what is wrong
            try:
                sources.overrides.append((_assign(cls, raw, text), text))
            except ConfigError as err:
                raise err.from_source(f"override {text!r}") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            raise _config_error(cls, raw, err, sources) from None

    @classmethod
    def from_yaml(cls: type[C], path: str | Path, overrides: Iterable[str] = ()) -> C:
        """A config from a YAML file holding a (nested) mapping of keys, with overrides."""
        return cls.from_dict(load_yaml_mapping(path), overrides, source=str(path))

    def update(self: C, changes: Mapping[str, Any]) -> C:
        """A new config with ``changes`` applied; nested mappings update nested configs key by
        key, any other value (a list, a dict field's value) replaces the old one."""
        merged = _merged(type(self), self.to_dict(), changes)
        return type(self).from_dict(merged)

    def override(self: C, assignments: Iterable[str]) -> C:
        """A new config with command-line style ``key.path=value`` assignments applied.

        Each value is read as YAML (``ppo.lr=1e-4``, ``model.hidden_sizes=[32, 32]``); a text
        field takes the raw text when YAML reads something else (``trainer.name=2024`` is the
        name "2024"). A path may go into a mapping field: ``env.env_kwargs.max_cycles=100``
        sets one keyword and keeps the others. All assignments are checked together, so their
        order does not matter; an error names the assignment that gave the bad value.
        """
        return type(self).from_dict(self.to_dict(), assignments)

    # --------------------------------------------------------------------- exporting
    def to_dict(self) -> dict[str, Any]:
        """A nested dict of plain YAML values (lists for tuples), sharing nothing with self."""
        data: dict[str, Any] = {}
        if self.section_name is not None:
            data["class"] = self.section_name
        for name in type(self).model_fields:
            data[name] = _copy_plain(getattr(self, name))
        return data

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The config as YAML text, also written to ``path`` (atomically) when given."""
        text = dump_yaml(self.to_dict())
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def describe(cls) -> list[FieldInfo]:
        """Every key (nested configs flattened to dotted keys) with its type, default and doc."""
        return _describe(cls(), prefix="")

    @classmethod
    def describe_markdown(cls, sections: Iterable[str] = ()) -> str:
        """:meth:`describe` as a markdown table, for the README; ``sections`` (e.g.
        ``["trainer", "env"]``) keeps only their keys."""
        prefixes = tuple(f"{section}." for section in sections)
        lines = ["| key | type | default | doc |", "| --- | --- | --- | --- |"]
        for row in cls.describe():
            if prefixes and not row.key.startswith(prefixes):
                continue
            cells = (f"`{row.key}`", row.type, f"`{inline_yaml(row.default)}`", row.doc)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines) + "\n"


def _describe(config: Config, prefix: str) -> list[FieldInfo]:
    rows = []
    if config.section_name is not None:
        rows.append(
            FieldInfo(
                join_key(prefix, "class"),
                "str",
                config.section_name,
                config.section_doc,
            )
        )
    for name, field in type(config).model_fields.items():
        key = join_key(prefix, name)
        value = getattr(config, name)
        if isinstance(value, Config):  # a nested section: list its keys, with its defaults
            rows.extend(_describe(value, key))
            continue
        rows.append(FieldInfo(key, type_name(field.annotation), value, field.description or ""))
        entry = _mapping_of_sections(field.annotation)
        if entry is not None:  # sections by name (policies): their keys under <name>
            rows.extend(_describe(entry(), join_key(key, "<name>")))
    return rows


def _mapping_of_sections(hint: Any) -> type[Config] | None:
    """``PolicyConfig`` for a field declared ``dict[str, PolicyConfig]``, else None."""
    base, _, _ = _unwrap(hint)
    if typing.get_origin(base) is dict:
        args = typing.get_args(base)
        if len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], Config):
            return args[1]
    return None


def _copy_plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, list | tuple):
        return [_copy_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy_plain(item) for key, item in value.items()}
    return value


def _merged(cls: type[Config], current: dict[str, Any], changes: Any) -> Any:
    """``current`` (a config's plain dict) with ``changes`` applied, section by section."""
    if not isinstance(changes, Mapping):
        return changes  # pydantic says what is wrong with it
    merged = dict(current)
    for key, new in changes.items():
        field = cls.model_fields.get(key) if isinstance(key, str) else None
        section = _section_type(field.annotation) if field is not None else None
        old = merged.get(key)
        if section is not None and isinstance(new, Mapping) and isinstance(old, dict):
            if "class" in new and new["class"] != old.get("class"):
                merged[key] = dict(new)  # another class: its own keys, not a mix
            else:
                merged[key] = _merged(section.section_class(old), old, new)
        else:
            merged[key] = new
    return merged


# ----------------------------------------------------------------------------- type hints


def _unwrap(hint: Any) -> tuple[Any, list[Any], bool]:
    """``hint`` without ``Annotated`` and ``| None``: (the type, its metadata, optional)."""
    metadata: list[Any] = []
    optional = False
    while True:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            hint, *extra = typing.get_args(hint)
            metadata.extend(extra)
        elif origin in (Union, types.UnionType):
            members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            if len(members) != 1:
                return hint, metadata, optional
            optional, hint = True, members[0]
        else:
            return hint, metadata, optional


def _section_type(hint: Any) -> type[Config] | None:
    base, _, _ = _unwrap(hint)
    return base if isinstance(base, type) and issubclass(base, Config) else None


def _constraints(metadata: Iterable[Any]) -> list[Any]:
    """The annotated_types constraints (Gt, Ge, Lt, Le, MinLen) in pydantic field metadata."""
    found = []
    for item in metadata:
        if isinstance(item, PydanticField):
            found.extend(_constraints(item.metadata))
        elif isinstance(item, annotated_types.BaseMetadata):
            found.append(item)
    return found


def type_name(hint: Any) -> str:
    """How a type hint reads in errors and the README: ``int or null``, ``list of int``."""
    base, _, optional = _unwrap(hint)
    name = _base_type_name(base)
    return f"{name} or null" if optional else name


def _base_type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "any YAML value"
    if hint is type(None):
        return "null"
    if hint in (bool, int, float, str):
        return str(hint.__name__)
    if isinstance(hint, type) and issubclass(hint, Config):
        return f"{hint.__name__} mapping"
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args)
    if origin is list or hint is list:
        return f"list of {type_name(args[0]) if args else 'any YAML value'}"
    if origin is dict or hint is dict:
        key_hint, value_hint = args or (Any, Any)
        return f"mapping of {type_name(key_hint)} to {type_name(value_hint)}"
    raise TypeError(f"unsupported config type hint {hint!r}")


def _range_text(constraints: list[Any]) -> str:
    """The allowed range of a number, from its pydantic constraints: "> 0", "in [0, 1]"."""
    low = next(
        (c for c in constraints if isinstance(c, annotated_types.Gt | annotated_types.Ge)), None
    )
    high = next(
        (c for c in constraints if isinstance(c, annotated_types.Lt | annotated_types.Le)), None
    )
    if low is not None and high is not None:
        left = "(" if isinstance(low, annotated_types.Gt) else "["
        right = ")" if isinstance(high, annotated_types.Lt) else "]"
        lo = low.gt if isinstance(low, annotated_types.Gt) else low.ge
        hi = high.lt if isinstance(high, annotated_types.Lt) else high.le
        return f"in {left}{lo:g}, {hi:g}{right}"
    if isinstance(low, annotated_types.Gt):
        return f"> {low.gt:g}"
    if isinstance(low, annotated_types.Ge):
        return f">= {low.ge:g}"
    if isinstance(high, annotated_types.Lt):
        return f"< {high.lt:g}"
    if isinstance(high, annotated_types.Le):
        return f"<= {high.le:g}"
    return ""


# ----------------------------------------------------------------------------- errors


class _Sources:
    """Where the values of a config being built came from: a file and ``--set`` overrides."""

    def __init__(self, source: str | None = None) -> None:
        self.source = source
        self.overrides: list[tuple[str, str]] = []  # (key path it set, its text)

    def of(self, key: str) -> str | None:
        """The override that set ``key`` (or a part of it, or a section holding it), the
        last one when several did; else the file."""
        related = [
            text
            for path, text in self.overrides
            if key == path
            or key.startswith((path + ".", path + "["))
            or path.startswith((key + ".", key + "["))
        ]
        if related:
            return f"override {related[-1]!r}"
        if self.source is not None:
            return self.source
        if self.overrides:  # a rule across keys, broken by several overrides together
            return "overrides " + ", ".join(repr(text) for _, text in self.overrides)
        return None


class _Located(NamedTuple):
    key: str
    hint: Any  # the type hint of the value at key (None for an unknown key)
    constraints: list[Any]
    known: list[str]  # keys of the section the error is in
    dict_key: bool  # the error is about a mapping's key, not its value


def _locate(cls: type[Config], data: Any, loc: tuple[int | str, ...]) -> _Located:
    """Follow a pydantic error location through the config's type hints and the input."""
    hint: Any = cls
    constraints: list[Any] = []
    key = ""
    known: list[str] = []
    parts = list(loc)
    i = 0
    while i < len(parts):
        part = parts[i]
        base, metadata, _ = _unwrap(hint)
        origin = typing.get_origin(base)
        if isinstance(base, type) and issubclass(base, Config):
            section = base.section_class(data)
            known = list(section.model_fields)
            field = section.model_fields.get(part) if isinstance(part, str) else None
            shown = part if isinstance(part, str) and part else repr(part)
            key = join_key(key, str(shown))
            if field is None:  # an unknown key, or 'class' (handled by the section)
                return _Located(key, None, [], known, False)
            hint, constraints = field.annotation, _constraints(field.metadata)
            data = data.get(part) if isinstance(data, Mapping) else None
        elif origin is list:
            key += f"[{part}]"
            hint = typing.get_args(base)[0]
            constraints = []
            data = data[part] if isinstance(data, list) and isinstance(part, int) else None
        elif origin is dict:
            key_hint, value_hint = typing.get_args(base) or (Any, Any)
            if i + 1 < len(parts) and parts[i + 1] == "[key]":
                return _Located(key, key_hint, [], known, True)
            key = join_key(key, str(part))
            hint, constraints = value_hint, []
            data = data.get(part) if isinstance(data, Mapping) else None
        else:  # a part pydantic adds inside a value (a validator's tag): nothing to follow
            pass
        i += 1
    base, metadata, _ = _unwrap(hint)
    return _Located(key, hint, constraints + _constraints(metadata), known, False)


_TYPE_ERRORS = {
    "int_type",
    "float_type",
    "bool_type",
    "string_type",
    "list_type",
    "dict_type",
    "literal_error",
    "none_required",
    "int_from_float",
    "is_instance_of",
}
_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _config_error(
    cls: type[Config], data: Any, err: ValidationError, sources: _Sources
) -> ConfigError:
    """pydantic's first error as a ConfigError: full key, expectation, value and source."""
    error = err.errors()[0]
    kind, value = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    where = _locate(cls, data, tuple(error["loc"]))
    key, hint = where.key, where.hint
    base, _, optional = _unwrap(hint)
    if kind in ("extra_forbidden", "invalid_key"):
        name = str(error["loc"][-1])
        problem = f"unknown key{suggest(name, where.known)} (known keys: {', '.join(where.known)})"
    elif kind == "missing":
        problem = "required key is missing"
    elif kind == "coltra":
        key = join_key(key, str(ctx.get("path", "")))
        problem = str(ctx["problem"])
    elif where.dict_key:
        problem = f"keys must be {type_name(hint)}, got {show(value)}"
    elif isinstance(base, type) and issubclass(base, Config):
        problem = f"expected a mapping of keys, got {show(value)}"
    elif kind in _RANGE_ERRORS or kind == "string_too_short":
        noun = "str" if kind == "string_too_short" else _base_type_name(base)
        shown = float(value) if noun == "float" and isinstance(value, numbers.Real) else value
        condition = (
            "that is not empty" if kind == "string_too_short" else _range_text(where.constraints)
        )
        article = "an" if noun[0] in "aeiou" else "a"
        or_null = " or null" if optional else ""
        problem = f"expected {article} {noun} {condition}{or_null}, got {show(shown)}"
    elif kind in _TYPE_ERRORS and hint is not None:
        expected = "bool (true or false)" if base is bool and not optional else type_name(hint)
        choices = [arg for arg in typing.get_args(base) if isinstance(arg, str)]
        hint_text = suggest(value, choices) if typing.get_origin(base) is Literal else ""
        problem = f"expected {expected}, got {show(value)}{hint_text}"
    else:  # anything else pydantic can say, in its own words
        problem = f"{error['msg']}, got {show(value)}"
    return ConfigError(problem, key=key, source=sources.of(key))


# ----------------------------------------------------------------------------- overrides


def _sets_class(text: str) -> bool:
    key = text.partition("=")[0].strip()
    return key == "class" or key.endswith(".class")


def _assign(cls: type[Config], data: dict[str, Any], text: str) -> str:
    """Apply one ``key.path=value`` assignment to ``data``, the plain dict of a ``cls``
    config; returns the key path it set. Structure errors (an unknown key, a path into a
    single value) are raised here; the value itself is checked with the whole config."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("expected key=value, e.g. ppo.lr=3e-4")
    parts = key.split(".")
    hint: Any = cls
    node = data
    path = ""
    for i, part in enumerate(parts):  # walk the type hints and the plain dict side by side
        base, _, _ = _unwrap(hint)
        if isinstance(base, type) and issubclass(base, Config):
            section = base.section_class(node)
            if part == "class" and section.section_name is not None:
                hint = str
                value = parse_yaml_value(raw)
                if value != section.section_name:  # another class: none of these keys
                    node.clear()
            elif not section.model_fields:  # a section whose class is unknown: said later
                hint = Any
            elif part not in section.model_fields:
                known = list(section.model_fields)
                problem = f"unknown key{suggest(part, known)} (known keys: {', '.join(known)})"
                raise ConfigError(problem, key=join_key(path, part))
            else:
                hint = section.model_fields[part].annotation
        elif base is Any or typing.get_origin(base) is dict or base is dict:
            args = typing.get_args(base)
            hint = args[1] if args else Any
        else:
            raise ConfigError(f"holds a single value, so it has no key {part!r}", key=path)
        path = join_key(path, part)
        if i + 1 < len(parts):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                problem = f"holds a single value, so it has no key {parts[i + 1]!r}"
                raise ConfigError(problem, key=path)
            node = child
    nested = _section_type(hint)
    if nested is not None:
        current = node.get(parts[-1])
        fields = list(nested.section_class(current if current is not None else {}).model_fields)
        example = f"{key}.{fields[0] if fields else 'class'}=..."
        raise ConfigError(f"is a section; set its keys one by one, e.g. {example}", key=key)
    value = parse_yaml_value(raw)
    base, _, _ = _unwrap(hint)
    if base is str and value is not None and not isinstance(value, str):
        value = raw.strip()  # a text field given something YAML reads as a number or a list
    node[parts[-1]] = value
    return key
