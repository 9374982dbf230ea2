"""Tiny deterministic environments with known answers, for testing learning code.

Each probe isolates one thing a learner must get right (after Andy Jones, "Debugging RL,
without the agonizing pain"). All support any number of agents, step every agent as one
array operation, and vectorise like any other env.

| env | obs | reward | what a correct learner finds |
| --- | --- | --- | --- |
| ConstantRewardEnv | [1] | 1 every step | V = 1 (one-step episodes) |
| ObservedRewardEnv | random sign s | s | V(s) = s |
| ActionRewardEnv | [1] | 1 if action is 1 else 0 | always pick action 1 |
| ObsActionRewardEnv | random sign s | 1 if action matches s else 0 | action 1 for s > 0 |
| DelayedRewardEnv | one-hot time t | 1 at the last (third) step | V(t) = gamma ** (2 - t) |
| BusyEnv | [1] | as ActionRewardEnv | the same; each step costs ``step_cost`` s of CPU |
| MemoryEnv | sign s, then hidden | 1 at the end if action matches s | memory: 1 (no memory: 1/2) |

``BusyEnv`` ("busy") is for comparing vectorisation backends on an env with a real cost per
step: every step spends ``step_cost`` seconds of CPU time (default 1 ms) in a busy loop, as a
simulator would compute, rather than sleeping (which would free the core).

With ``continuous=True`` the action-dependent envs take a Box(-1, 1, (1,)) action and pay
``1 - (a - target) ** 2`` with target ``+0.5`` (or ``0.5 * s``).

``TwoTeamsEnv`` ("teams") has two teams with their own spaces, for several policies: team
``a`` sees a one-hot of c in {0, 1, 2} and is paid 1 for action ``c % 2`` (of 2), team ``b``
sees a one-hot of c in {0..4} and is paid 1 for action ``c % 4`` (of 4). A random team earns
1/2 and 1/4 per step; a correct learner earns 1 in both.

``TeamSumEnv`` ("team_sum") is for centralised critics: each of ``n`` agents sees its own
random sign s_i (``vector``), the observation's ``state`` field holds all of them, and every
agent is paid the team's mean sign in one-step episodes. V(state) = mean(s) exactly; a value
network on the agent's own sign cannot do better than s_i / n, a mean squared error of
(n - 1) / n**2 (0.25 for two agents).

``RolesEnv`` ("roles") is for networks per agent: each of ``n`` agents sees the same
constant [1] and its ``agent_id`` one-hot, and agent ``i`` is paid 1 for action ``i`` (of
``n``) in one-step episodes. A network shared by all agents earns 1 only by reading the
``agent_id`` feature; without it (``ids=False``) it earns at most 1/n on average; networks per
agent (``share_actor: false``) earn 1 from the id's choice of network alone.

``MaskedActionEnv`` ("masked") is for action masks: 4 actions paying 1, 0.75, 0.5 and
0.25, but action 0 is never legal and each of the others is legal with probability 1/2
(at least one is), shown in an ``action_mask`` field. The best legal action is the lowest
legal one (expected reward 4.25 / 7 ~ 0.607). An illegal action raises (``illegal="raise"``,
an env that enforces legality) or pays -1 (``"penalty"``); with ``masks=False`` the mask is
hidden, and the best a learner can do is action 1 every time, 0 on average with penalties.

``BitsEnv`` ("bits") has MultiBinary actions: each agent sees random bits and is paid the
fraction of them its action copies (random: 1/2, correct: 1).
"""

from __future__ import annotations

import time
from typing import ClassVar

import gymnasium as gym
import numpy as np

from coltra.buffers import AGENT_ID_FIELD, Action, Observation
from coltra.envs.base import MultiAgentEnv, StepBatch
from coltra.envs.spaces import ActionCodec, LayoutActions

__all__ = [
    "MASK_PROBE_ENVS",
    "PROBE_ENVS",
    "SPACE_PROBE_ENVS",
    "TEAM_PROBE_ENVS",
    "ActionRewardEnv",
    "BitsEnv",
    "BusyEnv",
    "ConstantRewardEnv",
    "DelayedRewardEnv",
    "MaskedActionEnv",
    "MemoryEnv",
    "ObsActionRewardEnv",
    "ObservedRewardEnv",
    "ProbeEnv",
    "RolesEnv",
    "TeamSumEnv",
    "TwoTeamsEnv",
    "all_probe_envs",
    "check_count",
]


