"""coltra.files: atomic writes keep the old file on failure and get umask permissions."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from coltra.files import atomic_write_bytes, atomic_write_text


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_new_file_gets_the_permissions_open_would_give_it(
    tmp_path: Path, mask: int, expected: int
) -> None:
    path = tmp_path / "sub" / "file.bin"
    with umask(mask):
        atomic_write_bytes(path, b"data")
        assert mode(path) == expected
        atomic_write_text(path, "again")  # replacing a file: the new one, same rule
        assert mode(path) == expected
    assert path.read_text() == "again"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    atomic_write_text(path, "old: 1\n")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "new: 2\n")
    assert path.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_the_umask_is_left_as_it_was(tmp_path: Path) -> None:
    with umask(0o027):
        atomic_write_bytes(tmp_path / "f", b"x")
        assert os.umask(0o027) == 0o027
