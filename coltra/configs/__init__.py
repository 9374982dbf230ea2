"""Typed, documented, immutable configs: one convention for every part of Coltra.

- :mod:`coltra.configs.base`: the :class:`Config` base class (pydantic v2) and its errors;
- :mod:`coltra.configs.sections`: the configs of a run (trainer, PPO, model, env);
- :mod:`coltra.configs.finish`: the one step that finishes a run's config before it starts;
- :mod:`coltra.configs.yaml_io`: config files, read safely.
"""

from coltra.configs.base import Config, FieldInfo, Float, Int, List, YamlValue, type_name
from coltra.configs.errors import ConfigError
from coltra.configs.finish import (
    check_same_setup,
    draw_seed,
    extend_run_config,
    finish_run_config,
    resume_run_config,
)
from coltra.configs.sections import (
    DEFAULT_MODEL,
    EnvConfig,
    MLPConfig,
    ModelConfig,
    PolicyConfig,
    PPOConfig,
    RunConfig,
    TrainerConfig,
    WrapperConfig,
    policy_ppo,
    register_model_config,
)
from coltra.configs.yaml_io import load_yaml_mapping

__all__ = [
    "DEFAULT_MODEL",
    "Config",
    "ConfigError",
    "EnvConfig",
    "FieldInfo",
    "Float",
    "Int",
    "List",
    "MLPConfig",
    "ModelConfig",
    "PPOConfig",
    "PolicyConfig",
    "RunConfig",
    "TrainerConfig",
    "WrapperConfig",
    "YamlValue",
    "check_same_setup",
    "draw_seed",
    "extend_run_config",
    "finish_run_config",
    "load_yaml_mapping",
    "policy_ppo",
    "register_model_config",
    "resume_run_config",
    "type_name",
]
