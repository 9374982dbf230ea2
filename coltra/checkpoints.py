"""What a trainer checkpoint holds besides the group, and how a resumed run gets it back.

``trainer_state.pt`` holds tensors and plain data only (loaded with ``weights_only=True``):
the run's counters, the optimizer (Adam moments, schedule position, shuffling RNG), every
global RNG state and the W&B run id. Resuming loads the checkpoint's weights into the
group being trained, refusing policies, models or optimizer moments that do not fit it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coltra.agents import Agent
from coltra.configs.finish import first_difference
from coltra.counters import RunCounters
from coltra.groups import MacroAgent
from coltra.policy_optimization import CrowdPPOptimizer
from coltra.run_dir import RunDirectory
from coltra.serialization import CheckpointError

__all__ = [
    "STATE_FORMAT",
    "capture_rng",
    "copy_agent_weights",
    "copy_weights",
    "derived_seed",
    "load_checkpoint",
    "restore_rng",
    "restore_trainer_state",
    "save_checkpoint",
    "space_needed",
    "trainer_state",
    "weights_mismatch",
]

STATE_FORMAT = "coltra-trainer-state"
STATE_VERSION = 2  # 2: the counters in one entry (version 1 had them at the top level)


def derived_seed(seed: int, salt: int) -> int:
    """A seed for new episodes (a resumed run's env copies, a rebuilt env, an evaluation),
    different from ``seed`` and reproducible from it."""
    return int(np.random.SeedSequence([seed, salt]).generate_state(1)[0]) % 2**31


def space_needed(group: MacroAgent, keep: int) -> int:
    """Bytes a run's checkpoints need: the ``keep`` kept and the one being written, each
    about the weights, Adam's two moments, and some JSON and RNG states."""
    parameters = sum(
        p.numel() * p.element_size()
        for agent in group.policies.values()
        for p in agent.parameters()
    )  # frozen policies are saved too
    return (keep + 1) * (3 * parameters + 64 * 1024)


def save_checkpoint(
    run: RunDirectory,
    group: MacroAgent,
    counters: RunCounters,
    optimizer: CrowdPPOptimizer,
    wandb_run_id: str | None,
    keep: int,
) -> Path:
    """The group and the trainer state as the run's newest checkpoint; returns its path."""
    state = trainer_state(counters, optimizer, wandb_run_id)
    return run.save_checkpoint(counters.iteration, group, state, keep)


def load_checkpoint(
    run: RunDirectory, group: MacroAgent, counters: RunCounters, optimizer: CrowdPPOptimizer
) -> tuple[Path, str | None]:
    """The run's newest checkpoint put back into ``group``, ``counters`` and ``optimizer``
    (and the RNG states); returns its path and the W&B run id."""
    path, saved_group, state = run.load_checkpoint()
    copy_weights(saved_group, group, path)
    return path, restore_trainer_state(state, path, group, counters, optimizer)


def trainer_state(
    counters: RunCounters, optimizer: CrowdPPOptimizer, wandb_run_id: str | None
) -> dict[str, Any]:
    """Everything a resumed run needs besides the group's weights."""
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "counters": counters.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": capture_rng(),
        "wandb_run_id": wandb_run_id,
    }


