"""Constant tensors that vjp rules make (a zero gradient, a zero buffer to scatter into)."""

from __future__ import annotations

import numpy as np

from genesis.runtime import cuda as cuda_runtime
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.runtime.devices import cpu
from genesis.tensor import Tensor


def zeros(shape, dtype, device=cpu) -> Tensor:
    """A fresh tensor of zeros on `device` (the gradient's): while tracing, a constant of the graph
    like any host tensor."""
    array = np.zeros(tuple(shape), dtype=NUMPY_DTYPE[dtype])
    if device is not cpu:  # made on the host and copied, as the factories' (runtime/cuda.py)
        array = cuda_runtime.transfer(array, device.type)
    return Tensor._make(array, dtype, device)


def zeros_like(x) -> Tensor:
    return zeros(x.shape, x.dtype, x.device)
