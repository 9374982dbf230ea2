"""Files on disk that are safe to load from an untrusted source, and written atomically.

Checkpoints hold plain JSON and tensors only. Tensors are read with
``torch.load(weights_only=True)``, which refuses any pickled Python object, so a crafted
file cannot run code. Every write goes to a temporary file first and is moved into place
with ``os.replace``: a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "load_json",
    "load_tensors",
    "save_json",
    "save_tensors",
]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupted, unsafe or does not fit what loads it."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())


def load_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing checkpoint file {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"corrupted checkpoint file {path}: {exc}") from None


def save_tensors(path: str | os.PathLike[str], tensors: dict[str, Any]) -> None:
    """Save a (nested) dict of tensors and plain numbers/strings."""
    import io

    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_tensors(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """Load what ``save_tensors`` wrote, refusing pickled objects of any other kind."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing checkpoint file {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain "
            f"data, which could run code when unpickled ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"corrupted or truncated checkpoint file {path}: {str(exc).splitlines()[0]}"
        ) from None
