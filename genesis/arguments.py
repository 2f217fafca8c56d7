"""Argument normalization: dims, dim lists and shapes as users write them, made canonical."""

from __future__ import annotations

from genesis.errors import ShapeError

SCALAR_TYPES = (bool, int, float)


def normalize_dim(dim, ndim: int, *, inserting: bool = False) -> int:
    """A dim in [-ndim, ndim) (or [-ndim-1, ndim] when inserting a new one), made non-negative.

    A 0-d tensor accepts dim 0 and -1, as in PyTorch.
    """
    if type(dim) is not int:  # (checked once for the common case: every op with a dim comes here)
        if hasattr(dim, "__index__") and not isinstance(dim, int):
            dim = dim.__index__()
        if not isinstance(dim, int):
            raise TypeError(f"a dim must be an int, got {type(dim).__name__}")
    size = ndim + 1 if inserting else max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(
            f"dim {dim} is out of range for a tensor with {ndim} dims (expected a dim in [{-size}, {size - 1}])"
        )
    return dim + size if dim < 0 else dim


def normalize_dims(dim, ndim: int) -> tuple:
    """None (or an empty tuple) means every dim; an int or a sequence of ints is normalized and sorted."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        if not dim:
            return tuple(range(ndim))
        dims = tuple(sorted(normalize_dim(d, ndim) for d in dim))
        if len(set(dims)) != len(dims):
            raise ValueError(f"dim {list(dim)} names a dim more than once")
    else:
        dims = (normalize_dim(dim, ndim),)
    return dims if ndim else ()


def normalize_shape(args) -> tuple:
    """Accept f(2, 3), f((2, 3)) and f([2, 3])."""
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        args = args[0]
    shape = tuple(map(int, args))
    if shape and min(shape) < -1:
        raise ShapeError(f"invalid shape {list(shape)}: sizes must be non-negative")
    return shape


def is_tensor(x) -> bool:
    return hasattr(x, "_data") and hasattr(x, "dtype")
