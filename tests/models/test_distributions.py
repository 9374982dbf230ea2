"""The action distributions on hand-worked numbers."""

from __future__ import annotations

import math

import torch
from torch.distributions import Categorical, Normal

from coltra.models.distributions import (
    DiagNormal,
    MultiCategorical,
    ScaledBeta,
    distribution_mode,
)


def test_multicategorical_is_a_sum_of_independent_categoricals() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25, 0.1, 0.9]]))
    distribution = MultiCategorical(logits, nvec=[3, 2])
    action = torch.tensor([[0, 1]])
    torch.testing.assert_close(distribution.log_prob(action), torch.log(torch.tensor([0.5 * 0.9])))
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) - (
        0.1 * math.log(0.1) + 0.9 * math.log(0.9)
    )
    torch.testing.assert_close(distribution.entropy(), torch.tensor([entropy]))
    assert distribution.mode.tolist() == [[0, 1]]
    assert distribution_mode(distribution).tolist() == [[0, 1]]


def test_diag_normal_sums_over_dimensions() -> None:
    loc, scale = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    distribution = DiagNormal(loc, scale)
    value = torch.ones(2, 3)
    expected = Normal(loc, scale).log_prob(value).sum(-1)
    torch.testing.assert_close(distribution.log_prob(value), expected)
    assert distribution.entropy().shape == (2,)
    assert torch.equal(distribution_mode(distribution), loc)


def test_scaled_beta_maps_the_unit_interval_to_the_bounds() -> None:
    # alpha = beta = 1 is uniform on [low, high]: density 1 / width, entropy log(width).
    ones = torch.ones(1, 2)
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 0.5])
    distribution = ScaledBeta(ones, ones, low, high)
    value = torch.tensor([[1.0, 0.25]])
    torch.testing.assert_close(distribution.log_prob(value), -torch.log(torch.tensor([4.0 * 0.5])))
    torch.testing.assert_close(distribution.entropy(), torch.log(torch.tensor([4.0 * 0.5])))
    torch.testing.assert_close(distribution.mean, torch.tensor([[0.0, 0.25]]))
    samples = distribution.sample((1000,))
    assert bool(((samples >= low) & (samples <= high)).all())


def test_mode_of_a_categorical_is_the_argmax() -> None:
    distribution = Categorical(logits=torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]]))
    assert distribution_mode(distribution).tolist() == [1, 0]
