"""A speed path: acting on a few rows with numpy instead of torch.

At acting sizes (a few env copies) torch's fixed cost per op, a few microseconds on the
2-core CPU, is most of a policy call: a fused 64x64 MLPModel on 8 CartPole rows spends
~55 us in its forward pass and ~40 us more in the distribution, for a few thousand
multiply-adds. numpy's cost per op is a fraction of torch's, so the same arithmetic on numpy
views of the model's own parameters is 2-2.5x faster up to a few hundred rows, and about
even from 512 (measured on the 2-core CPU, one thread, inputs 4 and 147, hidden 64x64,
one policy call with values: 8 rows 143 -> 61 us, 32 rows 134 -> 54 us, 128 rows
196 -> 108 us, 512 rows 386 -> 340 us; CartPole's whole training loop +30 %).

:class:`NumpyActor` computes what ``MLPModel.forward`` computes for the plain case, which is
also the common one: the fused hidden layers (:class:`~coltra.models.fused.TwinMLP`), a
tanh or relu activation, one Categorical head, values from the value head, one flat
observation field. The numbers are torch's to within float rounding (numpy's and torch's
matrix products and log-softmax round differently), not bit for bit. Samples come from
torch's random stream, drawn as the torch path draws them
(:func:`~coltra.models.distributions.exponential_draws`, the race
:class:`~coltra.models.distributions.Categorical` runs), so a seed gives the same actions
either way, except where two choices are within rounding of a tie. The parameters are
views, not copies: an optimizer step is seen at the next call, and a parameter or layer
moved, converted or replaced (``model.to``, ``load_state_dict(assign=True)``, a new head)
is noticed and the views rebuilt; copies and pickles of the model leave them behind.
``MLPModel.act_numpy`` says which models and batches qualify; everything else (other
layers, activations, hooks, patched methods, devices, dtypes), and any batch whose logits
are not finite, takes the torch path, with its errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from coltra.models import distributions
from coltra.models.activations import tanh
from coltra.models.fused import StackedLinear

__all__ = ["NUMPY_ACTIVATIONS", "NUMPY_MAX_ROWS", "NumpyActivation", "NumpyActor"]

#: Batches of up to this many rows act through numpy (about even with torch from 512).
NUMPY_MAX_ROWS = 256

NumpyActivation = Callable[[np.ndarray], np.ndarray]


def _tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x, out=x)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0, out=x)


#: The hidden-layer activations the numpy pass has: the torch-side function (as the
#: TwinMLP holds it) -> its numpy twin, in place. Any other activation: the torch path.
NUMPY_ACTIVATIONS: dict[Callable[[torch.Tensor], torch.Tensor], NumpyActivation] = {
    tanh: _tanh,
    torch.relu: _relu,
}


class NumpyActor:
    """The fused MLP's acting pass in numpy, on views of its parameters.

    ``layers``: the TwinMLP's :class:`~coltra.models.fused.StackedLinear` layers (``weight
    [2, in, out]``, ``bias [2, 1, out]``, policy network first); the heads are
    ``nn.Linear``s. Each module's ``weight`` and ``bias`` are read through ``_parameters``
    (the fast way: this runs at every step). The numpy arrays share the parameters' memory
    (``detach().numpy()`` makes views), so in-place updates need no rebuild.
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        policy_head: nn.Module,
        value_head: nn.Module,
        activation: NumpyActivation,
    ) -> None:
        if not self.usable(layers, policy_head, value_head):
            raise ValueError(
                "NumpyActor needs StackedLinear layers and nn.Linear heads with float32 "
                "weights and biases on the CPU"
            )
        self.modules = (*layers, policy_head, value_head)
        tensors = self.parameters()
        assert tensors is not None  # usable() checked they are there
        self.key = self.storage_key(tensors)
        arrays = [t.detach().numpy() for t in tensors]
        self.layers = [(arrays[2 * k], arrays[2 * k + 1]) for k in range(len(layers))]
        policy_w, policy_b, value_w, value_b = arrays[2 * len(layers) :]
        self.policy_w, self.policy_b = policy_w.T, policy_b  # [in, actions], [actions]
        self.value_w, self.value_b = value_w.T, value_b  # [in, 1], [1]
        self.activation = activation

    def parameters(self) -> list[torch.Tensor] | None:
        """The modules' weights and biases as they are now, in the order of the pass; None
        when one is gone (a parametrization or pruning renamed it)."""
        tensors: list[torch.Tensor] = []
        for module in self.modules:
            found = module._parameters
            weight, bias = found.get("weight"), found.get("bias")
            if weight is None or bias is None:
                return None
            tensors += (weight, bias)
        return tensors

    @staticmethod
    def storage_key(tensors: Sequence[torch.Tensor]) -> tuple[int, ...]:
        """Where each parameter's numbers live: a changed key means the views are stale (a
        parameter moved, converted or replaced; the old ones are held here, so their
        memory cannot be reused by a new one)."""
        return tuple(t.data_ptr() for t in tensors)

    def is_current(self) -> bool:
        tensors = self.parameters()
        return tensors is not None and self.storage_key(tensors) == self.key

    @classmethod
    def build(
        cls,
        layers: Sequence[nn.Module],
        policy_head: nn.Module,
        value_head: nn.Module,
        activation: NumpyActivation,
    ) -> NumpyActor | None:
        """An actor over these modules, or None when they are not :meth:`usable`."""
        try:
            return cls(layers, policy_head, value_head, activation)
        except ValueError:  # not usable (the one check, in __init__)
            return None

    @staticmethod
    def usable(layers: Sequence[nn.Module], policy_head: nn.Module, value_head: nn.Module) -> bool:
        """Whether these are the plain layers, with float32 CPU weights and biases that numpy
        can view."""
        if any(type(layer) is not StackedLinear for layer in layers) or not all(
            type(head) is nn.Linear for head in (policy_head, value_head)
        ):
            return False
        return all(
            t is not None and t.device.type == "cpu" and t.dtype == torch.float32
            for module in (*layers, policy_head, value_head)
            for t in (module._parameters.get("weight"), module._parameters.get("bias"))
        )

    def act(
        self, x: np.ndarray, deterministic: bool, get_value: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """``(actions int64, log-probabilities float32, values float32 or None)``, each
        ``[rows]``, for features ``x`` ``[rows, features]`` float32; None when a logit is
        not finite (the torch path then acts, and reports it as it always has)."""
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite: the torch path
            return self._act(x, deterministic, get_value)

    def _act(
        self, x: np.ndarray, deterministic: bool, get_value: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        h: np.ndarray = x
        for weight, bias in self.layers:
            h = np.matmul(h, weight)  # [2, rows, out]: both networks, as the TwinMLP
            h += bias
            h = self.activation(h)
        if self.layers:
            policy_x, value_x = h[0], h[1]
        else:
            policy_x = value_x = h
        logits = policy_x @ self.policy_w
        logits += self.policy_b
        if not np.isfinite(logits).all():
            return None
        # log_softmax, as torch computes it: x - max - log(sum(exp(x - max)))
        logits -= logits.max(-1, keepdims=True)
        logits -= np.log(np.exp(logits).sum(-1, keepdims=True))
        if deterministic:
            actions = logits.argmax(-1)
        else:
            probs = np.exp(logits)
            # through the module: the torch path's draws, even where they are patched
            draws = distributions.exponential_draws(torch.from_numpy(probs)).numpy()
            actions = (probs / draws).argmax(-1)
        logprob = logits[np.arange(len(logits)), actions]
        value = None
        if get_value:
            value = (value_x @ self.value_w)[:, 0]
            value += self.value_b
        return actions.astype(np.int64, copy=False), logprob, value
