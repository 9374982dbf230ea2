"""Model classes by name: what a config's ``model.class`` and a checkpoint may name.

Nothing is ever imported by a name from a file: a name is looked up here, and only classes
registered in this process (Coltra's own, and yours through :func:`register_model`) exist.
"""

from __future__ import annotations

from typing import TypeVar

import gymnasium as gym

from coltra.configs import ConfigError, ModelConfig, register_model_config
from coltra.models.base import BaseModel
from coltra.models.mlp import MLPModel

__all__ = ["build_model", "model_class", "model_name", "register_model", "registered_models"]

M = TypeVar("M", bound=type[BaseModel])

_MODELS: dict[str, type[BaseModel]] = {}


def register_model(model_class: M, name: str | None = None) -> M:
    """Make ``model_class`` trainable from a config (``model: {class: <name>, ...}``) and
    loadable from checkpoints. Usable as a decorator::

        @register_model
        class TinyModel(BaseModel):
            config_class = TinyConfig   # a ModelConfig subclass: the keys of model:
            def __init__(self, config, observation_space=None, action_space=None): ...

    ``name`` defaults to the class name. The class is built as ``model_class(config,
    observation_space=..., action_space=...)`` and saved with ``describe()`` /
    ``from_description()`` (BaseModel's defaults keep ``self.config`` and the spaces).
    """
    if isinstance(model_class, str):  # the form before issue 12: (name, from_description)
        raise TypeError(
            f"register_model takes the model class now: register_model(MyModel) or "
            f"register_model(MyModel, name={model_class!r}); got the name {model_class!r}"
        )
    if not (isinstance(model_class, type) and issubclass(model_class, BaseModel)):
        raise TypeError(
            f"register_model takes a coltra.models.BaseModel subclass, got {model_class!r}"
        )
    name = model_class.__name__ if name is None else name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a model name must be a Python identifier, got {name!r}")
    config_class = model_class.config_class
    if config_class is None or not (
        isinstance(config_class, type) and issubclass(config_class, ModelConfig)
    ):
        raise TypeError(
            f"{model_class.__name__}.config_class must be a coltra.configs.ModelConfig subclass "
            f"(the keys of its model: section), got {config_class!r}"
        )
    current = _MODELS.get(name)
    if current is not None and _qualified(current) != _qualified(model_class):
        raise ValueError(
            f"model name {name!r} is taken by {_qualified(current)}; register "
            f"{_qualified(model_class)} under another name (register_model(cls, name=...))"
        )
    register_model_config(name, config_class)
    _MODELS[name] = model_class
    return model_class


def registered_models() -> list[str]:
    return sorted(_MODELS)


def model_class(name: str) -> type[BaseModel]:
    """The class registered as ``name``; KeyError naming the registered ones otherwise."""
    try:
        return _MODELS[name]
    except KeyError:
        raise KeyError(
            f"no model class {name!r} is registered (registered: {', '.join(registered_models())}; "
            "register yours with coltra.agents.register_model)"
        ) from None


def model_name(model: BaseModel) -> str:
    """The name ``model``'s class is registered under (its class name if it is not)."""
    for name, cls in _MODELS.items():
        if type(model) is cls:
            return name
    return type(model).__name__


def build_model(
    config: ModelConfig, observation_space: gym.Space, action_space: gym.Space
) -> BaseModel:
    """The model a ``model:`` section describes, sized for these spaces. Sizes in the config
    that contradict the spaces are a ConfigError naming the section."""
    name = config.section_name
    if name is None or name not in _MODELS:
        raise ConfigError(
            f"{type(config).__name__} is not the config of a registered model", key="model"
        )
    try:
        return _MODELS[name](config, observation_space=observation_space, action_space=action_space)
    except (TypeError, ValueError) as exc:  # e.g. sizes that contradict the env's spaces
        raise ConfigError(str(exc), key="model") from None


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


register_model(MLPModel)
