"""Coltra's configs: the trainer, the PPO update, the model and the environment of a run.

Each field has a type, a default, constraints and a one-line doc saying what it is, its unit
and where the default comes from. ``RunConfig`` holds one section of each.

The ``model`` section names its class (``model.class``, default ``MLPModel``): any model
registered with :func:`coltra.agents.register_model` brings its own config class, and the
rest of the section is read with it. Configs only know the registered config classes
(:func:`register_model_config`), not the models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from coltra.configs.base import Config, Float, Int, List, YamlValue, custom_error
from coltra.configs.errors import ConfigError, join_key, show, suggest
from coltra.names import check_policy_name

__all__ = [
    "DEFAULT_MODEL",
    "EnvConfig",
    "MLPConfig",
    "ModelConfig",
    "PPOConfig",
    "PolicyConfig",
    "RunConfig",
    "TrainerConfig",
    "WrapperConfig",
    "policy_ppo",
    "register_model_config",
]

DEFAULT_MODEL = "MLPModel"

PositiveInt = Annotated[Int, Field(gt=0)]
Name = Annotated[str, Field(min_length=1)]


def _check_device(value: str) -> str:
    if re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?|mps", value) is None:
        raise custom_error(
            "expected a str that is 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got " + show(value)
        )
    return value


# ----------------------------------------------------------------------------- models


class ModelConfig(Config):
    """Base of model sections. A subclass holds one model class's keys; registering it
    (:func:`register_model_config`) gives it the name its ``class`` key is written with."""

    section_doc: ClassVar[str] = (
        "Model class (registered with coltra.agents.register_model); the other model keys "
        "are that class's."
    )

    @model_validator(mode="before")
    @classmethod
    def _own_class_key(cls, data: Any) -> Any:
        """A section's ``class`` key, when it names this config's own model, is no field."""
        if isinstance(data, dict) and "class" in data and cls.section_name is not None:
            if data["class"] != cls.section_name:
                raise custom_error(
                    f"{cls.__name__} is the config of model {cls.section_name!r}, got "
                    f"{show(data['class'])}",
                    "class",
                )
            data = {key: value for key, value in data.items() if key != "class"}
        return data

    @classmethod
    def section_class(cls, data: Any) -> type[Config]:
        if cls is not ModelConfig:
            return cls
        name = data.get("class", DEFAULT_MODEL) if isinstance(data, dict) else DEFAULT_MODEL
        return _MODEL_CONFIGS.get(name, cls) if isinstance(name, str) else cls


_MODEL_CONFIGS: dict[str, type[ModelConfig]] = {}


def register_model_config(name: str, config_class: type[ModelConfig]) -> None:
    """Let ``model: {class: <name>, ...}`` be read with ``config_class``. One config class
    serves one model name (its ``class`` key is written from it)."""
    if not isinstance(config_class, type) or not issubclass(config_class, ModelConfig):
        raise TypeError(
            f"the config of model {name!r} must subclass coltra.configs.ModelConfig, got "
            f"{config_class!r}"
        )
    owner = config_class.section_name
    if owner is not None and owner != name and _MODEL_CONFIGS.get(owner) is config_class:
        raise ValueError(
            f"{config_class.__name__} is already the config of model {owner!r}; give model "
            f"{name!r} a config class of its own (a subclass will do)"
        )
    _MODEL_CONFIGS[name] = config_class
    config_class.section_name = name


def _model_section(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Read a ``model`` mapping with the config class its ``class`` key names."""
    if value is None or isinstance(value, ModelConfig):
        if isinstance(value, ModelConfig) and value.section_name is None:
            raise custom_error(
                f"{type(value).__name__} is not the config of a registered model; register "
                "the model with coltra.agents.register_model"
            )
        return handler(value)
    if not isinstance(value, dict):
        return handler(value)  # pydantic says it is not a mapping
    name = value.get("class", DEFAULT_MODEL)
    if not isinstance(name, str) or name not in _MODEL_CONFIGS:
        known = sorted(_MODEL_CONFIGS)
        raise custom_error(
            f"unknown model class {show(name)}{suggest(name, known)} (registered: "
            f"{', '.join(known)}; register your own with coltra.agents.register_model, and "
            "name its module with --import on the command line)",
            "class",
        )
    rest = {key: item for key, item in value.items() if key != "class"}
    return _MODEL_CONFIGS[name].model_validate(rest)


