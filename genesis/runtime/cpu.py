"""The CPU runtime: tensor data is a numpy array.

Maps genesis dtypes to numpy dtypes (bfloat16 is ml_dtypes' real bfloat16,
not float32 in disguise) and back.
"""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np

from genesis import dtypes

NUMPY_DTYPE = {
    dtypes.bool_: np.dtype(np.bool_),
    dtypes.uint8: np.dtype(np.uint8),
    dtypes.int8: np.dtype(np.int8),
    dtypes.int16: np.dtype(np.int16),
    dtypes.int32: np.dtype(np.int32),
    dtypes.int64: np.dtype(np.int64),
    dtypes.float16: np.dtype(np.float16),
    dtypes.bfloat16: np.dtype(ml_dtypes.bfloat16),
    dtypes.float32: np.dtype(np.float32),
    dtypes.float64: np.dtype(np.float64),
}

GENESIS_DTYPE = {np_dtype: dt for dt, np_dtype in NUMPY_DTYPE.items()}


def wrapped_integer(value: int, dtype: dtypes.DType):
    """A Python int as a scalar of the integer `dtype`, wrapped as PyTorch (and C) wrap it: uint8 + -2
    adds 254. numpy refuses an int outside the dtype's range instead."""
    return np.array(value, dtype=np.int64).astype(NUMPY_DTYPE[dtype])


def from_numpy_dtype(np_dtype) -> dtypes.DType:
    try:
        return GENESIS_DTYPE[np.dtype(np_dtype)]
    except KeyError:
        raise TypeError(
            f"numpy dtype {np.dtype(np_dtype)} has no genesis equivalent; "
            f"supported: {', '.join(d.name for d in dtypes.ALL_DTYPES)}"
        ) from None


# log(0) = -inf and 0/0 = nan are answers, not accidents, in a tensor library
# (PyTorch is silent about them). numpy attributes these warnings to the module
# that called the ufunc, so this silences genesis's own kernels only and leaves
# the user's numpy settings alone, at no cost per op (np.errstate costs ~1 us).
warnings.filterwarnings(
    "ignore",
    message=r"(divide by zero|invalid value|overflow|underflow) encountered",
    category=RuntimeWarning,
    module=r"genesis\.",
)
