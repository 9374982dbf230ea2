"""The process a run trains in: torch's thread count, the seeds, the device.

:func:`prepare_process` sets the thread count *before* the seeds and before any model is
built: a model's initial weights depend on both (``make train`` solved at iteration 72 or
at 101 depending on ``OMP_NUM_THREADS`` when the threads were set after the weights).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from coltra.configs import ConfigError, TrainerConfig

__all__ = ["prepare_process", "resolve_device", "seed_everything", "torch_threads"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_process(trainer: TrainerConfig) -> None:
    """Torch's thread count (``trainer.torch_threads``), then every seed (``trainer.seed``,
    which a finished config always has): what the initial weights depend on."""
    if trainer.torch_threads is not None:
        torch.set_num_threads(trainer.torch_threads)
    if trainer.seed is not None:
        seed_everything(trainer.seed)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (None: as they are), then restore them.

    For the PPO update (``trainer.update_threads``): env workers wait while it runs, so it
    may use the cores they leave idle, and collection goes back to ``trainer.torch_threads``.
    """
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; other names must be usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but CUDA is not available here (use 'auto' or 'cpu')",
            key="trainer.device",
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' is not available here", key="trainer.device")
    return torch.device(name)
