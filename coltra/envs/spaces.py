"""Translation between Gymnasium spaces and Coltra's Observation / Action fields.

An ``ObservationCodec`` turns raw observations of a space into Observation fields (a 1-D
``vector``, an ``image``, or named parts of a Dict space) and preallocates stacked buffers.
An ``ActionCodec`` checks batched Actions against a space and turns rows back into what the
underlying environment accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from coltra.buffers import Action, Observation, is_tensor, to_numpy
from coltra.envs.blocks import BlockLayout

__all__ = [
    "ActionCodec",
    "LayoutActions",
    "ObservationCodec",
    "action_batch_from_dict",
    "own_field",
    "without_parts",
]


def own_field(space: gym.Space) -> str:
    """The field ``ObservationCodec`` gives an observation that is not a Dict: ``image`` for
    a 3-D Box, else ``vector``."""
    return "image" if isinstance(space, gym.spaces.Box) and len(space.shape) == 3 else "vector"


def without_parts(space: Any, keys: Iterable[str]) -> Any:
    """A Dict ``space`` without its parts named in ``keys`` (perhaps an empty Dict); any
    other space, or a Dict with none of them, unchanged (the same object)."""
    drop = set(keys)
    if not isinstance(space, gym.spaces.Dict) or not drop & set(space.spaces):
        return space
    return gym.spaces.Dict({key: sub for key, sub in space.spaces.items() if key not in drop})


def _float_dtype(dtype: np.dtype) -> np.dtype:
    """Observations travel as float32 (or their integer type, e.g. uint8 images)."""
    return np.dtype(np.float32) if np.issubdtype(dtype, np.floating) else np.dtype(dtype)


class ObservationCodec:
    """Encodes raw observations of ``space`` as Observation fields.

    Box spaces with 3 dimensions become ``image`` (H x W x C); every other Box, Discrete
    (one-hot), MultiDiscrete (one one-hot per part, concatenated) or MultiBinary becomes a
    flat ``vector``. A Dict space gives one field per key, each flattened, except a 3-D part,
    which keeps its shape under its key only when the key is ``image``. Tuple parts are named
    by their index (``0``, ``1``...), and nested Dict and Tuple parts by their path joined
    with dots (``sensors.0``, ``goal.xy``).
    """

    def __init__(self, space: gym.Space, prefix: str = "") -> None:
        self.space = space
        self.prefix = prefix  # a block's "<name>/" in an env with several blocks
        self.fields: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._parts: list[tuple[str, tuple[Any, ...] | None, gym.Space]] = []
        if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
            for name, path, subspace in _leaves(space):
                self._add_part(path, name, subspace)
        else:
            self._add_part(None, None, space)
        # A 1-D Box (CartPole's, most vector observations) needs no encoding: ``write``
        # copies the raw row straight in, and numpy converts the dtype as it copies.
        self._plain_field: str | None = None
        if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
            self._plain_field = self._parts[0][0]

    def _add_part(self, key: tuple[Any, ...] | None, name: str | None, space: gym.Space) -> None:
        if isinstance(space, gym.spaces.Box):
            if len(space.shape) == 3 and name in (None, "image"):
                self._register("image", key, space, space.shape, _float_dtype(space.dtype))
            else:
                size = int(np.prod(space.shape)) if space.shape else 1
                self._register(name or "vector", key, space, (size,), _float_dtype(space.dtype))
        elif isinstance(space, gym.spaces.Discrete):
            self._register(name or "vector", key, space, (int(space.n),), np.dtype(np.float32))
        elif isinstance(space, gym.spaces.MultiDiscrete):
            size = int(space.nvec.sum())
            self._register(name or "vector", key, space, (size,), np.dtype(np.float32))
        elif isinstance(space, gym.spaces.MultiBinary):
            size = int(np.prod(space.shape))
            self._register(name or "vector", key, space, (size,), np.dtype(np.float32))
        else:
            raise TypeError(
                f"observation space {space} is not supported; expected Box, Discrete, "
                "MultiDiscrete, MultiBinary, or a Dict or Tuple of those"
            )

    def _register(
        self,
        field: str,
        key: tuple[Any, ...] | None,
        space: gym.Space,
        shape: tuple[int, ...],
        dtype: np.dtype,
    ) -> None:
        field = self.prefix + field
        self.fields[field] = (shape, dtype)
        self._parts.append((field, key, space))

    def _encode_part(self, field: str, space: gym.Space, raw: Any) -> np.ndarray:
        shape, dtype = self.fields[field]
        if isinstance(space, gym.spaces.Discrete):
            onehot = np.zeros(shape, dtype=dtype)
            onehot[int(raw) - int(space.start)] = 1.0
            return onehot
        if isinstance(space, gym.spaces.MultiDiscrete):
            onehot = np.zeros(shape, dtype=dtype)
            values = np.asarray(raw).reshape(-1) - space.start.reshape(-1)
            offsets = np.concatenate([[0], np.cumsum(space.nvec.reshape(-1))[:-1]])
            onehot[offsets + values] = 1.0
            return onehot
        return np.asarray(raw, dtype=dtype).reshape(shape)

    def encode(self, raw: Any) -> dict[str, np.ndarray]:
        """Fields of one observation."""
        return {
            field: self._encode_part(field, space, _part(raw, key))
            for field, key, space in self._parts
        }

    def zeros(self, rows: int) -> dict[str, np.ndarray]:
        """Preallocated stacked fields for ``rows`` agents."""
        return {
            field: np.zeros((rows, *shape), dtype=dtype)
            for field, (shape, dtype) in self.fields.items()
        }

    def write(self, buffers: Mapping[str, np.ndarray], row: int, raw: Any) -> None:
        """Encode one raw observation straight into row ``row`` of stacked buffers."""
        if self._plain_field is not None:
            buffers[self._plain_field][row] = raw
            return
        for field, key, space in self._parts:
            buffers[field][row] = self._encode_part(field, space, _part(raw, key))

    def write_rows(
        self, buffers: Mapping[str, np.ndarray], rows: slice | np.ndarray, raws: Sequence[Any]
    ) -> None:
        """Encode ``raws`` into ``rows`` (a slice or row indices, one per raw) of stacked
        buffers: the same as ``write`` raw by raw, but converted in one go when they stack."""
        stacked = self._stack(raws)
        if stacked is None:
            indices = np.arange(len(buffers[next(iter(self.fields))]))[rows]
            for row, raw in zip(indices, raws):
                self.write(buffers, int(row), raw)
            return
        for field, value in stacked.items():
            buffers[field][rows] = value

    def _stack(self, raws: Sequence[Any]) -> dict[str, np.ndarray] | None:
        """Fields of all ``raws`` stacked, or None when ``write`` must take them one by one
        (one-hot parts, ragged or odd shapes: there it fails or broadcasts as it always did)."""
        stacked: dict[str, np.ndarray] = {}
        for field, key, space in self._parts:
            if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete):
                return None
            shape, dtype = self.fields[field]
            try:
                value = np.asarray(
                    raws if key is None else [_part(raw, key) for raw in raws], dtype=dtype
                )
                # ``write`` copies a plain row as it is (broadcast, never flattened).
                if field == self._plain_field and value.shape[1:] != shape:
                    return None
                stacked[field] = value.reshape((len(raws), *shape))
            except (TypeError, ValueError):
                return None
        return stacked

    def encode_batch(self, raws: Sequence[Any]) -> Observation:
        buffers = self.zeros(len(raws))
        for row, raw in enumerate(raws):
            self.write(buffers, row, raw)
        return Observation(**buffers)


def _leaves(
    space: gym.spaces.Dict | gym.spaces.Tuple,
) -> list[tuple[str, tuple[Any, ...], gym.Space]]:
    """The non-container parts of a Dict or Tuple space, nested ones included: (field name,
    path of keys or indices from the top, space), in the space's order."""
    items = space.spaces.items() if isinstance(space, gym.spaces.Dict) else enumerate(space.spaces)
    leaves = []
    for key, subspace in items:
        if isinstance(subspace, gym.spaces.Dict | gym.spaces.Tuple):
            for name, path, leaf in _leaves(subspace):
                leaves.append((f"{key}.{name}", (key, *path), leaf))
        else:
            leaves.append((str(key), (key,), subspace))
    return leaves


