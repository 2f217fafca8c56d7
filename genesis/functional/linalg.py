"""Vector norms, cross products and diagonals, as composites (`genesis.linalg` names some of them).

A 2-norm's gradient x / ||x|| is 0/0 at the zero vector; PyTorch makes it 0
there, and so does `_safe_sqrt`: the square root reads a sum of squares in
which a zero is replaced by one, and the answer at zero is a constant.
diagonal is a strided slice of the flattened plane (see its docstring).
"""

from __future__ import annotations

import math
import warnings

from genesis import dtypes
from genesis.arguments import normalize_dim, normalize_dims
from genesis.creation import arange, zeros
from genesis.errors import ShapeError
from genesis.functional.elementwise import abs, sqrt, where
from genesis.functional.indexing import getitem
from genesis.functional.reduction import amax, amin, sum
from genesis.functional.shape import broadcast_tensors, cat, movedim, narrow, pad, reshape, unsqueeze


def _safe_sqrt(squares):
    nonzero = squares != 0
    return where(nonzero, sqrt(where(nonzero, squares, 1.0)), 0.0)


def _power_root(total, p):
    """total ** (1/p), with the gradient 0 where total is 0 (as PyTorch's norm backward)."""
    nonzero = total != 0
    return where(nonzero, where(nonzero, total, 1.0) ** (1.0 / p), 0.0)


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):
    """The `ord`-norm of x's elements along `dim` (all of them for None): inf is max |x|, -inf min |x|,
    0 the count of non-zeros."""
    if dtype is not None:
        x = x.to(dtype)
    if not x.dtype.is_floating_point:
        raise TypeError(f"vector_norm needs a floating-point input, got {x.dtype.name}")
    dims = normalize_dims(dim, x.ndim)
    work = x.to(dtypes.float32) if x.dtype.is_low_precision else x
    magnitude = abs(work)
    if ord == math.inf:
        out = amax(magnitude, dims, keepdim)
    elif ord == -math.inf:
        out = amin(magnitude, dims, keepdim)
    elif ord == 0:
        out = sum((work != 0).to(work.dtype), dims, keepdim)
    elif ord == 1:
        out = sum(magnitude, dims, keepdim)
    elif ord == 2:
        out = _safe_sqrt(sum(work * work, dims, keepdim))
    else:
        out = _power_root(sum(magnitude**ord, dims, keepdim), ord)
    return out.to(x.dtype)


def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """PyTorch's torch.norm for vector norms: "fro" (and None) is the 2-norm over `dim`."""
    if p in ("fro", None):
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm: p={p!r} (a matrix norm) is not supported; use a number or 'fro'")
    return vector_norm(x, p, dim, keepdim, dtype=dtype)


def _cross_dim(a, dim):
    if dim is not None:
        return normalize_dim(dim, a.ndim)
    threes = [d for d, n in enumerate(a.shape) if n == 3]
    if not threes:
        raise ShapeError(f"cross: no dim of size 3 in shape {list(a.shape)}")
    warnings.warn("cross without dim is deprecated in PyTorch; pass dim (linalg.cross takes -1)", UserWarning, 2)
    return threes[0]


def cross(a, b, dim=None):
    """The cross product of 3-vectors along `dim` (the first dim of size 3 when None, as torch.cross)."""
    a, b = broadcast_tensors(a, b)
    dim = _cross_dim(a, dim)
    if a.shape[dim] != 3:
        raise ShapeError(f"cross: dim {dim} must have size 3, got shape {list(a.shape)}")
    a1, a2, a3 = (narrow(a, dim, i, 1) for i in range(3))
    b1, b2, b3 = (narrow(b, dim, i, 1) for i in range(3))
    return cat([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1], dim)


def diagonal(x, offset=0, dim1=0, dim2=1):
    """The elements (i, i + offset) of the dims dim1 and dim2, as a last dim.

    The plane is flattened and read with a step of cols + 1: a slice, so where the flattening is a view
    (a contiguous plane) the diagonal is a view too, and writes into it reach x, as in PyTorch."""
    if x.ndim < 2:
        raise ShapeError(f"diagonal needs a tensor with at least 2 dims, got shape {list(x.shape)}")
    dim1, dim2 = normalize_dim(dim1, x.ndim), normalize_dim(dim2, x.ndim)
    if dim1 == dim2:
        raise ValueError(f"diagonal: dim1 and dim2 are both {dim1}")
    x = movedim(x, (dim1, dim2), (-2, -1))
    rows, cols = x.shape[-2:]
    length = max(0, min(rows + min(offset, 0), cols - max(offset, 0)))
    flat = reshape(x, x.shape[:-2] + (rows * cols,))
    start = offset if offset >= 0 else -offset * cols
    stop = start + (length - 1) * (cols + 1) + 1 if length else start
    return getitem(flat, (Ellipsis, slice(start, stop, cols + 1)))


_diagonal_of = diagonal  # diag's argument named `diagonal` (PyTorch's) hides the function


def diag(x, diagonal=0):
    """A 1-D x as the `diagonal`-th diagonal of a square matrix; a 2-D x's diagonal as a 1-D tensor."""
    if x.ndim == 2:
        return _diagonal_of(x, diagonal)
    if x.ndim != 1:
        raise ShapeError(f"diag expects a 1-D or 2-D tensor, got shape {list(x.shape)}")
    shift = diagonal if diagonal >= 0 else -diagonal
    size = x.shape[0] + shift
    padded = pad(x, (0, shift))  # the value of row i (diagonal >= 0) or of column j (diagonal < 0)
    offsets = unsqueeze(arange(size), 0) - unsqueeze(arange(size), 1)  # column - row
    values = unsqueeze(padded, 1) if diagonal >= 0 else unsqueeze(padded, 0)
    return where(offsets == diagonal, values, zeros((), dtype=x.dtype))


def trace(x):
    """The sum of a matrix's main diagonal (integers sum to int64, as in PyTorch)."""
    if x.ndim != 2:
        raise ShapeError(f"trace expects a 2-D tensor, got shape {list(x.shape)}")
    return sum(diagonal(x))


__all__ = ["vector_norm", "norm", "cross", "diagonal", "diag", "trace"]
