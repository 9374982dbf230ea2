"""Fixtures of the reliability suite: the faulty probe env, registered for configs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from faulty_envs import FaultyProbeEnv

from coltra.envs.probe_envs import PROBE_ENVS


@pytest.fixture
def faulty_probe(monkeypatch: pytest.MonkeyPatch) -> type[FaultyProbeEnv]:
    """``env.kind: probe, env.env_name: faulty`` builds a FaultyProbeEnv (for this test)."""
    monkeypatch.setitem(PROBE_ENVS, "faulty", FaultyProbeEnv)
    return FaultyProbeEnv


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny networks are fastest on one thread, and a busy machine has no spare core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