def _part(raw: Any, path: tuple[Any, ...] | None) -> Any:
    """The part of a raw observation at ``path`` (None: the whole of it)."""
    if path is None:
        return raw
    for key in path:
        raw = raw[key]
    return raw


#: The Action field of a Dict or Tuple action: every part's values side by side.
JOINT_FIELD = "joint"


class ActionCodec:
    """Checks Actions against ``space`` and turns rows into raw env actions.

    Discrete, MultiDiscrete and MultiBinary travel as ``discrete`` integers; Box as a flat
    float32 ``continuous`` vector reshaped to the space's shape when sent to the env. A Dict
    or Tuple of those travels as ``joint``: one float32 row per agent holding each part's
    values in its slots (``parts``, in the order of :func:`_leaves`; integers are exact in
    float32), rebuilt into the Dict or Tuple for the env. In an env with several blocks, a
    block's codec reads its field under the block's ``prefix`` and checks the values of its
    ``rows`` only (the other rows belong to other blocks).
    """

    def __init__(self, space: gym.Space, prefix: str = "", rows: np.ndarray | None = None) -> None:
        self.space = space
        self.prefix = prefix
        self.rows = rows
        self.item_shape: tuple[int, ...]
        self.low: np.ndarray
        self.high: np.ndarray
        # One range for every integer action value (all but MultiDiscrete with unequal nvec).
        self._bounds: tuple[int, int] | None = None
        #: A Dict or Tuple action's parts: (path, codec of the part, its slots in a row).
        self.parts: list[tuple[tuple[Any, ...], ActionCodec, slice]] = []
        #: A Dict or Tuple action: each slot's lowest value for a category (a Discrete or
        #: MultiDiscrete part's ``start``), 0 elsewhere. Empty for other spaces.
        self.starts = np.zeros(0, np.float32)
        if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
            start = 0
            for _, path, subspace in _leaves(space):
                part = ActionCodec(subspace)
                size = max(int(np.prod(part.item_shape)), 1)
                self.parts.append((path, part, slice(start, start + size)))
                start += size
            if not self.parts:
                raise TypeError(f"action space {space} has no parts")
            self.field, self.item_shape, self.integer = JOINT_FIELD, (start,), False
            self.low = self._per_slot(lambda part: part.low)
            self.high = self._per_slot(lambda part: part.high)
            # A model picks categories from 0; the env's run from each part's start.
            self.starts = self._per_slot(
                lambda part: getattr(part.space, "start", 0) if part.integer else 0
            ).astype(np.float32)
            self.field = prefix + self.field
            return
        if isinstance(space, gym.spaces.Discrete):
            self.field, self.item_shape, self.integer = "discrete", (), True
            self.low = np.array(space.start)
            self.high = np.array(space.start + space.n - 1)
        elif isinstance(space, gym.spaces.MultiDiscrete):
            self.field, self.item_shape, self.integer = "discrete", tuple(space.shape), True
            self.low = np.asarray(space.start)
            self.high = np.asarray(space.start + space.nvec - 1)
        elif isinstance(space, gym.spaces.MultiBinary):
            self.field, self.item_shape, self.integer = "discrete", tuple(space.shape), True
            self.low, self.high = np.array(0), np.array(1)
        elif isinstance(space, gym.spaces.Box):
            size = int(np.prod(space.shape)) if space.shape else 1
            self.field, self.item_shape, self.integer = "continuous", (size,), False
            self.low, self.high = space.low.reshape(-1), space.high.reshape(-1)
        else:
            raise TypeError(
                f"action space {space} is not supported; expected Discrete, MultiDiscrete, "
                "MultiBinary, Box, or a Dict or Tuple of those"
            )
        self.field = prefix + self.field
        if self.integer and self.low.min() == self.low.max() and self.high.min() == self.high.max():
            self._bounds = (int(self.low.min()), int(self.high.max()))

    def _per_slot(self, value: Callable[[ActionCodec], Any]) -> np.ndarray:
        """``value`` of each part, repeated over that part's slots. ``[slots]``"""
        return np.concatenate(
            [
                np.broadcast_to(np.asarray(value(part)), (slots.stop - slots.start,))
                for _, part, slots in self.parts
            ]
        )

    def describe(self) -> str:
        """What a valid action looks like, for error messages."""
        kind = "integer" if self.integer else "float"
        item = f"one {kind}" if not self.item_shape else f"{kind}s of shape {self.item_shape}"
        return f"Action({self.field}=...) holding {item} per agent, for {self.space}"

    def _check_values(
        self, values: np.ndarray, where: str, active: np.ndarray | None = None
    ) -> None:
        """Dtype of all values; range of the rows in ``active`` (all rows when None)."""
        if self.parts:  # each part's slots as that part's values
            if values.dtype.kind not in "fiu":
                raise TypeError(
                    f"{where}: '{self.field}' actions must be numbers for {self.space}, "
                    f"got dtype {values.dtype}"
                )
            for path, part, slots in self.parts:
                piece = values[..., slots].reshape(*values.shape[:-1], *part.item_shape)
                if part.integer:
                    if not np.array_equal(piece, np.round(piece)):
                        raise ValueError(
                            f"{where}: the '{'.'.join(map(str, path))}' part of a {self.space} "
                            f"action takes whole numbers, got {piece.tolist()[:5]}"
                        )
                    piece = piece.astype(np.int64)
                part._check_values(piece, f"{where} ('{'.'.join(map(str, path))}' part)", active)
            return
        if self.integer:
            if values.dtype.kind not in "iub":
                raise TypeError(
                    f"{where}: '{self.field}' actions must be integers for {self.space}, "
                    f"got dtype {values.dtype}"
                )
            # Usually every row is in range, which two reductions show without masking.
            if self._bounds is not None and (
                values.size == 0
                or (values.min() >= self._bounds[0] and values.max() <= self._bounds[1])
            ):
                return
            # Rows of agents that are not acting may hold anything: they are never sent.
            checked = values if active is None else values[active]
            outside = (checked < self.low) | (checked > self.high)
            if outside.any():
                raise ValueError(
                    f"{where}: action value(s) {checked[outside].tolist()[:5]} outside "
                    f"{self.space} (expected {self.low.min()}..{self.high.max()})"
                )
        elif values.dtype.kind not in "fiu":
            raise TypeError(
                f"{where}: '{self.field}' actions must be numbers for {self.space}, "
                f"got dtype {values.dtype}"
            )
        elif values.dtype.kind == "f" and not np.isfinite(values.sum()):
            # Clipping leaves NaN as it is, so a NaN action would reach the env.
            checked = values if active is None else values[active]
            bad = checked[~np.isfinite(checked)]
            if bad.size:
                raise ValueError(
                    f"{where}: action value(s) {bad.tolist()[:5]} are not finite; expected "
                    f"finite numbers for {self.space}"
                )

    def check_item(self, action: object, where: str) -> np.ndarray:
        """Validate one agent's action; returns its array."""
        if not isinstance(action, Action):
            raise TypeError(
                f"{where}: expected a coltra.buffers.Action, got {type(action).__name__} "
                f"{action!r}; use {self.describe()}"
            )
        if self.field not in action:
            raise ValueError(f"{where}: got {action!r}, expected {self.describe()}")
        values = _to_numpy(action[self.field])
        if tuple(values.shape) != self.item_shape:
            raise ValueError(
                f"{where}: action '{self.field}' has shape {tuple(values.shape)}, "
                f"expected {self.item_shape} ({self.describe()})"
            )
        self._check_values(values, where)
        return values

    def check_batch(
        self, actions: object, rows: int, active: np.ndarray | None = None
    ) -> np.ndarray:
        """Validate actions for all ``rows`` agents; returns the stacked array.

        ``active`` marks the rows whose values are used; the others only need the right
        shape and dtype (a collector may leave anything there).
        """
        if not isinstance(actions, Action):
            raise TypeError(
                f"step_batch expects a coltra.buffers.Action batch with one row per agent, "
                f"got {type(actions).__name__} {actions!r}"
            )
        if self.field not in actions:
            raise ValueError(f"step_batch: got {actions!r}, expected {self.describe()}")
        values = _to_numpy(actions[self.field])
        expected = (rows, *self.item_shape)
        if tuple(values.shape) != expected:
            raise ValueError(
                f"step_batch: action '{self.field}' has shape {tuple(values.shape)}, "
                f"expected {expected} (one row per agent, {self.describe()})"
            )
        if self.rows is not None:  # only this block's rows are read
            mine = np.zeros(rows, dtype=bool)
            mine[self.rows] = True
            active = mine if active is None else mine & active
            self._check_values(values, "step_batch", active)
            return values
        self._check_values(values, "step_batch", active)
        return values

    def to_env(self, values: np.ndarray) -> Any:
        """One row of checked action values as the underlying env wants it."""
        if self.parts:
            return self._joint_to_env(values)
        if isinstance(self.space, gym.spaces.Discrete):
            return int(values)
        if isinstance(self.space, gym.spaces.Box):
            # Agents keep their unclipped samples for log-probabilities; the env only ever
            # sees actions inside its bounds.
            clipped = np.clip(values, self.low, self.high)
            return clipped.reshape(self.space.shape).astype(self.space.dtype, copy=False)
        return values

    def _joint_to_env(self, values: np.ndarray) -> Any:
        """A Dict or Tuple action (nested as the space is) from one row of slots."""
        pieces = []
        for path, part, slots in self.parts:
            piece = values[slots].reshape(part.item_shape)
            pieces.append((path, part.to_env(piece.astype(np.int64) if part.integer else piece)))
        return _nest(self.space, dict(pieces))

    def to_env_rows(self, values: np.ndarray) -> list[Any]:
        """``to_env`` of every row of ``values`` (same types), converted in one go."""
        if self.parts:
            return [self._joint_to_env(row) for row in values]
        if isinstance(self.space, gym.spaces.Discrete):
            # tolist() gives Python ints, as int() does; bools become 0/1 first.
            return (values.astype(np.int64) if values.dtype.kind == "b" else values).tolist()
        if isinstance(self.space, gym.spaces.Box):
            clipped = np.clip(values, self.low, self.high).astype(self.space.dtype, copy=False)
            return [row.reshape(self.space.shape) for row in clipped]
        return list(values)

    def zeros(self, rows: int) -> np.ndarray:
        """A valid filler batch: the lowest action (0 for Box), one row per agent."""
        if self.parts:
            row = np.concatenate(
                [part.zeros(1).reshape(-1).astype(np.float32) for _, part, _ in self.parts]
            )
            return np.tile(row, (rows, 1))
        if self.integer:
            filler = np.broadcast_to(self.low, self.item_shape)
            return np.tile(filler.astype(np.int64), (rows, *([1] * len(self.item_shape))))
        return np.zeros((rows, *self.item_shape), dtype=np.float32)


