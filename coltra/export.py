"""Policies as files other programs run without Coltra (``coltra export``): ONNX or
TorchScript, one file per policy.

What is exported is the deterministic policy, observation in, the env's action out:

* **inputs**: the policy's observation fields as Coltra feeds them, one named input each,
  with a leading batch axis of any size (``vector`` ``[batch, features]`` float32 for a Box
  or a one-hot Discrete, ``image`` ``[batch, H, W, C]``, ``action_mask`` ``[batch,
  actions]`` when the env gives masks, ``agent_id`` for networks per agent); a centralised
  critic's ``state``/``team`` fields are not inputs, acting does not read them;
* **inside**: observation normalisation (``obs_norm``, its statistics frozen as
  constants), the networks, the action mask (illegal actions are never chosen);
* **output** ``action``: the most likely action, as the env takes it: int64 ``[batch]``
  for Discrete (its ``start`` added), ``[batch, dims]`` for MultiDiscrete, float32
  ``[batch, dims]`` for Box, clipped to the bounds as Coltra's env adapters clip it; for a
  Dict or Tuple, the float32 ``joint`` row (each part's values in its slots, see
  :class:`~coltra.envs.spaces.ActionCodec`).

A recurrent policy (``model.recurrent``) also takes its core's state, ``memory_0`` (and
``memory_1``, an LSTM's cell; each float32 ``[batch, recurrent_size]``, zeros at an episode's
start) and returns the next one as ``next_memory_0``... after ``action``: feed each step's
outputs back in. The value network and its memory are left out (acting needs neither). Models
that cannot be traced (Python control flow on tensor values, unsupported ops) are an
:class:`ExportError` naming the policy and the tracer's complaint.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from coltra.agents import Agent
from coltra.buffers import ACTION_MASK_FIELD, AGENT_ID_FIELD, STATE_FIELD, TEAM_FIELD, Observation
from coltra.envs.spaces import ActionCodec, ObservationCodec
from coltra.groups import MacroAgent
from coltra.models import MLPModel
from coltra.models.distributions import distribution_mode

__all__ = [
    "FORMATS",
    "DeterministicPolicy",
    "ExportError",
    "export_group",
    "export_policy",
    "memory_inputs",
    "policy_inputs",
]

#: Export formats and their file suffixes.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: ONNX opset of the files written (onnxruntime 1.17+ runs it).
OPSET = 17


class ExportError(ValueError):
    """A policy that cannot be exported: no network, a model the tracer cannot follow, a
    format whose packages are missing, a bad output path."""


def policy_inputs(agent: Agent) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The policy's inputs: observation field -> (shape of one item, dtype), in the order
    the exported file takes them."""
    model = agent.model
    if model is None or model.observation_space is None:
        raise ExportError(f"{type(agent).__name__} has no network to export")
    fields = ObservationCodec(model.observation_space).fields
    return {name: spec for name, spec in fields.items() if name not in (STATE_FIELD, TEAM_FIELD)}


def memory_inputs(agent: Agent) -> dict[str, int]:
    """A recurrent policy's memory inputs: name -> size of one item (``memory_0``...): the
    policy core's state for an ``MLPModel`` (the value network's is left out), the whole
    state for other models; empty for feed-forward ones."""
    model = agent.model
    if model is None:
        return {}
    if isinstance(model, MLPModel):
        core = model.policy_core
        state = () if core is None else core.initial_state(1, model.device)
    else:
        state = model.get_initial_state(1)
    return {f"memory_{k}": int(part[0].numel()) for k, part in enumerate(state)}


