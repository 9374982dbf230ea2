"""The multi-agent environment interface and its step contract.

Every environment in Coltra is multi-agent: a single-agent Gymnasium task is one agent, and
a vectorised environment is one bigger multi-agent environment whose agent names carry the
copy index (``pursuer_0&env=3``).

An environment offers two views of the same step:

* the **dict view** (``reset`` / ``step``): observations, rewards and dones keyed by agent
  name, as the user sees them;
* the **batch view** (``reset_batch`` / ``step_batch``): all agent rows stacked in the fixed
  order of ``agent_names``, as the collector's hot loop uses them. No Python object is made
  per agent.

A subclass implements one view; the base class derives the other. Built-in environments
implement the batch view natively.

Step contract (dict view): ``step(actions) -> (obs, reward, done, info)``.

* ``obs`` holds the agents that act next; an agent that left the episode is absent.
* ``reward`` and ``done`` hold the agents that acted in this step.
* ``info["truncated"][name]`` (time limit, not task end) and ``info["final_obs"][name]``
  (last observation of the ended episode) exist only for agents whose episode ended.
* Other ``info`` keys are numeric metrics: ``m_*`` per step, ``e_*`` at episode end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np

from coltra.buffers import Action, Observation
from coltra.envs.blocks import Block, BlockLayout, block_view
from coltra.envs.spaces import LayoutActions, ObservationCodec
from coltra.names import parse_agent_name, vec_agent_name

if TYPE_CHECKING:
    from coltra.envs.vector import VecEnv

__all__ = [
    "EnvCrashedError",
    "MultiAgentEnv",
    "StepBatch",
    "StepBuffers",
    "parse_agent_name",
    "vec_agent_name",
]

ObsDict = dict[str, Observation]
ActionDict = dict[str, Action]
StepResult = tuple[ObsDict, dict[str, float], dict[str, bool], dict[str, Any]]


class EnvCrashedError(RuntimeError):
    """An environment copy raised, died or hung. Names the copy and carries its traceback."""

    def __init__(
        self, message: str, env_index: int | None = None, phase: str | None = None
    ) -> None:
        super().__init__(message)
        self.env_index = env_index
        self.phase = phase  # "step", "reset", ... when known


@dataclass
class StepBatch:
    """One step (or reset) of every agent row, stacked in ``agent_names`` order.

    Rows are agents. ``reward``/``terminated``/``truncated`` describe the step the rows just
    took (all zero/False after a reset and for rows that did not act). ``active`` says which
    rows are present now and must act next. ``final_obs`` holds the last observation of the
    ended episode for rows that are done (other rows hold arbitrary values); it is None when
    no row ended.
    """

    obs: Observation  # [rows, ...]
    reward: np.ndarray  # [rows] float32
    terminated: np.ndarray  # [rows] bool
    truncated: np.ndarray  # [rows] bool
    active: np.ndarray  # [rows] bool
    final_obs: Observation | None = None  # [rows, ...]
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated

    @classmethod
    def first(cls, obs: Observation, active: np.ndarray | None = None) -> StepBatch:
        """The batch a reset returns: no reward, nothing done."""
        rows = obs.batch_size
        return cls(
            obs=obs,
            reward=np.zeros(rows, dtype=np.float32),
            terminated=np.zeros(rows, dtype=bool),
            truncated=np.zeros(rows, dtype=bool),
            active=np.ones(rows, dtype=bool) if active is None else active,
        )

    @classmethod
    def concat(cls, parts: Sequence[StepBatch]) -> StepBatch:
        """Join the rows of several batches (e.g. env copies), in order."""
        if len(parts) == 1:
            return parts[0]
        final_obs = None
        if any(part.final_obs is not None for part in parts):
            final_obs = Observation.cat(
                [part.obs if part.final_obs is None else part.final_obs for part in parts]
            )
        metrics: dict[str, list[np.ndarray]] = {}
        for part in parts:
            for key, value in part.metrics.items():
                metrics.setdefault(key, []).append(value)
        return cls(
            obs=Observation.cat([part.obs for part in parts]),
            reward=np.concatenate([part.reward for part in parts]),
            terminated=np.concatenate([part.terminated for part in parts]),
            truncated=np.concatenate([part.truncated for part in parts]),
            active=np.concatenate([part.active for part in parts]),
            final_obs=final_obs,
            metrics={key: np.concatenate(values) for key, values in metrics.items()},
        )


@dataclass
class StepBuffers:
    """The rows of one vectorised step, preallocated and filled copy by copy.

    This is the in-process fast path: a copy writes its results straight into its rows
    (``step_into``) instead of building a ``StepBatch`` of its own. A copy fills
    ``final_obs`` for its rows that ended in this step.
    """

    obs: dict[str, np.ndarray]  # [rows, ...] per field
    reward: np.ndarray  # [rows] float32
    terminated: np.ndarray  # [rows] bool
    truncated: np.ndarray  # [rows] bool
    active: np.ndarray  # [rows] bool
    final_obs: dict[str, np.ndarray] | None = None  # allocated when a row ends
    metrics: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @classmethod
    def like(cls, layout: dict[str, tuple[tuple[int, ...], np.dtype]], rows: int) -> StepBuffers:
        """Empty buffers for ``rows`` agents with the observation fields of ``layout``."""
        return cls(
            obs={name: np.empty((rows, *shape), dtype) for name, (shape, dtype) in layout.items()},
            reward=np.zeros(rows, dtype=np.float32),
            terminated=np.zeros(rows, dtype=bool),
            truncated=np.zeros(rows, dtype=bool),
            active=np.zeros(rows, dtype=bool),
        )

    def save_final(self, rows: slice, source: Observation | None = None) -> None:
        """Keep ``rows``' observations (or ``source``'s) as the last ones of their episode."""
        if self.final_obs is None:
            self.final_obs = {name: np.empty_like(value) for name, value in self.obs.items()}
        for name, value in self.final_obs.items():
            value[rows] = self.obs[name][rows] if source is None else source[name]

    def add_metrics(self, metrics: dict[str, np.ndarray]) -> None:
        for key, value in metrics.items():
            self.metrics.setdefault(key, []).append(value)

    def write(self, rows: slice, batch: StepBatch) -> None:
        """Copy one copy's ``StepBatch`` into its rows (the path for envs without a fast
        ``step_into``)."""
        for name, value in self.obs.items():
            value[rows] = batch.obs[name]
        self.reward[rows] = batch.reward
        self.terminated[rows] = batch.terminated
        self.truncated[rows] = batch.truncated
        self.active[rows] = batch.active
        if batch.done.any():
            self.save_final(rows, batch.final_obs if batch.final_obs is not None else batch.obs)
        self.add_metrics(batch.metrics)

    def write_reset(self, rows: slice, batch: StepBatch) -> None:
        """A copy's new episode: first observations and who is present; the ended step's
        rewards and flags stay."""
        for name, value in self.obs.items():
            value[rows] = batch.obs[name]
        self.active[rows] = batch.active

    def batch(self) -> StepBatch:
        return StepBatch(
            obs=Observation(**self.obs),
            reward=self.reward,
            terminated=self.terminated,
            truncated=self.truncated,
            active=self.active,
            final_obs=None if self.final_obs is None else Observation(**self.final_obs),
            metrics={key: np.concatenate(values) for key, values in self.metrics.items()},
        )


class MultiAgentEnv:
    """Base class of all Coltra environments. See the module docstring for the contract.

    Subclasses set ``agent_names`` (every agent that can ever appear, in a fixed order) and
    the spaces: ``observation_space`` and ``action_space`` when every agent has the same
    ones, or per agent with :meth:`set_agent_spaces` (PettingZoo's model); then the agents
    form blocks of equal spaces (:mod:`coltra.envs.blocks`), ``observation_space`` and
    ``action_space`` are None, and :meth:`agent_observation_space` gives an agent's own.
    They implement either ``reset``/``step`` (dict view) or ``reset_batch``/``step_batch``
    (batch view).
    """

    observation_space: gym.Space | None
    action_space: gym.Space | None
    agent_names: list[str]
    #: Backend ``get_venv`` picks when none is given: cheap envs stay in this process.
    default_backend: ClassVar[str] = "subprocess"

    _BATCH_METHODS = ("reset_batch", "step_batch")
    _DICT_METHODS = ("reset", "step")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        implemented = {
            name
            for name in (*cls._BATCH_METHODS, *cls._DICT_METHODS)
            if getattr(cls, name) is not getattr(MultiAgentEnv, name)
        }
        if implemented and not (
            set(cls._BATCH_METHODS) <= implemented or set(cls._DICT_METHODS) <= implemented
        ):
            raise TypeError(
                f"{cls.__name__} must implement reset() and step(), or reset_batch() and "
                f"step_batch(); it implements only {sorted(implemented)}"
            )

    # ------------------------------------------------------------------ spaces
    @property
    def layout(self) -> BlockLayout:
        """The blocks of this env's rows: one, of ``observation_space`` and ``action_space``,
        unless :meth:`set_agent_spaces` gave agents different ones."""
        layout: BlockLayout | None = self.__dict__.get("_layout")
        if layout is None or len(layout.block_of_row) != len(self.agent_names):
            if self.observation_space is None or self.action_space is None:
                raise TypeError(
                    f"{type(self).__name__} has no observation_space/action_space and no "
                    "per-agent spaces (set_agent_spaces)"
                )
            layout = BlockLayout.single(
                self.observation_space, self.action_space, len(self.agent_names)
            )
            self._layout = layout
        return layout

    def set_agent_spaces(
        self,
        observation_spaces: Mapping[str, gym.Space],
        action_spaces: Mapping[str, gym.Space],
    ) -> None:
        """Give each agent of ``agent_names`` its own spaces; agents with equal spaces form
        a block. With one block ``observation_space``/``action_space`` are those spaces,
        with several they are None."""
        names = self.agent_names
        missing = [
            name for name in names if name not in observation_spaces or name not in action_spaces
        ]
        if missing:
            raise ValueError(f"no observation or action space for agents {missing[:5]}")
        layout = BlockLayout.of_agents(
            names, [(observation_spaces[name], action_spaces[name]) for name in names]
        )
        self._set_layout_of_agents(layout)

    def _set_layout_of_agents(self, layout: BlockLayout) -> None:
        self._layout = layout
        single = layout.blocks[0] if layout.is_single else None
        self.observation_space = single.observation_space if single else None
        self.action_space = single.action_space if single else None

    def agent_block(self, agent_name: str) -> Block:
        """The block of an agent (of this env's ``agent_names``)."""
        rows = self.__dict__.get("_rows_by_name")
        if rows is None or len(rows) != len(self.agent_names):
            rows = self._rows_by_name = {name: i for i, name in enumerate(self.agent_names)}
        if agent_name not in rows:
            raise KeyError(f"no agent {agent_name!r} in {type(self).__name__}")
        layout = self.layout
        return layout.blocks[int(layout.block_of_row[rows[agent_name]])]

    def agent_observation_space(self, agent_name: str) -> gym.Space:
        return self.agent_block(agent_name).observation_space

    def agent_action_space(self, agent_name: str) -> gym.Space:
        return self.agent_block(agent_name).action_space

    # ------------------------------------------------------------------ batch view
    def reset_batch(self, seed: int | None = None) -> StepBatch:
        """Reset and return every row stacked; rows of absent agents are inactive zeros."""
        self._require_one_view()
        obs = self.reset(seed=seed)
        self._learn_agent_names(obs)
        return self._batch_from_dicts(obs, {}, {}, {})

    def step_batch(self, actions: Action) -> StepBatch:
        """Step with actions for every row (``[rows, ...]``; inactive rows are ignored)."""
        self._require_one_view()
        active = self._check_ready()
        layout = self.layout
        checked = LayoutActions(layout).check_batch(actions, len(self.agent_names), active)
        action_dict = {
            name: block_view(checked[row], layout.blocks[int(layout.block_of_row[row])])
            for row, name in enumerate(self.agent_names)
            if active[row]
        }
        obs, reward, done, info = self.step(action_dict)
        return self._batch_from_dicts(obs, reward, done, info)

    def step_into(self, values: np.ndarray, out: StepBuffers, rows: slice) -> None:
        """Step with checked action values for this env's rows (``[rows, ...]``) and write
        the results into ``out[rows]``: the in-process vectorisation fast path. Override it
        to skip building a StepBatch; the default goes through ``step_batch``."""
        codec = LayoutActions(self.layout).single
        if codec is None:
            raise TypeError(f"{type(self).__name__} has several blocks: step it with step_batch")
        out.write(rows, self.step_batch(Action(**{codec.field: values})))

    def reset_into(self, out: StepBuffers, rows: slice, seed: int | None = None) -> None:
        """Reset and write the first observations into ``out[rows]`` (see ``step_into``)."""
        out.write_reset(rows, self.reset_batch(seed=seed))

    # ------------------------------------------------------------------ dict view
    def reset(self, seed: int | None = None) -> ObsDict:
        """Reset every agent; returns the first observation of each agent present."""
        self._require_one_view()
        batch = self.reset_batch(seed=seed)
        self._active_rows = batch.active
        return self._obs_dict(batch.obs, batch.active)

    def step(self, actions: ActionDict) -> StepResult:
        """Act for every present agent; see the module docstring for what comes back."""
        self._require_one_view()
        acted = self._check_ready()
        action_batch = LayoutActions(self.layout).from_dict(actions, self.agent_names, acted)
        batch = self.step_batch(action_batch)
        self._active_rows = batch.active
        return self.dict_view(batch, acted)

    def dict_view(self, batch: StepBatch, acted: np.ndarray) -> StepResult:
        """Turn a stepped batch into the dict view; ``acted`` marks the rows that acted."""
        names = self.agent_names
        obs = self._obs_dict(batch.obs, batch.active)
        acted_rows = np.flatnonzero(acted)
        reward = {names[row]: float(batch.reward[row]) for row in acted_rows}
        done_rows = acted_rows[batch.done[acted_rows]]
        done = {names[row]: bool(batch.done[row]) for row in acted_rows}
        info: dict[str, Any] = dict(batch.metrics)
        if len(done_rows):
            final_obs = batch.final_obs if batch.final_obs is not None else batch.obs
            info["truncated"] = {names[row]: bool(batch.truncated[row]) for row in done_rows}
            info["final_obs"] = self._obs_dict(final_obs, np.isin(np.arange(len(names)), done_rows))
        return obs, reward, done, info

    def _obs_dict(self, obs: Observation, active: np.ndarray) -> ObsDict:
        """Each present agent's observation, under its block's plain field names."""
        layout = self.layout
        if layout.is_single:
            return {self.agent_names[row]: obs[int(row)] for row in np.flatnonzero(active)}
        return {
            self.agent_names[row]: block_view(
                obs[int(row)], layout.blocks[int(layout.block_of_row[row])]
            )
            for row in np.flatnonzero(active)
        }

    # ------------------------------------------------------------------ helpers
    def _last_active(self) -> np.ndarray | None:
        return getattr(self, "_active_rows", None)

    def _check_ready(self) -> np.ndarray:
        """The rows that must act now; an error if there is nobody to step."""
        active = self._last_active()
        if active is None:
            raise RuntimeError(f"{type(self).__name__}: step() called before reset()")
        if not active.any():
            raise RuntimeError(
                f"every agent of {type(self).__name__} is done; call reset() before step()"
            )
        return active

    def _remember(self, batch: StepBatch) -> StepBatch:
        """Keep which rows act next (for checks and the dict view) and pass the batch on."""
        self._active_rows = batch.active
        return batch

    def _require_one_view(self) -> None:
        cls = type(self)
        if all(
            getattr(cls, name) is getattr(MultiAgentEnv, name)
            for name in (*self._BATCH_METHODS, *self._DICT_METHODS)
        ):
            raise NotImplementedError(
                f"{cls.__name__} implements neither reset()/step() nor reset_batch()/step_batch()"
            )

    def _learn_agent_names(self, obs: ObsDict) -> None:
        if not hasattr(self, "agent_names"):
            self.agent_names = list(obs)

    def _batch_from_dicts(
        self,
        obs: ObsDict,
        reward: dict[str, float],
        done: dict[str, bool],
        info: dict[str, Any],
    ) -> StepBatch:
        """Stack a dict-view step into rows (the adapter for dict-only envs).

        Rows of absent agents repeat their last observation and are inactive; an agent that
        is done is inactive even when the env still returned an observation for it.
        """
        names = self.agent_names
        unknown = set(obs) - set(names)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} returned observations for agents {sorted(unknown)} "
                f"that are not in agent_names {names}"
            )
        previous: list[Observation] | None = getattr(self, "_last_obs", None)
        if not obs and previous is None:
            raise ValueError(f"{type(self).__name__} returned no observation at all")
        # Each row: the agent's new observation, else its last one, else zeros shaped like
        # another agent's of its block.
        found: list[Observation | None] = [
            obs.get(name, previous[row] if previous is not None else None)
            for row, name in enumerate(names)
        ]
        rows = self._fill_missing(found)
        self._last_obs = rows
        stacked = self._stack_rows(rows)
        truncated_info = info.get("truncated", {})
        final_info = info.get("final_obs", {})
        truncated = np.array([bool(truncated_info.get(name, False)) for name in names])
        terminated = np.array([bool(done.get(name, False)) for name in names]) & ~truncated
        final_obs = None
        if final_info or (terminated | truncated).any():
            # A done agent's last observation: the env's info["final_obs"] if it gave one,
            # else the observation it returned with the done, else the last one it gave.
            final_obs = self._stack_rows(
                [final_info.get(name, rows[row]) for row, name in enumerate(names)]
            )
        metrics = {
            key: np.atleast_1d(np.asarray(value))
            for key, value in info.items()
            if key.startswith(("m_", "e_"))
        }
        # An agent that is done does not act next, even if the env still lists its obs.
        active = np.array([name in obs for name in names]) & ~(terminated | truncated)
        self._active_rows = active
        return StepBatch(
            obs=stacked,
            reward=np.array([reward.get(name, 0.0) for name in names], dtype=np.float32),
            terminated=terminated,
            truncated=truncated,
            active=active,
            final_obs=final_obs,
            metrics=metrics,
        )

    def _fill_missing(self, rows: list[Observation | None]) -> list[Observation]:
        """Rows without any observation yet as zeros shaped like another of their block (or,
        when none of the block is present, like its observation space's fields)."""
        layout = self.layout
        filled: list[Observation] = []
        for row, value in enumerate(rows):
            if value is None:
                block = layout.blocks[int(layout.block_of_row[row])]
                template = next((rows[r] for r in block.rows if rows[r] is not None), None)
                if template is None:
                    fields = ObservationCodec(block.observation_space).fields
                    value = Observation(
                        **{name: np.zeros(shape, dtype) for name, (shape, dtype) in fields.items()}
                    )
                else:
                    value = template.map(np.zeros_like)
            filled.append(value)
        return filled

    def _stack_rows(self, rows: Sequence[Observation]) -> Observation:
        """Per-agent observations as the batch view: stacked, and for several blocks each
        block's fields under ``<block>/`` with zeros in the other blocks' rows."""
        layout = self.layout
        if layout.is_single:
            return Observation.stack(list(rows))
        fields: dict[str, np.ndarray] = {}
        for block in layout.blocks:
            stacked = Observation.stack([rows[row] for row in block.rows])
            for name, value in stacked.numpy().items():
                full = np.zeros((len(rows), *value.shape[1:]), dtype=value.dtype)
                full[block.rows] = value
                fields[block.prefix + name] = full
        return Observation(**fields)

    # ------------------------------------------------------------------ lifecycle
    def render(self) -> Any:
        """Render the environment (for a vectorised env: copy 0). None if not supported."""
        return None

    def close(self) -> None:
        """Release resources (windows, worker processes)."""

    def __enter__(self) -> MultiAgentEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def num_agents(self) -> int:
        return len(self.agent_names)

    # ------------------------------------------------------------------ construction
    @classmethod
    def get_env_creator(cls, **kwargs: Any) -> Callable[[], MultiAgentEnv]:
        """A picklable zero-argument function that builds this env with ``kwargs``."""
        return functools.partial(cls, **kwargs)

    @classmethod
    def get_venv(
        cls,
        workers: int = 8,
        envs_per_worker: int = 1,
        *,
        backend: str | None = None,
        seed: int | None = None,
        start_method: str | None = None,
        step_timeout: float | None = None,
        ray_address: str | None = None,
        ray_num_cpus: float = 1.0,
        shared_memory: bool = False,
        **kwargs: Any,
    ) -> VecEnv:
        """``workers * envs_per_worker`` copies of this env merged into one env.

        ``backend`` is ``"inprocess"`` (every copy in this process), ``"subprocess"``
        (``workers`` processes, each stepping ``envs_per_worker`` copies) or ``"ray"``
        (``workers`` Ray actors, on the cluster at ``ray_address`` or a local session,
        each reserving ``ray_num_cpus``); the default is the class's ``default_backend``.
        Copy ``i`` is seeded ``seed + i`` at the first reset. ``start_method`` (default:
        fork on Linux, spawn elsewhere) applies to the subprocess backend, ``step_timeout``
        (seconds a worker may take to answer; None waits forever) to both remote ones, and
        ``shared_memory`` (step results through shared memory instead of pipes) to the
        subprocess backend. ``kwargs`` go to the env's constructor.
        """
        from coltra.envs.vector import make_vec_env

        return make_vec_env(
            cls.get_env_creator(**kwargs),
            workers=workers,
            envs_per_worker=envs_per_worker,
            backend=backend or cls.default_backend,
            seed=seed,
            start_method=start_method,
            step_timeout=step_timeout,
            ray_address=ray_address,
            ray_num_cpus=ray_num_cpus,
            shared_memory=shared_memory,
        )
