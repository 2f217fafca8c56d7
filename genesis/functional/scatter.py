"""Writes at index positions, as PyTorch names them: scatter, scatter_reduce, index_add/copy/fill,
masked_scatter; and the reads take, take_along_dim, masked_select, argwhere.

scatter and the index_* family are index_put (the primitive behind `x[i] = v`)
with the index tensors spelled out: scatter's key holds the index at `dim` and
a broadcast arange at every other dim, index_*'s key is the index at `dim`
alone. scatter_reduce's sum and mean are scatter_add composites; prod, amax and
amin are the `scatter_reduce` primitive (ops/scatter.py). masked_scatter numbers
the masked positions with a cumsum and gathers the source there, so it traces.
"""

from __future__ import annotations

from genesis import dispatch, dtypes
from genesis.arguments import is_tensor, normalize_dim
from genesis.creation import arange, full, zeros
from genesis.dispatch import apply
from genesis.errors import ShapeError
from genesis.functional.elementwise import clamp, floor_divide, where
from genesis.functional.indexing import (
    _check_index_dtype,
    gather,
    getitem,
    index_put,
    nonzero,
    normalize_key,
    scatter_add,
)
from genesis.functional.reduction import sum
from genesis.functional.scan import cumsum
from genesis.functional.shape import broadcast_tensors, expand, reshape
from genesis.ops import scatter as S

_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _as_source(x, src, index, name):
    """`src` as a tensor of x's dtype covering the index: a number becomes a filled tensor."""
    if not is_tensor(src):
        return full(index.shape, src, dtype=x.dtype, device=x.device)
    if src.dtype is not x.dtype:
        raise TypeError(f"{name}: src ({src.dtype.name}) must have the input's dtype ({x.dtype.name})")
    return src


def _scatter_key(x, dim, index):
    """Index tensors addressing x at (index[i, j, ...] along dim, i, j, ... elsewhere)."""
    if index.ndim != x.ndim:
        raise ShapeError(
            f"scatter: index has {index.ndim} dims but input has {x.ndim} (shapes {list(index.shape)}, {list(x.shape)})"
        )
    key = []
    for d, n in enumerate(index.shape):
        if d != dim and n > x.shape[d]:
            raise ShapeError(f"scatter: index shape {list(index.shape)} is larger than input shape {list(x.shape)}")
        shape = [1] * index.ndim
        shape[d] = n
        key.append(index if d == dim else reshape(arange(n, device=x.device), tuple(shape)))
    return tuple(key)


def _refuse_negative(index, name):
    if index.numel() and not dispatch.is_tracing() and int(index.min().item()) < 0:
        raise IndexError(f"{name}: index {int(index.min().item())} is negative (PyTorch refuses negative positions)")


def scatter(x, dim, index, src=None, value=None, *, reduce=None):
    """x with src[i, j, ...] (or a number) written at index[i, j, ...] along `dim`. With reduce="add" or
    "multiply" (PyTorch's older form) the values are folded in instead."""
    _check_index_dtype(index, "scatter")
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter needs src (a tensor or a number) or value")
    if x.ndim == 0:
        return reshape(scatter(reshape(x, (1,)), 0, reshape(index, (-1,)), _flat(src), reduce=reduce), ())
    dim = normalize_dim(dim, x.ndim)
    src = _as_source(x, src, index, "scatter")
    if reduce is not None:
        legacy = {"add": "sum", "multiply": "prod"}
        if reduce not in legacy:
            raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
        return scatter_reduce(x, dim, index, src, legacy[reduce])
    _refuse_negative(index, "scatter")
    key = _scatter_key(x, dim, index)
    block = src[tuple(slice(0, n) for n in index.shape)] if src.shape != index.shape else src
    entries, tensors = normalize_key(x, key)
    return index_put(x, entries, block, *tensors)


def _flat(src):
    return reshape(src, (-1,)) if is_tensor(src) else src


def scatter_reduce(x, dim, index, src, reduce, *, include_self=True):
    """Fold src[i, j, ...] into x at index[i, j, ...] along `dim` by `reduce` (sum, prod, mean, amax, amin);
    without include_self, x's own value at a scattered-to position takes no part."""
    _check_index_dtype(index, "scatter_reduce")
    if reduce not in _REDUCTIONS:
        raise ValueError(f"scatter_reduce: reduce must be one of {', '.join(_REDUCTIONS)}, got {reduce!r}")
    if x.ndim == 0:
        flat = scatter_reduce(reshape(x, (1,)), 0, reshape(index, (-1,)), _flat(src), reduce, include_self=include_self)
        return reshape(flat, ())
    dim = normalize_dim(dim, x.ndim)
    src = _as_source(x, src, index, "scatter_reduce")
    if reduce in S.REDUCTIONS:
        return apply(S.scatter_reduce, x, index, src, dim=dim, reduce=reduce, include_self=bool(include_self))
    base = x if include_self else where(S.scattered(x, index, dim), zeros((), dtype=x.dtype), x)
    total = scatter_add(base, dim, index, src)
    if reduce == "sum":
        return total
    ones = full(index.shape, 1, dtype=x.dtype, device=x.device)
    count = scatter_add(full(x.shape, 1 if include_self else 0, dtype=x.dtype, device=x.device), dim, index, ones)
    count = where(count == 0, full((), 1, dtype=x.dtype), count)  # untouched positions keep x
    return total / count if x.dtype.is_floating_point else floor_divide(total, count)


