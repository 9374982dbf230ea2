"""Action distributions beyond torch's own: a lighter categorical, several categoricals,
several Bernoullis (MultiBinary), a joint distribution over the parts of a Dict or Tuple
action, and a Beta on [low, high].

Every distribution here answers the four questions an agent asks: ``sample()``,
``log_prob(action)`` and ``entropy()`` summed over action dimensions to one number per
batch item (``[batch]``), and ``mode`` for deterministic actions. ``batch_shape +
event_shape`` is the shape of one sample (e.g. ``[batch, dims]``).
"""

from __future__ import annotations

import torch
from torch.distributions import Beta, Distribution, Normal
from torch.distributions import Categorical as TorchCategorical

__all__ = [
    "Categorical",
    "DiagNormal",
    "JointDistribution",
    "MultiBernoulli",
    "MultiCategorical",
    "ScaledBeta",
    "distribution_mode",
    "exponential_draws",
    "normalised_logits",
]


class Categorical(TorchCategorical):
    """torch's ``Categorical(logits=...)`` with fewer tensor ops on the acting hot path.

    The logits are normalised with one ``log_softmax`` (torch: ``logsumexp`` and a
    subtraction), and ``log_prob`` of one action per batch item is one ``gather`` (torch
    broadcasts the actions against the logits first). One action per batch row is drawn
    with the exponential race that ``torch.multinomial`` itself runs for one sample:
    ``argmax(p / E)`` with ``E ~ Exp(1)`` picks action ``k`` with probability ``p[k]``;
    done here, it skips multinomial's input checks. Same values and, under the same seed
    and below 1,024 race numbers (see below), the same samples as torch's Categorical;
    other shapes fall back to torch's code. At a
    batch of 8, init + sample + log_prob take a third of torch's time (issue 7).

    For many rows of few actions (a crowd), torch's ``softmax`` and ``log_softmax`` along
    the last axis are slow on the CPU (1,024 x 5: 124 and 83 us, against 6 us for an
    ``exp``): the probabilities are the exp of the normalised logits, and those are
    :func:`normalised_logits`. Their race draws its exponentials as ``-log(U)``
    (:func:`exponential_draws`): the same law, another stream of numbers than torch's.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = normalised_logits(logits)
        self._param = self.logits
        self._num_events = logits.shape[-1]
        Distribution.__init__(self, self.logits.shape[:-1], validate_args=False)

    @property
    def probs(self) -> torch.Tensor:
        """``[batch, actions]``: the logits are normalised, so exp is the softmax."""
        return self.logits.exp()

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        if len(sample_shape) == 0 and self.logits.dim() == 2:  # one action per batch row
            probs = self.probs
            return torch.argmax(probs / exponential_draws(probs), dim=-1)
        return super().sample(torch.Size(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape == self.batch_shape:
            return self.logits.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)
        return super().log_prob(value)


#: ``normalised_logits`` takes the transposed path from this many rows, for fewer than
#: ``_FEW_ACTIONS`` actions (torch's row-wise kernel is then the slow one).
_MANY_ROWS, _FEW_ACTIONS = 256, 16


def normalised_logits(logits: torch.Tensor) -> torch.Tensor:
    """``torch.log_softmax(logits, -1)`` (to within a rounding step), faster for
    ``[rows, actions]`` with many rows and few actions: torch's CPU kernel along the last
    axis is slow there (1,024 x 5: 83 us), along the first axis of the transposed copy it
    is vectorised over the rows (27 us with the copies; 8,192 x 9: 1.4 ms against
    0.37 ms, forward and backward 2.3 against 0.5 ms). Bit for bit the same where the
    vector width divides the rows, one rounding step apart in the remainder; from 16
    actions torch's own kernel is both the faster and the one used."""
    shape = logits.shape
    if (  # the cheapest tests first: this runs at every acting step
        len(shape) != 2
        or shape[0] < _MANY_ROWS
        or shape[1] >= _FEW_ACTIONS
        or logits.device.type != "cpu"
        or torch.jit.is_tracing()
    ):
        return torch.log_softmax(logits, dim=-1)
    # contiguous at the end: later ops (the sampling race) fill memory in the same order
    return torch.log_softmax(logits.T.contiguous(), dim=0).T.contiguous()


#: ``exponential_draws`` takes ``-log(U)`` from this many numbers.
_MANY_DRAWS = 1024


