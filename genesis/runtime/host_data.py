"""Host data entering genesis: Python scalars and nested lists, numpy arrays and other tensors,
made into a fresh, aligned numpy array and the genesis dtype PyTorch would give it."""

from __future__ import annotations

import numbers

import numpy as np

from genesis import dtypes
from genesis.arguments import is_tensor
from genesis.runtime.cpu import NUMPY_DTYPE, from_numpy_dtype
from genesis.runtime.memory import aligned_empty


def infer_dtype(data) -> dtypes.DType:
    """The dtype PyTorch picks for nested Python data: bool < int64 < default float.

    Data with no elements at all (`[]`, `[[], []]`) is the default float, as in PyTorch."""
    category = None  # None until an element is seen
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif is_tensor(item):
            return item.dtype
        elif isinstance(item, bool) or isinstance(item, np.bool_):
            category = dtypes.BOOL if category is None else category
        elif isinstance(item, numbers.Integral):
            category = dtypes.INT if category in (None, dtypes.BOOL) else category
        elif isinstance(item, numbers.Real):
            category = dtypes.FLOAT
        else:
            raise TypeError(f"cannot make a tensor from an element of type {type(item).__name__}: {item!r}")
    return dtypes.default_dtype_for_category(dtypes.FLOAT if category is None else category)


def array_from_data(data, dtype=None):
    """(numpy array, genesis dtype) for any data genesis.tensor accepts; always a copy."""
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
    if is_tensor(data):
        array, inferred = data._data, data.dtype
    elif isinstance(data, np.ndarray) or isinstance(data, np.generic):
        array = np.asarray(data)
        inferred = from_numpy_dtype(array.dtype)
    else:
        if isinstance(data, (list, tuple)) and any(is_tensor(x) for x in data):
            data = [x.tolist() if is_tensor(x) else x for x in data]
        inferred = infer_dtype(data)
        try:
            array = np.array(data, dtype=NUMPY_DTYPE[dtype or inferred])
        except ValueError as error:
            raise ValueError(f"cannot make a tensor from ragged or malformed data: {error}") from None
    target = dtype or inferred
    copy = aligned_empty(array.shape, NUMPY_DTYPE[target])
    np.copyto(copy, array, casting="unsafe")  # what astype does; the copy starts on a cache line
    return copy, target