def check_count(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a whole number >= 1 (not a bool), naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


class ProbeEnv(MultiAgentEnv):
    """Shared machinery: ``num_agents`` agents in lockstep, episodes of ``episode_length``
    steps that end by termination (or by truncation with ``truncate=True``)."""

    default_backend: ClassVar[str] = "inprocess"
    episode_length: int = 1
    obs_size: int = 1

    def __init__(
        self,
        num_agents: int = 1,
        *,
        episode_length: int | None = None,
        truncate: bool = False,
        continuous: bool = False,
    ) -> None:
        check_count("num_agents", num_agents)
        if episode_length is not None:
            check_count("episode_length", episode_length)
            self.episode_length = episode_length
        self.truncate = truncate
        self.continuous = continuous
        self.agent_names = [f"agent_{i}" for i in range(num_agents)]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_size,), np.float32)
        self.action_space: gym.Space = (
            gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2)
        )
        self._action_codec = ActionCodec(self.action_space)
        self._rng = np.random.default_rng()
        self._t = 0
        self._obs = np.zeros((num_agents, self.obs_size), dtype=np.float32)
        self._episode_reward = np.zeros(num_agents, dtype=np.float32)

    # Subclasses define what agents see and what they are paid.
    def _observe(self) -> np.ndarray:
        """Observation of every agent at time ``self._t``. ``[agents, obs_size]``"""
        return np.ones((self.num_agents, self.obs_size), dtype=np.float32)

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Reward of every agent for ``actions`` taken on ``obs``. ``[agents]``"""
        raise NotImplementedError

    def _action_values(self, actions: Action) -> np.ndarray:
        """Checked actions, one value per agent. ``[agents]``"""
        values = self._action_codec.check_batch(actions, self.num_agents)
        return values[:, 0].astype(np.float32) if self.continuous else values

    def _signs(self) -> np.ndarray:
        return self._rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=self.num_agents)

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        self._episode_reward[:] = 0.0
        self._obs = self._observe()
        return self._remember(StepBatch.first(Observation(vector=self._obs.copy())))

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_ready()
        reward = self._reward(self._obs, self._action_values(actions)).astype(np.float32)
        self._episode_reward += reward
        self._t += 1
        ended = self._t >= self.episode_length
        final = self._obs
        self._obs = final if ended else self._observe()
        rows = self.num_agents
        batch = StepBatch(
            obs=Observation(vector=self._obs.copy()),
            reward=reward,
            terminated=np.full(rows, ended and not self.truncate),
            truncated=np.full(rows, ended and self.truncate),
            active=np.full(rows, not ended),
        )
        if ended:
            batch.final_obs = Observation(vector=final.copy())
            batch.metrics = {
                "e_episode_reward": self._episode_reward.copy(),
                "e_episode_length": np.full(rows, self._t, dtype=np.float32),
            }
        return self._remember(batch)


class ConstantRewardEnv(ProbeEnv):
    """Reward 1 every step, observation [1]: the value must learn the constant."""

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.ones(self.num_agents, dtype=np.float32)


class ObservedRewardEnv(ProbeEnv):
    """Observation is a random sign s, reward is s: the value must read the observation."""

    def _observe(self) -> np.ndarray:
        return self._signs()[:, None]

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return obs[:, 0].copy()


def _match_reward(actions: np.ndarray, target_sign: np.ndarray, continuous: bool) -> np.ndarray:
    if continuous:
        return 1.0 - (actions - 0.5 * target_sign) ** 2
    return (actions == (target_sign > 0)).astype(np.float32)


class ActionRewardEnv(ProbeEnv):
    """Reward 1 for action 1, 0 for action 0: the policy must learn to prefer action 1."""

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return _match_reward(actions, np.ones(self.num_agents, np.float32), self.continuous)


class ObsActionRewardEnv(ProbeEnv):
    """Reward 1 when the action follows the observed sign (1 for +1, 0 for -1)."""

    def _observe(self) -> np.ndarray:
        return self._signs()[:, None]

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return _match_reward(actions, obs[:, 0], self.continuous)


class BusyEnv(ActionRewardEnv):
    """``ActionRewardEnv`` whose every step costs ``step_cost`` seconds of CPU time."""

    def __init__(
        self,
        num_agents: int = 1,
        *,
        step_cost: float = 0.001,
        episode_length: int | None = None,
        truncate: bool = False,
        continuous: bool = False,
    ) -> None:
        if (
            isinstance(step_cost, bool)
            or not isinstance(step_cost, int | float)
            or not 0 <= step_cost <= 60
        ):
            raise ValueError(f"step_cost must be a number of seconds in [0, 60], got {step_cost!r}")
        super().__init__(
            num_agents, episode_length=episode_length, truncate=truncate, continuous=continuous
        )
        self.step_cost = float(step_cost)

    def step_batch(self, actions: Action) -> StepBatch:
        # CPU time, not wall time: on a busy machine the step costs what a simulation's
        # would (a wall-clock spin would end on time however little CPU it got).
        deadline = time.thread_time() + self.step_cost
        while time.thread_time() < deadline:
            pass
        return super().step_batch(actions)


class DelayedRewardEnv(ProbeEnv):
    """Three steps (or ``episode_length`` L) with a one-hot clock; reward 1 arrives only at
    the last step, so the value of the first step is gamma ** (L - 1): discounting must be
    right."""

    episode_length = 3
    obs_size = 3

    def __init__(
        self,
        num_agents: int = 1,
        *,
        episode_length: int | None = None,
        truncate: bool = False,
        continuous: bool = False,
    ) -> None:
        # One clock position per step, so every step has its own observation.
        if isinstance(episode_length, int) and not isinstance(episode_length, bool):
            self.obs_size = max(episode_length, 1)
        super().__init__(
            num_agents, episode_length=episode_length, truncate=truncate, continuous=continuous
        )

    def _observe(self) -> np.ndarray:
        obs = np.zeros((self.num_agents, self.obs_size), dtype=np.float32)
        obs[:, min(self._t, self.obs_size - 1)] = 1.0
        return obs

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        paid = self._t == self.episode_length - 1
        return np.full(self.num_agents, 1.0 if paid else 0.0, dtype=np.float32)


class OneStepEnv(MultiAgentEnv):
    """One-step episodes: ``_observe`` draws a new observation of every agent, a step pays
    what ``_pay`` computes and ends every episode; the vector env then resets the copy."""

    default_backend: ClassVar[str] = "inprocess"
    _rng: np.random.Generator

    def _observe(self) -> Observation:
        raise NotImplementedError

    def _current_obs(self) -> Observation:
        raise NotImplementedError

    def _pay(self, actions: Action) -> np.ndarray:
        """The reward of every agent for ``actions``. ``[agents]``"""
        raise NotImplementedError

    def step_batch(self, actions: Action) -> StepBatch:
        self._check_ready()
        return self._end(self._pay(actions))

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        return self._remember(StepBatch.first(self._observe()))

    def _end(self, reward: np.ndarray) -> StepBatch:
        """The step that ends every agent's episode with ``reward`` (``[agents]``)."""
        rows = self.num_agents
        batch = StepBatch(
            obs=self._current_obs(),
            reward=reward.astype(np.float32),
            terminated=np.ones(rows, bool),
            truncated=np.zeros(rows, bool),
            active=np.zeros(rows, bool),
        )
        batch.final_obs = batch.obs
        batch.metrics = {
            "e_episode_reward": batch.reward.copy(),
            "e_episode_length": np.ones(rows, np.float32),
        }
        return self._remember(batch)