class MLPConfig(ModelConfig):
    """The policy and value networks of ``coltra.models.MLPModel``."""

    input_size: Int = Field(
        0,
        ge=0,
        description="Length of the flat observation vector; 0 = derive it from the "
        "observation space.",
    )
    num_actions: Int = Field(
        0,
        ge=0,
        description="Discrete actions, or continuous action dimensions; 0 = derive "
        "from the action space.",
    )
    discrete: bool | None = Field(
        None,
        description="Categorical (true) or continuous (false) policy; null = derive from the "
        "action space.",
    )
    hidden_sizes: List[PositiveInt] = Field(
        [64, 64],
        description="Units per hidden layer, input to output ([64, 64] as in CleanRL and SB3).",
    )
    activation: Literal["tanh", "relu", "leaky_relu", "elu", "gelu"] = Field(
        "tanh", description="Hidden-layer activation (tanh, as in CleanRL's ppo.py)."
    )
    initializer: Literal["orthogonal", "kaiming_uniform", "xavier_uniform", "default"] = Field(
        "orthogonal",
        description="Init of linear layers (orthogonal, gain sqrt(2), as CleanRL); 'default' = "
        "PyTorch's.",
    )
    policy_head_gain: Float = Field(
        0.01,
        ge=0,
        description="Orthogonal gain of the policy's last layer; small = near-uniform start "
        "(CleanRL).",
    )
    value_head_gain: Float = Field(
        1.0, ge=0, description="Orthogonal gain of the value network's last layer (CleanRL)."
    )
    continuous_mode: Literal["logstd", "std_head", "beta", "sde"] = Field(
        "logstd",
        description="Continuous actions: Gaussian with a learned log-std (CleanRL), std head, "
        "Beta, or state-dependent exploration (gSDE, SB3's use_sde).",
    )
    sigma0: Float = Field(
        0.5,
        gt=0,
        description="Initial std of continuous actions, in action units (Coltra's choice; "
        "CleanRL: 1); with sde, of each exploration weight (SB3: exp(log_std_init) = 1).",
    )
    sde_every: PositiveInt = Field(
        4,
        description="With continuous_mode sde: collection steps between new exploration "
        "matrices (SB3-zoo's sde_sample_freq for Pendulum).",
    )
    image_encoder: Literal["flatten", "cnn"] = Field(
        "flatten",
        description="Encoder for image observations: flatten into the MLP, or a small CNN first.",
    )
    cnn_channels: List[PositiveInt] = Field(
        [16, 32],
        description="Output channels of each conv layer when image_encoder is 'cnn' (Coltra's "
        "choice).",
    )
    encoders: dict[str, Literal["flatten", "mlp", "cnn"]] = Field(
        {},
        description="Encoder per observation field before the hidden layers, e.g. {image: "
        "cnn, rays: mlp}; fields not named are flattened (image_encoder: cnn names the image).",
    )
    encoder_sizes: List[PositiveInt] = Field(
        [64], description="Units per layer of an 'mlp' field encoder (Coltra's choice)."
    )
    share_encoders: bool | None = Field(
        None,
        description="One set of field encoders for both networks (true) or one each (false); "
        "null = shared with shared_backbone, one each otherwise.",
    )
    shared_backbone: bool = Field(
        False,
        description="One trunk of hidden layers under both heads (policy and value); false = "
        "two separate networks (CleanRL).",
    )
    critic: Literal["local", "state", "team"] = Field(
        "local",
        description="What the value network sees: local = the agent's own observation (IPPO); "
        "state = only the 'state' field, the env's global state (MAPPO; env.global_state adds "
        "it); team = only the 'team' field (env.team_observations). No policy sees either.",
    )
    critic_own_obs: bool = Field(
        True,
        description="A state or team critic also reads the agent's own observation (MAPPO's "
        "agent-specific state), telling apart agents of one policy paid on their own.",
    )
    action_mask_input: bool = Field(
        False,
        description="Feed an 'action_mask' observation field to the networks as features too "
        "(it always masks the policy's logits).",
    )
    obs_norm: bool = Field(
        False,
        description="Normalise the networks' input features (and a state critic's state) by "
        "their running mean and std, clipped to +-10 (SB3's VecNormalize).",
    )
    value_norm: bool = Field(
        False,
        description="The value network learns returns normalised by their running mean and std "
        "(MAPPO's ValueNorm); the values it gives are de-normalised.",
    )
    share_actor: bool = Field(
        True,
        description="One policy network for all the policy's agents (parameter sharing); "
        "false = one per agent, picked by the 'agent_id' field (env.agent_ids).",
    )
    share_critic: bool = Field(
        True,
        description="One value network for all the policy's agents; false = one per agent, "
        "picked by the 'agent_id' field (env.agent_ids).",
    )
    recurrent: Literal["none", "lstm", "gru"] = Field(
        "none",
        description="A recurrent core after the hidden layers of each network (LSTM or GRU), "
        "carrying memory between steps and trained through time (ppo.sequence_length); none = "
        "feed-forward.",
    )
    recurrent_size: PositiveInt = Field(
        64, description="Units of each recurrent core's state (Coltra's choice; SB3: 256)."
    )