def _index_key(x, dim, index, name):
    _check_index_dtype(index, name)
    if index.ndim > 1:
        raise ShapeError(f"{name} expects a 1-D index, got shape {list(index.shape)}")
    dim = normalize_dim(dim, x.ndim)
    return normalize_key(x, (slice(None),) * dim + (reshape(index, (-1,)),))


def _index_write(name, x, dim, index, values, accumulate):
    if x.ndim == 0:  # a 0-d tensor is written as its one element, as PyTorch allows
        values = reshape(values, (-1,)) if values.ndim == 0 and name != "index_fill" else values
        return reshape(_index_write(name, reshape(x, (1,)), 0, index, values, accumulate), ())
    entries, tensors = _index_key(x, dim, index, name)
    expected = x.shape[:dim] + (index.numel(),) + x.shape[dim + 1 :] if x.ndim else ()
    if values.ndim and tuple(values.shape) != expected:
        raise ShapeError(f"{name}: source of shape {list(values.shape)} does not match the expected {list(expected)}")
    return index_put(x, entries, values, *tensors, accumulate=accumulate)


def index_add(x, dim, index, source, *, alpha=1):
    """x with alpha * source[k] added to x's slice index[k] along `dim` (repeats add up)."""
    dim = normalize_dim(dim, max(x.ndim, 1))
    return _index_write("index_add", x, dim, index, (source if alpha == 1 else source * alpha).to(x.dtype), True)


def index_copy(x, dim, index, source):
    """x with its slice index[k] along `dim` replaced by source[k]."""
    dim = normalize_dim(dim, max(x.ndim, 1))
    return _index_write("index_copy", x, dim, index, source.to(x.dtype), False)


def index_fill(x, dim, index, value):
    """x with its slices index[k] along `dim` set to `value` (a number or a 0-d tensor)."""
    dim = normalize_dim(dim, max(x.ndim, 1))
    if is_tensor(value):
        if value.ndim:
            raise ShapeError(f"index_fill takes a number or a 0-d tensor value, got shape {list(value.shape)}")
        value = value.to(x.dtype)
    else:
        value = full((), value, dtype=x.dtype)
    return _index_write("index_fill", x, dim, index, value, False)


def masked_scatter(x, mask, source):
    """x with its masked positions (in row-major order) taking source's elements in order."""
    if not is_tensor(mask) or mask.dtype is not dtypes.bool_:
        raise TypeError("masked_scatter expects a bool mask tensor")
    if source.dtype is not x.dtype:
        raise TypeError(f"masked_scatter: source ({source.dtype.name}) must have the input's dtype ({x.dtype.name})")
    mask = expand(mask, x.shape)
    if not dispatch.is_tracing():
        needed = int(sum(mask).item())
        if needed > source.numel():
            raise ShapeError(f"masked_scatter: the mask selects {needed} elements but source has {source.numel()}")
    if source.numel() == 0:
        return x.clone()
    slot = clamp(
        cumsum(reshape(mask, (-1,)).to(dtypes.int64), 0) - 1, min=0
    )  # the source element of each masked position
    return where(mask, reshape(getitem(reshape(source, (-1,)), slot), x.shape), x)


def masked_select(x, mask):
    """The elements where the mask (broadcast with x) is True, as a 1-D tensor (its size is read on the host)."""
    if not is_tensor(mask) or mask.dtype is not dtypes.bool_:
        raise TypeError("masked_select expects a bool mask tensor")
    x, mask = broadcast_tensors(x, mask)
    return getitem(x, mask)


def take(x, index):
    """x's elements at positions of the flattened x (negative ones count from the end), shaped as `index`."""
    _check_index_dtype(index, "take")
    return reshape(getitem(reshape(x, (-1,)), reshape(index, (-1,))), index.shape)


def take_along_dim(x, indices, dim=None):
    """gather, with x and indices broadcast against each other outside `dim`; the flattened x for None."""
    _check_index_dtype(indices, "take_along_dim")
    if dim is None:
        return gather(reshape(x, (-1,)), 0, reshape(indices, (-1,)))
    dim = normalize_dim(dim, x.ndim)
    if indices.ndim != x.ndim:
        raise ShapeError(
            f"take_along_dim: input and indices need the same number of dims, got shapes {list(x.shape)} "
            f"and {list(indices.shape)}"
        )
    outside = [max(a, b) for a, b in zip(x.shape, indices.shape)]
    x = expand(x, tuple(outside[:dim]) + (x.shape[dim],) + tuple(outside[dim + 1 :]))
    indices = expand(indices, tuple(outside[:dim]) + (indices.shape[dim],) + tuple(outside[dim + 1 :]))
    return gather(x, dim, indices)


def argwhere(x):
    """The positions of the non-zero elements, one row each (its size is read on the host)."""
    return nonzero(x)


__all__ = [
    "scatter",
    "scatter_reduce",
    "index_add",
    "index_copy",
    "index_fill",
    "masked_scatter",
    "masked_select",
    "take",
    "take_along_dim",
    "argwhere",
]