class DeterministicPolicy(nn.Module):
    """``agent``'s most likely action for a batch of observations given field by field
    (``policy_inputs`` order), as the env takes it (see the module docstring)."""

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        assert agent.model is not None
        # A copy: exporting moves it to the CPU and must not move a model still training.
        self.model = copy.deepcopy(agent.model)
        self.fields = list(policy_inputs(agent))
        self.policy_only = isinstance(agent.model, MLPModel)  # MLPModel.policy_step
        self.memory = list(memory_inputs(agent))
        space = agent.model.action_space
        start: Any = getattr(space, "start", 0) if agent.model.discrete else 0
        if isinstance(space, gym.spaces.Box):
            low, high = space.low.reshape(-1), space.high.reshape(-1)
        elif isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
            # The joint row: each category's start added, every slot within its bounds.
            codec = ActionCodec(space)
            low, high, start = codec.low, codec.high, codec.starts
        else:
            low = high = np.zeros(0)
        self.discrete = agent.model.discrete
        self.start: torch.Tensor
        self.low: torch.Tensor
        self.high: torch.Tensor
        self.joint = isinstance(space, gym.spaces.Dict | gym.spaces.Tuple)
        dtype = torch.float32 if self.joint else torch.int64
        self.register_buffer("start", torch.as_tensor(np.asarray(start), dtype=dtype))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    @property
    def output_names(self) -> list[str]:
        return ["action", *(f"next_{name}" for name in self.memory)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        # trusted: the checks compare shapes, which are tensors while tracing
        fields = len(self.fields)
        obs = Observation._trusted_from(dict(zip(self.fields, inputs[:fields])))
        if self.policy_only:
            assert isinstance(self.model, MLPModel)
            distribution, state = self.model.policy_step(obs, tuple(inputs[fields:]))
        else:
            distribution, state, _ = self.model(obs, tuple(inputs[fields:]))
        action = distribution_mode(distribution)
        if self.discrete:
            action = action.long() + self.start
        else:  # detach: a traced file's output would otherwise require grad (no .numpy())
            if self.joint:
                action = action + self.start
            action = torch.maximum(torch.minimum(action, self.high), self.low).detach()
        if not self.memory:
            return action
        return (action, *(part.detach() for part in state))


def export_policy(agent: Agent, path: str | Path, fmt: str, name: str = "policy") -> Path:
    """Write ``agent``'s deterministic policy to ``path`` in format ``fmt``
    (``onnx`` or ``torchscript``)."""
    if fmt not in FORMATS:
        raise ExportError(f"the export formats are {sorted(FORMATS)}, got {fmt!r}")
    target = Path(path)
    if not target.parent.is_dir():
        raise ExportError(f"cannot write {target}: {target.parent} is not a directory")
    if fmt == "onnx":
        _require("onnx", "onnxscript")
    policy = DeterministicPolicy(agent).cpu().eval()
    example = _example_inputs(agent)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side checks
            if fmt == "torchscript":
                traced = torch.jit.trace(policy, example, check_trace=True)
                traced.save(str(target))
            else:
                batch = {0: "batch"}
                names = [*policy.fields, *policy.memory, *policy.output_names]
                torch.onnx.export(
                    policy,
                    example,
                    str(target),
                    input_names=[*policy.fields, *policy.memory],
                    output_names=policy.output_names,
                    dynamic_axes={name: batch for name in names},
                    opset_version=OPSET,
                    dynamo=False,
                )
    except Exception as exc:  # the tracer's own errors have no common type
        target.unlink(missing_ok=True)
        text = " ".join(str(exc).split())[:300]
        raise ExportError(
            f"policy '{name}' ({type(agent.model).__name__}) cannot be traced for {fmt}: "
            f"{type(exc).__name__}: {text}"
        ) from exc
    return target


def export_group(
    group: MacroAgent, path: str | Path, fmt: str, policies: list[str] | None = None
) -> dict[str, Path]:
    """Every policy of ``group`` (or ``policies``) exported: to ``path`` for one policy,
    to ``<stem>_<policy><suffix>`` beside it for several."""
    target = Path(path)
    chosen = group.policy_names if policies is None else policies
    unknown = [name for name in chosen if name not in group.policies]
    if unknown:
        raise ExportError(f"no policy {unknown} in the saved group (it has {group.policy_names})")
    written = {}
    for name in chosen:
        out = (
            target if len(chosen) == 1 else target.with_name(f"{target.stem}_{name}{target.suffix}")
        )
        written[name] = export_policy(group.policies[name], out, fmt, name)
    return written


def _example_inputs(agent: Agent) -> tuple[torch.Tensor, ...]:
    """A batch of 2 typical observations (zeros, masks all legal) to trace with."""
    inputs = []
    for name, (shape, dtype) in policy_inputs(agent).items():
        filler = np.ones if name == ACTION_MASK_FIELD else np.zeros
        value = filler((2, *shape), dtype=dtype)
        if name == AGENT_ID_FIELD:
            value[:, 0] = 1
        inputs.append(torch.as_tensor(value))
    memory = [torch.zeros(2, size) for size in memory_inputs(agent).values()]
    return (*inputs, *memory)


def _require(*modules: str) -> None:
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: pip install 'coltra[export]'")
