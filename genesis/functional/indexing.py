"""Indexing: `x[key]`, `x[key] = v`, gather, scatter_add, index_select, masked_fill, one_hot.

A Python key is normalized into the hashable key of the indexing primitives
(see `genesis.ops.movement`): Ellipsis expanded, ints and slices made
non-negative and bounds-checked here, so errors name the index, dim and size.

Bool masks become integer index tensors here (`mask.nonzero()`, as PyTorch
does), so the primitives only ever see integer indices and their output
shape follows from the input shapes alone. Finding the true positions reads
the mask's values on the host: like `.item()`, a tracer cannot see past it.
"""

from __future__ import annotations

from genesis import dispatch, dtypes
from genesis.arguments import is_tensor, normalize_dim
from genesis.creation import arange, full, tensor, zeros
from genesis.dispatch import apply
from genesis.errors import ShapeError
from genesis.functional.elementwise import where
from genesis.functional.inplace import assign_inplace, check_inplace_allowed
from genesis.functional.shape import clone, gather_along, stack, unsqueeze
from genesis.ops import movement as M
from genesis.ops.movement import index_by_key as index  # noqa: F401  (a function of this layer too)


def _as_index_tensor(k):
    if is_tensor(k):
        t = k
    elif isinstance(k, (list, tuple)) and len(k) == 0:
        t = tensor([], dtype=dtypes.int64)  # x[[]] selects nothing (a float tensor would be refused)
    else:
        t = tensor(k)
    if t.dtype.category == dtypes.FLOAT:
        raise IndexError(f"tensors used as indices must be integer or bool tensors, got {t.dtype.name}")
    return t


def nonzero(x, *, as_tuple=False):
    """Positions of the non-zero elements: an int64 tensor of shape (count, ndim), or one per dim.

    The count depends on the values, so this reads them on the host.
    """
    if x.ndim == 0:  # one position with no coordinates, or none (as_tuple sees it as 1-D, like PyTorch)
        count = int(bool(x.detach().item()))
        if as_tuple:
            return (zeros(count, dtype=dtypes.int64, device=x.device),)
        return zeros((count, 0), dtype=dtypes.int64, device=x.device)
    positions = x.detach().cpu().numpy().nonzero()  # a numpy array's method: one index array per dim
    columns = tuple(tensor(p, dtype=dtypes.int64, device=x.device) for p in positions)
    return columns if as_tuple else stack(columns, dim=1)


def _expand_masks(key):
    """Replace each bool mask by one int64 index tensor per dim it covers; x[True] is a new axis."""
    out = []
    for k in key:
        if isinstance(k, bool) or (is_tensor(k) and k.dtype is dtypes.bool_ and k.ndim == 0):
            if not bool(k):
                raise IndexError("indexing with a False scalar (an empty selection) is not supported")
            out.append(None)
        elif is_tensor(k) and k.dtype is dtypes.bool_:
            out.extend(nonzero(k, as_tuple=True))
        else:
            out.append(k)
    return out


# a key of these alone is basic indexing (a view): no index tensors or masks to look for
_BASIC_KEYS = frozenset({int, slice, type(None), type(Ellipsis)})


def normalize_key(x, key):
    """Return (primitive key, index tensors)."""
    if not isinstance(key, tuple):
        key = (key,)
    if all(type(k) in _BASIC_KEYS for k in key):  # (not bool, whose type is not int's)
        if key.count(Ellipsis) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        consumed = len(key) - key.count(Ellipsis) - key.count(None)
        _check_consumed(x, consumed)
        return _entries(x, key, consumed)
    # lists, tuples and numpy arrays are index tensors; a numpy integer scalar is an int
    key = tuple(
        _as_index_tensor(k)
        if isinstance(k, (list, tuple)) or (not is_tensor(k) and hasattr(k, "__array__") and getattr(k, "ndim", 0) > 0)
        else k
        for k in key
    )
    for k in key:
        if is_tensor(k) and k.dtype.category == dtypes.FLOAT:
            raise IndexError(f"tensors used as indices must be integer or bool tensors, got {k.dtype.name}")
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    covers = [
        0
        if k is None or k is Ellipsis or isinstance(k, bool)
        else k.ndim
        if is_tensor(k) and k.dtype is dtypes.bool_
        else 1
        for k in key
    ]
    consumed = sum(covers)
    _check_consumed(x, consumed)
    dim = 0
    for k, n in zip(key, covers):  # a mask must match the dims it covers: check before reading it
        if is_tensor(k) and k.dtype is dtypes.bool_ and tuple(k.shape) != tuple(x.shape[dim : dim + n]):
            raise IndexError(
                f"the boolean mask of shape {list(k.shape)} does not match the indexed "
                f"shape {list(x.shape[dim : dim + n])} at dim {dim}"
            )
        dim += x.ndim - consumed if k is Ellipsis else n
    return _entries(x, _expand_masks(key), consumed)


