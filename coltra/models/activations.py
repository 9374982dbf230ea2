"""Hidden-layer activations, as plain functions, and a faster tanh on the CPU.

Functions, not modules: a module call adds its hook machinery to every forward pass, for
layers without parameters.

Why :func:`tanh` is not ``torch.tanh``: on the CPU build this project pins, ``torch.tanh``
is not vectorised. Measured on the 2-core CPU with one torch thread (``[2, rows, 64]``
float32, the fused hidden layer of two 64-unit networks, min of 7):

====================  =================  ==================
rows                  torch.tanh         numpy's tanh
====================  =================  ==================
8 (acting)            5 us               4 us
256 (a minibatch)     83 us              20 us
1,024 (a crowd)       450-700 us         63 us
8,192                 3.3-3.7 ms         0.39 ms
====================  =================  ==================

(``torch.sigmoid`` of the same tensor takes ~60 us at 1,024 rows: the exp is not the slow
part.) numpy's float32 tanh is as accurate (within 6e-8 of float64 tanh on [-12, 12],
torch's within 3e-8), so large CPU tensors go through numpy, with the gradient
``1 - tanh(x)**2`` of torch's own ``tanh_backward``. Small tensors, other devices and dtypes,
and graphs being traced, scripted, compiled or exported keep ``torch.tanh``: the result is
then exactly torch's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "NUMPY_TANH_MIN_ELEMENTS", "tanh"]

#: Tensors with fewer elements keep torch.tanh (the numpy round trip's fixed cost, ~2 us,
#: is then most of the call).
NUMPY_TANH_MIN_ELEMENTS = 4096

_NUMPY_DTYPES = (torch.float32, torch.float64)


def _numpy_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh of a CPU tensor by numpy, as a new tensor (detach: older torch refuses numpy()
    of a tensor that requires grad, even under no_grad)."""
    return torch.from_numpy(np.tanh(x.detach().numpy()))


class _NumpyTanh(torch.autograd.Function):
    """tanh computed by numpy, differentiated as torch differentiates it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = _numpy_tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def _graph_capture() -> bool:
    """True while torch records the computation (jit script, dynamo, export; jit tracing is
    asked first, in :func:`tanh`): numpy calls cannot be recorded."""
    return (
        torch.jit.is_scripting() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
    )


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``torch.tanh(x)``, through numpy for large float CPU tensors (see the module's
    docstring); same shape, dtype and gradient."""
    if (  # cheapest first (this runs in every forward pass); is_tracing before numel(),
        # which a trace would record with a warning
        x.device.type != "cpu"
        or x.dtype not in _NUMPY_DTYPES
        or torch.jit.is_tracing()
        or x.numel() < NUMPY_TANH_MIN_ELEMENTS
        or _graph_capture()
    ):
        return torch.tanh(x)
    if x.requires_grad and torch.is_grad_enabled():
        out: torch.Tensor = _NumpyTanh.apply(x)
        return out
    return _numpy_tanh(x)


#: Hidden-layer activations by their config name (``model.activation``).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": tanh,
    "relu": torch.relu,
    "leaky_relu": nn.functional.leaky_relu,
    "elu": nn.functional.elu,
    "gelu": nn.functional.gelu,
}
