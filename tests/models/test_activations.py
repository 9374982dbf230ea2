"""coltra.models.activations.tanh: torch.tanh's values and gradients, through numpy only
where torch would be slow, and never inside a graph torch records."""

from __future__ import annotations

import warnings

import pytest
import torch

from coltra.models.activations import ACTIVATIONS, NUMPY_TANH_MIN_ELEMENTS, tanh


def large(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[2, 1024, 64] values over [-12, 12], the size of a crowd's fused hidden layer."""
    return torch.linspace(-12, 12, 2 * 1024 * 64, dtype=dtype).reshape(2, 1024, 64)


def test_the_config_name_tanh_is_this_function() -> None:
    assert ACTIVATIONS["tanh"] is tanh


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-7), (torch.float64, 1e-15)])
def test_large_tensors_get_tanh_within_float_rounding(dtype: torch.dtype, tolerance: float) -> None:
    x = large(dtype)
    y = tanh(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert (y - torch.tanh(x)).abs().max().item() <= tolerance
    assert y.abs().max().item() <= 1.0 and (y[x == 0] == 0).all()
    assert y.data_ptr() != x.data_ptr()  # a new tensor: the input is left alone
    strided = x.transpose(1, 2)  # not contiguous
    assert (tanh(strided) - torch.tanh(strided)).abs().max().item() <= tolerance
    with torch.inference_mode():
        assert (tanh(x) - torch.tanh(x)).abs().max().item() <= tolerance
    leaf = x.clone().requires_grad_()
    with torch.no_grad():  # a tensor that requires grad, with gradients off
        assert not tanh(leaf).requires_grad
        assert (tanh(leaf) - torch.tanh(x)).abs().max().item() <= tolerance


def test_small_tensors_and_other_dtypes_are_exactly_torch_tanh() -> None:
    small = torch.randn(8, NUMPY_TANH_MIN_ELEMENTS // 8 - 1)
    assert torch.equal(tanh(small), torch.tanh(small))
    half = large().to(torch.bfloat16)
    assert torch.equal(tanh(half), torch.tanh(half))


def test_the_gradient_is_tanhs() -> None:
    x = large(torch.float64).requires_grad_()
    weights = torch.cos(torch.arange(x.numel(), dtype=torch.float64)).reshape(x.shape)
    (tanh(x) * weights).sum().backward()
    ours = x.grad
    assert ours is not None
    expected = weights * (1 - torch.tanh(x.detach()) ** 2)
    assert (ours - expected).abs().max().item() <= 1e-15
    # And against finite differences, on a tensor just above the size that takes numpy.
    probe = torch.randn(NUMPY_TANH_MIN_ELEMENTS, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tanh, (probe,), fast_mode=True)


def test_a_traced_graph_records_torch_tanh() -> None:
    """numpy calls cannot be traced: while torch records, tanh is torch.tanh."""
    x = large()
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(tanh, (x,), check_trace=True)
    assert "aten::tanh" in str(traced.graph)
    other = large() * 0.5
    assert torch.equal(traced(other), torch.tanh(other))