def restore_trainer_state(
    state: dict[str, Any],
    path: Path,
    group: MacroAgent,
    counters: RunCounters,
    optimizer: CrowdPPOptimizer,
) -> str | None:
    """Put a checkpoint's trainer state back (counters, optimizer, RNG states); returns the
    W&B run id. A state that does not fit is a CheckpointError naming the file."""
    where = path / RunDirectory.STATE
    if state.get("format") != STATE_FORMAT or state.get("version") not in (1, STATE_VERSION):
        raise CheckpointError(f"{where} is not a Coltra trainer state")
    _check_optimizer_shapes(optimizer, group, state.get("optimizer"), where)
    # Version 1 kept the counters among the state's other entries, which they ignore.
    saved_counters = state["counters"] if state["version"] == 2 else state
    try:
        optimizer.load_state_dict(state["optimizer"])
        counters.load_state_dict(saved_counters)
        restore_rng(state["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        text = " ".join(str(exc).split())
        raise CheckpointError(f"{where} does not fit this trainer: {text[:120]}") from None
    run_id = state.get("wandb_run_id")
    return str(run_id) if run_id is not None else None


def capture_rng() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain data (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states is not None and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def copy_weights(saved: MacroAgent, group: MacroAgent, path: Path) -> None:
    """Load a checkpoint's weights into ``group``, refusing policies or models that differ."""
    if sorted(saved.policies) != sorted(group.policies):
        raise CheckpointError(
            f"the checkpoint {path} holds policies {sorted(saved.policies)}, the group given "
            f"has {sorted(group.policies)}"
        )
    for name, agent in group.policies.items():
        problem = weights_mismatch(saved.policies[name], agent)
        if problem:
            raise CheckpointError(
                f"the checkpoint {path} does not fit the group: policy '{name}' {problem}"
            )
        copy_agent_weights(saved.policies[name], agent)


def weights_mismatch(source: Agent, target: Agent) -> str | None:
    """Why ``source``'s weights cannot be loaded into ``target`` (another agent class, or
    a model built differently: the first key that differs), or None when they can."""
    if type(source) is not type(target):
        return f"is a {type(source).__name__} there, a {type(target).__name__} here"
    if source.model is None or target.model is None:
        return None
    # Compare as JSON, the form in which a checkpoint stores the description.
    old = json.loads(json.dumps(source.model.describe()))
    new = json.loads(json.dumps(target.model.describe()))
    found = first_difference(old, new, "")
    if found:
        key, was, now = found
        return f"was built with {key} = {json.dumps(was)} there, {json.dumps(now)} here"
    return None


def copy_agent_weights(source: Agent, target: Agent) -> None:
    """``source``'s weights into ``target`` (checked with :func:`weights_mismatch`)."""
    if source.model is not None and target.model is not None:
        with torch.no_grad():
            target.model.load_state_dict(source.model.state_dict())


def _check_optimizer_shapes(
    optimizer: CrowdPPOptimizer, group: MacroAgent, saved: Any, where: Path
) -> None:
    """Refuse optimizer moments whose shapes differ from the parameters they belong to (a
    trainer state from another model): torch loads them without a look, and the updates
    after would fail deep inside torch, or silently compute nonsense."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("optimizers"), Mapping):
        return  # the load that follows says what is missing
    for policy, saved_state in saved["optimizers"].items():
        current = optimizer.optimizers.get(policy)
        if current is None or not isinstance(saved_state, Mapping):
            continue
        groups, moments = saved_state.get("param_groups"), saved_state.get("state")
        if not isinstance(groups, list) or not isinstance(moments, Mapping):
            continue
        agent = group.policies.get(policy)
        names = {}
        if agent is not None and agent.model is not None:
            names = {id(param): name for name, param in agent.model.named_parameters()}
        for param_group, saved_group in zip(current.param_groups, groups):
            ids = saved_group.get("params") if isinstance(saved_group, Mapping) else None
            if not isinstance(ids, list):
                continue
            for param_id, param in zip(ids, param_group["params"]):
                entry = moments.get(param_id)
                if not isinstance(entry, Mapping):
                    continue
                for key, value in entry.items():
                    if not isinstance(value, torch.Tensor) or value.dim() == 0:
                        continue  # Adam's step count
                    if value.shape != param.shape:
                        raise CheckpointError(
                            f"{where} was saved for another model: the optimizer's {key!r} "
                            f"of policy '{policy}' parameter "
                            f"'{names.get(id(param), param_id)}' has shape {tuple(value.shape)}, "
                            f"the parameter has {tuple(param.shape)}"
                        )
