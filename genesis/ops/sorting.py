"""Sorting primitive: `argsort`, the order of a tensor's elements along one dim.

Only the positions are a primitive. sort, topk and kthvalue (functional/sorting.py)
gather their values at those positions, so the gradient of a value goes to the
element it was taken from (gather's vjp), as in PyTorch, and no second rule exists.
"""

from __future__ import annotations

import numpy as np

from genesis import dtypes
from genesis.errors import ShapeError
from genesis.ops.op import Kind, Op, register


def _argsort_kernel(a, *, dim, descending):
    # Always stable: equal elements keep their order, which is what `stable=True` promises and
    # one of the orders `stable=False` allows. NaN sorts above every number, as in PyTorch.
    if a.ndim == 0:
        return np.zeros((), dtype=np.int64)
    if not descending:
        return np.ascontiguousarray(np.argsort(a, axis=dim, kind="stable"), dtype=np.int64)
    # Descending and still stable: sort the reversed elements ascending, then read that order
    # backwards; ties come out first-position first, and the positions are mapped back.
    size = a.shape[dim]
    reversed_order = np.argsort(np.flip(a, dim), axis=dim, kind="stable")
    return np.ascontiguousarray(np.flip(size - 1 - reversed_order, dim), dtype=np.int64)


def _argsort_shape(shape, *, dim, descending):
    if not 0 <= dim < max(len(shape), 1):
        raise ShapeError(f"argsort: dim {dim} is out of range for a tensor of shape {list(shape)}")
    return tuple(shape)


def _argsort_dtype(inputs, **attrs):
    return None, dtypes.int64


argsort = register(
    Op(
        name="argsort",
        kind=Kind.OPAQUE,  # compiled programs call the eager kernel as a library call
        kernel=_argsort_kernel,
        shape=_argsort_shape,
        dtype=_argsort_dtype,
        vjp=None,  # positions carry no gradient
        saves=frozenset(),
        upcasts_low_precision=False,  # numpy orders float16 and bfloat16 as they are
        contiguous_result=True,
    )
)
