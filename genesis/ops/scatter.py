"""scatter_reduce's multiplying and extremum forms: one primitive, `scatter_reduce`, whose kernel folds
each source element into its target with numpy's `ufunc.at` (prod, amax, amin).

scatter_reduce's "sum" and "mean" are scatter_add composites (functional/scatter.py); these three have
no composite short of sorting by target. Their vjps are PyTorch's: an extremum's gradient is shared
evenly by the elements equal to it; a product's is the product of the others, computed with the zeros
masked out so one zero factor still gets its gradient.
"""

from __future__ import annotations

import numpy as np

from genesis.dtypes import int64
from genesis.ops.constants import zeros
from genesis.ops.elementwise import where
from genesis.ops.movement import (
    _INDICES,
    _accumulator,
    _along_axis_index,
    _check_in_range,
    _element_strides,
    _index_put_dtype,
    _movement,
    _scatter_add_shape,
    gather,
    pad_to,
    scatter_add,
)
from genesis.ops.op import Kind

REDUCTIONS = ("prod", "amax", "amin")
_UFUNC = {"prod": np.multiply, "amax": np.maximum, "amin": np.minimum}


def _identity(reduce, dtype):
    if reduce == "prod":
        return 1
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if reduce == "amax" else info.max
    return -np.inf if reduce == "amax" else np.inf


def _scatter_reduce_kernel(a, index, src, *, dim, reduce, include_self):
    _check_in_range(index, a.shape[dim] if a.ndim else 1, dim, negative_ok=False)
    out = _accumulator(a)
    if not a.ndim:
        flat, src = index.reshape(-1), src.reshape(-1)
    else:
        src = src[tuple(slice(0, n) for n in index.shape)]
        flat = sum(i * step for i, step in zip(_along_axis_index(index, dim), _element_strides(out.shape)))
        flat, src = np.asarray(flat).reshape(-1), src.reshape(-1)
    target = out.reshape(-1)  # a view: writes reach `out`
    if not include_self:  # the scattered-to positions start from the reduction's identity
        target[flat] = _identity(reduce, out.dtype)
    _UFUNC[reduce].at(target, flat, src)
    return out


def _shape(shape, index_shape, src_shape, *, dim, reduce, include_self):
    return _scatter_add_shape(shape, index_shape, src_shape, dim=dim)


def _src_block(src, index):
    """The corner of `src` that the index addresses (PyTorch lets src be larger)."""
    if tuple(src.shape) == tuple(index.shape):
        return src
    return src[tuple(slice(0, n) for n in index.shape)]


def scattered(x, index, dim):
    """True where some source element lands when `index` scatters along `dim` into a tensor like `x`
    (counted in int64, so any dtype of `x` works). scatter_reduce's include_self=False uses it too."""
    hits = scatter_add(zeros(x.shape, int64, x.device), index, zeros(index.shape, int64, x.device) + 1, dim=dim)
    return hits != 0


def _extremum_shares(out, x, index, src, dim, include_self):
    """How many elements equal each result (self's and the sources'), for sharing its gradient."""
    self_is = (x == out).to(x.dtype)
    if not include_self:
        self_is = where(scattered(x, index, dim), 0.0, self_is).to(x.dtype)
    src_is = (_src_block(src, index) == gather(out, index, dim=dim)).to(x.dtype)
    count = scatter_add(self_is, index, src_is, dim=dim)
    return self_is, src_is, where(count == 0, 1.0, count).to(x.dtype)


def _grad_self(g, out, x, index, src, *, dim, reduce, include_self):
    if reduce == "prod":
        masked_self = where(x == 0, 1.0, x).to(x.dtype)
        others = scatter_reduce(masked_self, index, src, dim=dim, reduce=reduce, include_self=include_self)
        grad = g * others / masked_self
    else:
        self_is, _, count = _extremum_shares(out, x, index, src, dim, include_self)
        grad = self_is * g / count
    if not include_self:
        grad = where(scattered(x, index, dim), 0.0, grad).to(grad.dtype)
    return grad


def _grad_src(g, out, x, index, src, *, dim, reduce, include_self):
    block = _src_block(src, index)
    if reduce == "prod":
        src_zero = block == 0
        zeros_there = gather(
            scatter_add(zeros(x.shape, x.dtype, x.device), index, src_zero.to(x.dtype), dim=dim), index, dim=dim
        )
        single_zero = src_zero & (zeros_there == 1)
        without_it = scatter_reduce(
            x, index, where(single_zero, 1.0, block).to(x.dtype), dim=dim, reduce=reduce, include_self=include_self
        )
        grad = where(
            single_zero,
            gather(g * without_it, index, dim=dim),
            gather(g * out, index, dim=dim) / where(src_zero, 1.0, block).to(x.dtype),
        )
    else:
        _, src_is, count = _extremum_shares(out, x, index, src, dim, include_self)
        grad = src_is * gather(g / count, index, dim=dim)
    return pad_to(grad, src.shape)


scatter_reduce = _movement(
    "scatter_reduce",
    Kind.OPAQUE,
    _scatter_reduce_kernel,
    _shape,
    (_grad_self, None, _grad_src),
    dtype=_index_put_dtype,
    saves=_INDICES | {"inputs", "output"},
)