def _check_consumed(x, consumed) -> None:
    if consumed > x.ndim:
        raise IndexError(
            f"too many indices for a tensor of dimension {x.ndim} (shape {list(x.shape)}): "
            f"the index covers {consumed} dims"
        )


def _entries(x, key, consumed):
    """The primitive key's entries and the index tensors, from a key whose masks are expanded."""
    entries, tensors, dim = [], [], 0
    for k in key:
        if k is Ellipsis:
            for _ in range(x.ndim - consumed):
                entries.append(("s", 0, x.shape[dim], 1))
                dim += 1
        elif k is None:
            entries.append(None)
        elif is_tensor(k):
            entries.append(("t", len(tensors)))
            tensors.append(k)
            dim += 1
        elif isinstance(k, slice):
            start, stop, step = k.indices(x.shape[dim])
            if step <= 0:
                raise ValueError(f"slice step must be positive, got {step} (use flip to reverse)")
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
            raise IndexError(
                f"unsupported index {k!r} of type {type(k).__name__}; use ints, slices, None, "
                "Ellipsis, or integer/bool tensors"
            )
    # index tensors made from lists, or given on the CPU, go where `x` is (PyTorch indexes a CUDA tensor
    # with CPU indices too)
    return tuple(entries), tuple(t.to(x.device) for t in tensors)


def getitem(x, key):
    entries, tensors = normalize_key(x, key)
    return index(x, entries, *tensors)


def index_put(x, key, values, *tensors, accumulate=False):
    """Out of place: `x` with `values` written (or, accumulating, added) at a primitive key."""
    return apply(M.index_put, x, values, *tensors, key=key, accumulate=accumulate)


def index_put_by_indices(x, indices, values, accumulate=False):
    """PyTorch's `x.index_put(indices, values, accumulate)`: `indices` a tuple of index tensors."""
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"index_put expects a tuple of index tensors, got {type(indices).__name__}")
    entries, tensors = normalize_key(x, tuple(indices))
    if not is_tensor(values):
        values = full((), values, dtype=x.dtype, device=x.device)
    if values.dtype is not x.dtype:  # as PyTorch: `x[i] = v` casts, index_put does not
        raise TypeError(f"index_put: values of dtype {values.dtype.name} do not match the tensor's {x.dtype.name}")
    return index_put(x, entries, values, *tensors, accumulate=accumulate)


def setitem(x, key, value):
    """`x[key] = value`: an out-of-place index_put written back into x (so views of x see it)."""
    check_inplace_allowed(x)
    entries, tensors = normalize_key(x, key)
    if not is_tensor(value):
        value = full((), value, dtype=x.dtype, device=x.device)
    value = value.to(x.dtype)
    if value._version is x._version:
        # a view of x (as in `x[k] += v`): writing x would change the value index_put saved

        value = clone(value)
    assign_inplace(x, index_put(x, entries, value, *tensors))


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
    return gather_along(x, normalize_dim(dim, x.ndim), index.reshape(-1))


def masked_fill(x, mask, value):
    if not is_tensor(mask) or mask.dtype is not dtypes.bool_:
        raise TypeError("masked_fill expects a bool mask tensor")
    if is_tensor(value) and value.ndim:
        raise ShapeError(f"masked_fill only takes a 0-d tensor value, got shape {list(value.shape)}")
    # out of place, x and the mask broadcast together, as in PyTorch (masked_fill_ keeps x's shape)
    return where(mask, value, x).to(x.dtype)


def one_hot(index, num_classes=-1):
    _check_index_dtype(index, "one_hot")
    counted = num_classes < 0
    if counted or (index.numel() and not dispatch.is_tracing()):
        # checked in eager mode only (a compiled graph cannot read values, and gives a row of zeros),
        # unless the class count is read from the values anyway
        low, high = (int(index.min().item()), int(index.max().item())) if index.numel() else (0, -1)
        if counted:
            num_classes = high + 1
        bad = low if low < 0 else high if high >= num_classes else None
        if bad is not None:  # PyTorch refuses a negative class too, where counting from the end has no meaning
            reason = "negative" if counted else f"out of range for {num_classes} classes"
            raise IndexError(f"one_hot: class value {bad} is {reason}")
    return (unsqueeze(index, -1) == arange(num_classes, device=index.device)).long()


__all__ = [
    "normalize_key",
    "nonzero",
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
