"""Action distributions beyond torch's own: several categoricals, and a Beta on [low, high].

Every distribution here answers the four questions an agent asks: ``sample()``,
``log_prob(action)`` and ``entropy()`` summed over action dimensions to one number per
batch item (``[batch]``), and ``mode`` for deterministic actions.
"""

from __future__ import annotations

import torch
from torch.distributions import Beta, Categorical, Distribution, Normal

__all__ = ["DiagNormal", "MultiCategorical", "ScaledBeta", "distribution_mode"]


class DiagNormal(Normal):
    """A Normal with independent dimensions whose log-prob and entropy sum over the last
    axis: ``[batch, dims]`` samples, ``[batch]`` log-probabilities."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value).sum(-1)

    def entropy(self) -> torch.Tensor:
        return super().entropy().sum(-1)


class MultiCategorical(Distribution):
    """Independent categoricals, one per MultiDiscrete dimension (``nvec`` choices each)."""

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor, nvec: list[int]) -> None:
        self.nvec = list(nvec)
        self.parts = [
            Categorical(logits=part, validate_args=False)
            for part in torch.split(logits, self.nvec, -1)
        ]
        super().__init__(batch_shape=logits.shape[:-1], validate_args=False)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        return torch.stack([part.sample(sample_shape) for part in self.parts], dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [part.log_prob(value[..., i]) for i, part in enumerate(self.parts)], dim=-1
        ).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.stack([part.entropy() for part in self.parts], dim=-1).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return torch.stack([part.probs.argmax(-1) for part in self.parts], dim=-1)


class ScaledBeta(Distribution):
    """A Beta distribution stretched from [0, 1] to the action bounds [low, high].

    Bounded by construction, so actions never need clipping (Chou et al. 2017).
    """

    arg_constraints: dict = {}

    def __init__(
        self,
        alpha: torch.Tensor,
        beta: torch.Tensor,
        low: torch.Tensor,
        high: torch.Tensor,
    ) -> None:
        self.beta = Beta(alpha, beta, validate_args=False)
        self.low, self.scale = low, high - low
        super().__init__(batch_shape=alpha.shape[:-1], validate_args=False)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        return self.low + self.scale * self.beta.sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        unit = ((value - self.low) / self.scale).clamp(1e-6, 1 - 1e-6)
        return (self.beta.log_prob(unit) - torch.log(self.scale)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (self.beta.entropy() + torch.log(self.scale)).sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        return self.low + self.scale * self.beta.mean

    @property
    def mode(self) -> torch.Tensor:
        return self.mean


def distribution_mode(distribution: Distribution) -> torch.Tensor:
    """The action a deterministic agent takes: argmax for categoricals, mean otherwise."""
    if isinstance(distribution, Categorical):
        return distribution.probs.argmax(-1)
    if isinstance(distribution, MultiCategorical | ScaledBeta):
        return distribution.mode
    return distribution.mean
