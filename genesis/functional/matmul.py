"""Matrix products."""

from __future__ import annotations

from genesis.dispatch import apply
from genesis.ops import matmul as _matmul_op


def matmul(a, b):
    return apply(_matmul_op.matmul, a, b)


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm expects 2-D tensors, got shapes {list(a.shape)} and {list(b.shape)}")
    return matmul(a, b)


def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise ValueError(f"bmm expects 3-D tensors, got shapes {list(a.shape)} and {list(b.shape)}")
    return matmul(a, b)


def outer(a, b):
    return matmul(a.reshape(-1, 1), b.reshape(1, -1))


def dot(a, b):
    return matmul(a, b)


__all__ = [
    "matmul",
    "mm",
    "bmm",
    "outer",
    "dot",
]