class MaskedActionEnv(OneStepEnv):
    """One-step episodes with a random action mask (see the module docstring)."""

    PAYOFF = np.array([1.0, 0.75, 0.5, 0.25], np.float32)
    PENALTY = -1.0

    def __init__(self, num_agents: int = 1, *, illegal: str = "raise", masks: bool = True) -> None:
        check_count("num_agents", num_agents)
        if illegal not in ("raise", "penalty"):
            raise ValueError(f"illegal must be 'raise' or 'penalty', got {illegal!r}")
        self.illegal, self.masks = illegal, masks
        self.agent_names = [f"agent_{i}" for i in range(num_agents)]
        vector = gym.spaces.Box(1.0, 1.0, (1,), np.float32)
        mask = gym.spaces.Box(0, 1, (len(self.PAYOFF),), np.int8)
        self.observation_space = (
            gym.spaces.Dict({"vector": vector, "action_mask": mask}) if masks else vector
        )
        self.action_space = gym.spaces.Discrete(len(self.PAYOFF))
        self._codec = ActionCodec(self.action_space)
        self._rng = np.random.default_rng()
        self.legal = np.zeros((num_agents, len(self.PAYOFF)), bool)  # [agents, actions]

    def _observe(self) -> Observation:
        legal = np.zeros_like(self.legal)
        while not legal.any(1).all():  # every agent has a legal action
            empty = ~legal.any(1)
            legal[empty, 1:] = self._rng.random((int(empty.sum()), len(self.PAYOFF) - 1)) < 0.5
        self.legal = legal
        return self._current_obs()

    def _current_obs(self) -> Observation:
        ones = np.ones((self.num_agents, 1), np.float32)
        if not self.masks:
            return Observation(vector=ones)
        return Observation(vector=ones, action_mask=self.legal.astype(np.int8))

    def _pay(self, actions: Action) -> np.ndarray:
        chosen = self._codec.check_batch(actions, self.num_agents)
        allowed = self.legal[np.arange(self.num_agents), chosen]
        if self.illegal == "raise" and not allowed.all():
            row = int(np.argmin(allowed))
            raise ValueError(
                f"agent '{self.agent_names[row]}' took action {int(chosen[row])}, which its "
                f"action mask {self.legal[row].astype(int).tolist()} forbids"
            )
        return np.where(allowed, self.PAYOFF[chosen], self.PENALTY)


