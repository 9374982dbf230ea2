"""A speed path: the hidden layers of two same-sized MLPs computed together.

``MLPModel`` has a policy network and a value network with the same hidden sizes. Computing
them one after the other costs two small matrix products per layer; torch's fixed cost per
op dominates at the batch sizes of acting (a few env copies) and of PPO minibatches (a few
hundred rows). :class:`TwinMLP` stores layer ``k`` of both networks side by side and runs
each layer as one batched product (``baddbmm``), halving the ops of a forward pass.

Measured on the 2-core CPU, 4 inputs, 64x64 tanh layers, one torch thread (issue 12):

=========================================  ===============  ============
                                           two networks     TwinMLP
=========================================  ===============  ============
acting, 8 rows (inference mode)            72 us            41 us
PPO minibatch, 256 rows, forward+backward  706 us           592 us
=========================================  ===============  ============

Plain ``nn.Linear`` layers whose weights are stacked on the fly, with or without a cache of
the stacked weights, were no faster than two networks (67-75 us). Above
``FUSED_MAX_ROWS`` rows the two networks run one after the other: there memory traffic
dominates and two passes over ``[rows, hidden]`` beat one over ``[2, rows, hidden]``.

Nothing here changes what is computed: ``TwinMLP`` gives the numbers and gradients of two
separate MLPs (tests/models check this against ``nn.Linear`` layers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["FUSED_MAX_ROWS", "POLICY", "VALUE", "StackedLinear", "TwinMLP"]

#: Index of each network in a TwinMLP (``twin.layer(k, POLICY)``).
POLICY, VALUE = 0, 1
#: Batches of up to this many rows go through both networks at once.
FUSED_MAX_ROWS = 4096

Activation = Callable[[torch.Tensor], torch.Tensor]


class StackedLinear(nn.Module):
    """Several independent linear layers of the same shape, applied in one batched matmul.

    Layer ``i`` computes ``x @ weight[i] + bias[i]``: ``weight[i]`` is ``[in, out]`` (the
    transpose of an ``nn.Linear``'s weight) and ``bias[i]`` a ``[1, out]`` row, stored so
    that the forward pass is a single ``baddbmm`` with no reshaping of the parameters. The
    input is ``[layers, batch, in]`` (row ``i`` goes through layer ``i``) or ``[batch, in]``
    (every layer sees the same rows); the output is ``[layers, batch, out]``.
    """

    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().T for layer in layers]))
        self.bias = nn.Parameter(torch.stack([layer.bias.detach()[None] for layer in layers]))

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[2]

    def single(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Layer ``index`` alone on ``[batch, in]``. ``[batch, out]``"""
        return torch.addmm(self.bias[index], x, self.weight[index])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.expand(len(self.weight), *x.shape)  # a view: no copy of the input
        return torch.baddbmm(self.bias, x, self.weight)


class TwinMLP(nn.Module):
    """The hidden layers of the policy and the value network, two MLPs of the same sizes.

    ``twin(x)`` is ``(policy_features, value_features)``, each ``[batch, hidden_sizes[-1]]``,
    exactly what the two networks' hidden layers would give one after the other:
    ``x -> activation(x W_k + b_k)`` for each layer ``k``. The networks share no weights.
    ``layer(k, POLICY)`` returns policy layer ``k``'s weight and bias in ``nn.Linear``'s layout.
    """

    def __init__(
        self,
        policy_layers: Sequence[nn.Linear],
        value_layers: Sequence[nn.Linear],
        activation: Activation,
    ) -> None:
        super().__init__()
        if [layer.weight.shape for layer in policy_layers] != [
            layer.weight.shape for layer in value_layers
        ]:
            raise ValueError("TwinMLP needs two stacks of layers with the same sizes")
        self.layers = nn.ModuleList(
            StackedLinear([policy_layer, value_layer])
            for policy_layer, value_layer in zip(policy_layers, value_layers)
        )
        self.activation = activation

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both networks' hidden layers on ``x`` ``[batch, features]``."""
        if not self.layers:  # no hidden layers: both heads read the features
            return x, x
        if len(x) > FUSED_MAX_ROWS:
            return self.network(x, POLICY), self.network(x, VALUE)
        for layer in self.layers:
            # forward(), not layer(x): the module call's hook machinery costs more than the
            # product itself at acting sizes (these private layers take no hooks)
            x = self.activation(layer.forward(x))  # [2, batch, hidden]: both networks at once
        # unbind, not x[POLICY] and x[VALUE]: its gradient is one stack, where each index's
        # would be a zero-filled [2, batch, hidden] tensor.
        policy_x, value_x = x.unbind(0)
        return policy_x, value_x

    def network(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """The hidden layers of one network (``POLICY`` or ``VALUE``) alone."""
        for layer in self.layers:
            x = self.activation(layer.single(x, index))  # type: ignore[operator]
        return x

    def layer(self, k: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden layer ``k`` of one network as ``(weight [out, in], bias [out])`` views."""
        stacked = self.layers[k]
        return stacked.weight[index].T, stacked.bias[index, 0]  # type: ignore[index]

    @property
    def sizes(self) -> list[int]:
        """Units per hidden layer."""
        return [layer.out_features for layer in self.layers]  # type: ignore[misc]
