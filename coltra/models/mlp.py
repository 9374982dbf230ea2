"""MLPModel: a policy network and a value network, each a small MLP.

Sizes come from the config or from the spaces; when both are given they must agree.
Observation fields are flattened and concatenated in their order (``image`` may go
through a small CNN instead, shared by both networks).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Distribution

from coltra.buffers import ACTION_MASK_FIELD, AGENT_ID_FIELD, STATE_FIELD, TEAM_FIELD, Observation
from coltra.configs import MLPConfig
from coltra.envs.spaces import ActionCodec, ObservationCodec, without_parts
from coltra.models.activations import ACTIVATIONS
from coltra.models.base import BaseModel, State
from coltra.models.distributions import (
    Categorical,
    DiagNormal,
    JointDistribution,
    MultiBernoulli,
    MultiCategorical,
    ScaledBeta,
)
from coltra.models.encoders import FieldEncoders, init_layer
from coltra.models.fused import TwinMLP
from coltra.models.normalization import RunningMeanStd
from coltra.models.numpy_acting import NUMPY_ACTIVATIONS, NUMPY_MAX_ROWS, NumpyActor
from coltra.models.per_agent import AgentMLPs
from coltra.models.recurrent import RecurrentCore
from coltra.models.sde import ExplorationNoise, sde_distribution

__all__ = ["MASKED_LOGIT", "MLPModel", "mlp_layers"]

#: The logit of an illegal action: exp(-1e8) is 0 in float32, and unlike -inf it keeps
#: log-probabilities, entropies and their gradients finite (sb3-contrib uses the same).
MASKED_LOGIT = -1e8


L = TypeVar("L", nn.Linear, nn.Conv2d)


def _init_linear(layer: L, initializer: str, gain: float) -> L:
    """``layer`` initialised in place (:func:`~coltra.models.encoders.init_layer`)."""
    init_layer(layer, initializer, gain)
    return layer


def _inverse_softplus(y: float) -> float:
    """The x with softplus(x) == y, stable for large y (no overflow of expm1)."""
    return y + math.log(-math.expm1(-y))


def mlp_layers(
    in_size: int, hidden_sizes: list[int], out_size: int, initializer: str, out_gain: float
) -> list[nn.Linear]:
    """The linear layers of one MLP: hidden layers (gain sqrt(2)), then a head initialised
    with ``out_gain``."""
    sizes = [in_size, *hidden_sizes]
    layers = [
        _init_linear(nn.Linear(size_in, size_out), initializer, math.sqrt(2))
        for size_in, size_out in itertools.pairwise(sizes)
    ]
    layers.append(_init_linear(nn.Linear(sizes[-1], out_size), initializer, out_gain))
    return layers


@dataclass(frozen=True)
class JointPart:
    """One part of a Dict or Tuple action: its slots in the joint action, the policy head
    outputs it takes, and what kind of distribution it has (see ``JointDistribution``)."""

    slots: slice
    outputs: int
    kind: str  # "one" (Discrete), "ints" (MultiDiscrete, MultiBinary), "floats" (Box)
    nvec: list[int] | None  # MultiDiscrete


def _joint_parts(space: gym.Space) -> list[JointPart]:
    parts = []
    for _, codec, slots in ActionCodec(space).parts:
        sub = codec.space
        if isinstance(sub, gym.spaces.Discrete):
            parts.append(JointPart(slots, int(sub.n), "one", None))
        elif isinstance(sub, gym.spaces.MultiDiscrete):
            if sub.nvec.ndim != 1:
                raise TypeError(f"MultiDiscrete parts need a 1-D nvec, got {sub} in {space}")
            parts.append(JointPart(slots, int(sub.nvec.sum()), "ints", sub.nvec.tolist()))
        elif isinstance(sub, gym.spaces.MultiBinary):
            parts.append(JointPart(slots, slots.stop - slots.start, "ints", None))
        else:
            parts.append(JointPart(slots, slots.stop - slots.start, "floats", None))
    return parts


def _encoder_choices(
    config: MLPConfig, actor_space: gym.Space | None, observation_space: gym.Space | None
) -> dict[str, str]:
    """The fields that are not flattened as they are, and their encoders (``encoders``,
    with ``image_encoder: cnn`` for the ``image`` field), checked against the fields the
    policy reads; empty when every field is flattened."""
    choices: dict[str, str] = dict(config.encoders)
    if config.image_encoder == "cnn":
        choices.setdefault("image", "cnn")
    choices = {name: kind for name, kind in choices.items() if kind != "flatten"}
    if not choices:
        return {}
    fields = ObservationCodec(actor_space).fields if actor_space is not None else {}
    if config.image_encoder == "cnn" and "image" not in fields:
        raise ValueError(
            "image_encoder='cnn' needs an image observation space (a 3-D Box, or a "
            f"Dict with an 'image' part), got {observation_space}"
        )
    unknown = sorted(set(choices) - set(fields))
    if unknown:
        raise ValueError(
            f"encoders names field(s) {unknown} the policy does not read; its fields are "
            f"{list(fields)} (observation space {observation_space})"
        )
    return choices


#: The observation field each centralised critic reads; no policy ever reads them.
CRITIC_FIELDS = {"state": STATE_FIELD, "team": TEAM_FIELD}


def _critic_spaces(
    critic: str, observation_space: gym.Space | None
) -> tuple[gym.Space | None, gym.Space | None]:
    """The spaces of the policy's input and of the value network's own input: the fields
    other than ``state`` and ``team``, and that of the critic (``state`` or ``team``; None
    for a ``local`` critic, whose value network reads the policy's input)."""
    parts = observation_space.spaces if isinstance(observation_space, gym.spaces.Dict) else {}
    rest = {key: space for key, space in parts.items() if key not in CRITIC_FIELDS.values()}
    if critic == "local":
        if len(rest) < len(parts) and rest:
            return gym.spaces.Dict(rest), None
        return observation_space, None
    field = CRITIC_FIELDS[critic]
    adds = "env.global_state" if critic == "state" else "env.team_observations"
    if observation_space is None:
        raise ValueError(
            f"critic='{critic}' needs observation_space= (a Dict with a '{field}' part) to size "
            "the value network"
        )
    if field not in parts:
        raise ValueError(
            f"critic='{critic}' needs an observation with a '{field}' field, got the "
            f"observation space {observation_space} ({adds}: true adds it to a PettingZoo "
            "env's observations)"
        )
    if not rest:
        raise ValueError(
            f"critic='{critic}': the observation has only the critics' fields "
            f"{sorted(parts)}, which the policy must not see; it needs fields of its own"
        )
    return gym.spaces.Dict(rest), parts[field]


def _field(obs: Observation, name: str, why: str, device: torch.device) -> torch.Tensor:
    """Field ``name`` of ``obs`` as a tensor, or an error saying why the model needs it."""
    if name not in obs:
        raise ValueError(f"this model needs a '{name}' observation field ({why}), got {obs!r}")
    return torch.as_tensor(obs[name], device=device)


def _without_mask(space: gym.Space | None) -> gym.Space | None:
    """``space`` without its ``action_mask`` part (which masks logits, not a feature)."""
    rest = without_parts(space, [ACTION_MASK_FIELD])
    if isinstance(rest, gym.spaces.Dict) and not rest.spaces:
        raise ValueError(
            f"the observation has only an '{ACTION_MASK_FIELD}' field; the policy needs fields "
            "to see (or set action_mask_input: true to feed it the mask)"
        )
    return rest


def _field_names(space: gym.Space | None) -> list[str] | None:
    """The Observation fields of a Dict or Tuple space, in order (nested parts by their
    dotted path, as :class:`~coltra.envs.spaces.ObservationCodec` names them); None for
    any other space (one field)."""
    if isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
        return list(ObservationCodec(space).fields)
    return None


def _mask_space(space: gym.Space | None) -> gym.Space | None:
    if isinstance(space, gym.spaces.Dict):
        return space.spaces.get(ACTION_MASK_FIELD)
    return None


def _agent_copies(observation_space: gym.Space | None, config: MLPConfig) -> int:
    """How many copies a network that is not shared needs: one per entry of the
    ``agent_id`` field; 0 when both networks are shared."""
    if config.share_actor and config.share_critic:
        return 0
    unshared = " and ".join(
        f"{key}=false" for key in ("share_actor", "share_critic") if not getattr(config, key)
    )
    parts = observation_space.spaces if isinstance(observation_space, gym.spaces.Dict) else {}
    if AGENT_ID_FIELD not in parts:
        raise ValueError(
            f"{unshared} gives each agent its own network, picked by an '{AGENT_ID_FIELD}' "
            f"observation field, but the observation space is {observation_space} "
            "(env.agent_ids: true adds the field to a PettingZoo env's observations)"
        )
    if config.shared_backbone:
        raise ValueError(
            f"shared_backbone puts one trunk under both heads, but {unshared} gives each agent "
            "its own network: set one of them off"
        )
    return int(gym.spaces.flatdim(parts[AGENT_ID_FIELD]))


def _resolve_config(
    config: MLPConfig, observation_space: gym.Space | None, action_space: gym.Space | None
) -> MLPConfig:
    """Fill sizes from the spaces and refuse contradictions between config and spaces."""
    updates: dict[str, Any] = {}
    if observation_space is not None:
        features = int(gym.spaces.flatdim(observation_space))
        if config.input_size and config.input_size != features:
            raise ValueError(
                f"model config input_size={config.input_size} contradicts the observation "
                f"space {observation_space}, which has {features} features"
            )
        updates["input_size"] = features
    elif not config.input_size:
        raise ValueError(
            "MLPModel needs the observation size: set input_size in the config or pass "
            "observation_space="
        )
    if action_space is not None:
        if isinstance(action_space, gym.spaces.Discrete):
            discrete, num_actions = True, int(action_space.n)
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            if action_space.nvec.ndim != 1:
                raise TypeError(
                    f"MLPModel supports MultiDiscrete action spaces with a 1-D nvec, got "
                    f"{action_space} (nvec shape {action_space.nvec.shape})"
                )
            discrete, num_actions = True, int(action_space.nvec.sum())
        elif isinstance(action_space, gym.spaces.Dict | gym.spaces.Tuple):
            if config.continuous_mode != "logstd":
                raise ValueError(
                    f"continuous_mode='{config.continuous_mode}' is for Box actions; the Box "
                    f"parts of a Dict or Tuple action ({action_space}) use 'logstd'"
                )
            parts = _joint_parts(action_space)
            discrete, num_actions = False, sum(part.outputs for part in parts)
        elif isinstance(action_space, gym.spaces.MultiBinary):
            if len(action_space.shape) != 1:
                raise TypeError(
                    f"MLPModel supports 1-D MultiBinary action spaces, got {action_space} "
                    f"(shape {action_space.shape})"
                )
            discrete, num_actions = True, int(action_space.shape[0])
        elif isinstance(action_space, gym.spaces.Box):
            discrete, num_actions = False, int(np.prod(action_space.shape))
        else:
            raise TypeError(
                f"MLPModel supports Discrete, MultiDiscrete, MultiBinary and Box actions, got "
                f"{action_space}"
            )
        if config.discrete is not None and config.discrete != discrete:
            raise ValueError(
                f"model config discrete={config.discrete} contradicts the action space "
                f"{action_space}, which needs discrete={discrete}"
            )
        if config.num_actions and config.num_actions != num_actions:
            raise ValueError(
                f"model config num_actions={config.num_actions} contradicts the action space "
                f"{action_space}, which needs {num_actions} outputs"
            )
        updates["discrete"], updates["num_actions"] = discrete, num_actions
    else:
        if config.discrete is None or not config.num_actions:
            raise ValueError(
                "MLPModel needs the action layout: set num_actions and discrete in the "
                "config or pass action_space="
            )
    return config.update(updates)


#: The methods of MLPModel's forward pass: replaced on an instance or on the class (a
#: test's or a user's patch), acting goes back through ``forward``, which calls them.
_NUMPY_BYPASSED_METHODS = frozenset(
    {
        "__call__", "_call_impl", "forward", "agent_index", "encode", "raw_features",
        "_field_values", "_field_names", "_combine", "encode_state", "raw_state",
        "encode_value_obs", "heads", "_policy_head", "_denormalized", "mask_logits",
        "distribution",
    }
)  # fmt: skip
#: Submodules that make a model other than the plain one (any of them set: the torch path).
_NUMPY_ABSENT_MODULES = (
    "trunk", "policy_hidden", "value_hidden", "policy_encoder", "value_encoder",
    "obs_normalizer", "state_normalizer", "value_norm", "policy_agents", "value_agents",
)  # fmt: skip


class MLPModel(BaseModel):
    """A policy network and a value network over the observation's features::

        policy: features -> hidden_sizes (activation) -> policy_head -> action distribution
        value:  features -> hidden_sizes (activation) -> value_head  -> V(s), one number

    ``MLPModel({"input_size": 4, "num_actions": 2, "discrete": True}, action_space=space)``
    or ``MLPModel({}, observation_space=..., action_space=...)``.

    By default the two networks share no weights (CleanRL's PPO). Their hidden layers live in
    ``hidden``, a :class:`~coltra.models.fused.TwinMLP` that computes both networks' layers
    together (a speed path; ``hidden.layer(k, POLICY)`` is policy layer ``k``). With
    ``shared_backbone`` one stack of hidden layers (``trunk``) feeds both heads. Layers are
    initialised as two separate MLPs would be: orthogonal, gain sqrt(2), heads with
    ``policy_head_gain`` and ``value_head_gain`` (CleanRL).

    With ``critic: state`` (MAPPO's centralised critic, Yu et al. 2022) the observation has a
    ``state`` field (``critic: team``: a ``team`` field, the team's observations): the value
    network reads only that, the policy every other field, so acting stays decentralised.
    The two networks then have different inputs and run as two plain stacks
    (``policy_hidden``, ``value_hidden``). A ``local`` critic ignores ``state`` and ``team``
    fields too, so that the critics differ only in what the value network sees.

    With ``share_actor: false`` (``share_critic: false``) each agent has its own policy
    (value) network, ``policy_agents`` (``value_agents``, an
    :class:`~coltra.models.per_agent.AgentMLPs`), picked per row by the ``agent_id`` field,
    which is also a feature like any other; the shared side is then a plain stack too.

    ``obs_norm`` normalises the input features (and the state) by running statistics
    (``obs_normalizer``, ``state_normalizer``), ``value_norm`` makes the value head predict
    normalised returns (``value_norm``, de-normalised in every value it gives); both are
    buffers of the model, updated only by the PPO update (:meth:`observe`,
    :meth:`value_normalizer`).
    """

    #: Clip of normalised input features (SB3's VecNormalize clip_obs).
    OBS_CLIP = 10.0

    config_class = MLPConfig

    def __init__(
        self,
        config: Mapping[str, Any] | MLPConfig | None = None,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
    ) -> None:
        super().__init__()
        if isinstance(config, MLPConfig):
            base = config
        elif config is None or isinstance(config, Mapping):
            base = MLPConfig.from_dict(dict(config or {}))
        else:
            raise TypeError(f"MLPModel config must be a dict or MLPConfig, got {config!r}")
        actor_space, self.state_space = _critic_spaces(base.critic, observation_space)
        self.mask_space = _mask_space(observation_space)
        if not base.action_mask_input:
            actor_space = _without_mask(actor_space)
        self.config = _resolve_config(base, actor_space, action_space)
        self.observation_space = observation_space
        self.action_space = action_space
        cfg = self.config
        assert cfg.discrete is not None
        self.discrete = cfg.discrete
        self.nvec = (
            action_space.nvec.tolist()
            if isinstance(action_space, gym.spaces.MultiDiscrete)
            else None
        )
        #: MultiBinary actions: one Bernoulli per dimension (a logit each).
        self.binary = isinstance(action_space, gym.spaces.MultiBinary)
        #: Dict or Tuple actions: one distribution per part (None for other spaces).
        self.joint = (
            _joint_parts(action_space)
            if isinstance(action_space, gym.spaces.Dict | gym.spaces.Tuple)
            else None
        )

        activation = ACTIVATIONS[cfg.activation]
        # Field encoders (``encoders``, ``image_encoder``): None when every field is
        # flattened as it is. The value network has its own unless they are shared.
        self.policy_encoder: FieldEncoders | None = None
        self.value_encoder: FieldEncoders | None = None
        features = cfg.input_size
        choices = _encoder_choices(cfg, actor_space, observation_space)
        if choices:
            share = cfg.share_encoders if cfg.share_encoders is not None else cfg.shared_backbone
            if cfg.shared_backbone and not share:
                raise ValueError(
                    "shared_backbone puts one trunk under both heads, which needs one set of "
                    "field encoders: set share_encoders true (or leave it null)"
                )
            assert actor_space is not None  # _encoder_choices found the fields in it
            codec = ObservationCodec(actor_space)
            fields = {name: shape for name, (shape, _) in codec.fields.items()}

            def field_encoders() -> FieldEncoders:
                return FieldEncoders(
                    fields,
                    choices,
                    list(cfg.encoder_sizes),
                    list(cfg.cnn_channels),
                    activation,
                    cfg.initializer,
                )

            self.policy_encoder = field_encoders()
            self.value_encoder = None if share else field_encoders()
            features = self.policy_encoder.out_size
        self.features = features
        if self.mask_space is not None:
            if not self.discrete or self.binary:
                kind = (
                    "MultiBinary"
                    if self.binary
                    else "a Dict or Tuple"
                    if self.joint is not None
                    else "continuous"
                )
                raise ValueError(
                    f"an '{ACTION_MASK_FIELD}' observation field masks categorical actions, but "
                    f"the action space {action_space} is {kind}"
                )
            entries = int(gym.spaces.flatdim(self.mask_space))
            if entries != cfg.num_actions:
                raise ValueError(
                    f"the action mask has {entries} entries, the action space {action_space} "
                    f"has {cfg.num_actions} choices (one entry per action; for MultiDiscrete, "
                    "one per choice of each dimension, concatenated)"
                )
        if cfg.obs_norm and self.policy_encoder is not None:
            raise ValueError(
                "obs_norm normalises flat input features; with field encoders (image_encoder "
                f"or encoders: {choices}) the features are learned: set one of them off"
            )

        if not self.discrete and cfg.continuous_mode == "beta":
            if not (
                isinstance(action_space, gym.spaces.Box)
                and np.all(np.isfinite(action_space.low))
                and np.all(np.isfinite(action_space.high))
            ):
                raise ValueError(
                    f"continuous_mode='beta' needs a Box action space with finite bounds, "
                    f"got {action_space}"
                )
        two_heads = not self.discrete and cfg.continuous_mode in ("std_head", "beta")
        policy_out = cfg.num_actions * (2 if two_heads else 1)
        hidden = list(cfg.hidden_sizes)
        # Built (and so initialised, in this order) as two separate MLPs.
        policy_layers = mlp_layers(
            features, hidden, policy_out, cfg.initializer, cfg.policy_head_gain
        )
        self.state_features = (
            0 if self.state_space is None else int(gym.spaces.flatdim(self.state_space))
        )
        # A centralised critic reads its field, and with critic_own_obs the policy's input.
        self.value_features = (
            self.state_features + (features if cfg.critic_own_obs else 0)
            if self.state_features
            else features
        )
        value_layers = mlp_layers(
            self.value_features, hidden, 1, cfg.initializer, cfg.value_head_gain
        )
        self.agent_copies = _agent_copies(observation_space, cfg)
        self.recurrent = cfg.recurrent != "none"
        if self.recurrent:
            if self.agent_copies:
                raise ValueError(
                    f"recurrent='{cfg.recurrent}' is for networks shared by the policy's agents; "
                    "share_actor and share_critic must both be true"
                )
            # The heads read the recurrent cores' outputs.
            policy_layers[-1] = _init_linear(
                nn.Linear(cfg.recurrent_size, policy_out), cfg.initializer, cfg.policy_head_gain
            )
            value_layers[-1] = _init_linear(
                nn.Linear(cfg.recurrent_size, 1), cfg.initializer, cfg.value_head_gain
            )
        # The policy and value networks run apart (not as a TwinMLP or a shared trunk).
        self.separate = (
            self.state_space is not None or self.agent_copies > 0 or self.value_encoder is not None
        )
        self.hidden: TwinMLP | None = None
        self.trunk: nn.ModuleList | None = None
        self.policy_hidden: nn.ModuleList | None = None
        self.value_hidden: nn.ModuleList | None = None
        self.obs_normalizer = (
            RunningMeanStd((features,), clip=self.OBS_CLIP) if cfg.obs_norm else None
        )
        self.state_normalizer = (
            RunningMeanStd((self.state_features,), clip=self.OBS_CLIP)
            if cfg.obs_norm and self.state_features
            else None
        )
        self.value_norm = RunningMeanStd((), min_var=1e-2) if cfg.value_norm else None
        self.policy_agents: AgentMLPs | None = None
        self.value_agents: AgentMLPs | None = None
        if self.agent_copies:

            def per_agent(first: list[nn.Linear], size_in: int, out: int, gain: float) -> AgentMLPs:
                """``first`` and ``agent_copies - 1`` more networks, each initialised anew."""
                others = [
                    mlp_layers(size_in, hidden, out, cfg.initializer, gain)
                    for _ in range(self.agent_copies - 1)
                ]
                return AgentMLPs([first, *others], activation)

            if cfg.share_actor:
                self.policy_hidden = nn.ModuleList(policy_layers[:-1])
            else:
                self.policy_agents = per_agent(
                    policy_layers, features, policy_out, cfg.policy_head_gain
                )
            if cfg.share_critic:
                self.value_hidden = nn.ModuleList(value_layers[:-1])
            else:
                self.value_agents = per_agent(
                    value_layers, self.value_features, 1, cfg.value_head_gain
                )
        elif self.state_space is not None:
            if cfg.shared_backbone:
                raise ValueError(
                    f"shared_backbone needs one input under both heads, but critic='{cfg.critic}' "
                    "gives the value network an input of its own: set one of them off"
                )
            self.policy_hidden = nn.ModuleList(policy_layers[:-1])
            self.value_hidden = nn.ModuleList(value_layers[:-1])
        elif cfg.shared_backbone:
            self.trunk = nn.ModuleList(policy_layers[:-1])
        elif self.recurrent or self.value_encoder is not None:  # own cores or own encoders
            self.policy_hidden = nn.ModuleList(policy_layers[:-1])
            self.value_hidden = nn.ModuleList(value_layers[:-1])
        else:
            self.hidden = TwinMLP(policy_layers[:-1], value_layers[:-1], activation)
        # Recurrent cores after the hidden layers: one per network, or one on a shared trunk.
        self.policy_core: RecurrentCore | None = None
        self.value_core: RecurrentCore | None = None
        if self.recurrent:
            core_in = hidden[-1] if hidden else features
            self.policy_core = RecurrentCore(cfg.recurrent, core_in, cfg.recurrent_size)
            if self.trunk is None:
                value_in = hidden[-1] if hidden else self.value_features
                self.value_core = RecurrentCore(cfg.recurrent, value_in, cfg.recurrent_size)
        # Heads last: the order of parameters is the optimizer state's order in checkpoints.
        self.policy_head: nn.Linear | None = (
            policy_layers[-1] if self.policy_agents is None else None
        )
        self.value_head: nn.Linear | None = value_layers[-1] if self.value_agents is None else None
        self.activation = activation
        if not self.discrete and cfg.continuous_mode == "logstd":
            dims = (
                cfg.num_actions
                if self.joint is None
                else sum(part.outputs for part in self.joint if part.kind == "floats")
            )
            self.log_std = nn.Parameter(torch.full((dims,), math.log(cfg.sigma0)))
        # gSDE (coltra.models.sde): sigma per (latent feature, action), the latent being the
        # input of the policy head; the noise of collection's rows while it runs.
        self.sde_log_std: nn.Parameter | None = None
        self.exploration: ExplorationNoise | None = None
        if not self.discrete and cfg.continuous_mode == "sde":
            if self.policy_agents is not None:
                raise ValueError(
                    "continuous_mode='sde' is for a policy network shared by the policy's "
                    "agents; share_actor must be true"
                )
            self.sde_features = (
                cfg.recurrent_size if self.recurrent else (hidden[-1] if hidden else features)
            )
            self.sde_log_std = nn.Parameter(
                torch.full((self.sde_features, cfg.num_actions), math.log(cfg.sigma0))
            )
        if isinstance(action_space, gym.spaces.Box):
            # float32 like the network's output, whatever the space's dtype.
            low, high = (
                np.asarray(b, np.float32).reshape(-1) for b in (action_space.low, action_space.high)
            )
            self.register_buffer("action_low", torch.as_tensor(low))
            self.register_buffer("action_high", torch.as_tensor(high))
        # Field order of the policy's features: a Dict space's keys (without the critic's
        # state); otherwise the Observation's order. ``obs_fields``: every field expected.
        self.obs_fields = _field_names(observation_space)
        self.field_order = _field_names(actor_space)

    # ------------------------------------------------------------------ forward
    def encode(self, obs: Observation) -> torch.Tensor:
        """The policy's input: its observation fields flattened and concatenated, normalised
        with ``obs_norm``. ``[batch, features]``"""
        x = self.raw_features(obs)
        return x if self.obs_normalizer is None else self.obs_normalizer.normalize(x)

    def raw_features(self, obs: Observation) -> torch.Tensor:
        """Observation fields flattened (or through the policy's field encoders) and
        concatenated, without normalisation. ``[batch, features]``

        Takes a batch (numpy or torch); with a Dict observation space the fields are taken
        in the space's key order, so the order they were built in does not matter.
        """
        return self._combine(obs, self._field_values(obs), self.policy_encoder)

    def encode_value_obs(self, obs: Observation) -> torch.Tensor | None:
        """The value network's own encoding of the observation (its field encoders),
        ``[batch, features]``; None when it shares the policy's features."""
        if self.value_encoder is None:
            return None
        return self._combine(obs, self._field_values(obs), self.value_encoder)

    def _field_values(self, obs: Observation) -> list[torch.Tensor]:
        """The fields the networks read, as tensors on the model's device, in order."""
        if not isinstance(obs, Observation):
            raise TypeError(f"{type(self).__name__} takes an Observation, got {type(obs).__name__}")
        if not obs.is_batch:
            raise ValueError(
                f"{type(self).__name__} takes a batch of observations, got one item {obs!r}; "
                "use Observation.stack([obs]) (agents do this for you)"
            )
        if self.policy_encoder is not None:
            missing = [name for name in self.policy_encoder.names if name not in obs]
            if missing:
                kinds = dict(zip(self.policy_encoder.names, self.policy_encoder.kinds))
                raise ValueError(
                    f"this model encodes the fields {kinds}, so it needs the field(s) {missing}, "
                    f"got {obs!r}"
                )
        device = self.device
        return [torch.as_tensor(obs[name], device=device) for name in self._field_names(obs)]

    def _combine(
        self, obs: Observation, values: list[torch.Tensor], encoder: FieldEncoders | None
    ) -> torch.Tensor:
        if encoder is not None:
            x = encoder(values)
        else:
            parts = [value.reshape(value.shape[0], -1).float() for value in values]
            x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        if x.shape[-1] != self.features:
            described = ", ".join(f"{name}{list(value.shape)}" for name, value in obs.items())
            encoded = " after the field encoders" if encoder is not None else ""
            raise ValueError(
                f"observation has {x.shape[-1]} features{encoded} ({described}), the model "
                f"expects {self.features} (input_size={self.config.input_size}, observation "
                f"space {self.observation_space})"
            )
        return x

    def encode_state(self, obs: Observation) -> torch.Tensor | None:
        """What a centralised value network reads, the ``state`` or ``team`` field
        (normalised with ``obs_norm``), ``[batch, state]``; None for a local critic."""
        state = self.raw_state(obs)
        if state is None or self.state_normalizer is None:
            return state
        return self.state_normalizer.normalize(state)

    def raw_state(self, obs: Observation) -> torch.Tensor | None:
        if self.state_space is None:
            return None
        field = CRITIC_FIELDS[self.config.critic]
        why = f"its value network reads it, critic='{self.config.critic}'"
        value = _field(obs, field, why, self.device)
        state = value.reshape(value.shape[0], -1).float()
        if state.shape[-1] != self.state_features:
            raise ValueError(
                f"the '{field}' field has {state.shape[-1]} numbers per item, the value "
                f"network expects {self.state_features} (its space {self.state_space})"
            )
        return state

    def _field_names(self, obs: Observation) -> list[str]:
        """The fields the policy reads, in the order of the model's features."""
        names = obs.keys()
        if self.field_order is None or names == self.field_order:
            return names
        # The policy's own fields must all be there; the others (a critic's field, the
        # action mask) may be missing where only the policy runs, e.g. in deployment.
        known = set(self.obs_fields or self.field_order)
        if any(field not in obs for field in self.field_order) or not set(names) <= known:
            raise ValueError(
                f"observation has fields {sorted(names)}, the model's Dict observation space "
                f"has {self.obs_fields} (the policy reads {self.field_order})"
            )
        return self.field_order

    def mask_logits(self, head: torch.Tensor, obs: Observation) -> torch.Tensor:
        """``head`` with the logits of illegal actions (``action_mask`` 0) at
        ``MASKED_LOGIT``: their probability is exactly 0, so they are never sampled, the
        mode is the best legal action, and log-probabilities and entropy are those of the
        masked distribution. Unchanged without a mask field. ``[batch, num_actions]``

        A row with no legal action (in some dimension) is left unmasked: it is an absent
        agent's zero observation, or an env error that the collector and evaluation report
        by the agent's name (:func:`coltra.checks.find_no_legal_action`) before acting."""
        if self.mask_space is None:
            return head
        why = "its observation space has an action mask"
        mask = _field(obs, ACTION_MASK_FIELD, why, head.device)
        legal = mask.reshape(head.shape[0], -1) > 0.5
        parts = torch.split(legal, self.nvec, -1) if self.nvec is not None else (legal,)
        playable = torch.stack([part.any(-1) for part in parts], -1).all(-1)  # [batch]
        return head.masked_fill(~legal & playable[:, None], MASKED_LOGIT)

    def distribution(self, head: torch.Tensor) -> Distribution:
        """The action distribution of the policy head's output."""
        if self.joint is not None:
            return self._joint_distribution(head)
        if self.discrete:
            if self.nvec is not None:
                return MultiCategorical(logits=head, nvec=self.nvec)
            if self.binary:
                return MultiBernoulli(head)
            return Categorical(head)
        mode = self.config.continuous_mode
        if self.sde_log_std is not None:
            mean, latent = head.split([self.config.num_actions, self.sde_features], -1)
            return sde_distribution(mean, latent, self.sde_log_std, self.exploration)
        if mode == "logstd":
            return DiagNormal(head, self.log_std.exp().expand_as(head), validate_args=False)
        first, second = head.chunk(2, dim=-1)
        if mode == "std_head":
            offset = _inverse_softplus(self.config.sigma0)  # initial std == sigma0
            return DiagNormal(
                first, nn.functional.softplus(second + offset) + 1e-6, validate_args=False
            )
        alpha = nn.functional.softplus(first) + 1.0
        beta = nn.functional.softplus(second) + 1.0
        low, high = self.get_buffer("action_low"), self.get_buffer("action_high")
        return ScaledBeta(alpha, beta, low, high)

    def _joint_distribution(self, head: torch.Tensor) -> JointDistribution:
        """Each part's distribution from its outputs of the head (Box parts: their
        log-stds, in the order of the parts)."""
        parts: list[tuple[Distribution, slice, str]] = []
        outputs = torch.split(head, [part.outputs for part in self.joint or []], -1)
        box = 0
        for part, out in zip(self.joint or [], outputs):
            distribution: Distribution
            if part.kind == "floats":
                std = self.log_std[box : box + part.outputs].exp().expand_as(out)
                distribution = DiagNormal(out, std, validate_args=False)
                box += part.outputs
            elif part.nvec is not None:
                distribution = MultiCategorical(logits=out, nvec=part.nvec)
            elif part.kind == "ints":
                distribution = MultiBernoulli(out)
            else:
                distribution = Categorical(out)
            parts.append((distribution, part.slots, part.kind))
        return JointDistribution(parts)

    def heads(
        self,
        features: torch.Tensor,
        state: torch.Tensor | None = None,
        agents: torch.Tensor | None = None,
        value_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both networks on encoded features ``[batch, features]`` (and, for a ``critic:
        state`` model, the global state ``[batch, state]``; for networks not shared, each
        row's agent ``[batch]``, :meth:`agent_index`; with field encoders of its own, the
        value network's encoding, :meth:`encode_value_obs`): the policy head's output
        ``[batch, policy_out]`` and the values ``[batch]``."""
        if self.separate:
            own = features if value_features is None else value_features
            if self.state_space is not None:
                if state is None:
                    raise ValueError(
                        f"this model's value network (critic='{self.config.critic}') needs "
                        "its input"
                    )
                value_input = self._value_input(own, state)
            else:
                value_input = own
            return self._policy_out(features, agents), self._value(value_input, agents)
        if self.trunk is not None:  # shared_backbone: one stack of layers under both heads
            policy_x = value_x = self._run(self.trunk, features)
        else:
            assert self.hidden is not None
            policy_x, value_x = self.hidden.forward(features)  # no hooks: see TwinMLP.forward
        policy_head, value_head = self.policy_head, self.value_head
        assert policy_head is not None and value_head is not None
        policy_out = self._policy_head(policy_x)
        value = nn.functional.linear(value_x, value_head.weight, value_head.bias).squeeze(-1)
        return policy_out, self._denormalized(value)

    def _policy_head(self, x: torch.Tensor) -> torch.Tensor:
        """The policy head on its input ``x`` ``[batch, latent]``; with gSDE followed by
        ``x`` itself, detached, which the distribution's std and noise read.
        ``[batch, policy_out (+ latent)]``"""
        head = self.policy_head
        assert head is not None
        out = nn.functional.linear(x, head.weight, head.bias)
        return out if self.sde_log_std is None else torch.cat([out, x.detach()], -1)

    def _denormalized(self, value: torch.Tensor) -> torch.Tensor:
        """The value head's output in return units (``value_norm``: it predicts normalised
        returns)."""
        return value if self.value_norm is None else self.value_norm.denormalize(value)

    def _run(self, layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = self.activation(layer(x))
        return x

    def _value_input(self, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """A centralised value network's input: its field, then (``critic_own_obs``) the
        agent's own features. ``[batch, value_features]``"""
        return torch.cat([state, features], -1) if self.config.critic_own_obs else state

    def _policy_out(self, features: torch.Tensor, agents: torch.Tensor | None) -> torch.Tensor:
        """The policy network run apart (``separate``). ``[batch, policy_out]``"""
        if self.policy_agents is not None:
            return self.policy_agents(features, self._need_agents(agents))
        assert self.policy_hidden is not None
        return self._policy_head(self._run(self.policy_hidden, features))

    def _value(self, x: torch.Tensor, agents: torch.Tensor | None = None) -> torch.Tensor:
        """The value network run apart (``separate``) on its input (``_value_input`` for a
        centralised critic). ``[batch]``"""
        if self.value_agents is not None:
            out = self.value_agents(x, self._need_agents(agents))
        else:
            assert self.value_hidden is not None and self.value_head is not None
            out = self.value_head(self._run(self.value_hidden, x))
        return self._denormalized(out.squeeze(-1))

    def _need_agents(self, agents: torch.Tensor | None) -> torch.Tensor:
        if agents is None:
            raise ValueError(
                "this model has a network per agent (share_actor or share_critic false): "
                "pass each row's agent, agent_index(obs)"
            )
        return agents

    def agent_index(self, obs: Observation) -> torch.Tensor | None:
        """Each row's agent, the place of the 1 in its ``agent_id`` one-hot, ``[batch]``;
        None when every network is shared. An absent agent's zero row counts as agent 0."""
        if not self.agent_copies:
            return None
        why = "it has a network per agent (share_actor or share_critic false)"
        ids = _field(obs, AGENT_ID_FIELD, why, self.device)
        ids = ids.reshape(ids.shape[0], -1)
        if ids.shape[-1] != self.agent_copies:
            raise ValueError(
                f"the '{AGENT_ID_FIELD}' field has {ids.shape[-1]} entries per item, this model "
                f"has a network for each of {self.agent_copies} agents"
            )
        return ids.argmax(-1)

    def forward(
        self, obs: Observation, state: State = (), get_value: bool = False
    ) -> tuple[Distribution, State, dict[str, torch.Tensor]]:
        if self.recurrent:
            return self._recurrent_forward(obs, state, get_value, None)
        agents = self.agent_index(obs)
        if self.separate and not get_value:  # acting: the policy alone
            head = self._policy_out(self.encode(obs), agents)
            return self.distribution(self.mask_logits(head, obs)), state, {}
        head, value = self.heads(
            self.encode(obs), self.encode_state(obs), agents, self.encode_value_obs(obs)
        )
        extra = {"value": value} if get_value else {}
        return self.distribution(self.mask_logits(head, obs)), state, extra

    def act_numpy(
        self, obs: Observation, deterministic: bool, get_value: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """The acting pass through numpy (:mod:`coltra.models.numpy_acting`) for the plain
        model (fused hidden layers, tanh or relu, one Categorical, no encoders,
        normalisation, mask, centralised critic or per-agent networks) on up to
        ``NUMPY_MAX_ROWS`` rows of one numpy field in native byte order, on the CPU in
        float32, with no forward hooks and no method of its forward pass replaced (on the
        instance or on MLPModel); None otherwise."""
        if not self.__dict__.get("_numpy_plain", True):  # decided once: the model's kind
            return None
        fields = obs.items()
        if len(fields) != 1 or (self.field_order is not None and obs.keys() != self.field_order):
            return None
        x = fields[0][1]
        if (
            not isinstance(x, np.ndarray)
            or x.ndim < 2
            or not 0 < len(x) <= NUMPY_MAX_ROWS
            or not x.dtype.isnative  # torch refuses other byte orders: let it say so
        ):
            return None
        x = x.reshape(len(x), -1)
        if x.shape[1] != self.features:
            return None  # the torch path says what is wrong
        if (
            self._forward_hooks
            or self._forward_pre_hooks
            or torch.nn.modules.module._has_any_global_hook()
            or self.__dict__.keys() & _NUMPY_BYPASSED_METHODS
            or tuple(map(MLPModel.__dict__.get, _FORWARD_NAMES)) != _FORWARD_METHODS
        ):
            return None
        actor = self._current_numpy_actor()
        if actor is None:
            return None
        if x.dtype != np.float32:
            with np.errstate(over="ignore"):  # out of float32's range: inf, as torch's .float()
                x = x.astype(np.float32)
        return actor.act(x, deterministic, get_value)

    def _current_numpy_actor(self) -> NumpyActor | None:
        """The numpy actor over the layers and parameters as they are now: built on first
        use and rebuilt when a layer or parameter was moved, converted or replaced; None
        for a model of another kind, layers of other types (wrapped, parametrized) or
        parameters off the CPU or not float32."""
        plain = self.__dict__.get("_numpy_plain")
        if plain is None:  # what the config made the model: fixed at construction
            plain = self.__dict__["_numpy_plain"] = (
                type(self) is MLPModel
                and not (self.recurrent or self.separate or self.binary)
                and self.discrete
                and self.nvec is None
                and self.joint is None
                and self.mask_space is None
            )
        if not plain:
            return None
        modules, params = self._modules, self._parameters
        hidden, policy_head, value_head = (
            modules.get("hidden"),
            modules.get("policy_head"),
            modules.get("value_head"),
        )
        if (  # modules a user could still set or replace: looked at every time
            type(hidden) is not TwinMLP
            or type(policy_head) is not nn.Linear
            or type(value_head) is not nn.Linear
            or list(map(modules.get, _NUMPY_ABSENT_MODULES)).count(None)
            != len(_NUMPY_ABSENT_MODULES)
            or params.get("sde_log_std") is not None
        ):
            return None
        assert isinstance(hidden, TwinMLP) and policy_head is not None and value_head is not None
        activation = NUMPY_ACTIVATIONS.get(hidden.activation)
        actor: NumpyActor | None = self.__dict__.get("_numpy_actor")
        if (
            actor is not None
            and actor.activation is activation
            and actor.modules[-2] is policy_head
            and actor.modules[-1] is value_head
            and actor.modules[:-2] == tuple(hidden.layers)
            and actor.is_current()
        ):
            return actor
        self.__dict__.pop("_numpy_actor", None)  # stale: let go of the old parameters
        if activation is None:
            return None
        actor = NumpyActor.build(list(hidden.layers), policy_head, value_head, activation)
        if actor is not None:
            self.__dict__["_numpy_actor"] = actor
        return actor

    def __getstate__(self) -> dict[str, Any]:
        """As nn.Module's, without the numpy actor (views of this model's parameters,
        rebuilt on the next act): copies and pickles hold only the model."""
        state: dict[str, Any] = super().__getstate__()
        state.pop("_numpy_actor", None)
        return state

    def forward_sequences(
        self, obs: Observation, state: State, starts: torch.Tensor, get_value: bool = True
    ) -> tuple[Distribution, State, dict[str, torch.Tensor]]:
        if not self.recurrent:
            return super().forward_sequences(obs, state, starts, get_value)
        return self._recurrent_forward(obs, state, get_value, starts)

    def explore(self, rows: int | None) -> ExplorationNoise | None:
        if self.sde_log_std is None:
            return None
        self.exploration = (
            None
            if rows is None
            else ExplorationNoise(
                rows,
                self.sde_features,
                self.config.num_actions,
                self.config.sde_every,
                self.device,
            )
        )
        return self.exploration

    def get_initial_state(self, batch_size: int) -> State:
        cores = [core for core in (self.policy_core, self.value_core) if core is not None]
        return tuple(part for core in cores for part in core.initial_state(batch_size, self.device))

    def _recurrent_forward(
        self, obs: Observation, state: State, get_value: bool, starts: torch.Tensor | None
    ) -> tuple[Distribution, State, dict[str, torch.Tensor]]:
        """Both networks through their cores: one step per row (``starts`` None) or
        sequences (``obs`` ``[sequences * length]`` sequence-major, ``starts``
        ``[sequences, length]``, ``state`` the first step's). The value core steps even when
        no value is asked, so the state stays the one collection carries, except where a
        centralised critic's field is missing (deployment, where only the policy runs): its
        part of the state then stays as it was."""
        assert self.policy_core is not None
        rows = obs.batch_size if starts is None else starts.shape[0]
        policy_state, value_state = self._split_state(state, rows)
        features = self.encode(obs)
        critic_field = CRITIC_FIELDS.get(self.config.critic)
        policy_only = not get_value and critic_field is not None and critic_field not in obs
        out, policy_state = self._policy_core_out(features, policy_state, starts)
        assert self.policy_head is not None and self.value_head is not None
        head = self.mask_logits(self._policy_head(out), obs)
        if self.trunk is not None:  # shared_backbone: one trunk and core under both heads
            value_out = out
        elif policy_only:
            return self.distribution(head), (*policy_state, *value_state), {}
        else:
            assert self.value_hidden is not None and self.value_core is not None
            global_state = self.encode_state(obs)
            own = self.encode_value_obs(obs)
            own = features if own is None else own
            value_input = own if global_state is None else self._value_input(own, global_state)
            value_out, value_state = self.value_core(
                self._run(self.value_hidden, value_input), value_state, starts
            )
        extra = (
            {"value": self._denormalized(self.value_head(value_out).squeeze(-1))}
            if get_value
            else {}
        )
        return self.distribution(head), (*policy_state, *value_state), extra

    def policy_step(self, obs: Observation, state: State) -> tuple[Distribution, State]:
        """One step of the policy alone, its core's part of the state in and out (what an
        exported file runs: acting needs neither the value network nor its memory)."""
        if not self.recurrent:
            distribution, _, _ = self(obs)
            return distribution, ()
        assert self.policy_core is not None and self.policy_head is not None
        if not state:
            state = self.policy_core.initial_state(obs.batch_size, self.device)
        out, state = self._policy_core_out(self.encode(obs), state, None)
        return self.distribution(self.mask_logits(self._policy_head(out), obs)), state

    def _policy_core_out(
        self, features: torch.Tensor, state: State, starts: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        """The policy's hidden layers (or the shared trunk), then its core: the core's output
        ``[rows, recurrent_size]`` and its next state."""
        assert self.policy_core is not None
        stack = self.trunk if self.trunk is not None else self.policy_hidden
        assert stack is not None
        return self.policy_core(self._run(stack, features), state, starts)

    def _split_state(self, state: State, rows: int) -> tuple[State, State]:
        """The policy core's and the value core's parts of ``state`` (zeros when empty),
        each checked against ``rows``."""
        if not state:
            state = self.get_initial_state(rows)
        assert self.policy_core is not None
        split = self.policy_core.parts
        expected = split + (self.value_core.parts if self.value_core is not None else 0)
        if len(state) != expected or any(
            tuple(part.shape) != (rows, self.config.recurrent_size) for part in state
        ):
            shapes = [list(part.shape) for part in state]
            raise ValueError(
                f"recurrent state has tensors of shapes {shapes}; this "
                f"{self.config.recurrent.upper()} model needs {expected} tensors of shape "
                f"[{rows}, {self.config.recurrent_size}] (get_initial_state({rows}))"
            )
        return tuple(state[:split]), tuple(state[split:])

    def value(self, obs: Observation, state: State = ()) -> torch.Tensor:
        if self.recurrent:  # one step of the value core from ``state``
            _, _, extra = self._recurrent_forward(obs, state, True, None)
            return extra["value"]
        global_state = self.encode_state(obs)
        agents = self.agent_index(obs)
        if global_state is not None:
            own = self._value_own(obs) if self.config.critic_own_obs else global_state
            return self._value(self._value_input(own, global_state), agents)
        if self.separate:
            return self._value(self._value_own(obs), agents)
        _, value = self.heads(self.encode(obs))
        return value

    def _value_own(self, obs: Observation) -> torch.Tensor:
        """The value network's features of the agent's own observation: its field encoders'
        when it has its own, else the policy's. ``[batch, features]``"""
        own = self.encode_value_obs(obs)
        return self.encode(obs) if own is None else own

    def value_normalizer(self) -> RunningMeanStd | None:
        return self.value_norm

    @torch.no_grad()
    def observe(self, obs: Observation) -> None:
        """Add a rollout's observations to the ``obs_norm`` statistics."""
        if self.obs_normalizer is not None:
            self.obs_normalizer.update(self.raw_features(obs))
        if self.state_normalizer is not None:
            state = self.raw_state(obs)
            assert state is not None
            self.state_normalizer.update(state)

    def find_device(self) -> torch.device:
        head = self.value_head if self.value_head is not None else self.policy_head
        if head is not None:
            return head.weight.device
        assert self.value_agents is not None
        return next(self.value_agents.parameters()).device

    def upgrade_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Checkpoints from before the hidden layers moved into ``TwinMLP`` (``hidden.0.weight``
        is now ``hidden.layers.0.weight``) and from before field encoders (one CNN,
        ``image_encoder.*``, is now the image's part of ``policy_encoder``)."""
        old = re.compile(r"hidden\.(\d+)\.(weight|bias)")
        image = (
            f"policy_encoder.parts.{self.policy_encoder.names.index('image')}."
            if self.policy_encoder is not None and "image" in self.policy_encoder.names
            else "image_encoder."
        )
        upgraded = {}
        for key, value in state_dict.items():
            if match := old.fullmatch(key):
                key = f"hidden.layers.{match[1]}.{match[2]}"
            elif key.startswith("image_encoder."):
                key = image + key.removeprefix("image_encoder.")
            upgraded[key] = value
        return upgraded

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> BaseModel:
        config = dict(description["config"])
        if config.get("image_encoder") == "cnn" and "share_encoders" not in config:
            config["share_encoders"] = True  # before field encoders, one CNN served both
        return super().from_description({**description, "config": config})


#: MLPModel's own methods of the forward pass, as defined above (``act_numpy`` compares).
_FORWARD_NAMES = tuple(
    name for name in sorted(_NUMPY_BYPASSED_METHODS) if name in MLPModel.__dict__
)
_FORWARD_METHODS = tuple(MLPModel.__dict__[name] for name in _FORWARD_NAMES)
