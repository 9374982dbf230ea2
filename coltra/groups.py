"""Groups of agents: many environment agents acting through a few policies.

A ``MacroAgent`` holds policies (``Agent``s) by name and a ``policy_mapping`` from
agent-name prefixes to policy names. The longest matching prefix wins; ``""`` matches
everything, so ``{"p": "pursuer", "": "evader"}`` sends ``pursuer_3`` to ``pursuer`` and
anything else to ``evader``. Vectorised names (``pursuer_0&env=3``) match on their base
name. Prefixes, not functions, so that a mapping is plain data that saves and pickles.

All agents of one policy act in **one batched forward pass**: ``act_batch`` works on the
stacked rows of a vectorised env (the collector's hot path); the dict API ``act`` stacks
each policy's agents and makes one call per policy.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coltra.agents import Agent, Extra, action_item
from coltra.buffers import Action, Observation
from coltra.models.base import State
from coltra.names import check_policy_name, parse_agent_name
from coltra.serialization import CheckpointError, load_json, save_json

__all__ = [
    "HomogeneousGroup",
    "MacroAgent",
    "MultiPolicyGroup",
    "PolicyMappingError",
    "PolicyOutput",
    "map_policy_rows",
]

GROUP_FORMAT = "coltra-group"
GROUP_FILE = "group.json"
GROUP_VERSION = 1
_ROWS_CACHE_SIZE = 256

#: What one policy returns for its rows: actions, next state, extra (logprob, value).
PolicyOutput = tuple[Action, State, Extra]


class PolicyMappingError(KeyError):
    """No key of a policy_mapping is a prefix of an agent's name."""

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its message, quotes escaped and all.
        return str(self.args[0]) if self.args else ""


