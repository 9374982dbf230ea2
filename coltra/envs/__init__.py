"""Multi-agent environments: the interface, Gymnasium and PettingZoo adapters, probe envs,
a batch-native crowd, and vectorisation."""

from coltra.envs import registry
from coltra.envs.base import (
    EnvCrashedError,
    MultiAgentEnv,
    StepBatch,
    parse_agent_name,
    vec_agent_name,
)
from coltra.envs.crowd import CrowdEnv
from coltra.envs.gym_env import MultiGymEnv
from coltra.envs.pettingzoo_env import PettingZooEnv
from coltra.envs.registry import allow_module, register
from coltra.envs.vector import InProcessVecEnv, SubprocVecEnv, VecEnv, make_vec_env

__all__ = [
    "CrowdEnv",
    "EnvCrashedError",
    "InProcessVecEnv",
    "MultiAgentEnv",
    "MultiGymEnv",
    "PettingZooEnv",
    "StepBatch",
    "SubprocVecEnv",
    "VecEnv",
    "allow_module",
    "make_vec_env",
    "parse_agent_name",
    "register",
    "registry",
    "vec_agent_name",
]
