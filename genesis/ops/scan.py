"""Scan primitives: cumsum and cumprod along one dim.

float32 (and fp16/bf16, computed in float32) accumulate in float64 and round each
running value once, as PyTorch's CPU kernels do (their accumulator type for float is
double): a float32 running sum would drift from PyTorch's by rounding errors that grow
with the length. Integers and bools accumulate in int64.
"""

from __future__ import annotations

import numpy as np

from genesis import dtypes, grad_mode
from genesis.errors import ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops import elementwise as E
from genesis.ops.movement import flip
from genesis.ops.op import Autocast, Kind, Op, register
from genesis.tensor import Tensor


def _scan_kernel(ufunc):
    def run(a, *, dim):
        if a.ndim == 0:
            return a.copy()
        wide = np.float64 if a.dtype == np.float32 else None
        # accumulate keeps a strided input's layout; the result is a fresh C-contiguous array
        return np.ascontiguousarray(ufunc.accumulate(a, axis=dim, dtype=wide), dtype=a.dtype)

    return run


def _scan_shape(shape, *, dim):
    if not 0 <= dim < max(len(shape), 1):
        raise ShapeError(f"dim {dim} is out of range for a tensor of shape {list(shape)}")
    return tuple(shape)


def _reverse_cumsum(g, dim):
    """Sums from each position to the end of `dim`: cumsum's adjoint."""
    if g.ndim == 0:
        return g
    return flip(cumsum(flip(g, dims=(dim,)), dim=dim), dims=(dim,))


def _cumsum_grad(g, out, x, *, dim):
    return _reverse_cumsum(g, dim)


def _cumprod_grad(g, out, x, *, dim):
    """d out_j / d x_k is the product of x_0..x_j without x_k (j >= k). Before the first zero of a
    slice that is out_j / x_k; at the first zero, the products with that zero left out; after it, every
    product holds the first zero, so nothing. Exact with zeros, as PyTorch's, and made of ops, so it
    traces. Its value is exact, but not its own derivative at a zero (after the first zero it is a
    constant 0, where the products still depend on that zero): a gradient that will be differentiated
    again (grad mode on, `create_graph=True`) takes the products one by one instead."""
    if x.ndim == 0:  # the scan of one element is that element
        return g
    if grad_mode.is_grad_enabled():
        return _cumprod_grad_by_products(g, x, dim)
    is_zero = x == 0
    zeros_so_far = cumsum(is_zero, dim=dim)
    before = zeros_so_far == 0
    first_zero = is_zero & (zeros_so_far == 1)
    before_zero = _reverse_cumsum(g * out, dim) / E.where(before, x, 1.0)
    at_zero = _reverse_cumsum(g * cumprod(E.where(first_zero, 1.0, x), dim=dim), dim)
    return E.where(before, before_zero, E.where(first_zero, at_zero, 0.0))


def _cumprod_grad_by_products(g, x, dim):
    """grad_k = sum over j >= k of g_j * prod(x_i for i <= j, i != k), from an (n, n) table per slice:
    row k is x with x_k replaced by 1, scanned. n*n values, as PyTorch's double-backward formula
    costs n products; a polynomial in x, so it differentiates exactly, zeros or not."""
    size = x.shape[dim]
    x_last, g_last = x.transpose(dim, -1), g.transpose(dim, -1)
    rows = x_last.unsqueeze(-2).expand(x_last.shape[:-1] + (size, size))
    diagonal = Tensor._make(np.eye(size, dtype=bool), dtypes.bool_)
    later = Tensor._make(np.triu(np.ones((size, size), dtype=bool)), dtypes.bool_)  # j >= k
    products = cumprod(E.where(diagonal, 1.0, rows), dim=rows.ndim - 1)
    grad = (E.where(later, products, 0.0) * g_last.unsqueeze(-2)).sum(-1)
    return grad.transpose(dim, -1)


def _scan(name, ufunc, vjp, saves):
    return register(
        Op(
            name=name,
            kind=Kind.OPAQUE,  # compiled programs call the eager kernel as a library call
            kernel=_scan_kernel(ufunc),
            shape=_scan_shape,
            dtype=dt.sum_like,
            vjp=(vjp,),
            saves=saves,
            autocast=Autocast.FP32,
            contiguous_result=True,
        )
    )


cumsum = _scan("cumsum", np.add, _cumsum_grad, frozenset())
cumprod = _scan("cumprod", np.multiply, _cumprod_grad, frozenset({"inputs", "output"}))
