"""Shape rules: output shapes from input shapes and attributes.

Each raises `ShapeError` with both shapes in the message when the inputs do
not fit. Shapes are tuples of ints; scalars have shape ().
"""

from __future__ import annotations

from functools import lru_cache

from genesis.errors import ShapeError


@lru_cache(maxsize=4096)
def _broadcast_pair(a: tuple, b: tuple) -> tuple:
    if a == b:
        return a
    ndim = max(len(a), len(b))
    pa = (1,) * (ndim - len(a)) + a
    pb = (1,) * (ndim - len(b)) + b
    out = []
    for i, (x, y) in enumerate(zip(pa, pb)):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(
                f"shapes {list(a)} and {list(b)} cannot be broadcast together: "
                f"dimension {i - ndim} has sizes {x} and {y}"
            )
    return tuple(out)


def broadcast(*shapes, **attrs) -> tuple:
    out = ()
    for s in shapes:
        out = _broadcast_pair(out, tuple(s))
    return out


def same_as_first(shape, *rest, **attrs) -> tuple:
    return tuple(shape)


def reduce(shape, *, dims, keepdim, **attrs) -> tuple:
    """dims is a normalized tuple of non-negative dims (empty tuple reduces nothing)."""
    for d in dims:
        if not 0 <= d < max(len(shape), 1):
            raise ShapeError(f"dim {d} is out of range for a tensor of shape {list(shape)}")
    if keepdim:
        return tuple(1 if i in dims else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in dims)


def matmul(a, b, **attrs) -> tuple:
    if not a or not b:
        raise ShapeError(f"matmul needs operands with at least 1 dimension, got shapes {list(a)} and {list(b)}")
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise ShapeError(f"matmul shapes {list(a)} and {list(b)} do not fit: {a2[-1]} columns against {b2[-2]} rows")
    try:
        batch = broadcast(a2[:-2], b2[:-2])
    except ShapeError:
        raise ShapeError(f"matmul batch dimensions of {list(a)} and {list(b)} cannot be broadcast") from None
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def contiguous_strides(shape) -> tuple:
    """The strides, in elements, of a C-contiguous array of `shape`."""
    strides, step = [], 1
    for n in reversed(tuple(shape)):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def is_contiguous(shape, strides) -> bool:
    """Whether `strides` (in elements) lay `shape` out C-contiguously. As numpy and PyTorch judge it, a
    dim of size 1 may have any stride, and an empty array is contiguous."""
    if 0 in shape:
        return True
    step = 1
    for n, stride in zip(reversed(tuple(shape)), reversed(tuple(strides))):
        if n != 1:
            if stride != step:
                return False
            step *= n
    return True
