"""Typed containers that every part of Coltra speaks: Observation, Action, MemoryRecord.

An ``Observation`` or ``Action`` is a small bundle of named arrays. Each field holds either
numpy arrays or torch tensors, for one item or for a batch (leading axis). Environments
produce them, models consume batched Observations, agents produce batched Actions.

Torch is imported lazily: environment worker processes use these containers with numpy
only and should not pay for importing torch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

    Array = np.ndarray | torch.Tensor
else:
    Array = Any

__all__ = [
    "ACTION_MASK_FIELD",
    "AGENT_ID_FIELD",
    "STATE_FIELD",
    "Action",
    "Array",
    "MemoryRecord",
    "Observation",
    "is_tensor",
    "to_numpy",
]

B = TypeVar("B", bound="_ArrayBundle")


def is_tensor(value: object) -> TypeGuard[torch.Tensor]:
    """True for a torch tensor, without importing torch when nobody else has."""
    torch_module = sys.modules.get("torch")
    return torch_module is not None and isinstance(value, torch_module.Tensor)


def to_numpy(value: Array) -> np.ndarray:
    """A tensor detached and moved to the CPU as numpy; a numpy array as it is."""
    if isinstance(value, np.ndarray):
        return value
    return value.detach().cpu().numpy()


def _as_array(name: str, value: object) -> Array:
    """Accept numpy arrays, tensors and anything numpy can turn into a numeric array."""
    if is_tensor(value):
        return value
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"field '{name}': cannot make an array from {value!r} ({exc})") from None
    # Strings, bytes and objects would fail much later, far from where they came in.
    if array.dtype.kind in "OUSVMm":
        raise TypeError(
            f"field '{name}': expected numbers (a numpy array, a tensor or a number), "
            f"got {type(value).__name__} {value!r}"
        )
    return array


def _shape(value: Array) -> tuple[int, ...]:
    return tuple(value.shape)


class _ArrayBundle:
    """Named arrays with shared batch handling. Subclasses only say which names they know.

    ``ITEM_NDIM`` gives, for the standard field names, how many dimensions one item has
    (a ``vector`` item is 1-D, an ``image`` item is 3-D, a ``discrete`` action is a scalar).
    A field with one more dimension is a batch. Other names are allowed and are treated as
    1-D items (named vector parts, e.g. ``rays`` or ``goal``). ``<block>/<name>`` is a
    block's field in an env whose agents have different spaces: it has ``<name>``'s item
    dimensions (``speaker/discrete`` is a scalar per item).
    """

    DEFAULT_FIELD: ClassVar[str]
    ITEM_NDIM: ClassVar[dict[str, int]]

    __slots__ = ("_batch", "_fields")
    _fields: dict[str, Array]
    _batch: int | None  # size of the leading axis, None for a single item

    def __init__(self, default: object = None, /, **fields: object) -> None:
        if default is not None:
            if self.DEFAULT_FIELD in fields:
                raise TypeError(
                    f"{type(self).__name__}: '{self.DEFAULT_FIELD}' given both positionally "
                    "and by name"
                )
            fields = {self.DEFAULT_FIELD: default, **fields}
        arrays = {
            name: _as_array(name, value) for name, value in fields.items() if value is not None
        }
        if not arrays:
            raise ValueError(
                f"{type(self).__name__} needs at least one field, e.g. "
                f"{type(self).__name__}({self.DEFAULT_FIELD}=...)"
            )
        object.__setattr__(self, "_fields", arrays)
        object.__setattr__(self, "_batch", self._check_batch_sizes())

    # ----------------------------------------------------------------- field access
    # Fields are typed ``Any``: a bundle holds numpy arrays or tensors, and only the caller
    # knows which (a union would force a cast at every use).
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no field '{name}'; it has {sorted(self._fields)}"
            ) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; build a new one instead")

    def __getitem__(self, key: str | int | slice | np.ndarray | Sequence[int] | Array) -> Any:
        """``bundle["vector"]`` gives a field; any other key (int, slice, bool mask, index
        array, numpy or torch) indexes the batch axis."""
        if isinstance(key, str):
            try:
                return self._fields[key]
            except KeyError:
                raise KeyError(
                    f"{type(self).__name__} has no field '{key}'; it has {sorted(self._fields)}"
                ) from None
        if not self.is_batch:
            raise IndexError(
                f"{self!r} holds one item, not a batch; index a batch (leading axis) instead"
            )
        if isinstance(key, int | np.integer) and not (-self.batch_size <= key < self.batch_size):
            raise IndexError(f"index {key} out of range for a batch of {self.batch_size}")
        numpy_key = to_numpy(key) if is_tensor(key) else key
        return self._trusted(
            {
                name: value[key if is_tensor(value) else numpy_key]
                for name, value in self._fields.items()
            }
        )

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def keys(self) -> list[str]:
        return list(self._fields)

    def items(self) -> list[tuple[str, Any]]:
        return list(self._fields.items())

    def as_dict(self) -> dict[str, Any]:
        return dict(self._fields)

    # ----------------------------------------------------------------- batching
    @classmethod
    def _item_ndim(cls, name: str) -> int:
        return cls.ITEM_NDIM.get(name.rpartition("/")[2], 1)

    def _leading_sizes(self) -> dict[str, int | None]:
        """Batch size seen by each field, or None for a field holding a single item."""
        sizes: dict[str, int | None] = {}
        for name, value in self._fields.items():
            ndim = len(_shape(value))
            sizes[name] = _shape(value)[0] if ndim > self._item_ndim(name) else None
        return sizes

    def _check_batch_sizes(self) -> int | None:
        """The shared batch size (None for a single item), or a ValueError if fields differ."""
        if len(self._fields) == 1:  # nothing to disagree with (most bundles, every step)
            return self._leading_size()
        sizes = self._leading_sizes()
        batched = {name: size for name, size in sizes.items() if size is not None}
        if len(set(batched.values())) > 1:
            described = ", ".join(
                f"{name}{list(_shape(self._fields[name]))}" for name in self._fields
            )
            raise ValueError(
                f"{type(self).__name__}: fields disagree on the batch size "
                f"(leading axis): {described}"
            )
        if batched and len(batched) < len(sizes):
            single = [name for name, size in sizes.items() if size is None]
            raise ValueError(
                f"{type(self).__name__}: fields {single} hold one item while "
                f"{sorted(batched)} hold a batch of {next(iter(batched.values()))}"
            )
        return next(iter(sizes.values()))

    @property
    def is_batch(self) -> bool:
        return self._batch is not None

    @property
    def batch_size(self) -> int:
        """Size of the leading (batch) axis; 1 for a single item."""
        return 1 if self._batch is None else self._batch

    def __len__(self) -> int:
        return self.batch_size

    @classmethod
    def stack(cls: type[B], items: Sequence[B]) -> B:
        """Stack single items (or batches) along a new leading axis."""
        return cls._combine(items, "stack")

    @classmethod
    def cat(cls: type[B], batches: Sequence[B]) -> B:
        """Concatenate batches along their leading axis."""
        return cls._combine(batches, "cat")

    @classmethod
    def _combine(cls: type[B], parts: Sequence[B], how: str) -> B:
        if len(parts) == 0:
            raise ValueError(f"{cls.__name__}.{how} needs at least one item, got none")
        for index, part in enumerate(parts):
            if not isinstance(part, cls):
                raise TypeError(
                    f"{cls.__name__}.{how}: item {index} is a {type(part).__name__}, "
                    f"expected {cls.__name__}"
                )
        names = parts[0].keys()
        for index, part in enumerate(parts):
            if set(part.keys()) != set(names):
                raise ValueError(
                    f"{cls.__name__}.{how}: item {index} has fields {part.keys()}, "
                    f"item 0 has {names}"
                )
            if how == "cat" and not part.is_batch:
                # np.concatenate would silently glue two vectors into one longer vector.
                raise ValueError(
                    f"{cls.__name__}.cat joins batches, but item {index} is a single item "
                    f"{part!r}; use {cls.__name__}.stack for single items"
                )
        combined: dict[str, Array] = {}
        for name in names:
            values = [part._fields[name] for part in parts]
            if any(is_tensor(value) for value in values):
                import torch

                tensors = [torch.as_tensor(value) for value in values]
                combined[name] = torch.stack(tensors) if how == "stack" else torch.cat(tensors)
            else:
                combined[name] = np.stack(values) if how == "stack" else np.concatenate(values)
        return cls._trusted_from(combined)

    # ----------------------------------------------------------------- conversion
    def map(self: B, fn: Callable[[Any], Any]) -> B:
        """A new bundle with ``fn`` applied to every field."""
        return self._new({name: fn(value) for name, value in self._fields.items()})

    def tensor(self: B, device: str | torch.device | None = None) -> B:
        """Every field as a torch tensor on ``device`` (no copy when already there)."""
        import torch

        fields = self._fields.items()
        return self._trusted({k: torch.as_tensor(v, device=device) for k, v in fields})

    def numpy(self: B) -> B:
        """Every field as a numpy array (tensors are detached and moved to the CPU)."""
        return self._trusted({name: to_numpy(value) for name, value in self._fields.items()})

    def _new(self: B, fields: dict[str, Array]) -> B:
        return type(self)._new_from(fields)

    @classmethod
    def _new_from(cls: type[B], fields: dict[str, Array]) -> B:
        return cls(**fields)

    def _trusted(self: B, fields: dict[str, Array]) -> B:
        return type(self)._trusted_from(fields)

    @classmethod
    def _trusted_from(cls: type[B], fields: dict[str, Array]) -> B:
        """A bundle from fields known to be valid (results of indexing, stacking or
        converting valid bundles), skipping the checks: this runs in every env step."""
        bundle = cls.__new__(cls)
        object.__setattr__(bundle, "_fields", fields)
        object.__setattr__(bundle, "_batch", bundle._leading_size())
        return bundle

    def _leading_size(self) -> int | None:
        name, value = next(iter(self._fields.items()))
        shape = _shape(value)
        return shape[0] if len(shape) > self._item_ndim(name) else None

    # ----------------------------------------------------------------- python protocol
    def __repr__(self) -> str:
        parts = []
        for name, value in self._fields.items():
            kind = "tensor" if is_tensor(value) else "array"
            dtype = str(value.dtype).removeprefix("torch.")
            parts.append(f"{name}={kind}({dtype}{list(_shape(value))})")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __getstate__(self) -> dict[str, Array]:
        return self._fields

    def __setstate__(self, state: dict[str, Array]) -> None:
        object.__setattr__(self, "_fields", state)
        object.__setattr__(self, "_batch", self._leading_size())

    def __eq__(self, other: object) -> bool:
        """Exact equality of field names, shapes and values (numpy or torch)."""
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _ArrayBundle)
        if self.keys() != other.keys():
            return False
        for name in self._fields:
            mine, theirs = self.numpy()._fields[name], other.numpy()._fields[name]
            if mine.shape != theirs.shape or not np.array_equal(mine, theirs):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]
    # Make numpy hand comparisons with arrays back to Python instead of broadcasting an
    # ndarray against the bundle element by element (``array == obs`` is just False).
    __array_ufunc__ = None


#: The observation fields a centralised value network reads (``critic: state`` / ``team``):
#: the env's global state, and the observations of the agent's team
#: (:mod:`coltra.envs.critic_inputs`).
STATE_FIELD = "state"
TEAM_FIELD = "team"
#: The observation field naming the agent: a one-hot of its place in the env's agents
#: (``env.agent_ids``); a model with ``share_actor`` or ``share_critic`` off picks each
#: row's own network by it.
AGENT_ID_FIELD = "agent_id"
#: The observation field of an action mask (PettingZoo's convention): 1 = legal, 0 = not,
#: one entry per action (per choice of each dimension, for MultiDiscrete).
ACTION_MASK_FIELD = "action_mask"


class Observation(_ArrayBundle):
    """What an agent sees: ``vector`` (1-D per item), ``image`` (H x W x C per item) or
    other named 1-D parts. ``Observation(x)`` is ``Observation(vector=x)``."""

    DEFAULT_FIELD = "vector"
    ITEM_NDIM = {"vector": 1, "image": 3}
    __slots__ = ()


class Action(_ArrayBundle):
    """What an agent does: ``continuous`` (1-D per item), ``discrete`` (an integer per item,
    or a 1-D array of integers for MultiDiscrete) or other named parts.
    ``Action(x)`` is ``Action(continuous=x)``."""

    DEFAULT_FIELD = "continuous"
    ITEM_NDIM = {"continuous": 1, "discrete": 0}
    __slots__ = ()


@dataclass
class MemoryRecord:
    """The on-policy rollout of one policy, every array shaped ``[agents, steps, ...]``.

    ``reward[a, t]``, ``terminated[a, t]`` and ``truncated[a, t]`` are what agent row ``a``
    received for the action taken at step ``t``. ``mask[a, t]`` is False where the agent was
    not present (e.g. dead in a PettingZoo env): such entries carry no experience and are
    left out of training. ``bootstrap_value[a, t]`` is V(final observation) where the episode
    was truncated at step ``t`` (0 elsewhere); ``last_value[a]`` is V(observation after the
    last step), used when the rollout ends mid-episode.
    """

    obs: Observation  # [agents, steps, ...]
    action: Action  # [agents, steps, ...]
    logprob: np.ndarray  # [agents, steps]
    reward: np.ndarray  # [agents, steps]
    value: np.ndarray  # [agents, steps]
    terminated: np.ndarray  # [agents, steps] bool
    truncated: np.ndarray  # [agents, steps] bool
    mask: np.ndarray  # [agents, steps] bool
    bootstrap_value: np.ndarray  # [agents, steps]
    last_value: np.ndarray  # [agents]
    agent_names: list[str] = field(default_factory=list)
    #: Recurrent policies: ``episode_start[a, t]`` is True where row ``a``'s state was
    #: reset before step ``t`` (its episode began, or it was absent the step before)...
    episode_start: np.ndarray | None = None  # [agents, steps] bool
    #: ...and ``initial_state[k][a, j]`` is part ``k`` of row ``a``'s state at step
    #: ``j * state_every``, the state that step started from. Empty for feed-forward ones.
    initial_state: tuple[np.ndarray, ...] = ()  # each [agents, steps // state_every, ...]
    state_every: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        """(num_agents, num_steps)."""
        agents, steps = self.reward.shape
        return agents, steps

    @property
    def done(self) -> np.ndarray:
        return np.logical_or(self.terminated, self.truncated)
