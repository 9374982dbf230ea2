"""On-policy data collection from a (vectorised) multi-agent env.

The hot loop works on the env's batch view: every step is one ``step_batch`` call and one
forward pass per policy over that policy's stacked rows; data goes into preallocated
arrays. No Python object is made per agent per step.

Episodes continue across calls: the collector remembers the env's last observation, so
the env is reset only on the first call and episodes longer than one rollout still end
and are counted.

Every step is checked for NaN and inf as it comes out of the env (:mod:`coltra.checks`):
an error naming the agent and the step, or with ``on_nonfinite="drop"`` the bad values are
zeroed and the entries they spoil are masked out of training right here, in the rollout.

``CrowdCollector.timing`` (a :class:`~coltra.timing.PhaseTimes`) says where the last call's
time went: ``env`` (stepping and resetting the env), ``forward`` (policy forward passes:
acting, and the values used to bootstrap) and ``collect_other`` (the collector's own
bookkeeping: storing the rollout, episode returns, the NaN checks).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from coltra.agents import Agent
from coltra.buffers import Action, MemoryRecord, Observation, to_numpy
from coltra.carried_states import CarriedStates
from coltra.checks import (
    NonFinite,
    NonFiniteError,
    NonFiniteMode,
    check_legal_actions,
    find_nonfinite,
    nonfinite_message,
    zero_nonfinite,
)
from coltra.envs.base import MultiAgentEnv, StepBatch
from coltra.envs.blocks import Block, block_view
from coltra.envs.spaces import ActionCodec
from coltra.envs.vector import SubprocVecEnv, VecEnv
from coltra.envs.vector.base import autoreset
from coltra.episodes import EpisodeTracker, FinishedEpisodes
from coltra.groups import MacroAgent
from coltra.models.base import State
from coltra.models.sde import ExplorationNoise
from coltra.overlap import PartSteps, can_overlap
from coltra.timing import PhaseTimes

__all__ = [
    "CrowdCollector",
    "PolicyRows",
    "check_agents_fit_env",
    "collect_crowd_data",
    "join_policy_actions",
    "plan_policies",
    "policy_views",
    "step_env",
]

Metrics = dict[str, np.ndarray]


@dataclass
class _PolicyStorage:
    """Preallocated time-major arrays of one policy's rollout. ``[steps, agents, ...]``"""

    obs: dict[str, np.ndarray]
    action: np.ndarray
    logprob: np.ndarray
    value: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    mask: np.ndarray
    bootstrap_value: np.ndarray
    # Recurrent policies: [steps, agents] reset flags, and each state part at every
    # ``state_every``-th step, [steps // state_every, agents, ...]; None / [] otherwise.
    starts: np.ndarray | None = None
    state: list[np.ndarray] = field(default_factory=list)
    state_every: int = 1

    @classmethod
    def allocate(
        cls,
        steps: int,
        obs: Observation,
        action: np.ndarray,
        state: State = (),
        state_every: int = 1,
    ) -> _PolicyStorage:
        agents = obs.batch_size

        def zeros(dtype: type = np.float32) -> np.ndarray:
            return np.zeros((steps, agents), dtype=dtype)

        return cls(
            obs={
                name: np.zeros((steps, *value.shape), dtype=value.dtype)
                for name, value in obs.numpy().items()
            },
            action=np.zeros((steps, *action.shape), dtype=action.dtype),
            logprob=zeros(),
            value=zeros(),
            reward=zeros(),
            terminated=zeros(bool),
            truncated=zeros(bool),
            mask=zeros(bool),
            bootstrap_value=zeros(),
            starts=zeros(bool) if state else None,
            state=[
                np.zeros((-(-steps // state_every), *part.shape), dtype=np.float32)
                for part in state
            ],
            state_every=state_every,
        )

    def record_state(self, t: int, state: State, starts: np.ndarray) -> None:
        """A recurrent policy's state before step ``t`` (kept every ``state_every`` steps)
        and which rows were reset just before it."""
        assert self.starts is not None
        self.starts[t] = starts
        if t % self.state_every == 0:
            for stored, part in zip(self.state, state):
                stored[t // self.state_every] = part.cpu().numpy()

    def record(self, field_name: str, last_value: np.ndarray, names: list[str]) -> MemoryRecord:
        """The rollout as ``[agents, steps, ...]`` arrays."""

        def agent_major(value: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.swapaxes(value, 0, 1))

        return MemoryRecord(
            obs=Observation(**{name: agent_major(value) for name, value in self.obs.items()}),
            action=Action(**{field_name: agent_major(self.action)}),
            logprob=agent_major(self.logprob),
            reward=agent_major(self.reward),
            value=agent_major(self.value),
            terminated=agent_major(self.terminated),
            truncated=agent_major(self.truncated),
            mask=agent_major(self.mask),
            bootstrap_value=agent_major(self.bootstrap_value),
            last_value=last_value.astype(np.float32),
            agent_names=names,
            episode_start=None if self.starts is None else agent_major(self.starts),
            initial_state=tuple(agent_major(part) for part in self.state),
            state_every=self.state_every,
        )


class CrowdCollector:
    """Collects rollouts of ``group`` in ``env``, keeping the episodes running between calls.

    After each :meth:`collect`: ``finished`` holds the episodes that ended in it (with the
    row each ended on), ``timing`` where its time went, and ``nonfinite_dropped`` how many
    entries ``on_nonfinite="drop"`` left out. ``episodes`` is the running tracker.
    """

    def __init__(
        self,
        group: MacroAgent,
        env: MultiAgentEnv,
        seed: int | None = None,
        on_nonfinite: NonFiniteMode = "raise",
        overlap: bool = True,
        state_every: int | Mapping[str, int] = 1,
    ) -> None:
        if on_nonfinite not in ("raise", "drop"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'drop', got {on_nonfinite!r}")
        self.group = group
        self.env = env
        #: Overlapped collection (:mod:`coltra.overlap`) where the env allows it (subprocess
        #: workers of two or more copies); False: lock-step everywhere.
        self.overlap = overlap
        self.seed = seed
        #: Recurrent policies: keep their state every this many steps (per policy, or one
        #: number for all), the start of each training sequence (``ppo.sequence_length``).
        self.state_every = state_every
        self._states: CarriedStates | None = None
        self.on_nonfinite: NonFiniteMode = on_nonfinite
        self.episodes = EpisodeTracker(len(getattr(env, "agent_names", ())))
        self.finished = FinishedEpisodes.none()
        self.timing = PhaseTimes()
        self.nonfinite_dropped = 0
        self._batch: StepBatch | None = None
        # [rows] bool: rows whose next entry acts on a bad observation (drop mode).
        self._spoiled_next: np.ndarray | None = None
        self._forward_s = 0.0  # policy forward time of the running collect() call

    def _start(self) -> StepBatch:
        env = self.env
        batch = env.reset_batch(seed=self.seed)
        rows = len(env.agent_names)
        if self.episodes.rows != rows:
            self.episodes = EpisodeTracker(rows)
        found = find_nonfinite(batch, None, env.agent_names, env.layout)
        if found:
            batch, _ = self._nonfinite(found, batch, None, None)
        check_legal_actions(batch.obs, batch.active, env.agent_names, env.layout, None)
        return batch

    def collect(
        self, num_steps: int, deterministic: bool = False, label: str = ""
    ) -> tuple[dict[str, MemoryRecord], Metrics, tuple[int, int]]:
        """Run ``num_steps`` steps; returns ``(records by policy, metrics, shape)``.
        ``label`` (e.g. "iteration 3") names the rollout in error messages."""
        if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer):
            raise TypeError(f"num_steps must be a whole number >= 1, got {num_steps!r}")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        env, group = self.env, self.group
        clock = time.perf_counter
        started = clock()
        batch = self._batch if self._batch is not None else self._start()
        env_s = clock() - started
        self._forward_s = 0.0
        self.nonfinite_dropped = 0
        names = list(env.agent_names)
        plans = plan_policies(group, env)
        layout = env.layout
        storages: dict[str, _PolicyStorage] = {}
        env_metrics: dict[str, list[np.ndarray]] = {}
        if self._states is None:
            self._states = CarriedStates(group, plans)
        states = self._states
        parts = None
        # Recurrent policies collect lock-step: a part's next forward pass would need its
        # states reset before the collector has seen the step.
        # gSDE policies (coltra.models.sde) hold exploration matrices per row for the
        # call, drawn anew every sde_every steps; they collect lock-step too (the matrices
        # are for all of a policy's rows at once).
        noises = start_exploration(group, plans)
        if self.overlap and can_overlap(env) and not states and not noises:
            assert isinstance(env, SubprocVecEnv)
            parts = PartSteps(group, env, plans, deterministic)

        try:
            for t in range(num_steps):
                for noise in noises:
                    noise.before_step()
                before_forward = clock()
                views = policy_views(batch.obs, plans)
                acted = batch.active
                if parts is None:
                    outputs = group.act_policies(
                        views, deterministic, get_value=True, states=states.states or None
                    )
                    before_env = clock()
                    actions = join_policy_actions(outputs, plans, len(names))
                    next_batch = step_env(env, actions)
                    self._forward_s += before_env - before_forward
                    env_s += clock() - before_env
                else:  # forward passes and env steps overlap: each timed by the stepper
                    outputs, next_batch = parts.step(batch, last=t == num_steps - 1)
                # Entries left out of training: rows that act on a bad observation now, or
                # whose step returned one (drop mode; None in the common case).
                spoiled, self._spoiled_next = self._spoiled_next, None
                found = find_nonfinite(next_batch, acted, names, layout)
                if found:
                    next_batch, now = self._nonfinite(found, next_batch, t + 1, label)
                    spoiled = now if spoiled is None else spoiled | now
                check_legal_actions(next_batch.obs, next_batch.active, names, layout, t + 1, label)
                self.episodes.step(next_batch.reward, acted, next_batch.done)
                for key, value in next_batch.metrics.items():
                    env_metrics.setdefault(key, []).append(value)
                any_truncated = next_batch.truncated.any()

                for policy, plan in plans.items():
                    action, _, extra = outputs[policy]
                    rows = plan.selector
                    if policy not in storages:
                        storages[policy] = _PolicyStorage.allocate(
                            num_steps,
                            views[policy],
                            action[plan.action_field],
                            states.states.get(policy, ()),
                            self._state_every(policy),
                        )
                    store = storages[policy]
                    if policy in states.states:
                        store.record_state(t, states.states[policy], states.starts[policy])
                    for name, value in views[policy].items():
                        store.obs[name][t] = to_numpy(value)
                    store.action[t] = action[plan.action_field]
                    store.logprob[t] = extra["logprob"]
                    store.value[t] = extra["value"]
                    store.reward[t] = next_batch.reward[rows]
                    store.terminated[t] = next_batch.terminated[rows]
                    store.truncated[t] = next_batch.truncated[rows]
                    store.mask[t] = acted[rows]
                    if any_truncated:
                        self._bootstrap_truncated(
                            policy, plan, store, t, next_batch, acted, outputs[policy][1]
                        )
                    if spoiled is not None:
                        self._drop(store, t, spoiled[rows])
                if states:
                    states.advance(outputs, next_batch.done, acted)
                batch = next_batch
        finally:
            stop_exploration(group, plans)

        self._batch = batch
        if parts is not None:
            self._forward_s += parts.forward_s
            env_s += parts.env_s
        last_views = policy_views(batch.obs, plans)
        records = {
            policy: storages[policy].record(
                plan.action_field,
                self._values(policy, last_views[policy], states.states.get(policy, ())),
                [names[row] for row in plan.rows],
            )
            for policy, plan in plans.items()
        }
        self.finished = self.episodes.drain()
        metrics: Metrics = {
            "episode_return": self.finished.returns.astype(np.float32),
            "episode_length": self.finished.lengths.astype(np.float32),
        }
        metrics.update({key: np.concatenate(values) for key, values in env_metrics.items()})
        self.timing = PhaseTimes()
        self.timing.add("env", env_s)
        self.timing.add("forward", self._forward_s)
        self.timing.add("collect_other", clock() - started - env_s - self._forward_s)
        main_policy = next(iter(records))
        return records, metrics, records[main_policy].shape

    def _nonfinite(
        self, found: list[NonFinite], batch: StepBatch, step: int | None, label: str | None
    ) -> tuple[StepBatch, np.ndarray]:
        """NaN/inf in a step: an error, or (drop mode) the batch zeroed and the rows whose
        entry this step spoils ``[rows]``. A bad observation also spoils the next entry,
        the one that acts on it."""
        if self.on_nonfinite == "raise":
            where = f"the rollout of {label}" if label else "the rollout"
            raise NonFiniteError(nonfinite_message(found[0], len(found), step, where))
        rows = len(batch.active)
        spoiled_now = np.zeros(rows, dtype=bool)
        spoiled_next = np.zeros(rows, dtype=bool)
        for item in found:
            if item.kind == "observation":
                spoiled_next[item.row] = True
            if step is not None:  # a reset's observation spoils no entry of its own
                spoiled_now[item.row] = True
        self._spoiled_next = spoiled_next
        return zero_nonfinite(batch), spoiled_now

    def _drop(self, store: _PolicyStorage, t: int, spoiled: np.ndarray) -> None:
        """Mask out entry ``t`` of the ``spoiled`` rows (``[policy rows]`` bool). The kept
        entry before a dropped one, unless its episode ended there, is bootstrapped from the
        value of the dropped entry's observation, which is finite: an entry acting on a bad
        observation is dropped together with the one before it."""
        dropped = spoiled & store.mask[t]
        if not dropped.any():
            return
        store.mask[t, dropped] = False
        self.nonfinite_dropped += int(dropped.sum())
        if t > 0:
            before = (
                dropped & store.mask[t - 1] & ~(store.terminated[t - 1] | store.truncated[t - 1])
            )
            store.bootstrap_value[t - 1, before] = store.value[t, before]

    def _bootstrap_truncated(
        self,
        policy: str,
        plan: PolicyRows,
        store: _PolicyStorage,
        t: int,
        step: StepBatch,
        acted: np.ndarray,
        state: State,
    ) -> None:
        """Time limit, not task end: store V(final obs) of ``policy``'s rows truncated at
        step ``t``, to bootstrap from (Pardo et al. 2018); a recurrent policy's from the
        state its step returned (``state``, ``[policy rows, ...]``)."""
        rows = plan.rows
        truncated_rows = np.flatnonzero(step.truncated[rows] & acted[rows])
        if len(truncated_rows):
            final_obs = step.final_obs if step.final_obs is not None else step.obs
            final = block_view(final_obs[rows[truncated_rows]], plan.block)
            final_state = tuple(part[truncated_rows] for part in state)
            store.bootstrap_value[t, truncated_rows] = self._values(policy, final, final_state)

    def _state_every(self, policy: str) -> int:
        every = self.state_every
        return int(every if isinstance(every, int) else every.get(policy, 1))

    def _values(self, policy: str, obs: Observation, state: State = ()) -> np.ndarray:
        started = time.perf_counter()
        with torch.inference_mode():
            values = self.group.policies[policy].value(obs, state).cpu().numpy()
        self._forward_s += time.perf_counter() - started
        return values


@dataclass(frozen=True)
class PolicyRows:
    """Where one policy's agents are in an env's batch view: their rows (as a slice when
    contiguous: numpy then reads views instead of gathering copies), their block, and the
    Action field the policy fills there."""

    rows: np.ndarray  # [policy rows] indices into agent_names
    selector: slice | np.ndarray
    all_rows: bool  # the policy has every row (one policy for the whole env)
    block: Block
    action_field: str  # what the agent fills: "discrete" or "continuous"

    @property
    def env_action_field(self) -> str:
        """The field in the batch view: ``<block>/discrete`` when the env has blocks."""
        return self.block.prefix + self.action_field


def plan_policies(group: MacroAgent, env: MultiAgentEnv) -> dict[str, PolicyRows]:
    """Each policy's rows in ``env``, checked before the first step: a policy serves agents
    of one block, and its model was built for that block's spaces."""
    names = env.agent_names
    layout = env.layout
    plans = {}
    for policy, rows in group.policy_rows(names).items():
        block = layout.block_of(rows, f"policy '{policy}'")
        field_name = ActionCodec(block.action_space).field
        _check_agent_fits(policy, group.policies[policy], block, field_name)
        plans[policy] = PolicyRows(
            rows, _selector(rows), len(rows) == len(names), block, field_name
        )
    return plans


def policy_views(obs: Observation, plans: Mapping[str, PolicyRows]) -> dict[str, Observation]:
    """Each policy's observations: its rows, its block's fields under their plain names."""
    return {
        policy: block_view(obs if plan.all_rows else obs[plan.selector], plan.block)
        for policy, plan in plans.items()
    }


def join_policy_actions(
    outputs: Mapping[str, tuple[Action, object, object]],
    plans: Mapping[str, PolicyRows],
    num_rows: int,
) -> Action:
    """Every policy's actions placed in its rows of one batch-view Action."""
    if len(outputs) == 1:
        ((policy, (action, _, _)),) = outputs.items()
        if plans[policy].all_rows and not plans[policy].block.prefix:
            return action
    joined: dict[str, np.ndarray] = {}
    for policy, output in outputs.items():
        plan = plans[policy]
        values = output[0][plan.action_field]
        target = joined.get(plan.env_action_field)
        if target is None:
            target = np.zeros((num_rows, *values.shape[1:]), dtype=values.dtype)
            joined[plan.env_action_field] = target
        target[plan.selector] = values
    return Action(**joined)


def step_env(env: MultiAgentEnv, actions: Action) -> StepBatch:
    """``env.step_batch``, resetting a plain (non-vectorised) env whose agents are all done,
    the way vectorised envs reset their copies: in the same step, keeping ``final_obs``."""
    batch = env.step_batch(actions)
    if not isinstance(env, VecEnv) and not batch.active.any():
        batch = autoreset(batch, env.reset_batch())
    return batch


def _selector(rows: np.ndarray) -> slice | np.ndarray:
    """``rows`` (sorted row indices) as a slice when they are contiguous, else as they are."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


def check_agents_fit_env(group: MacroAgent, env: MultiAgentEnv) -> None:
    """Refuse, before the first step, policies whose models do not fit the env's spaces."""
    plan_policies(group, env)


def _check_agent_fits(policy: str, agent: Agent, block: Block, field_name: str) -> None:
    where = f" (block {block.name!r})" if block.name else ""
    if agent.field and agent.field != field_name:
        raise TypeError(
            f"policy '{policy}' is a {type(agent).__name__} ({agent.field} actions) but the "
            f"env's action space {block.action_space}{where} takes {field_name} actions"
        )
    model = agent.model
    if model is None:
        return
    for kind, model_space, env_space in (
        ("observation", model.observation_space, block.observation_space),
        ("action", model.action_space, block.action_space),
    ):
        if model_space is not None and model_space != env_space:
            raise ValueError(
                f"policy '{policy}': its model was built for the {kind} space {model_space}, "
                f"the env has {env_space}{where}"
            )


_COLLECTORS: weakref.WeakKeyDictionary[MultiAgentEnv, CrowdCollector] = weakref.WeakKeyDictionary()


def start_exploration(group: MacroAgent, plans: Mapping[str, PolicyRows]) -> list[ExplorationNoise]:
    """Start state-dependent exploration for each policy of ``plans`` whose model has it:
    its noise over the policy's rows (empty for policies that sample their distribution)."""
    noises = []
    for policy, plan in plans.items():
        model = group.policies[policy].model
        noise = None if model is None else model.explore(len(plan.rows))
        if noise is not None:
            noises.append(noise)
    return noises


def stop_exploration(group: MacroAgent, plans: Mapping[str, PolicyRows]) -> None:
    """End what :func:`start_exploration` started: acting elsewhere samples plainly."""
    for policy in plans:
        model = group.policies[policy].model
        if model is not None:
            model.explore(None)


def collect_crowd_data(
    agents: MacroAgent,
    env: MultiAgentEnv,
    num_steps: int,
    deterministic: bool = False,
) -> tuple[dict[str, MemoryRecord], Metrics, tuple[int, int]]:
    """Collect ``num_steps`` steps of every agent in ``env`` with the group ``agents``.

    Returns ``(data, metrics, shape)``: ``data[policy]`` is that policy's
    ``MemoryRecord`` (``[agents, steps]`` arrays); ``metrics`` holds returns and lengths of
    the episodes that ended (``episode_return``, ``episode_length``) and the env's
    ``m_*``/``e_*`` metrics; ``shape`` is ``(num_agents, num_steps)`` of the first policy
    (with several policies, each record's own ``shape`` gives its agent count).

    The env is reset on the first call for this env only; later calls continue the
    running episodes.
    """
    collector = _COLLECTORS.get(env)
    if collector is None:
        collector = CrowdCollector(agents, env)
        _COLLECTORS[env] = collector
    if collector.group is not agents:  # another group: its own recurrent states
        collector.group = agents
        collector._states = None
    return collector.collect(num_steps, deterministic)