class BitsEnv(OneStepEnv):
    """MultiBinary actions: each agent sees ``bits`` random bits (``vector``, 0 or 1) and is
    paid the fraction of them its MultiBinary(``bits``) action copies, in one-step episodes.
    Random actions earn 1/2; a correct learner earns 1."""

    def __init__(self, num_agents: int = 1, *, bits: int = 4) -> None:
        check_count("num_agents", num_agents)
        check_count("bits", bits)
        self.agent_names = [f"agent_{i}" for i in range(num_agents)]
        self.observation_space = gym.spaces.Box(0.0, 1.0, (bits,), np.float32)
        self.action_space = gym.spaces.MultiBinary(bits)
        self._codec = ActionCodec(self.action_space)
        self._rng = np.random.default_rng()
        self.bits = np.zeros((num_agents, bits), np.float32)

    def _observe(self) -> Observation:
        self.bits = self._rng.integers(0, 2, self.bits.shape).astype(np.float32)
        return self._current_obs()

    def _current_obs(self) -> Observation:
        return Observation(vector=self.bits.copy())

    def _pay(self, actions: Action) -> np.ndarray:
        chosen = self._codec.check_batch(actions, self.num_agents)
        return (chosen == self.bits).mean(1)


class MemoryEnv(ProbeEnv):
    """A random sign s is shown at the first step only, then hidden for ``delay`` steps;
    the last step pays as ``ObsActionRewardEnv`` does for s, every other step pays 0.
    Observation ``[cue, query]``: s at the first step (0 after), 1 at the last step. The
    last observation is the same for both signs, so only memory earns the optimal return 1;
    a feed-forward policy earns 1/2 (continuous: 3/4 at best, acting 0). ``episode_length``
    (at least 2), as for the other probes, is another way to say ``delay + 1``."""

    obs_size = 2

    def __init__(
        self,
        num_agents: int = 1,
        *,
        delay: int = 2,
        episode_length: int | None = None,
        truncate: bool = False,
        continuous: bool = False,
    ) -> None:
        if episode_length is not None:
            if (
                isinstance(episode_length, bool)
                or not isinstance(episode_length, int)
                or episode_length < 2
            ):
                raise ValueError(
                    "episode_length of the memory probe must be a whole number >= 2 (the cue, "
                    f"then at least one hidden step), got {episode_length!r}"
                )
            delay = episode_length - 1
        check_count("delay", delay)
        super().__init__(
            num_agents, episode_length=delay + 1, truncate=truncate, continuous=continuous
        )
        self.delay = delay
        self._cue = np.zeros(num_agents, dtype=np.float32)

    def _observe(self) -> np.ndarray:
        obs = np.zeros((self.num_agents, self.obs_size), dtype=np.float32)
        if self._t == 0:
            self._cue = self._signs()
            obs[:, 0] = self._cue
        obs[:, 1] = float(self._t == self.episode_length - 1)
        return obs

    def _reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        if self._t != self.episode_length - 1:
            return np.zeros(self.num_agents, dtype=np.float32)
        return _match_reward(actions, self._cue, self.continuous)


