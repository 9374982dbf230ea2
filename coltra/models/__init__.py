"""Neural network models: a policy and a value function over Observations."""

from coltra.models.base import BaseModel, State
from coltra.models.mlp import MLPModel
from coltra.models.registry import build_model, model_class, register_model, registered_models

__all__ = [
    "BaseModel",
    "MLPModel",
    "State",
    "build_model",
    "model_class",
    "register_model",
    "registered_models",
]
