"""cumsum and cumprod: the scan primitives with PyTorch's arguments."""

from __future__ import annotations

from genesis.arguments import normalize_dim
from genesis.dispatch import apply
from genesis.ops import scan as S


def _scan(op, x, dim, dtype):
    if dtype is not None:  # PyTorch casts the input first, so the running values have that dtype
        x = x.to(dtype)
    return apply(op, x, dim=normalize_dim(dim, x.ndim))


def cumsum(x, dim, *, dtype=None):
    return _scan(S.cumsum, x, dim, dtype)


def cumprod(x, dim, *, dtype=None):
    return _scan(S.cumprod, x, dim, dtype)


__all__ = ["cumsum", "cumprod"]