def _nest(
    space: gym.Space, values: Mapping[tuple[Any, ...], Any], path: tuple[Any, ...] = ()
) -> Any:
    """The Dict (a dict) or Tuple (a tuple) of ``space`` whose leaves are ``values`` by path."""
    if isinstance(space, gym.spaces.Dict):
        return {key: _nest(sub, values, (*path, key)) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_nest(sub, values, (*path, i)) for i, sub in enumerate(space.spaces))
    return values[path]


def _to_numpy(value: Any) -> np.ndarray:
    return to_numpy(value) if is_tensor(value) else np.asarray(value)


class LayoutActions:
    """The action codecs of every block of an env (one for a single block), checking and
    stacking batch-view Actions."""

    def __init__(self, layout: BlockLayout) -> None:
        self.layout = layout
        self.codecs = [
            ActionCodec(block.action_space, block.prefix, None if layout.is_single else block.rows)
            for block in layout.blocks
        ]
        # One agent's own Action names its plain field ("discrete"), whatever its block.
        self._item_codecs = [ActionCodec(block.action_space) for block in layout.blocks]

    @property
    def single(self) -> ActionCodec | None:
        """The codec of a single-block env (its fast paths take plain arrays)."""
        return self.codecs[0] if len(self.codecs) == 1 else None

    def check_batch(self, actions: object, rows: int, active: np.ndarray | None = None) -> Action:
        """``actions`` validated for every block, as one Action of the blocks' fields."""
        checked = {codec.field: codec.check_batch(actions, rows, active) for codec in self.codecs}
        return Action(**checked)

    def zeros(self, rows: int) -> dict[str, np.ndarray]:
        return {codec.field: codec.zeros(rows) for codec in self.codecs}

    def from_dict(self, actions: object, agent_names: Sequence[str], acting: np.ndarray) -> Action:
        """Stack a dict of per-agent Actions into the batch view, checking every entry
        against its agent's block. ``acting[row]`` says which agents must act now; an action
        for any other name is an error."""
        if not isinstance(actions, Mapping):
            raise TypeError(
                f"step() expects a dict of agent name -> Action, got {type(actions).__name__}"
            )
        _check_action_names(actions, agent_names, acting)
        stacked = self.zeros(len(agent_names))
        block_of_row = self.layout.block_of_row
        for row, name in enumerate(agent_names):
            if name in actions:
                block = int(block_of_row[row])
                values = self._item_codecs[block].check_item(
                    actions[name], f"action for agent '{name}'"
                )
                stacked[self.codecs[block].field][row] = values
        return Action(**stacked)


