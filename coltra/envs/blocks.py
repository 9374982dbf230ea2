"""Blocks: the agents of an env that share an observation space and an action space.

An env whose agents all have the same spaces has one block, and its batch view is what it
always was: ``obs.vector`` ``[rows, ...]``, ``Action(discrete=[rows])``. When agents differ
(mpe2's simple_tag: adversaries see 16 numbers, the prey 14; simple_speaker_listener: a
speaker with 3 actions, a listener with 5), each group of rows with equal spaces is a block
named after its agents (``adversary``, ``agent``), and the batch view stays one stacked
batch: every field of a block is named ``<block>/<field>`` (``adversary/vector``,
``agent/vector``) and has a row for every agent, the rows of the other blocks holding zeros
that nothing reads. Actions go the same way (``speaker/discrete``, ``listener/discrete``).
So a vectorised env, the subprocess transport, the NaN checks and the collector's buffers
treat a mixed env like any other, with no Python object per agent; a policy serves the
rows of one block and its model sees that block's fields under their plain names
(:func:`block_view`). What the zero rows cost is memory in the step's transport only
(a rollout stores each policy's own fields).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import gymnasium as gym
import numpy as np

from coltra.buffers import Action, Observation
from coltra.names import parse_agent_name

__all__ = ["Block", "BlockLayout", "block_view"]

SEPARATOR = "/"


@dataclass(frozen=True)
class Block:
    """Rows of agents with one observation space and one action space.

    ``name`` is "" when the env has a single block (its fields keep their plain names).
    ``rows`` are indices into the env's ``agent_names``, in order. ``[block rows]``
    """

    name: str
    observation_space: gym.Space
    action_space: gym.Space
    rows: np.ndarray = field(compare=False)

    @property
    def prefix(self) -> str:
        """What this block's field names start with in the batch view."""
        return f"{self.name}{SEPARATOR}" if self.name else ""

    def same_spaces(self, other: Block) -> bool:
        return (
            self.observation_space == other.observation_space
            and self.action_space == other.action_space
        )


def _stem(agent_name: str) -> str:
    """``adversary`` for ``adversary_2&env=3``: the base name without its index."""
    base, _ = parse_agent_name(agent_name)
    return re.sub(r"[_\-]?\d+$", "", base)


@dataclass(frozen=True, eq=False)
class BlockLayout:
    """The blocks of an env's rows, and which block each row is in."""

    blocks: tuple[Block, ...]
    block_of_row: np.ndarray  # [rows] index into blocks

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockLayout):
            return NotImplemented
        return (
            len(self.blocks) == len(other.blocks)
            and all(
                a == b and np.array_equal(a.rows, b.rows) for a, b in zip(self.blocks, other.blocks)
            )
            and np.array_equal(self.block_of_row, other.block_of_row)
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays

    @classmethod
    def single(
        cls, observation_space: gym.Space, action_space: gym.Space, rows: int
    ) -> BlockLayout:
        whole = np.arange(rows, dtype=np.int64)
        whole.setflags(write=False)
        return cls((Block("", observation_space, action_space, whole),), np.zeros(rows, np.int64))

    @classmethod
    def of_agents(
        cls,
        agent_names: Sequence[str],
        spaces: Sequence[tuple[gym.Space, gym.Space]],
    ) -> BlockLayout:
        """Group the agents by their (observation space, action space); a block is named
        after its agents' common stem (``speaker``), or ``block<k>`` when they have none."""
        groups: list[tuple[tuple[gym.Space, gym.Space], list[int]]] = []
        for row, pair in enumerate(spaces):
            for known, rows in groups:
                if known[0] == pair[0] and known[1] == pair[1]:
                    rows.append(row)
                    break
            else:
                groups.append((pair, [row]))
        if len(groups) == 1:
            (observation_space, action_space), _ = groups[0]
            return cls.single(observation_space, action_space, len(agent_names))
        names: list[str] = []
        for k, (_, rows) in enumerate(groups):
            stems = {_stem(agent_names[row]) for row in rows}
            name = stems.pop() if len(stems) == 1 else ""
            if not name or name in names or SEPARATOR in name:
                name = f"block{k}"
            names.append(name)
        block_of_row = np.zeros(len(agent_names), np.int64)
        blocks = []
        for k, (name, ((observation_space, action_space), rows)) in enumerate(zip(names, groups)):
            indices = np.asarray(rows, dtype=np.int64)
            indices.setflags(write=False)
            block_of_row[indices] = k
            blocks.append(Block(name, observation_space, action_space, indices))
        return cls(tuple(blocks), block_of_row)

    @classmethod
    def joined(cls, layouts: Sequence[BlockLayout]) -> BlockLayout:
        """The layout of copies placed one after another (a vectorised env): blocks with the
        same name and spaces merge, their rows offset by the rows before each copy."""
        first = layouts[0]
        for other in layouts[1:]:
            if [b.name for b in other.blocks] != [b.name for b in first.blocks] or not all(
                a.same_spaces(b) for a, b in zip(first.blocks, other.blocks)
            ):
                raise ValueError(
                    f"env copies have different blocks of agents: {first.describe()} and "
                    f"{other.describe()}"
                )
        offsets = np.cumsum([0] + [len(layout.block_of_row) for layout in layouts])
        blocks = []
        for k, block in enumerate(first.blocks):
            rows = np.concatenate(
                [layout.blocks[k].rows + offset for layout, offset in zip(layouts, offsets)]
            )
            rows.setflags(write=False)
            blocks.append(Block(block.name, block.observation_space, block.action_space, rows))
        block_of_row = np.concatenate([layout.block_of_row for layout in layouts])
        return cls(tuple(blocks), block_of_row)

    @property
    def is_single(self) -> bool:
        return len(self.blocks) == 1

    def block(self, name: str) -> Block:
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(f"no block {name!r}; blocks: {[b.name for b in self.blocks]}")

    def block_of(self, rows: np.ndarray, what: str) -> Block:
        """The one block ``rows`` all lie in (e.g. a policy's rows); an error naming the
        blocks when they span several: a policy serves agents of one set of spaces."""
        found = np.unique(self.block_of_row[rows]) if len(rows) else np.zeros(1, np.int64)
        if len(found) != 1:
            spanned = ", ".join(repr(self.blocks[k].name) for k in found)
            raise ValueError(
                f"{what} spans agents with different spaces (blocks {spanned}); give each "
                "block its own policy"
            )
        return self.blocks[int(found[0])]

    def describe(self) -> str:
        return ", ".join(
            f"{block.name or 'all'}: {len(block.rows)} agents, {block.observation_space} / "
            f"{block.action_space}"
            for block in self.blocks
        )


Bundle = TypeVar("Bundle", Observation, Action)


def block_view(batch: Bundle, block: Block) -> Bundle:
    """The fields of ``block`` in a batch-view bundle, under their plain names
    (``adversary/vector`` -> ``vector``); the bundle itself for a single block."""
    if not block.prefix:
        return batch
    fields = {
        name[len(block.prefix) :]: value
        for name, value in batch.items()
        if name.startswith(block.prefix)
    }
    return type(batch)(**fields)


def with_prefix(fields: dict[str, np.ndarray], block: Block) -> dict[str, np.ndarray]:
    """Plain field names as the batch view names them for ``block``."""
    if not block.prefix:
        return fields
    return {block.prefix + name: value for name, value in fields.items()}
