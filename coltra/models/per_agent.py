"""One network per agent, for policies that do not share parameters between their agents.

With ``share_actor: false`` (or ``share_critic: false``) a policy's agents keep one model and
one optimiser, but each agent has its own copy of the policy (or value) network: MAPPO's
``share_policy: false`` for one side only. Rows of a batch say whose they are by the
``agent_id`` field (a one-hot, :class:`coltra.envs.critic_inputs.AgentIds`).

:class:`AgentMLPs` stores layer ``k`` of every copy in one
:class:`~coltra.models.fused.StackedLinear` and runs all copies on all rows, then keeps each
row's own copy: ``copies`` times the compute of one network, no sorting or scattering of rows,
and a row's loss reaches only its own copy's weights (the others get exact zeros).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from coltra.models.fused import StackedLinear

__all__ = ["AgentMLPs"]


class AgentMLPs(nn.Module):
    """``copies`` MLPs of the same sizes (hidden layers and head); row ``i`` of a batch goes
    through copy ``agents[i]``.

    ``networks[g]`` are copy ``g``'s linear layers, input to head, initialised as the caller
    wants (the weights are copied). The activation follows every layer but the head.
    """

    def __init__(
        self,
        networks: Sequence[Sequence[nn.Linear]],
        activation: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        super().__init__()
        if not networks or len({tuple(layer.weight.shape for layer in n) for n in networks}) != 1:
            raise ValueError("AgentMLPs needs one or more networks of the same layer sizes")
        self.layers = nn.ModuleList(
            StackedLinear([network[k] for network in networks]) for k in range(len(networks[0]))
        )
        self.activation = activation

    @property
    def copies(self) -> int:
        return int(self.layers[0].weight.shape[0])  # type: ignore[index]

    def forward(self, x: torch.Tensor, agents: torch.Tensor) -> torch.Tensor:
        """``x`` ``[batch, in]`` through copy ``agents[i]`` (``[batch]`` integers in
        ``[0, copies)``) for each row ``i``. ``[batch, out]``"""
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            x = layer(x)  # [copies, batch, out]: every copy on every row
            if k < last:
                x = self.activation(x)
        if self.copies == 1:
            return x[0]
        return x[agents, torch.arange(x.shape[1], device=x.device)]

    def network(self, copy: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copy ``copy``'s layers as ``(weight [out, in], bias [out])`` views (``nn.Linear``'s
        layout)."""
        return [
            (layer.weight[copy].T, layer.bias[copy, 0])  # type: ignore[index]
            for layer in self.layers
        ]
