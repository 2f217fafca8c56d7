"""Tiling, sliding windows and turns: repeat, tile, unfold (Tensor.unfold), swapaxes, fliplr, flipud, rot90.

repeat is an expand over new interleaved dims and a reshape, so it traces and its
gradient is the expand's sum. Tensor.unfold is a strided view of its input, as in
PyTorch (the `unfold` op, ops/sliding.py).
"""

from __future__ import annotations

from genesis.arguments import normalize_dim, normalize_shape
from genesis.dispatch import apply
from genesis.errors import ShapeError
from genesis.functional.indexing import getitem
from genesis.functional.shape import clone, expand, flip, reshape, transpose
from genesis.ops import sliding as S


def numel(x) -> int:
    """torch.numel: the number of elements."""
    return x.numel()


def repeat(x, *sizes):
    """x repeated sizes[d] times along each dim d (leading extra sizes add dims)."""
    sizes = normalize_shape(sizes)
    if len(sizes) < x.ndim:
        raise ShapeError(f"repeat: {len(sizes)} sizes for a tensor of {x.ndim} dims (shape {list(x.shape)})")
    if any(n < 0 for n in sizes):
        raise ValueError(f"repeat: sizes must be non-negative, got {list(sizes)}")
    shape = (1,) * (len(sizes) - x.ndim) + tuple(x.shape)
    interleaved = reshape(x, tuple(v for n in shape for v in (1, n)))  # (1, n0, 1, n1, ...)
    repeated = expand(interleaved, tuple(v for r, n in zip(sizes, shape) for v in (r, n)))
    return reshape(repeated, tuple(r * n for r, n in zip(sizes, shape)))


def tile(x, dims):
    """repeat, with fewer sizes than dims meaning ones in front (numpy's tile)."""
    dims = normalize_shape((dims,))
    return repeat(x, (1,) * (x.ndim - len(dims)) + tuple(dims))


def unfold(x, dimension, size, step):
    """Tensor.unfold: the windows of `size` elements, `step` apart, along `dimension`, as a new last dim.

    A view of x (ops/sliding.py); a 0-d x is one element, so its windows are its first `size` (0 or 1)."""
    if step <= 0:
        raise ValueError(f"unfold: step must be positive, got {step}")
    if size < 0:
        raise ValueError(f"unfold: size must be non-negative, got {size}")
    if x.ndim == 0:
        if size > 1:
            raise ShapeError(f"unfold: size {size} is larger than a 0-d tensor's one element")
        normalize_dim(dimension, 1)  # PyTorch takes 0 and -1 here
        return getitem(reshape(x, (1,)), slice(0, size))
    return apply(S.unfold, x, dim=normalize_dim(dimension, x.ndim), size=int(size), step=int(step))


def swapaxes(x, axis0, axis1):
    return transpose(x, axis0, axis1)


def swapdims(x, dim0, dim1):
    return transpose(x, dim0, dim1)


def fliplr(x):
    if x.ndim < 2:
        raise ShapeError(f"fliplr needs a tensor with at least 2 dims, got shape {list(x.shape)}")
    return flip(x, 1)


def flipud(x):
    if x.ndim < 1:
        raise ShapeError("flipud needs a tensor with at least 1 dim, got a 0-d tensor")
    return flip(x, 0)


def rot90(x, k=1, dims=(0, 1)):
    """Turn the plane of `dims` by k quarter turns, from the first dim towards the second."""
    if len(dims) != 2:
        raise ValueError(f"rot90: dims must name two dims, got {list(dims)}")
    if x.ndim < 2:
        raise ShapeError(f"rot90 needs a tensor with at least 2 dims, got shape {list(x.shape)}")
    first, second = (normalize_dim(d, x.ndim) for d in dims)
    if first == second:
        raise ValueError(f"rot90: dims must differ, got {list(dims)}")
    k %= 4
    if k == 1:
        return transpose(flip(x, second), first, second)
    if k == 2:
        return flip(x, (first, second))
    if k == 3:
        return transpose(flip(x, first), first, second)
    return clone(x)


__all__ = ["numel", "repeat", "tile", "swapaxes", "swapdims", "fliplr", "flipud", "rot90"]
