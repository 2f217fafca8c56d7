"""How numpy code spells things: dtypes, literals, casts, low-precision rounding, views, op lines.

The numpy backend, the C backend's Python shims and the program wrapper write numpy source through
these functions. Which ops exist is not known here: an op's line comes from its record
(`ops.op.numpy_snippet`), a view's from its record's index map.
"""

from __future__ import annotations

import math

import numpy as np

from genesis import dtypes
from genesis.ops.op import IndexMap, numpy_snippet
from genesis.runtime.cpu import wrapped_integer

__all__ = ["cast_to", "itemsize", "literal", "np_dtype", "numpy_snippet", "round_lines", "view"]

_NUMPY_NAME = {dtypes.bfloat16: "bfloat16"}
_NUMPY_TYPES = {f"np.{dt.name}": np.dtype(dt.name) for dt in dtypes.ALL_DTYPES if dt is not dtypes.bfloat16}
_NUMPY_TYPES["np.bool"] = np.dtype(bool)


def np_dtype(dtype: dtypes.DType) -> str:
    """The expression for a genesis dtype's numpy dtype inside generated code."""
    return _NUMPY_NAME.get(dtype, f"np.{dtype.name}")


def itemsize(spelled: str) -> int:
    """The bytes per element of a dtype as `np_dtype` spells it (8 for one it does not know)."""
    return np.dtype(_NUMPY_TYPES.get(spelled, np.float64)).itemsize


def literal(value, compute: dtypes.DType | None = None) -> str:
    """A Python value as numpy source; an int read by an integer statement is wrapped into its dtype
    first, as eager's dispatch does (numpy refuses uint8 + -2 where PyTorch wraps it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "np.nan" if math.isnan(value) else ("np.inf" if value > 0 else "-np.inf")
    if isinstance(value, dtypes.DType):
        return np_dtype(value)
    if type(value) is int and compute is not None and compute.category == dtypes.INT:
        return f"{np_dtype(compute)}({int(wrapped_integer(value, compute))})"
    return repr(value)


def cast_to(expression: str, dtype: dtypes.DType) -> str:
    return f"{expression}.astype({np_dtype(dtype)})"


def round_lines(value: str, dtype: dtypes.DType) -> list[str]:
    """Round `value`, held in fp32, to its fp16/bf16 dtype in place, as eager's result is."""
    return [f"round_to({value}, {np_dtype(dtype)})"] if dtype.is_low_precision else []


def view(index_map: IndexMap, source: str, attrs: dict, shape: str | None = None) -> str:
    """The numpy expression of a view of `source` by `index_map`; `shape` spells the result's shape
    where it is not the attribute's (a block of rows: `(n,) + (...)`)."""
    if index_map is IndexMap.PERMUTE:
        return f"np.transpose({source}, {tuple(attrs['dims'])!r})"
    shape = shape or repr(tuple(attrs["shape_to"]))
    if index_map is IndexMap.RESHAPE:
        return f"np.reshape({source}, {shape})"
    if index_map is IndexMap.BROADCAST:
        return f"np.broadcast_to({source}, {shape})"
    raise NotImplementedError(f"no numpy form for the index map {index_map}")
