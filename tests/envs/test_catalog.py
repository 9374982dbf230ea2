"""The env catalog (``coltra envs``): every name it lists can be given to a config."""

from __future__ import annotations

import importlib

import pytest

from coltra.configs import EnvConfig
from coltra.envs import register
from coltra.envs.catalog import env_catalog
from coltra.envs.probe_envs import PROBE_ENVS, all_probe_envs
from coltra.factory import make_env


def test_the_catalog_lists_each_kind_of_env() -> None:
    names = {(entry.kind, entry.name) for entry in env_catalog()}
    for expected in (
        ("gym", "CartPole-v1"),
        ("gym", "Pendulum-v1"),
        ("pettingzoo", "pettingzoo.sisl.pursuit_v5"),
        ("pettingzoo", "pettingzoo.butterfly.knights_archers_zombies_v11"),
        ("pettingzoo", "mpe2.simple_spread_v3"),
        ("pettingzoo", "magent2.environments.battle_v4"),
        ("coltra", "coltra.envs.crowd:CrowdEnv"),
    ):
        assert expected in names
    probes = {name for kind, name in names if kind == "probe"}
    assert probes == set(all_probe_envs()) and {"memory", "bits", "masked"} <= probes
    assert not any(name.startswith("pettingzoo.classic") for _, name in names)  # turn-based


def test_every_pettingzoo_module_listed_steps_in_parallel() -> None:
    for entry in env_catalog():
        if entry.kind == "pettingzoo":
            assert hasattr(importlib.import_module(entry.name), "parallel_env"), entry.name


@pytest.mark.parametrize(
    "kind, name",
    [("probe", "teams"), ("coltra", "coltra.envs.crowd:CrowdEnv"), ("registered", "catalog_probe")],
)
def test_names_of_the_catalog_build_envs(kind: str, name: str) -> None:
    register("catalog_probe", PROBE_ENVS["action"])
    assert (kind, name) in {(entry.kind, entry.name) for entry in env_catalog()}
    env = make_env(EnvConfig(kind=kind, env_name=name, workers=1, backend="inprocess"), seed=0)
    try:
        assert len(env.agent_names) >= 1
    finally:
        env.close()
