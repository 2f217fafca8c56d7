"""unique and bincount: results whose size depends on the values.

Both read values on the host (so a compiled function breaks its graph here and runs
eagerly, as at a boolean mask) and are otherwise made of primitives: unique sorts
(argsort), marks where a sorted value differs from the one before, and reads the
marks' positions (`nonzero`); bincount is a scatter_add into as many bins as the
largest value needs.
"""

from __future__ import annotations

import builtins

from genesis import dispatch, dtypes
from genesis.arguments import normalize_dim
from genesis.creation import ones, tensor, zeros
from genesis.errors import ShapeError
from genesis.functional.indexing import gather, index_select, nonzero, scatter_add
from genesis.functional.reduction import any
from genesis.functional.scan import cumsum
from genesis.functional.shape import cat, movedim, reshape
from genesis.functional.sorting import argsort


def _sorted_groups(rows):
    """For a (n, m) tensor: the order that sorts its rows lexicographically (stable), and per sorted
    row whether it starts a new group of equal rows. One stable sort per column, the last column
    first, so earlier columns decide and equal rows keep their order. NaNs are never equal, as in
    PyTorch: each is a value of its own."""
    count, width = rows.shape
    order = argsort(rows[:, width - 1], stable=True) if width else None
    for column in range(width - 2, -1, -1):
        order = gather(order, 0, argsort(gather(rows[:, column], 0, order), stable=True))
    if order is None:
        order = tensor(list(range(count)), dtype=dtypes.int64, device=rows.device)
    ordered = index_select(rows, 0, order)
    differs = (
        any(ordered[1:] != ordered[:-1], dim=1)
        if width
        else zeros(builtins.max(count - 1, 0), dtype=dtypes.bool_, device=rows.device)
    )
    return order, ordered, cat([ones(builtins.min(count, 1), dtype=dtypes.bool_, device=rows.device), differs])


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values (or slices along `dim`) in ascending order; with `return_inverse` where each
    element (slice) went, with `return_counts` how often each occurs. Always sorted (PyTorch's CPU
    kernel sorts too, and `sorted=False` leaves the order open)."""
    dispatch.untraceable("unique (the number of distinct values depends on the values)")
    x = input
    if dim is None:
        rows = reshape(x, (-1, 1))
    else:
        dim = normalize_dim(dim, x.ndim)
        if x.ndim == 0:
            raise IndexError("unique: a 0-d tensor has no dim to find unique slices along")
        rows = (
            reshape(movedim(x, dim, 0), (x.shape[dim], -1))
            if x.numel()
            else zeros(x.shape[dim], 0, dtype=x.dtype, device=x.device)
        )
    order, ordered, starts_group = _sorted_groups(rows)
    starts = reshape(nonzero(starts_group), (-1,))
    values = index_select(ordered, 0, starts)
    if dim is None:
        values = reshape(values, (-1,))
    else:
        slice_shape = tuple(n for i, n in enumerate(x.shape) if i != dim)
        values = movedim(reshape(values, (values.shape[0],) + slice_shape), 0, dim)
    results = [values]
    if return_inverse:  # the group of each sorted row, put back in the rows' own order
        group = cumsum(starts_group, 0) - 1
        inverse = scatter_add(zeros(group.shape, dtype=dtypes.int64, device=x.device), 0, order, group)
        results.append(reshape(inverse, x.shape) if dim is None else inverse)
    if return_counts:
        ends = cat([starts[1:], tensor([rows.shape[0]], dtype=dtypes.int64, device=x.device)])
        results.append(ends - starts)
    return results[0] if len(results) == 1 else tuple(results)


def bincount(input, weights=None, minlength=0):
    """How often each value 0, 1, ... occurs in a 1-d tensor of non-negative integers (with weights:
    their sum per value), in max(minlength, largest + 1) bins."""
    if input.ndim != 1 or input.dtype.category != dtypes.INT:
        raise TypeError(
            f"bincount needs a 1-d tensor of non-negative integers, got {input.dtype.name} of shape {list(input.shape)}"
        )
    if weights is not None and tuple(weights.shape) != tuple(input.shape):
        raise ShapeError(f"bincount: weights of shape {list(weights.shape)} do not match input {list(input.shape)}")
    if minlength < 0:
        raise ValueError(f"bincount: minlength must be non-negative, got {minlength}")
    dispatch.untraceable("bincount (the number of bins depends on the values)")
    low, high = (int(input.min().item()), int(input.max().item())) if input.numel() else (0, -1)
    if low < 0:
        raise ValueError(f"bincount: the input holds the negative value {low}; values must be non-negative")
    bins = builtins.max(minlength, high + 1)
    if weights is None:
        counted = ones(input.shape, dtype=dtypes.int64, device=input.device)
        return scatter_add(zeros(bins, dtype=dtypes.int64, device=input.device), 0, input, counted)
    # as PyTorch: float32 and float64 weights keep their dtype, any other sums in float64
    dtype = weights.dtype if weights.dtype in (dtypes.float32, dtypes.float64) else dtypes.float64
    return scatter_add(zeros(bins, dtype=dtype, device=input.device), 0, input, weights.to(dtype))


__all__ = ["unique", "bincount"]