register_model_config(DEFAULT_MODEL, MLPConfig)


# ----------------------------------------------------------------------------- PPO


class PPOConfig(Config):
    """The PPO update (``coltra.policy_optimization``); defaults from CleanRL's ppo.py."""

    lr: Float = Field(2.5e-4, gt=0, description="Adam learning rate (CleanRL ppo.py).")
    gamma: Float = Field(0.99, ge=0, le=1, description="Discount factor per env step (CleanRL).")
    gae_lambda: Float = Field(
        0.95,
        ge=0,
        le=1,
        description="GAE lambda, the bias/variance trade-off of advantages (CleanRL).",
    )
    epochs: PositiveInt = Field(
        4, description="Passes over each rollout per iteration (update_epochs in CleanRL)."
    )
    num_minibatches: PositiveInt = Field(
        4, description="Minibatches per epoch (CleanRL); ignored when minibatch_size is set."
    )
    minibatch_size: PositiveInt | None = Field(
        None, description="Samples per minibatch; when set, overrides num_minibatches."
    )
    sequence_length: PositiveInt = Field(
        32,
        description="Steps per training sequence of a recurrent policy: each agent's rollout "
        "is cut into pieces this long, minibatches are whole pieces (Coltra's choice; "
        "feed-forward policies ignore it).",
    )
    clip_coef: Float = Field(
        0.2,
        gt=0,
        description="Clipping range epsilon of the PPO surrogate objective (CleanRL).",
    )
    clip_vloss: bool = Field(
        True, description="Also clip the value loss around the old values (CleanRL)."
    )
    value_clip: Literal["max", "clipped"] = Field(
        "max",
        description="With clip_vloss: the larger of the clipped and unclipped value errors "
        "(CleanRL) or the clipped estimate's error alone (SB3's clip_range_vf).",
    )
    vf_coef: Float = Field(0.5, ge=0, description="Weight of the value loss (CleanRL).")
    value_loss: Literal["mse", "huber"] = Field(
        "mse",
        description="Value loss: squared error (CleanRL) or Huber with huber_delta (MAPPO's "
        "default).",
    )
    huber_delta: Float = Field(
        10.0, gt=0, description="Where the Huber value loss turns linear (MAPPO: 10)."
    )
    ent_coef: Float = Field(
        0.0,
        ge=0,
        description="Weight of the entropy bonus (CleanRL: 0.01 for discrete/Atari, 0.0 for "
        "MuJoCo).",
    )
    ent_coef_final: Float | None = Field(
        None,
        ge=0,
        description="If set, entropy weight goes linearly from ent_coef to this over "
        "anneal_iterations.",
    )
    max_grad_norm: Float = Field(
        0.5, gt=0, description="Clip the global gradient norm to this (CleanRL)."
    )
    target_kl: Float | None = Field(
        None,
        gt=0,
        description="Before each minibatch's step, stop the iteration's epochs if its approx KL "
        "exceeds this (SB3's check, at 1x; CleanRL checks after each epoch); null = never.",
    )
    norm_adv: bool = Field(True, description="Normalise advantages per minibatch (CleanRL).")
    norm_adv_over: Literal["minibatch", "batch"] = Field(
        "minibatch",
        description="What advantages are normalised over: each minibatch (CleanRL) or the "
        "policy's whole batch, once (MAPPO).",
    )
    reward_scaling: bool = Field(
        False,
        description="Divide rewards by the running std of the discounted return before GAE "
        "(Engstrom et al. 2020; SB3's VecNormalize norm_reward).",
    )
    anneal_lr: bool = Field(
        False,
        description="Decay lr linearly to 0 over anneal_iterations (CleanRL: on; off by default "
        "here).",
    )
    anneal_iterations: PositiveInt | None = Field(
        None,
        description="Iterations to anneal lr/entropy over; null = the whole run "
        "(trainer.iterations, extended when the run is).",
    )
    adam_eps: Float = Field(
        1e-5, gt=0, description="Adam epsilon (CleanRL; PyTorch's default is 1e-8)."
    )
    seed: Int = Field(
        0,
        ge=0,
        description="Seed of the minibatch shuffling; a training run sets it to trainer.seed.",
    )

    @model_validator(mode="after")
    def _check_value_clip(self) -> PPOConfig:
        if self.value_clip != "max" and not self.clip_vloss:
            raise custom_error(
                f"value_clip {self.value_clip!r} says how to clip the value loss, and "
                "clip_vloss is false: set clip_vloss: true, or drop value_clip",
                "value_clip",
            )
        return self