PROBE_ENVS: dict[str, type[ProbeEnv]] = {
    "constant": ConstantRewardEnv,
    "observed": ObservedRewardEnv,
    "action": ActionRewardEnv,
    "obs_action": ObsActionRewardEnv,
    "delayed": DelayedRewardEnv,
    "busy": BusyEnv,
    "memory": MemoryEnv,
}


class TwoTeamsEnv(MultiAgentEnv):
    """Two teams with different spaces and known best actions (see the module docstring):
    ``team_a`` agents ``a_0, a_1, ...`` (obs 3, 2 actions) and ``team_b`` agents ``b_0,
    ...`` (obs 5, 4 actions), episodes of ``episode_length`` steps, a new c every step.
    The batch view has the blocks ``a`` and ``b`` (``a/vector`` ``[rows, 3]``, ...)."""

    default_backend: ClassVar[str] = "inprocess"
    TEAMS = (("a", 3, 2), ("b", 5, 4))  # name, observation size, actions

    def __init__(self, team_a: int = 1, team_b: int = 1, *, episode_length: int = 1) -> None:
        for key, value in (
            ("team_a", team_a),
            ("team_b", team_b),
            ("episode_length", episode_length),
        ):
            check_count(key, value)
        self.episode_length = episode_length
        counts = (team_a, team_b)
        self.agent_names = [
            f"{name}_{i}" for (name, _, _), count in zip(self.TEAMS, counts) for i in range(count)
        ]
        obs_spaces, action_spaces = {}, {}
        for (name, size, actions), count in zip(self.TEAMS, counts):
            for i in range(count):
                obs_spaces[f"{name}_{i}"] = gym.spaces.Box(0.0, 1.0, (size,), np.float32)
                action_spaces[f"{name}_{i}"] = gym.spaces.Discrete(actions)
        self.set_agent_spaces(obs_spaces, action_spaces)
        self._actions = LayoutActions(self.layout)
        self._rng = np.random.default_rng()
        self._t = 0
        self._classes = np.zeros(self.num_agents, np.int64)  # [rows] c of each agent
        self._episode_reward = np.zeros(self.num_agents, np.float32)

    def _observe(self) -> Observation:
        """A new c for every agent, as one-hots in its team's field."""
        fields = {}
        for (name, size, _), block in zip(self.TEAMS, self.layout.blocks):
            self._classes[block.rows] = self._rng.integers(0, size, len(block.rows))
            vector = np.zeros((self.num_agents, size), np.float32)
            vector[block.rows, self._classes[block.rows]] = 1.0
            fields[f"{name}/vector"] = vector
        return Observation(**fields)

    def best_actions(self) -> np.ndarray:
        """The action each agent is paid for now. ``[rows]``"""
        best = np.zeros(self.num_agents, np.int64)
        for (_, _, actions), block in zip(self.TEAMS, self.layout.blocks):
            best[block.rows] = self._classes[block.rows] % actions
        return best

    def reset_batch(self, seed: int | None = None) -> StepBatch:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._t = 0
        self._episode_reward[:] = 0.0
        return self._remember(StepBatch.first(self._observe()))

    def step_batch(self, actions: Action) -> StepBatch:
        active = self._check_ready()
        checked = self._actions.check_batch(actions, self.num_agents, active)
        chosen = np.zeros(self.num_agents, np.int64)
        for (name, _, _), block in zip(self.TEAMS, self.layout.blocks):
            chosen[block.rows] = checked[f"{name}/discrete"][block.rows]
        reward = (chosen == self.best_actions()).astype(np.float32)
        self._episode_reward += reward
        self._t += 1
        ended = self._t >= self.episode_length
        rows = self.num_agents
        obs = self._observe()
        batch = StepBatch(
            obs=obs,
            reward=reward,
            terminated=np.full(rows, ended),
            truncated=np.zeros(rows, bool),
            active=np.full(rows, not ended),
        )
        if ended:
            batch.final_obs = obs
            batch.metrics = {
                "e_episode_reward": self._episode_reward.copy(),
                "e_episode_length": np.full(rows, self._t, dtype=np.float32),
            }
            self._episode_reward[:] = 0.0
        return self._remember(batch)


