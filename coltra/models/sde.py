"""Generalized state-dependent exploration (gSDE; Raffin, Kober and Stulp 2021).

A Gaussian policy with a fixed std explores with fresh, independent noise at every step,
which a physical system filters out (a motor jitters in place). gSDE makes the noise a
function of the state instead: the action is ``mean(s) + z(s) @ W``, with ``z(s)`` the
policy network's last hidden features ``[latent]`` (detached, as SB3's default
``learn_features=False``) and ``W`` a ``[latent, actions]`` matrix of independent
``N(0, sigma_ij^2)`` entries, drawn per env row and kept for ``sde_every`` steps, so
nearby states get nearby noise and a row explores along a smooth trajectory.

Given ``z``, the action is Gaussian with per-dimension variance
``sum_i z_i^2 sigma_ij^2``: that is the distribution PPO's log-probabilities and entropy
use (:func:`sde_distribution`), whichever ``W`` produced the sample. ``sigma = exp(log_std)``
is learned, one entry per (feature, action) pair (SB3's ``full_std=True``).

Collection draws ``W`` (:class:`ExplorationNoise`, one per policy, for the duration of
a ``collect()`` call); elsewhere (stochastic evaluation, ``act`` from Python) samples are
the same Gaussian with independent noise, i.e. gSDE with a new ``W`` at every step.
"""

from __future__ import annotations

import torch

from coltra.models.distributions import DiagNormal

__all__ = ["SDE_EPSILON", "ExplorationNoise", "SDENormal", "sde_distribution"]

#: Added to the variance (SB3's epsilon): a row whose features are all zero (an absent
#: agent's zero observation through a network without biases) keeps a valid distribution.
SDE_EPSILON = 1e-6


class SDENormal(DiagNormal):
    """The Gaussian of a gSDE policy; with ``noise`` ``[batch, actions]`` (``z @ W`` of the
    rows' exploration matrices) a sample is ``mean + noise`` instead of a fresh draw."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, noise: torch.Tensor | None) -> None:
        super().__init__(loc, scale, validate_args=False)
        self.noise = noise

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        if self.noise is not None and len(sample_shape) == 0:
            with torch.no_grad():
                return self.loc + self.noise
        return super().sample(torch.Size(sample_shape))


class ExplorationNoise:
    """The exploration matrices of ``rows`` env rows, drawn anew every ``every`` steps.

    Stores unit normal draws ``eps`` ``[rows, latent, actions]``; ``W = eps * sigma``
    with the policy's current ``sigma``, so the noise always matches the distribution
    the log-probabilities are computed with."""

    def __init__(self, rows: int, latent: int, actions: int, every: int, device: torch.device):
        if every < 1:
            raise ValueError(f"sde_every must be >= 1 step, got {every}")
        self.rows, self.every = rows, every
        self.shape = (rows, latent, actions)
        self.device = device
        self.steps = 0
        self.eps = torch.zeros(self.shape, device=device)

    def before_step(self) -> None:
        """Called once per collection step, before acting: new matrices every ``every``
        steps (the first step included)."""
        if self.steps % self.every == 0:
            self.eps = torch.randn(self.shape, device=self.device)
        self.steps += 1

    def noise(self, latent: torch.Tensor, weights_std: torch.Tensor) -> torch.Tensor | None:
        """``z @ W`` per row ``[rows, actions]``; None for a batch of other rows (a value
        or training pass, or a part of the rows), which then samples plain Gaussian noise."""
        if latent.shape[0] != self.rows:
            return None
        return torch.bmm(latent.unsqueeze(1), self.eps * weights_std).squeeze(1)


def sde_distribution(
    mean: torch.Tensor,  # [batch, actions]
    latent: torch.Tensor,  # [batch, latent], detached
    log_std: torch.Tensor,  # [latent, actions]
    exploration: ExplorationNoise | None,
) -> SDENormal:
    """The action distribution of a gSDE policy: std ``sqrt(z^2 @ sigma^2 + eps)``."""
    weights_std = log_std.exp()
    variance = latent.pow(2) @ weights_std.pow(2)
    noise = None if exploration is None else exploration.noise(latent, weights_std.detach())
    return SDENormal(mean, torch.sqrt(variance + SDE_EPSILON), noise)