# ----------------------------------------------------------------------------- environment


def _wrapper_name(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class WrapperConfig(Config):
    """One env wrapper: a Gymnasium wrapper class or a SuperSuit function, with keywords."""

    name: Name = Field(
        description="Dotted name, e.g. gymnasium.wrappers.FlattenObservation or "
        "supersuit.pad_observations_v0 (allowed modules only)."
    )
    kwargs: dict[str, YamlValue] = Field({}, description="Keywords the wrapper is called with.")


class EnvConfig(Config):
    """Which environment to train on and how its copies are vectorised (``coltra.envs``)."""

    kind: Literal["gym", "pettingzoo", "probe", "coltra", "registered"] = Field(
        "gym",
        description="Env family: Gymnasium, PettingZoo (parallel), a Coltra probe env, a "
        "coltra MultiAgentEnv class (module:Class), or one registered with coltra.envs.register.",
    )
    env_name: Name = Field(
        "CartPole-v1",
        description="Gym id (or module:EnvId), PettingZoo/mpe2/magent2 module "
        "('pettingzoo.sisl.pursuit_v5'), probe name, module:Class, or registered name.",
    )
    wrappers: List[Annotated[WrapperConfig, BeforeValidator(_wrapper_name)]] = Field(
        [],
        description="Wrappers applied to each copy, in order: names (or {name, kwargs}) from "
        "gymnasium, supersuit, pettingzoo or an allowed module.",
    )
    env_kwargs: dict[str, YamlValue] = Field(
        {},
        description="Env keywords: gymnasium.make's, parallel_env's (PettingZoo) or the probe "
        "class's.",
    )
    workers: PositiveInt = Field(
        8,
        description="Env workers; with the subprocess backend, one process each (Coltra's choice).",
    )
    envs_per_worker: PositiveInt = Field(
        1, description="Env copies stepped one after another by each worker."
    )
    backend: Literal["auto", "inprocess", "subprocess", "ray"] = Field(
        "auto",
        description="Where copies run; 'auto' = the env's default (subprocess for PettingZoo, "
        "else here); 'ray' = in Ray actors, one per worker (pip install 'coltra[ray]').",
    )
    step_timeout: Float | None = Field(
        None,
        gt=0,
        description="Seconds to wait for a worker's step before failing (subprocess and ray "
        "backends); null = wait forever.",
    )
    shared_memory: bool = Field(
        False,
        description="Subprocess backend: workers write step results into shared memory, the "
        "pipes carry small replies only.",
    )
    overlap: bool = Field(
        True,
        description="Overlapped collection: act for half of each worker's copies while the other "
        "half steps (where it applies: subprocess backend, 2+ envs_per_worker, one block of "
        "spaces; elsewhere collection is lock-step).",
    )
    ray_address: str | None = Field(
        None,
        description="Ray backend: the cluster to connect to ('127.0.0.1:6379', 'auto'); null = "
        "start a local Ray session (or use the one this process is connected to).",
    )
    ray_num_cpus: Float = Field(
        1.0,
        ge=0,
        description="Ray backend: CPUs each actor reserves on the cluster (fractions allowed, "
        "e.g. 0.5 to run 4 actors on 2 CPUs).",
    )
    global_state: bool = Field(
        False,
        description="Add the env's global state() to every agent's observation as a 'state' "
        "field, for critic: state models (PettingZoo envs).",
    )
    team_observations: bool = Field(
        False,
        description="Add the observations of each agent's team (agents named <team>_<n>), each "
        "with a presence flag, as a 'team' field, for critic: team models (PettingZoo envs).",
    )
    shared_reward: bool = Field(
        False,
        description="Reward every agent with the sum of all agents' rewards of the step (a "
        "cooperative team's reward, as in the particle envs MAPPO used; PettingZoo envs, fully "
        "cooperative ones: every agent shares, whatever its team). "
        "Episode returns are then the team's.",
    )
    info_action_masks: bool = Field(
        False,
        description="Read each agent's action mask from info['action_mask'] (PettingZoo's "
        "other convention) into an 'action_mask' observation field (PettingZoo envs).",
    )
    agent_ids: bool = Field(
        False,
        description="Add a one-hot of each agent's place in the env's agents as an 'agent_id' "
        "field: a feature for shared networks, and what share_actor/share_critic: false pick "
        "networks by (PettingZoo envs).",
    )


# ----------------------------------------------------------------------------- trainer


class TrainerConfig(Config):
    """The training run: its length, saving, logging and device (``coltra.trainers``)."""

    name: Name = Field("run", description="Run name, used in the run directory and logs.")
    run_dir: str | None = Field(
        None,
        description="Directory for checkpoints, config.yaml and logs; null = "
        "runs/<name>_<timestamp>.",
    )
    steps: PositiveInt = Field(
        128, description="Env steps per env copy per iteration (num_steps in CleanRL)."
    )
    iterations: PositiveInt = Field(
        100, description="Training iterations, each a rollout and an update."
    )
    save_every: PositiveInt = Field(
        10,
        description="Save a checkpoint every this many iterations (and always at the end).",
    )
    keep_checkpoints: PositiveInt = Field(
        3, description="How many of the newest checkpoints to keep; older ones are deleted."
    )
    stop_at_return: Float | dict[Name, Float] | None = Field(
        None,
        description="Stop early once the mean return of the last return_window episodes "
        "reaches this; {policy: return, ...} = once each named policy's does.",
    )
    return_window: PositiveInt = Field(
        20,
        description="Finished episodes averaged for the reported return and stop_at_return "
        "(CleanRL: 20).",
    )
    eval_episodes: Int = Field(
        0,
        ge=0,
        description="Episodes of deterministic evaluation at the end (and every eval_every), "
        "on env copies of their own; 0 = none.",
    )
    eval_every: PositiveInt | None = Field(
        None,
        description="Also evaluate every this many iterations (eval/* metrics) and keep the "
        "best evaluated checkpoint as checkpoints/best (never pruned); needs eval_episodes; "
        "null = at the end only.",
    )
    seed: Int | None = Field(
        0,
        ge=0,
        description="Seed of envs, torch, numpy, random and PPO shuffling; null = draw one "
        "(saved).",
    )
    device: Annotated[str, AfterValidator(_check_device)] = Field(
        "auto",
        description="Torch device: 'auto' (CUDA if available, else CPU), 'cpu', 'cuda', "
        "'cuda:N', 'mps'.",
    )
    torch_threads: PositiveInt | None = Field(
        1,
        description="torch.set_num_threads, set before the model is built (1 leaves cores to "
        "env workers); null = as is.",
    )
    update_threads: PositiveInt | None = Field(
        None,
        description="torch threads during the PPO update only (env workers wait then, so it "
        "may use their cores); null = torch_threads throughout.",
    )
    log_every: PositiveInt = Field(1, description="Log metrics every this many iterations.")
    snapshot_every: PositiveInt | None = Field(
        None,
        description="Self-play: every this many iterations, each policy with snapshot_of "
        "gets a copy of that policy's weights; null = never.",
    )
    on_nonfinite: Literal["raise", "drop"] = Field(
        "raise",
        description="NaN/inf from the env: 'raise' an error naming agent and step, or 'drop' "
        "the step (counted in charts/nonfinite_dropped).",
    )
    restart_crashed_envs: Int = Field(
        0,
        ge=0,
        description="Rebuild a crashed env and go on (with a warning), at most this many times "
        "per session; 0 = a crash stops the run.",
    )
    progress: bool = Field(
        True,
        description="Show progress: a bar on a terminal, else a log line every ~10 s (on stderr).",
    )
    wandb: bool = Field(
        False,
        description="Also log to Weights & Biases (pip install wandb; WANDB_MODE=offline: no "
        "account).",
    )
    wandb_project: Name = Field("coltra", description="Weights & Biases project name.")
    wandb_entity: str | None = Field(
        None,
        description="Weights & Biases entity (user or team); null = your default entity.",
    )

    @model_validator(mode="after")
    def _check_eval_every(self) -> TrainerConfig:
        if self.eval_every is not None and self.eval_episodes == 0:
            raise custom_error(
                f"evaluating every {self.eval_every} iterations needs episodes to play: set "
                "trainer.eval_episodes (e.g. 10), or eval_every: null",
                "eval_every",
            )
        return self


# ----------------------------------------------------------------------------- policies

#: PPO keys a policy cannot set for itself: one shuffling RNG serves every policy.
RUN_WIDE_PPO_KEYS = ("seed",)


class PolicyConfig(Config):
    """One policy of a run with several (``policies.<name>``): which agents it acts for,
    its networks, and how it learns."""

    agents: List[str] | None = Field(
        None,
        description="Agent-name prefixes this policy acts for (the longest matching prefix of "
        "any policy wins; '' = every agent no other prefix takes); null = [its own name].",
    )
    model: ModelConfig | None = Field(
        None,
        description="Its networks: a whole model section of its own, sized from its agents' "
        "spaces (keys it leaves out take the model defaults, not the run's model keys); null = "
        "the run's model section.",
    )
    ppo: dict[str, YamlValue] = Field(
        {},
        description="PPO keys that differ for this policy (lr, ent_coef, epochs, clip_coef, "
        "...); the others are the run's ppo section.",
    )
    frozen: bool = Field(False, description="Acts but never learns: a fixed opponent or teammate.")
    init_from: str | None = Field(
        None,
        description="Start from saved weights: a run directory (its newest checkpoint) or a "
        "checkpoint, with :POLICY to pick one of its policies (default: this name, or its only "
        "one).",
    )
    snapshot_of: str | None = Field(
        None,
        description="Self-play: this frozen policy gets a copy of that learning policy's "
        "weights every trainer.snapshot_every iterations (at the start too, unless init_from).",
    )

    _model_section = field_validator("model", mode="wrap")(_model_section)

    def prefixes(self, name: str) -> list[str]:
        """The agent-name prefixes of the policy called ``name``."""
        return list(self.agents) if self.agents is not None else [name]


def policy_ppo(base: PPOConfig, overrides: dict[str, Any]) -> PPOConfig:
    """The PPO config of a policy: ``base`` with the policy's own keys; a ConfigError (key
    relative to the overrides) for an unknown, run-wide or bad key."""
    for key in overrides:
        if key in RUN_WIDE_PPO_KEYS:
            raise ConfigError(
                "is run-wide (one minibatch shuffling for every policy): set ppo.seed", key=key
            )
    merged = {**base.to_dict(), **overrides}
    return PPOConfig.from_dict(merged)


# ----------------------------------------------------------------------------- the run


class RunConfig(Config):
    """The full config of a training run, as saved to the run directory's config.yaml.

    ``model`` and ``env`` are null in the config of a run whose agents and env were built in
    Python (they cannot be rebuilt from a file).
    """

    trainer: TrainerConfig = Field(
        default_factory=TrainerConfig, description="Run length, saving, logging and device."
    )
    ppo: PPOConfig = Field(default_factory=PPOConfig, description="PPO update hyperparameters.")
    model: ModelConfig | None = Field(
        default_factory=MLPConfig,
        description="Policy and value networks; null = built in Python.",
    )
    env: EnvConfig | None = Field(
        default_factory=EnvConfig,
        description="Environment and vectorisation; null = built in Python.",
    )
    policies: dict[str, PolicyConfig] = Field(
        {},
        description="Several policies, by name (see PolicyConfig); {} = one policy shared by "
        "every agent.",
    )

    _model_section = field_validator("model", mode="wrap")(_model_section)

    @model_validator(mode="after")
    def _check_policies(self) -> RunConfig:
        """Names that can name checkpoint directories, each prefix taken once, PPO keys that
        exist, snapshots between a learning and a frozen policy, and stop targets of known
        policies."""
        owners: dict[str, str] = {}
        for name, policy in self.policies.items():
            try:
                check_policy_name(name)
            except ValueError as exc:
                raise custom_error(str(exc), f"policies.{name}") from None
            prefixes = policy.prefixes(name)
            if not prefixes:
                raise custom_error(
                    "expected at least one agent-name prefix ('' for every agent)",
                    f"policies.{name}.agents",
                )
            for prefix in prefixes:
                if prefix in owners:
                    raise custom_error(
                        f"prefix {prefix!r} is taken by policy {owners[prefix]!r} already; a "
                        "prefix sends its agents to one policy",
                        f"policies.{name}.agents",
                    )
                owners[prefix] = name
            try:
                policy_ppo(self.ppo, policy.ppo)
            except ConfigError as exc:
                raise custom_error(exc.problem, join_key(f"policies.{name}.ppo", exc.key)) from None
            self._check_snapshot(name, policy)
        self._check_stop_targets()
        return self

    def _check_snapshot(self, name: str, policy: PolicyConfig) -> None:
        source = policy.snapshot_of
        key = f"policies.{name}.snapshot_of"
        if source is None:
            return
        if source not in self.policies:
            raise custom_error(
                f"names no policy: {show(source)}{suggest(source, self.policies)} (policies: "
                f"{', '.join(self.policies)})",
                key,
            )
        if source == name or self.policies[source].frozen:
            raise custom_error(
                f"must name a learning policy to copy, not {show(source)} (frozen or itself)", key
            )
        if not policy.frozen:
            raise custom_error(
                "a policy that takes snapshots must be frozen: true (otherwise it learns, and "
                "each snapshot overwrites what it learned)",
                key,
            )
        if self.trainer.snapshot_every is None:
            raise custom_error(
                "needs trainer.snapshot_every: how many iterations between snapshots", key
            )

    def _check_stop_targets(self) -> None:
        targets = self.trainer.stop_at_return
        if not isinstance(targets, dict) or not self.policies:
            return  # without a policies: section the trainer checks them against its group
        known = list(self.policies)
        for policy in targets:
            if policy not in known:
                raise custom_error(
                    f"names no policy: {show(policy)}{suggest(policy, known)} (policies: "
                    f"{', '.join(known)})",
                    f"trainer.stop_at_return.{policy}",
                )

    @property
    def built_in_python(self) -> bool:
        """A run whose group and env were built in Python: it cannot be rebuilt from this
        config, only resumed in Python."""
        return self.env is None or self.model is None

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON Schema of a run config file, for editors that check YAML as you type; the
        ``model`` section is one of the registered model configs."""
        schema = cls.model_json_schema()
        definitions = schema.setdefault("$defs", {})
        variants = []
        for name, config_class in sorted(_MODEL_CONFIGS.items()):
            sub = config_class.model_json_schema(ref_template="#/$defs/{model}")
            definitions.update(sub.pop("$defs", {}))
            sub["properties"] = {"class": {"const": name, "type": "string"}, **sub["properties"]}
            if name != DEFAULT_MODEL:
                sub["required"] = ["class", *sub.get("required", [])]
            definitions[config_class.__name__] = sub
            variants.append({"$ref": f"#/$defs/{config_class.__name__}"})
        model = {"anyOf": [{"oneOf": variants}, {"type": "null"}]}
        schema["properties"]["model"] = {
            "description": cls.model_fields["model"].description,
            **model,
        }
        definitions["PolicyConfig"]["properties"]["model"] = {
            "description": PolicyConfig.model_fields["model"].description,
            **model,
        }
        return schema
