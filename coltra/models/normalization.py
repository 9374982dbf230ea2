"""Running statistics that normalise a model's inputs and value targets.

:class:`RunningMeanStd` keeps the exact mean and variance of everything it was updated with
(Chan et al.'s parallel update, in float64), as module buffers: they are saved with the
model's weights, loaded bit for bit, and change only when :meth:`RunningMeanStd.update`
is called, which the PPO update does once per iteration (a loaded or evaluated agent acts
with frozen statistics).

MAPPO's ``ValueNorm`` (Yu et al. 2022, ``onpolicy/utils/valuenorm.py``) is a debiased
exponential average with beta = 0.99999, i.e. practically this cumulative average over any
run of fewer than ~10^5 updates; PopArt (van Hasselt et al. 2016) would also rescale the
value head to keep its outputs when the statistics move, which this does not.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RunningMeanStd"]


class RunningMeanStd(nn.Module):
    """Mean and variance of a stream of ``[batch, *shape]`` tensors.

    ``normalize(x) = clamp((x - mean) / std, -clip, clip)`` and ``denormalize(y) = y * std
    + mean`` with ``std = sqrt(max(var, min_var) + eps)``. Before the first update both are
    the identity (nothing is known yet; in particular nothing is clipped). ``min_var`` keeps
    a (nearly) constant quantity from being blown up (MAPPO's ValueNorm floors the variance
    at 1e-2).
    """

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(
        self,
        shape: tuple[int, ...] = (),
        epsilon: float = 1e-8,
        clip: float | None = None,
        min_var: float = 0.0,
    ) -> None:
        super().__init__()
        self.shape, self.epsilon, self.clip = tuple(shape), epsilon, clip
        self.min_var = min_var
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Add the rows of ``x`` (``[batch, *shape]``) to the statistics."""
        x = x.detach().to(self.mean.device, torch.float64).reshape(-1, *self.shape)
        if x.shape[0] == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        batch_count = float(x.shape[0])
        total = self.count + batch_count
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * batch_count
        m2 += delta**2 * self.count * batch_count / total
        self.mean.add_(delta * batch_count / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def std(self) -> torch.Tensor:
        return torch.sqrt(self.var.clamp(min=self.min_var) + self.epsilon)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not self.count.item():
            return x
        mean, std = self.mean.to(x.dtype), self.std().to(x.dtype)
        y = (x - mean) / std
        return y if self.clip is None else y.clamp(-self.clip, self.clip)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        if not self.count.item():
            return y
        return y * self.std().to(y.dtype) + self.mean.to(y.dtype)

    def extra_repr(self) -> str:
        return f"shape={list(self.shape)}, count={int(self.count.item())}"
