"""Step results in shared memory: subprocess workers write their rows' observations,
rewards and flags straight into arrays the main process reads without a copy; the pipe
carries only a small reply (whether an episode ended, the env's metrics).

One block holds two *slots*, each with every row of every field: a step writes the slot
the main process names, alternating, so the batch of the previous step stays intact while
the next one is written. A batch from shared memory is therefore valid until the step
after next; the collector never holds one longer (copy what you keep if you step the env
by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from coltra.buffers import Observation
from coltra.envs.base import StepBatch

__all__ = ["SharedReply", "SharedRows", "SharedSpec", "SlotCall"]

SLOTS = 2
FLAGS = ("terminated", "truncated", "active")


@dataclass(frozen=True)
class SharedSpec:
    """What a worker needs to attach: the block's name, the rows, the observation fields
    (name -> (shape per row, dtype string))."""

    name: str
    rows: int
    fields: tuple[tuple[str, tuple[int, ...], str], ...]


@dataclass(frozen=True)
class SlotCall:
    """A command's argument, with the slot its result goes to."""

    argument: Any
    slot: int


@dataclass(frozen=True)
class SharedReply:
    """A worker's reply when the result is in shared memory."""

    has_final: bool
    metrics: dict[str, np.ndarray]


def _layout(spec: SharedSpec) -> tuple[list[tuple[str, tuple[int, ...], np.dtype]], int]:
    """Every array of the block (key, shape, dtype) and the block's size in bytes."""
    arrays: list[tuple[str, tuple[int, ...], np.dtype]] = []
    for slot in range(SLOTS):
        for part in ("obs", "final"):
            for name, shape, kind in spec.fields:
                arrays.append((f"{slot}/{part}/{name}", (spec.rows, *shape), np.dtype(kind)))
        arrays.append((f"{slot}/reward", (spec.rows,), np.dtype(np.float32)))
        for flag in FLAGS:
            arrays.append((f"{slot}/{flag}", (spec.rows,), np.dtype(bool)))
    size = 0
    for _, shape, dtype in arrays:
        size = -(-size // 16) * 16 + int(np.prod(shape)) * dtype.itemsize  # 16-byte aligned
    return arrays, max(size, 1)


class SharedRows:
    """The shared block of a vectorised env's rows (see the module docstring)."""

    def __init__(self, spec: SharedSpec, block: shared_memory.SharedMemory, owner: bool) -> None:
        self.spec, self.block, self.owner = spec, block, owner
        arrays, _ = _layout(spec)
        self.arrays: dict[str, np.ndarray] = {}
        offset = 0
        for key, shape, dtype in arrays:
            offset = -(-offset // 16) * 16
            count = int(np.prod(shape))
            self.arrays[key] = np.ndarray(shape, dtype, buffer=block.buf, offset=offset)
            offset += count * dtype.itemsize

    @classmethod
    def create(cls, batch: StepBatch) -> SharedRows:
        """A new block shaped like ``batch``'s rows (the main process owns and unlinks it)."""
        fields = tuple(
            (name, tuple(value.shape[1:]), value.dtype.str) for name, value in batch.obs.items()
        )
        probe = SharedSpec("", batch.obs.batch_size, fields)
        block = shared_memory.SharedMemory(create=True, size=_layout(probe)[1])
        return cls(SharedSpec(block.name, probe.rows, fields), block, owner=True)

    @classmethod
    def attach(cls, spec: SharedSpec) -> SharedRows:
        """The block of ``spec`` in a worker, which does not own it. Workers share the main
        process's resource tracker, so the block stays registered once, by its owner, whose
        ``close`` unlinks it (and the tracker does, should the owner die first)."""
        return cls(spec, shared_memory.SharedMemory(name=spec.name), owner=False)

    # ------------------------------------------------------------------ worker side
    def write(self, slot: int, rows: slice, batch: StepBatch) -> SharedReply:
        """Write ``batch`` (the worker's ``rows``) into ``slot``; the reply to send."""
        arrays = self.arrays
        for name, value in batch.obs.items():
            arrays[f"{slot}/obs/{name}"][rows] = value
        if batch.final_obs is not None:
            for name, value in batch.final_obs.items():
                arrays[f"{slot}/final/{name}"][rows] = value
        arrays[f"{slot}/reward"][rows] = batch.reward
        for flag in FLAGS:
            arrays[f"{slot}/{flag}"][rows] = getattr(batch, flag)
        return SharedReply(batch.final_obs is not None, batch.metrics)

    # ------------------------------------------------------------------ main side
    def batch(
        self, slot: int, replies: list[SharedReply], rows: np.ndarray | None = None
    ) -> StepBatch:
        """The step in ``slot``: views of every row, or a copy of ``rows`` (a part)."""
        arrays = self.arrays

        def get(key: str) -> np.ndarray:
            value = arrays[f"{slot}/{key}"]
            return value if rows is None else value[rows]

        names = [name for name, _, _ in self.spec.fields]
        has_final = any(reply.has_final for reply in replies)
        metrics: dict[str, list[np.ndarray]] = {}
        for reply in replies:
            for key, value in reply.metrics.items():
                metrics.setdefault(key, []).append(value)
        return StepBatch(
            obs=Observation(**{name: get(f"obs/{name}") for name in names}),
            reward=get("reward"),
            terminated=get("terminated"),
            truncated=get("truncated"),
            active=get("active").copy(),  # the env remembers it: it must outlive the slot
            final_obs=(
                Observation(**{name: get(f"final/{name}") for name in names}) if has_final else None
            ),
            metrics={key: np.concatenate(values) for key, values in metrics.items()},
        )

    def close(self) -> None:
        """Let go of the block (and, in the main process, remove it)."""
        self.arrays.clear()
        try:
            self.block.close()
        except BufferError:  # a view still exported: the memory goes with the process
            pass
        if self.owner:
            try:
                self.block.unlink()
            except FileNotFoundError:
                pass
