"""`genesis.linalg`: PyTorch's torch.linalg names for the functional layer's norms and products."""

from __future__ import annotations

from genesis.functional import linalg as _L
from genesis.functional.linalg import vector_norm


def cross(input, other, *, dim=-1):
    """torch.linalg.cross: the cross product along `dim`, the last dim by default."""
    return _L.cross(input, other, dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """torch.linalg.diagonal: the diagonal of the last two dims by default."""
    return _L.diagonal(A, offset, dim1, dim2)


__all__ = ["vector_norm", "cross", "diagonal"]
