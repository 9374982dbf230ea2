"""A recurrent core (LSTM or GRU cell) that steps one row per agent, or runs whole training
sequences with the state reset where an episode started.

Acting steps every row once: ``core(x [rows, in], state)``. Training (backpropagation through
time) runs ``[sequences, length]`` steps from each sequence's stored first state, zeroing the
state before every step flagged in ``starts``, exactly as collection did between steps; the
outputs are then the ones collection computed, and the gradients flow back through time
within each sequence.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RecurrentCore"]


class RecurrentCore(nn.Module):
    """One LSTM (state ``(h, c)``) or GRU (state ``(h,)``) cell of ``size`` units; each state
    part is ``[rows, size]``. Weights orthogonal, biases zero (CleanRL's LSTM agent)."""

    def __init__(self, kind: str, in_size: int, size: int) -> None:
        super().__init__()
        if kind not in ("lstm", "gru"):
            raise ValueError(f"recurrent core must be 'lstm' or 'gru', got {kind!r}")
        self.kind = kind
        self.size = size
        self.cell: nn.LSTMCell | nn.GRUCell = (
            nn.LSTMCell(in_size, size) if kind == "lstm" else nn.GRUCell(in_size, size)
        )
        for name, parameter in self.cell.named_parameters():
            if name.startswith("weight"):
                nn.init.orthogonal_(parameter, 1.0)
            else:
                nn.init.zeros_(parameter)

    @property
    def parts(self) -> int:
        """Tensors in this core's state: 2 for an LSTM (h, c), 1 for a GRU."""
        return 2 if self.kind == "lstm" else 1

    def initial_state(self, rows: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        return tuple(torch.zeros(rows, self.size, device=device) for _ in range(self.parts))

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One step of every row (``starts`` None): ``x`` ``[rows, in]``; or sequences:
        ``x`` ``[sequences * length, in]`` sequence-major, ``starts`` ``[sequences, length]``
        bool. Returns the outputs (``[rows or sequences * length, size]``) and the state
        after the last step."""
        if len(state) != self.parts:
            raise ValueError(
                f"a {self.kind.upper()} core's state has {self.parts} tensors, got {len(state)}"
            )
        if starts is None:
            return self._step(x, state)
        if starts.dtype != torch.bool or starts.dim() != 2:
            raise ValueError(
                f"starts must be a [sequences, length] bool tensor, got {starts.dtype} of "
                f"shape {list(starts.shape)}"
            )
        sequences, length = starts.shape
        if x.shape[0] != sequences * length:
            raise ValueError(
                f"{x.shape[0]} rows of input for {sequences} sequences of {length} steps "
                f"(expected {sequences * length}, sequence-major)"
            )
        steps = x.reshape(sequences, length, -1)
        keep = (~starts).to(x.dtype).unsqueeze(-1)  # [sequences, length, 1]
        outputs = []
        for t in range(length):
            state = tuple(part * keep[:, t] for part in state)
            out, state = self._step(steps[:, t], state)
            outputs.append(out)
        return torch.stack(outputs, 1).reshape(sequences * length, self.size), state

    def _step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        if isinstance(self.cell, nn.LSTMCell):
            h, c = self.cell(x, (state[0], state[1]))
            return h, (h, c)
        h = self.cell(x, state[0])
        return h, (h,)
