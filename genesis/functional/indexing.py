"""Indexing: `x[key]`, `x[key] = v`, gather, scatter_add, index_select, masked_fill, one_hot.

A Python key is normalized into the hashable key of the indexing primitives
(see `genesis.ops.movement`): Ellipsis expanded, ints and slices made
non-negative and bounds-checked here, so errors name the dim and size.
"""

from __future__ import annotations

from genesis import dtypes
from genesis.dispatch import apply
from genesis.errors import ShapeError
from genesis.functional._util import is_tensor, normalize_dim
from genesis.ops import movement as M


def _as_index_tensor(k):
    from genesis.creation import tensor

    t = k if is_tensor(k) else tensor(k)
    if t.dtype.category == dtypes.FLOAT:
        raise IndexError(f"tensors used as indices must be integer or bool tensors, got {t.dtype.name}")
    return t


def normalize_key(x, key):
    """Return (primitive key, index tensors)."""
    if not isinstance(key, tuple):
        key = (key,)
    key = tuple(_as_index_tensor(k) if isinstance(k, list) or (not is_tensor(k) and hasattr(k, "__array__"))
                else k for k in key)
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = sum(k.ndim if is_tensor(k) and k.dtype is dtypes.bool_ else 1
                   for k in key if k is not None and k is not Ellipsis)
    if consumed > x.ndim:
        raise IndexError(f"too many indices for a tensor of dimension {x.ndim} (shape {list(x.shape)})")
    entries, tensors, dim = [], [], 0
    for k in key:
        if k is Ellipsis:
            for _ in range(x.ndim - consumed):
                entries.append(("s", 0, x.shape[dim], 1))
                dim += 1
        elif k is None:
            entries.append(None)
        elif is_tensor(k):
            k = _as_index_tensor(k)
            if k.dtype is dtypes.bool_ and k.shape != x.shape[dim:dim + k.ndim]:
                raise IndexError(f"the boolean mask of shape {list(k.shape)} does not match the indexed "
                                 f"shape {list(x.shape[dim:dim + k.ndim])} at dim {dim}")
            entries.append(("t", len(tensors)))
            tensors.append(k)
            dim += k.ndim if k.dtype is dtypes.bool_ else 1
        elif isinstance(k, slice):
            start, stop, step = k.indices(x.shape[dim])
            if step <= 0:
                raise ValueError("slice step must be positive (use flip to reverse)")
            entries.append(("s", start, max(start, stop), step))
            dim += 1
        elif isinstance(k, int) or hasattr(k, "__index__"):
            i = k.__index__()
            size = x.shape[dim]
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of range for dim {dim} with size {size}")
            entries.append(("i", i + size if i < 0 else i))
            dim += 1
        else:
            raise IndexError(f"unsupported index {k!r} of type {type(k).__name__}")
    return tuple(entries), tuple(tensors)


def index(x, key, *tensors):
    """Apply a normalized key: a view when it holds no index tensors."""
    if tensors:
        return apply(M.index_advanced, x, *tensors, key=key)
    return apply(M.index_basic, x, key=key)


def getitem(x, key):
    entries, tensors = normalize_key(x, key)
    return index(x, entries, *tensors)


def index_put(x, key, values, *tensors, accumulate=False):
    return apply(M.index_put, x, values, *tensors, key=key, accumulate=accumulate)


def setitem(x, key, value):
    from genesis.creation import full
    from genesis.functional.inplace import assign_inplace
    from genesis.ops.shape_rules import broadcast

    entries, tensors = normalize_key(x, key)
    if not is_tensor(value):
        value = full((), value, dtype=x.dtype)
    target_shape = M._index_shape(x.shape, *(t.shape for t in tensors), key=entries)
    try:
        if broadcast(value.shape, target_shape) != tuple(target_shape):
            raise ShapeError("")
    except ShapeError:
        raise ShapeError(f"cannot assign a value of shape {list(value.shape)} to an indexed "
                         f"region of shape {list(target_shape)}") from None
    assign_inplace(x, index_put(x, entries, value.to(x.dtype), *tensors))


def _check_index_dtype(index, name):
    if not is_tensor(index) or index.dtype.category != dtypes.INT:
        got = index.dtype.name if is_tensor(index) else type(index).__name__
        raise TypeError(f"{name} expects an integer index tensor, got {got}")


def gather(x, dim, index):
    _check_index_dtype(index, "gather")
    return apply(M.gather, x, index, dim=normalize_dim(dim, x.ndim))


def scatter_add(x, dim, index, src):
    _check_index_dtype(index, "scatter_add")
    return apply(M.scatter_add, x, index, src, dim=normalize_dim(dim, x.ndim))


def index_select(x, dim, index):
    _check_index_dtype(index, "index_select")
    if index.ndim > 1:
        raise ShapeError(f"index_select expects a 1-D index, got shape {list(index.shape)}")
    dim = normalize_dim(dim, x.ndim)
    key = tuple(("s", 0, n, 1) for n in x.shape[:dim]) + (("t", 0),)
    return apply(M.index_advanced, x, index.reshape(-1), key=key)


def masked_fill(x, mask, value):
    from genesis.functional.elementwise import where

    if not is_tensor(mask) or mask.dtype is not dtypes.bool_:
        raise TypeError("masked_fill expects a bool mask tensor")
    if is_tensor(value) and value.ndim:
        raise ShapeError(f"masked_fill only takes a 0-d tensor value, got shape {list(value.shape)}")
    out = where(mask, value, x)
    if out.shape != x.shape:
        raise ShapeError(f"masked_fill: mask of shape {list(mask.shape)} does not broadcast to {list(x.shape)}")
    return out.to(x.dtype)


def one_hot(index, num_classes=-1):
    from genesis.creation import arange
    from genesis.functional.shape import unsqueeze

    _check_index_dtype(index, "one_hot")
    if num_classes < 0:
        num_classes = int(index.max().item()) + 1 if index.numel() else 0
    elif index.numel() and (int(index.max().item()) >= num_classes or int(index.min().item()) < 0):
        raise IndexError(f"one_hot: class values must be in [0, {num_classes})")
    return (unsqueeze(index, -1) == arange(num_classes)).long()

__all__ = [
    "normalize_key",
    "index",
    "getitem",
    "index_put",
    "setitem",
    "gather",
    "scatter_add",
    "index_select",
    "masked_fill",
    "one_hot",
]
