"""Buffers for compiled programs: one allocation serves several values whose lifetimes do not overlap."""

from __future__ import annotations

import numpy as np


def reuse(buffer: np.ndarray, shape: tuple, dtype) -> np.ndarray:
    """The first bytes of a dead value's contiguous buffer, seen as a new shape and dtype."""
    dtype = np.dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    raw = buffer.reshape(-1).view(np.uint8)
    return raw[:count * dtype.itemsize].view(dtype).reshape(shape)