def action_batch_from_dict(
    actions: object,
    agent_names: Sequence[str],
    acting: np.ndarray,
    space: gym.Space,
) -> Action:
    """Stack a dict of per-agent Actions of one ``space`` into one row per agent."""
    codec = ActionCodec(space)
    if not isinstance(actions, Mapping):
        raise TypeError(
            f"step() expects a dict of agent name -> Action, got {type(actions).__name__}"
        )
    _check_action_names(actions, agent_names, acting)
    stacked = codec.zeros(len(agent_names))
    for row, name in enumerate(agent_names):
        if name in actions:
            stacked[row] = codec.check_item(actions[name], f"action for agent '{name}'")
    return Action(**{codec.field: stacked})


def _check_action_names(
    actions: Mapping[str, object], agent_names: Sequence[str], acting: np.ndarray
) -> None:
    live = [name for name, is_live in zip(agent_names, acting) if is_live]
    live_set = set(live)
    unknown = [name for name in actions if name not in live_set]
    if unknown:
        known = set(agent_names)
        dead = [name for name in unknown if name in known]
        if dead:
            raise ValueError(
                f"actions given for agents {dead[:5]} that are not acting now "
                "(their episode ended); send actions only for agents in the last observation"
            )
        raise ValueError(
            f"actions given for unknown agents {unknown[:5]}; agents acting now: {_preview(live)}"
        )
    missing = [name for name in live if name not in actions]
    if missing:
        raise ValueError(f"no action for live agents {missing[:5]} ({len(missing)} missing)")


def _preview(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)} in all)"
