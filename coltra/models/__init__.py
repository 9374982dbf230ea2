"""Neural network models: a policy and a value function over Observations."""

from coltra.models.base import BaseModel, State
from coltra.models.mlp import MLPModel

__all__ = ["BaseModel", "MLPModel", "State"]
