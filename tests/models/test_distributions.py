"""The action distributions on hand-worked numbers."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, Normal

from coltra.models.distributions import Categorical as FastCategorical
from coltra.models.distributions import (
    DiagNormal,
    JointDistribution,
    MultiBernoulli,
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


def test_multibernoulli_is_a_sum_of_independent_yes_no_choices() -> None:
    """Issue 17: MultiBinary actions. p = sigmoid(logit) per dimension, here 0.8 and 0.25."""
    logits = torch.log(torch.tensor([[0.8 / 0.2, 0.25 / 0.75]]))
    distribution = MultiBernoulli(logits)
    action = torch.tensor([[1, 0]])
    torch.testing.assert_close(distribution.log_prob(action), torch.log(torch.tensor([0.8 * 0.75])))
    entropy = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2)) - (
        0.25 * math.log(0.25) + 0.75 * math.log(0.75)
    )
    torch.testing.assert_close(distribution.entropy(), torch.tensor([entropy]))
    assert distribution_mode(distribution).tolist() == [[1, 0]]
    assert tuple(distribution.batch_shape + distribution.event_shape) == (1, 2)
    torch.manual_seed(0)
    samples = MultiBernoulli(logits.expand(20_000, 2)).sample()
    assert samples.dtype == torch.int64 and set(samples.unique().tolist()) == {0, 1}
    torch.testing.assert_close(
        samples.float().mean(0), torch.tensor([0.8, 0.25]), atol=0.01, rtol=0
    )
    # Finite far from 0: no log(0) at large logits.
    far = MultiBernoulli(torch.tensor([[200.0, -200.0]]))
    assert far.log_prob(torch.tensor([[1, 0]])).item() == 0.0
    assert torch.isfinite(far.log_prob(torch.tensor([[0, 1]]))).all()
    assert far.entropy().item() == 0.0


def test_a_joint_action_has_the_sum_of_its_parts_log_probabilities() -> None:
    """Issue 17: a Dict action {move: Discrete(3), flags: MultiBinary(2), aim: Box(1)} as
    one [batch, 4] row: slot 0 the move, 1-2 the flags, 3 the aim."""
    move = FastCategorical(torch.log(torch.tensor([[0.2, 0.5, 0.3]])))
    flags = MultiBernoulli(torch.log(torch.tensor([[0.8 / 0.2, 0.25 / 0.75]])))
    aim = DiagNormal(torch.tensor([[0.5]]), torch.tensor([[2.0]]))
    joint = JointDistribution(
        [(move, slice(0, 1), "one"), (flags, slice(1, 3), "ints"), (aim, slice(3, 4), "floats")]
    )
    action = torch.tensor([[1.0, 1.0, 0.0, -0.5]])
    normal = Normal(torch.tensor(0.5), torch.tensor(2.0))
    expected = math.log(0.5) + math.log(0.8 * 0.75) + normal.log_prob(torch.tensor(-0.5)).item()
    torch.testing.assert_close(joint.log_prob(action), torch.tensor([expected]))
    torch.testing.assert_close(joint.entropy(), move.entropy() + flags.entropy() + aim.entropy())
    assert tuple(joint.batch_shape + joint.event_shape) == (1, 4)
    assert distribution_mode(joint).tolist() == [[1.0, 1.0, 0.0, 0.5]]
    sample = joint.sample()
    assert sample.shape == (1, 4) and sample[0, 0] in (0.0, 1.0, 2.0)
    assert sample[0, 1:3].tolist() in ([0, 0], [0, 1], [1, 0], [1, 1])


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


def test_coltra_categorical_matches_torch_including_samples() -> None:
    logits = torch.randn(64, 5)
    logits[0, 2] = -math.inf  # an impossible action stays impossible
    ours, theirs = FastCategorical(logits), Categorical(logits=logits)
    torch.testing.assert_close(ours.logits, theirs.logits)
    torch.testing.assert_close(ours.entropy(), theirs.entropy())
    torch.manual_seed(3)
    expected = theirs.sample()
    torch.manual_seed(3)
    sample = ours.sample()
    assert torch.equal(sample, expected) and sample.shape == (64,) and sample[0] != 2
    torch.testing.assert_close(ours.log_prob(sample), theirs.log_prob(sample))
    # Other shapes go through torch's own code.
    assert ours.sample((3,)).shape == (3, 64)
    torch.testing.assert_close(ours.log_prob(torch.tensor([1])), theirs.log_prob(torch.tensor([1])))
    assert distribution_mode(ours).tolist() == distribution_mode(theirs).tolist()


def test_batch_and_event_shape_give_the_shape_of_an_action() -> None:
    """Agents check action shapes against ``batch_shape + event_shape``."""
    distributions = [
        (FastCategorical(torch.zeros(4, 3)), (4,)),
        (MultiCategorical(torch.zeros(4, 5), nvec=[3, 2]), (4, 2)),
        (DiagNormal(torch.zeros(4, 2), torch.ones(4, 2)), (4, 2)),
        (ScaledBeta(torch.ones(4, 2), torch.ones(4, 2), torch.zeros(2), torch.ones(2)), (4, 2)),
    ]
    for distribution, shape in distributions:
        assert tuple(distribution.batch_shape + distribution.event_shape) == shape
        assert tuple(distribution.sample().shape) == shape


@pytest.mark.parametrize("rows, actions", [(1024, 5), (300, 15), (256, 2), (512, 16)])
def test_many_rows_of_few_actions_give_torchs_values_and_samples(rows: int, actions: int) -> None:
    """A crowd's logits take the transposed log_softmax and exp for the probabilities
    (faster there): torch's normalised logits to within rounding and the same gradients.
    (512 x 16: torch's own kernel.)"""
    from coltra.models.distributions import normalised_logits

    logits = torch.randn(rows, actions, dtype=torch.float32) * 3
    logits[0, 1] = -math.inf  # an impossible action stays impossible
    torch.testing.assert_close(
        normalised_logits(logits), torch.log_softmax(logits, -1), rtol=1e-6, atol=1e-6
    )
    ours, theirs = FastCategorical(logits), Categorical(logits=logits)
    assert ours.logits.is_contiguous()
    torch.testing.assert_close(ours.logits, theirs.logits)  # torch: minus the logsumexp
    torch.testing.assert_close(ours.probs, theirs.probs, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.entropy(), theirs.entropy())
    sample = ours.sample()
    assert sample.shape == (rows,) and sample[0] != 1
    mine = logits.clone().requires_grad_()
    other = logits.clone().requires_grad_()
    FastCategorical(mine).log_prob(sample).sum().backward()
    Categorical(logits=other).log_prob(sample).sum().backward()
    assert mine.grad is not None and other.grad is not None
    torch.testing.assert_close(mine.grad, other.grad)


def test_a_large_batch_samples_each_action_with_its_probability() -> None:
    """From ``_MANY_DRAWS`` numbers the race draws -log(U), not torch's stream: the law is
    the categorical's (frequencies within 4 standard errors over 4,096 x 50 draws), and an
    impossible action is never drawn."""
    from coltra.models.distributions import exponential_draws

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    ours = FastCategorical(torch.log(probs).expand(4096, 5))
    torch.manual_seed(11)
    draws = torch.cat([ours.sample() for _ in range(50)])
    frequencies = torch.bincount(draws, minlength=5).double() / len(draws)
    error = (probs.double() * (1 - probs.double()) / len(draws)).sqrt()
    assert frequencies[4] == 0
    assert ((frequencies - probs.double()).abs() <= 4 * error + 1e-12).all(), frequencies
    race = exponential_draws(torch.empty(4096, 5))
    assert (race > 0).all() and torch.isfinite(race).all()
    assert abs(race.mean().item() - 1.0) < 0.03  # Exp(1): mean 1, std 1/sqrt(20480)