class TeamSumEnv(OneStepEnv):
    """One-step episodes paying every agent the mean of all agents' random signs; each sees
    its own sign, the ``state`` field all of them (see the module docstring)."""

    def __init__(self, num_agents: int = 2) -> None:
        check_count("num_agents", num_agents)
        self.agent_names = [f"agent_{i}" for i in range(num_agents)]
        self.observation_space = gym.spaces.Dict(
            {
                "vector": gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
                "state": gym.spaces.Box(-1.0, 1.0, (num_agents,), np.float32),
            }
        )
        self.action_space = gym.spaces.Discrete(2)  # ignored
        self._codec = ActionCodec(self.action_space)
        self._rng = np.random.default_rng()
        self._signs = np.zeros(num_agents, np.float32)

    def _observe(self) -> Observation:
        self._signs = self._rng.choice(np.array([-1.0, 1.0], np.float32), self.num_agents)
        return self._current_obs()

    def _current_obs(self) -> Observation:
        rows = self.num_agents
        return Observation(
            vector=self._signs[:, None].copy(), state=np.repeat(self._signs[None], rows, axis=0)
        )

    def _pay(self, actions: Action) -> np.ndarray:
        self._codec.check_batch(actions, self.num_agents)
        return np.full(self.num_agents, self._signs.mean(), np.float32)


class RolesEnv(OneStepEnv):
    """One-step episodes paying agent ``i`` 1 for action ``i``; all see [1] and (``ids``)
    their ``agent_id`` one-hot (see the module docstring)."""

    def __init__(self, num_agents: int = 2, *, ids: bool = True) -> None:
        check_count("num_agents", num_agents)
        self.ids = ids
        self.agent_names = [f"agent_{i}" for i in range(num_agents)]
        vector = gym.spaces.Box(1.0, 1.0, (1,), np.float32)
        agent_id = gym.spaces.Box(0.0, 1.0, (num_agents,), np.float32)
        self.observation_space = (
            gym.spaces.Dict({"vector": vector, AGENT_ID_FIELD: agent_id}) if ids else vector
        )
        self.action_space = gym.spaces.Discrete(num_agents)
        self._codec = ActionCodec(self.action_space)
        self._rng = np.random.default_rng()

    def _observe(self) -> Observation:
        return self._current_obs()

    def _current_obs(self) -> Observation:
        ones = np.ones((self.num_agents, 1), np.float32)
        if not self.ids:
            return Observation(vector=ones)
        return Observation(vector=ones, agent_id=np.eye(self.num_agents, dtype=np.float32))

    def _pay(self, actions: Action) -> np.ndarray:
        chosen = self._codec.check_batch(actions, self.num_agents)
        return (chosen == np.arange(self.num_agents)).astype(np.float32)


#: Probe envs of teams: several teams of their own spaces (for several policies), a team
#: paid as one (for centralised critics), and agents of one policy with different roles
#: (for networks per agent).
TEAM_PROBE_ENVS: dict[str, type[MultiAgentEnv]] = {
    "teams": TwoTeamsEnv,
    "team_sum": TeamSumEnv,
    "roles": RolesEnv,
}
#: The probe of action masks.
MASK_PROBE_ENVS: dict[str, type[MultiAgentEnv]] = {"masked": MaskedActionEnv}
#: Probes of other spaces: MultiBinary actions.
SPACE_PROBE_ENVS: dict[str, type[MultiAgentEnv]] = {"bits": BitsEnv}


def all_probe_envs() -> dict[str, type[MultiAgentEnv]]:
    """Every probe a config can name (``env.kind: probe``), from the tables above as they
    are now (tests add probes of their own to them)."""
    return {**PROBE_ENVS, **TEAM_PROBE_ENVS, **MASK_PROBE_ENVS, **SPACE_PROBE_ENVS}