class MacroAgent:
    """Several policies acting for many environment agents, dispatched by name prefix."""

    def __init__(
        self,
        policies: Mapping[str, Agent],
        policy_mapping: Mapping[str, str],
        frozen: Iterable[str] = (),
    ) -> None:
        if not isinstance(policies, Mapping) or not policies:
            raise ValueError(
                f"a group needs a non-empty dict of policy name -> Agent, got {policies!r}"
            )
        if not isinstance(policy_mapping, Mapping) or not policy_mapping:
            raise ValueError(
                "policy_mapping must be a non-empty dict of agent-name prefix -> policy name "
                f'(e.g. {{"": "{next(iter(policies))}"}}), got {policy_mapping!r}'
            )
        if isinstance(frozen, str):
            raise TypeError(f"frozen takes a list of policy names, got the string {frozen!r}")
        for name, agent in policies.items():
            check_policy_name(name)
            if not isinstance(agent, Agent):
                raise TypeError(
                    f"policy '{name}' must be a coltra.agents.Agent, got {type(agent).__name__}"
                )
        for prefix, policy in policy_mapping.items():
            if not isinstance(prefix, str):
                raise TypeError(f"policy_mapping keys are name prefixes (str), got {prefix!r}")
            if not isinstance(policy, str) or policy not in policies:
                raise ValueError(
                    f"policy_mapping sends prefix {prefix!r} to policy {policy!r}, which is not "
                    f"one of the policies {sorted(policies)}"
                )
        self.policies: dict[str, Agent] = dict(policies)
        self._policy_mapping: dict[str, str] = dict(policy_mapping)
        # Longest *prefix* (key) first, not longest policy name (value): the most specific
        # match wins, so {"pursuer": "a", "": "bbbbbbbb"} sends pursuer_0 to "a".
        self._prefixes = sorted(self._policy_mapping, key=len, reverse=True)
        self.frozen: set[str] = set(frozen)
        unknown_frozen = self.frozen - set(self.policies)
        if unknown_frozen:
            raise ValueError(f"frozen policies {sorted(unknown_frozen)} are not in the group")
        self._rows_cache: dict[tuple[str, ...], dict[str, np.ndarray]] = {}
        # Per batch size, the (read-only) rows array policy_rows gives a policy that has
        # every row: act_batch recognises it by identity, without a numpy op per step.
        self._all_rows: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ mapping
    @property
    def policy_mapping(self) -> dict[str, str]:
        """Agent-name prefix -> policy name (a copy: the mapping is fixed at construction,
        because the prefix order and the row cache are derived from it)."""
        return dict(self._policy_mapping)

    @property
    def agents(self) -> dict[str, Agent]:
        """Deprecated name of :attr:`policies` (a group holds policies, not agents)."""
        warnings.warn(
            "MacroAgent.agents is now MacroAgent.policies", DeprecationWarning, stacklevel=2
        )
        return self.policies

    @property
    def policy_names(self) -> list[str]:
        return list(self.policies)

    @property
    def trainable_policies(self) -> list[str]:
        """Policies the optimizer updates (all but the frozen ones)."""
        return [name for name in self.policies if name not in self.frozen]

    def policy_for(self, agent_name: str) -> str:
        """The policy that acts for ``agent_name`` (longest matching prefix)."""
        return _policy_for(agent_name, self._prefixes, self._policy_mapping)

    def policy_rows(self, agent_names: Sequence[str]) -> dict[str, np.ndarray]:
        """Row indices of each policy's agents in ``agent_names`` (a vectorised env's
        fixed row order). Computed once per layout and cached. Policies with no agent are
        left out."""
        key = tuple(agent_names)
        cached = self._rows_cache.get(key)
        if cached is None:
            rows = map_policy_rows(agent_names, self._policy_mapping)
            cached = {policy: self._rows_array(indices) for policy, indices in rows.items()}
            # Bounded: with agents leaving and joining, the dict API sees a new name set
            # almost every step, and an unbounded cache would grow for the whole run.
            if len(self._rows_cache) >= _ROWS_CACHE_SIZE:
                self._rows_cache.clear()
            self._rows_cache[key] = cached
        return cached

    def _rows_array(self, indices: list[int]) -> np.ndarray:
        if indices == list(range(len(indices))):  # every row (when it is the only policy)
            if len(indices) not in self._all_rows:
                whole = np.arange(len(indices), dtype=np.int64)
                whole.setflags(write=False)
                self._all_rows[len(indices)] = whole
            return self._all_rows[len(indices)]
        array = np.asarray(indices, dtype=np.int64)
        array.setflags(write=False)
        return array

    # ------------------------------------------------------------------ acting
    def act_batch(
        self,
        obs: Observation,
        rows: Mapping[str, np.ndarray],
        deterministic: bool = False,
        get_value: bool = False,
        states: Mapping[str, State] | None = None,
    ) -> dict[str, PolicyOutput]:
        """One forward pass per policy over its rows of the stacked ``obs``."""
        views: dict[str, Observation] = {}
        for policy, policy_rows in rows.items():
            all_rows = policy_rows is self._all_rows.get(obs.batch_size) or _is_all_rows(
                policy_rows, obs.batch_size
            )
            views[policy] = obs if all_rows else obs[policy_rows]
        return self.act_policies(views, deterministic, get_value, states)

    def act_policies(
        self,
        obs: Mapping[str, Observation],
        deterministic: bool = False,
        get_value: bool = False,
        states: Mapping[str, State] | None = None,
    ) -> dict[str, PolicyOutput]:
        """One forward pass per policy over its own batch of observations (keyed by policy:
        the collector's view of an env whose policies see different fields)."""
        outputs: dict[str, PolicyOutput] = {}
        for policy, policy_obs in obs.items():
            if policy not in self.policies:
                raise KeyError(
                    f"observations given for unknown policy '{policy}'; policies: "
                    f"{self.policy_names}"
                )
            state = () if states is None else states.get(policy, ())
            outputs[policy] = self.policies[policy].act(
                policy_obs, state, deterministic=deterministic, get_value=get_value
            )
        return outputs

    def act(
        self,
        obs_dict: Mapping[str, Observation],
        deterministic: bool = False,
        get_value: bool = False,
        state_dict: Mapping[str, State] | None = None,
    ) -> tuple[dict[str, Action], dict[str, State], dict[str, dict[str, Any]]]:
        """Actions for every agent in ``obs_dict``, one forward pass per policy.

        Returns ``(actions, states, extra)``: actions and next states keyed by agent name,
        and ``extra[key][agent_name]`` for ``logprob`` (and ``value`` when ``get_value``).
        ``state_dict`` (agent name -> that agent's state) is optional: feed-forward policies
        have none. Policies may see differently shaped observations: each policy's agents
        are stacked separately.
        """
        _check_obs_dict(obs_dict, f"{type(self).__name__}.act")
        actions: dict[str, Action] = {}
        states: dict[str, State] = {}
        extra: dict[str, dict[str, Any]] = {}
        for policy, names in self._names_by_policy(obs_dict).items():
            stacked = Observation.stack([obs_dict[name] for name in names])
            agent = self.policies[policy]
            state = _policy_state(agent, names, state_dict)
            action, next_state, policy_extra = agent.act(
                stacked, state, deterministic=deterministic, get_value=get_value
            )
            for index, name in enumerate(names):
                actions[name] = action_item(action, index)
                states[name] = tuple(part[index] for part in next_state)
                for key, values in policy_extra.items():
                    extra.setdefault(key, {})[name] = values[index]
        return actions, states, extra

    def _names_by_policy(self, names: Iterable[str]) -> dict[str, list[str]]:
        """Agent names of each policy, in the given order (uses the ``policy_rows`` cache)."""
        ordered = list(names)
        rows = self.policy_rows(ordered)
        return {policy: [ordered[row] for row in indices] for policy, indices in rows.items()}

    def evaluate(
        self,
        obs: Mapping[str, Observation],
        actions: Mapping[str, Action],
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per policy: ``(logprobs, values, entropies)`` of its batch, with gradients.

        ``obs`` and ``actions`` are keyed by policy name (one batch each, as in the
        collector's records), not by agent name.
        """
        unknown = sorted(set(obs) - set(self.policies))
        if unknown:
            raise KeyError(
                f"evaluate got observations for unknown policies {unknown}; the group's "
                f"policies are {self.policy_names} (obs and actions are keyed by policy)"
            )
        if set(obs) != set(actions):
            raise KeyError(
                f"evaluate needs actions for the same policies as observations: obs for "
                f"{sorted(obs)}, actions for {sorted(actions)}"
            )
        recurrent = [policy for policy in obs if self.policies[policy].get_initial_state(1)]
        if recurrent:
            raise ValueError(
                f"evaluate scores single steps, but policies {recurrent} are recurrent: score "
                "them on sequences with agent.evaluate(obs, actions, state, starts) (see "
                "coltra.sequences)"
            )
        return {
            policy: self.policies[policy].evaluate(obs[policy], actions[policy]) for policy in obs
        }

    def value(
        self,
        obs_dict: Mapping[str, Observation],
        state_dict: Mapping[str, State] | None = None,
    ) -> dict[str, float]:
        """Value estimate of every agent's observation (no gradients); a recurrent policy's
        from each agent's state in ``state_dict`` (zeros for an agent without one)."""
        _check_obs_dict(obs_dict, f"{type(self).__name__}.value")
        values: dict[str, float] = {}
        with torch.no_grad():
            for policy, names in self._names_by_policy(obs_dict).items():
                stacked = Observation.stack([obs_dict[name] for name in names])
                agent = self.policies[policy]
                state = _policy_state(agent, names, state_dict)
                estimates = agent.value(stacked, state).cpu().numpy()
                values.update({name: float(v) for name, v in zip(names, estimates)})
        return values

    def parameters(self) -> list[torch.nn.Parameter]:
        """Parameters of the trainable policies, each once."""
        seen: dict[int, torch.nn.Parameter] = {}
        for policy in self.trainable_policies:
            for parameter in self.policies[policy].parameters():
                seen.setdefault(id(parameter), parameter)
        return list(seen.values())

    def to(self, device: str | torch.device) -> MacroAgent:
        for agent in self.policies.values():
            agent.to(device)
        return self

    # ------------------------------------------------------------------ disk
    def save(self, path: str | os.PathLike[str]) -> None:
        """``group.json`` (mapping, frozen policies) and one agent directory per policy."""
        directory = Path(path)
        for policy, agent in self.policies.items():
            agent.save(directory / "policies" / policy)
        save_json(
            directory / GROUP_FILE,
            {
                "format": GROUP_FORMAT,
                "version": GROUP_VERSION,
                "type": type(self).__name__,
                "policy_mapping": self.policy_mapping,
                "policies": list(self.policies),
                "frozen": sorted(self.frozen),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> MacroAgent:
        directory = Path(path)
        meta = load_json(directory / GROUP_FILE)
        if not isinstance(meta, dict) or meta.get("format") != GROUP_FORMAT:
            raise CheckpointError(f"{directory / GROUP_FILE} is not a Coltra group file")
        if meta.get("version") != GROUP_VERSION:
            raise CheckpointError(
                f"{directory / GROUP_FILE} has format version {meta.get('version')!r}; this "
                f"Coltra reads version {GROUP_VERSION}"
            )
        try:
            if not isinstance(meta["policies"], list):
                raise TypeError(f"'policies' must be a list of names, got {meta['policies']!r}")
            policies = [check_policy_name(name) for name in meta["policies"]]
            mapping = dict(meta["policy_mapping"])
            frozen = list(meta.get("frozen", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{directory / GROUP_FILE} is invalid: {exc}") from None
        loaded = {
            name: Agent.load(directory / "policies" / name, device=device) for name in policies
        }
        try:
            if meta.get("type") == "HomogeneousGroup" and len(loaded) == 1:
                ((name, agent),) = loaded.items()
                group: MacroAgent = HomogeneousGroup(agent, policy_name=name)
                group.frozen = set(frozen)
            else:
                group = MultiPolicyGroup(loaded, mapping, frozen=frozen)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{directory / GROUP_FILE} is invalid: {exc}") from None
        if not isinstance(group, cls):
            raise CheckpointError(
                f"{directory} holds a {type(group).__name__}, not a {cls.__name__}"
            )
        return group


def _policy_for(agent_name: str, prefixes: Sequence[str], mapping: Mapping[str, str]) -> str:
    base, _ = parse_agent_name(agent_name)
    for prefix in prefixes:
        if base.startswith(prefix):
            return mapping[prefix]
    raise PolicyMappingError(
        f"no policy for agent '{agent_name}': no key of policy_mapping {dict(mapping)} is a "
        f"prefix of '{base}' (add a key such as \"\" to catch every other agent)"
    )


def map_policy_rows(
    agent_names: Sequence[str], policy_mapping: Mapping[str, str]
) -> dict[str, list[int]]:
    """The rows of ``agent_names`` each policy of ``policy_mapping`` (prefix -> policy)
    acts for, by the longest-prefix rule; policies without agents are left out."""
    prefixes = sorted(policy_mapping, key=len, reverse=True)
    rows: dict[str, list[int]] = {}
    for row, name in enumerate(agent_names):
        rows.setdefault(_policy_for(name, prefixes, policy_mapping), []).append(row)
    return rows


def _check_obs_dict(obs_dict: object, where: str) -> None:
    """A group's dict API takes observations by agent name; say what to do with a batch."""
    if isinstance(obs_dict, Mapping) and all(
        isinstance(obs, Observation) for obs in obs_dict.values()
    ):
        return
    if isinstance(obs_dict, Observation) or isinstance(getattr(obs_dict, "obs", None), Observation):
        raise TypeError(
            f"{where} takes a dict of Observations by agent name, got a "
            f"{type(obs_dict).__name__}; for stacked rows use "
            "group.act_batch(batch.obs, group.policy_rows(env.agent_names))"
        )
    raise TypeError(
        f"{where} takes a dict of Observations by agent name (env.reset() gives one), got "
        f"{type(obs_dict).__name__}"
    )


def _is_all_rows(rows: np.ndarray, batch_size: int) -> bool:
    """True when ``rows`` is 0..batch_size-1 in order, so no gather copy is needed."""
    if len(rows) != batch_size:
        return False
    if batch_size <= 1:
        return batch_size == 0 or bool(rows[0] == 0)
    # Strictly increasing from 0 to batch_size - 1 over batch_size entries: every row once.
    return bool(rows[0] == 0 and rows[-1] == batch_size - 1 and (rows[1:] > rows[:-1]).all())


def _policy_state(
    agent: Agent, names: Sequence[str], state_dict: Mapping[str, State] | None
) -> State:
    """The batched state of ``agent``'s agents ``names`` from their states by name; an
    agent without one (say, one that just joined) starts from zeros. ``()`` without any."""
    if not state_dict:
        return ()
    initial = tuple(part[0] for part in agent.get_initial_state(1))
    return _stack_states([state_dict.get(name, initial) for name in names])


def _stack_states(states: Sequence[State]) -> State:
    """Per-agent states (tuples of tensors without a batch axis) as one batched state."""
    if not states or not states[0]:
        return ()
    return tuple(torch.stack(parts) for parts in zip(*states))


class HomogeneousGroup(MacroAgent):
    """One shared policy for every agent (full parameter sharing): mapping ``{"": name}``."""

    def __init__(self, agent: Agent, policy_name: str = "crowd") -> None:
        super().__init__({policy_name: agent}, {"": policy_name})
        self.policy_name = policy_name

    @property
    def agent(self) -> Agent:
        return self.policies[self.policy_name]


class MultiPolicyGroup(MacroAgent):
    """Several policies, e.g. ``MultiPolicyGroup({"pursuer": a, "evader": b},
    {"pursuer": "pursuer", "evader": "evader"})``; ``frozen`` policies act but do not learn."""
