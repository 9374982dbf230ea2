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
observation field. Its samples come from torch's random stream, drawn as the torch path
draws them (:func:`~coltra.models.distributions.exponential_draws`, the race
:class:`~coltra.models.distributions.Categorical` runs), so a seed gives the same actions
either way unless two race entries tie to the last bit. The parameters are views, not
copies: an optimizer step is seen at the next call, and a parameter moved or replaced
(``model.to``, ``load_state_dict(assign=True)``) is noticed and the views rebuilt.
``MLPModel.act_numpy`` says which models and batches qualify; everything else, and any
batch whose logits are not finite, takes the torch path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from coltra.models.distributions import exponential_draws

__all__ = ["NUMPY_ACTIVATIONS", "NUMPY_MAX_ROWS", "NumpyActor"]

#: Batches of up to this many rows act through numpy (about even with torch from 512).
NUMPY_MAX_ROWS = 256

#: The hidden-layer activations the numpy path has, by config name.
NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": lambda x: np.tanh(x, out=x),
    "relu": lambda x: np.maximum(x, 0.0, out=x),
}


class NumpyActor:
    """The fused MLP's acting pass in numpy, on views of its parameters.

    ``layers``: the TwinMLP's stacked layers (``weight [2, in, out]``, ``bias [2, 1, out]``,
    policy network first); the heads are ``nn.Linear``s. Each module's ``weight`` and
    ``bias`` are read through ``_parameters`` (the fast way: this runs at every step).
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        policy_head: nn.Module,
        value_head: nn.Module,
        activation: str,
    ) -> None:
        self.modules = (*layers, policy_head, value_head)
        if not self.usable(self.modules):
            raise ValueError("NumpyActor needs float32 weights and biases on the CPU")
        tensors = self.parameters()
        self.key = self.storage_key(tensors)
        arrays = [t.detach().numpy() for t in tensors]
        self.layers = [(arrays[2 * k], arrays[2 * k + 1]) for k in range(len(layers))]
        policy_w, policy_b, value_w, value_b = arrays[2 * len(layers) :]
        self.policy_w, self.policy_b = policy_w.T, policy_b  # [in, actions], [actions]
        self.value_w, self.value_b = value_w.T, value_b  # [in, 1], [1]
        self.activation = NUMPY_ACTIVATIONS[activation]

    def parameters(self) -> list[torch.Tensor]:
        """The modules' weights and biases as they are now, in the order of the pass."""
        tensors: list[torch.Tensor] = []
        for module in self.modules:
            found = module._parameters
            weight, bias = found["weight"], found["bias"]
            assert weight is not None and bias is not None
            tensors += (weight, bias)
        return tensors

    @staticmethod
    def storage_key(tensors: Sequence[torch.Tensor]) -> tuple[int, ...]:
        """Where each parameter's numbers live: a changed key means the views are stale (a
        parameter moved, converted or replaced; the old ones are held here, so their
        memory cannot be reused by a new one)."""
        return tuple(t.data_ptr() for t in tensors)

    def is_current(self) -> bool:
        return self.storage_key(self.parameters()) == self.key

    @staticmethod
    def usable(modules: Sequence[nn.Module]) -> bool:
        """Whether these modules' weights and biases can be viewed by numpy as float32."""
        return all(
            t is not None and t.device.type == "cpu" and t.dtype == torch.float32
            for module in modules
            for t in (module._parameters.get("weight"), module._parameters.get("bias"))
        )

    def act(
        self, x: np.ndarray, deterministic: bool, get_value: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """``(actions int64, log-probabilities float32, values float32 or None)``, each
        ``[rows]``, for features ``x`` ``[rows, features]`` float32; None when a logit is
        not finite (the torch path then acts, and reports it as it always has)."""
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
            draws = exponential_draws(torch.from_numpy(probs)).numpy()
            actions = (probs / draws).argmax(-1)
        logprob = logits[np.arange(len(logits)), actions]
        value = None
        if get_value:
            value = (value_x @ self.value_w)[:, 0]
            value += self.value_b
        return actions.astype(np.int64, copy=False), logprob, value
