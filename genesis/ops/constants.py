"""Constant tensors that vjp rules make (a zero gradient, a zero buffer to scatter into)."""

from __future__ import annotations

import numpy as np

from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.tensor import Tensor


def zeros(shape, dtype) -> Tensor:
    """A fresh tensor of zeros: while tracing, a constant of the graph like any host tensor."""
    return Tensor._make(np.zeros(tuple(shape), dtype=NUMPY_DTYPE[dtype]), dtype)


def zeros_like(x) -> Tensor:
    return zeros(x.shape, x.dtype)
