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
import re
from pathlib import Path
from typing import Any

import torch

from coltra.files import atomic_write_bytes

_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_UNSAFE_OPCODE = re.compile(r"Unsupported operand (\d+)")

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


def save_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())


def load_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing checkpoint file {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
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
        # torch's message advises retrying with weights_only=False, exactly what must not be
        # done with an untrusted file, so only the facts are passed on.
        found = _UNSAFE_GLOBAL.search(str(exc))
        if found:
            raise CheckpointError(
                f"refusing to load {path}: it refers to the Python object {found[1]}, and "
                "unpickling it could run code; checkpoints hold only tensors and plain data. "
                "Nothing from the file was executed."
            ) from None
        opcode = _UNSAFE_OPCODE.search(str(exc))
        detail = f"unsupported pickle opcode {opcode[1]}" if opcode else "not a tensor file"
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain tensor file ({detail}); it is "
            "corrupted, or holds pickled objects that could run code. Nothing from the file "
            "was executed."
        ) from None
    except Exception as exc:  # any failure to parse an untrusted file is "corrupted"
        # Truncated zips raise RuntimeError, empty files EOFError, other bytes KeyError...
        first_line = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise CheckpointError(
            f"corrupted or truncated checkpoint file {path}: {type(exc).__name__}: "
            f"{first_line or repr(exc)}"
        ) from None