def exponential_draws(like: torch.Tensor) -> torch.Tensor:
    """Exp(1) draws of ``like``'s shape, none exactly 0 (a 0 would make 0 / 0 of a masked
    action's probability) or infinite. Below ``_MANY_DRAWS`` numbers, torch's
    ``exponential_`` (the stream ``torch.multinomial`` draws, so torch's Categorical
    samples the same actions for a seed); from there ``-log(U)`` of uniform draws, which
    is the same law and 4x faster on the CPU, where ``exponential_`` is not vectorised
    (1,024 x 5: 115 against ~30 us)."""
    if like.numel() < _MANY_DRAWS or like.device.type != "cpu":
        return torch.empty_like(like).exponential_().clamp_min_(1e-30)
    # U from [2^-100, 1): -log(U) in (0, 69.3], never inf (a 0 would make every action 0)
    return torch.rand_like(like).clamp_min_(2.0**-100).log_().neg_()


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
        self.parts = [Categorical(part) for part in torch.split(logits, self.nvec, -1)]
        super().__init__(
            batch_shape=logits.shape[:-1],
            event_shape=torch.Size([len(self.nvec)]),
            validate_args=False,
        )

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
        return torch.stack([part.logits.argmax(-1) for part in self.parts], dim=-1)


class MultiBernoulli(Distribution):
    """Independent yes/no choices, one per MultiBinary dimension, from one logit each:
    ``[batch, dims]`` samples of 0 and 1 (int64, as the env takes them), log-probabilities
    and entropies summed over the dimensions. The mode is 1 where the logit is positive."""

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits
        super().__init__(
            batch_shape=logits.shape[:-1], event_shape=logits.shape[-1:], validate_args=False
        )

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.logits.shape
        uniform = torch.rand(shape, dtype=self.logits.dtype, device=self.logits.device)
        return (uniform < torch.sigmoid(self.logits)).long()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # log sigmoid(l) for a 1, log sigmoid(-l) for a 0: -softplus(-l) and -softplus(l).
        sign = 2.0 * value.to(self.logits.dtype) - 1.0
        return -torch.nn.functional.softplus(-sign * self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:
        p = torch.sigmoid(self.logits)
        # -p log p - (1 - p) log(1 - p), written with softplus to stay finite at large |l|.
        return (
            p * torch.nn.functional.softplus(-self.logits)
            + (1 - p) * torch.nn.functional.softplus(self.logits)
        ).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return (self.logits > 0).long()


class JointDistribution(Distribution):
    """Independent parts of a Dict or Tuple action, each a distribution over its slots of
    one ``[batch, slots]`` float action (whole numbers in a categorical part's slots):
    samples side by side; log-probability and entropy the sums of the parts'.

    ``parts`` holds ``(distribution, slots, kind)``: ``kind`` is ``one`` for a categorical
    with one slot (Discrete), ``ints`` for several integer slots (MultiDiscrete,
    MultiBinary), ``floats`` for a Box.
    """

    arg_constraints: dict = {}

    def __init__(self, parts: list[tuple[Distribution, slice, str]]) -> None:
        self.parts = parts
        # One batch axis (a DiagNormal part counts its dimensions in its batch shape).
        batch = parts[0][0].batch_shape[:1]
        slots = parts[-1][1].stop
        super().__init__(batch_shape=batch, event_shape=torch.Size([slots]), validate_args=False)

    @staticmethod
    def _slots(value: torch.Tensor) -> torch.Tensor:
        return value.reshape(value.shape[0], -1).float()

    @staticmethod
    def _part(value: torch.Tensor, slots: slice, kind: str) -> torch.Tensor:
        piece = value[..., slots]
        if kind == "one":
            return piece.squeeze(-1).long()
        return piece.long() if kind == "ints" else piece

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        if len(sample_shape):
            raise NotImplementedError("JointDistribution draws one action per batch row")
        return torch.cat([self._slots(part.sample()) for part, _, _ in self.parts], -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logprobs = [
            part.log_prob(self._part(value, slots, kind)) for part, slots, kind in self.parts
        ]
        return torch.stack(logprobs, -1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.stack([part.entropy() for part, _, _ in self.parts], -1).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        return torch.cat([self._slots(distribution_mode(part)) for part, _, _ in self.parts], -1)


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
        super().__init__(
            batch_shape=alpha.shape[:-1], event_shape=alpha.shape[-1:], validate_args=False
        )

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
    if isinstance(distribution, TorchCategorical):
        return distribution.logits.argmax(-1)  # normalised logits: same argmax as probs
    if isinstance(distribution, MultiCategorical | MultiBernoulli | ScaledBeta | JointDistribution):
        return distribution.mode
    return distribution.mean
