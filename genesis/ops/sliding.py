"""Tensor.unfold's windows along one dim, as a view, and its adjoint.

- `unfold(x, dim=, size=, step=)`: the windows of `size` elements, `step`
  apart, along `dim`, as a new last dim: a strided view of x, as in PyTorch,
  so a write into it reaches x and it shares x's version counter. Windows that
  overlap (step < size) put one element of x at several places of the view;
  numpy marks that view read-only, so a write into it is refused (PyTorch
  writes them in memory order: `mul_` doubles an element once per window it
  is in).
- `unfold_backward(g, shape_in=, dim=, size=, step=)`: the gradient, each
  window's values added back at their places in zeros of x's shape (summed
  where windows overlap; fp16/bf16 add in fp32 and round once). Its vjp is
  unfold again, so unfold differentiates twice.

Neither folds into a fused kernel: a compiled program runs unfold's kernel
(a view, copied into the program's buffer) and the adjoint as library calls.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from genesis.errors import ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops.op import Kind, Op, register


def _unfold_shape(shape, *, dim, size, step):
    if not 0 <= dim < len(shape):
        raise ShapeError(f"unfold: dim {dim} is out of range for shape {list(shape)}")
    if size > shape[dim]:
        raise ShapeError(f"unfold: size {size} is larger than dim {dim} of shape {list(shape)}")
    count = (shape[dim] - size) // step + 1
    return tuple(shape[:dim]) + (count,) + tuple(shape[dim + 1 :]) + (size,)


def _unfold_kernel(a, *, dim, size, step):
    # writeable only where each element of `a` is in one window at most (it stays read-only if `a` is)
    windows = sliding_window_view(a, size, axis=dim, writeable=step >= size)
    return windows[(slice(None),) * dim + (slice(None, None, step),)]


def _unfold_backward_shape(shape, *, shape_in, dim, size, step):
    if tuple(shape) != _unfold_shape(shape_in, dim=dim, size=size, step=step):
        raise ShapeError(
            f"unfold_backward: a gradient of shape {list(shape)} is not that of the windows of size {size} "
            f"and step {step} along dim {dim} of shape {list(shape_in)}"
        )
    return tuple(shape_in)


def _unfold_backward_kernel(g, *, shape_in, dim, size, step):
    out = np.zeros(shape_in, g.dtype)
    count = g.shape[dim]
    for k in range(size):  # the k-th element of every window, one strided add each
        places = (slice(None),) * dim + (slice(k, k + (count - 1) * step + 1, step),)
        out[places] += g[..., k]
    return out


def _unfold_grad(g, out, x, *, dim, size, step):
    return unfold_backward(g, shape_in=tuple(x.shape), dim=dim, size=size, step=step)


def _unfold_backward_grad(g, out, windows, *, shape_in, dim, size, step):
    return unfold(g, dim=dim, size=size, step=step)


unfold = register(
    Op(
        name="unfold",
        kind=Kind.VIEW,
        kernel=_unfold_kernel,
        shape=_unfold_shape,
        dtype=dt.first_input,
        vjp=(_unfold_grad,),
        saves=frozenset(),
        upcasts_low_precision=False,  # a view moves no values
    )
)
unfold_backward = register(
    Op(
        name="unfold_backward",
        kind=Kind.OPAQUE,
        kernel=_unfold_backward_kernel,
        shape=_unfold_backward_shape,
        dtype=dt.same,
        vjp=(_unfold_backward_grad,),
        saves=frozenset(),
        contiguous_result=True,
    )
)

__all__ = ["unfold", "unfold_backward"]
