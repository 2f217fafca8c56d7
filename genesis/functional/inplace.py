"""In-place operations: compute out of place, then write into the target's buffer.

Writing bumps the target's version counter (shared with its views), so a
node whose vjp still needs the old values refuses to run backward. If the
target requires grad, its history moves to the new node; when that node
reads the target itself, it gets a copy of the old values (as PyTorch saves
`original_self`).
"""

from __future__ import annotations

import numpy as np

from genesis.autograd import grad_mode
from genesis.errors import ShapeError
from genesis.runtime.cpu import NUMPY_DTYPE


def check_inplace_allowed(target):
    if target.requires_grad and target.is_leaf and grad_mode.is_grad_enabled():
        raise RuntimeError(
            f"a leaf tensor that requires grad (shape {list(target.shape)}) is being used in an in-place "
            "operation; wrap the update in `with genesis.no_grad():`"
        )


def assign_inplace(target, result):
    """Make `target` hold `result`'s values (and, under autograd, its history)."""
    from genesis.tensor import Tensor

    check_inplace_allowed(target)
    if result.shape != target.shape:
        raise ShapeError(f"an in-place result of shape {list(result.shape)} does not fit the "
                         f"target of shape {list(target.shape)}")
    if result.dtype.category > target.dtype.category:
        raise TypeError(f"an in-place result of dtype {result.dtype.name} can't be cast to the "
                        f"target's dtype {target.dtype.name}")
    node = result._node
    if node is not None and node.versions is not None and any(
            x is target and v is not None for x, v in zip(node.inputs, node.versions)):
        old = Tensor._make(target._data.copy(), target.dtype, target.device, target.requires_grad)
        old._version = [target._version[0]]  # the version the node recorded for its input
        old._node = target._node
        node.inputs = tuple(old if x is target else x for x in node.inputs)
    if not target._data.flags.writeable:
        raise RuntimeError(f"cannot write in place into a tensor of shape {list(target.shape)} that is an "
                           "expanded view (several elements share one memory location); clone it first")
    np.copyto(target._data, result._data.astype(NUMPY_DTYPE[target.dtype], copy=False), casting="unsafe")
    target._version[0] += 1
    if node is not None:
        target._node = node
        target.requires_grad = True
        if node.versions is not None:
            node.versions = node.versions[:-1] + (target._version[0],)
    return target


def inplace(fn):
    """Turn an out-of-place function f(x, ...) into its in-place form x.f_(...)."""

    def method(target, *args, **kwargs):
        check_inplace_allowed(target)
        return assign_inplace(target, fn(target, *args, **kwargs))

    method.__name__ = fn.__name__ + "_"
    method.__doc__ = f"In-place {fn.__name__}."
    return method


def fill_(target, value):
    from genesis.creation import full

    if hasattr(value, "_data"):
        value = value.item() if value.ndim == 0 else value
    with grad_mode.no_grad():
        source = full(target.shape, value, dtype=target.dtype)
    return _overwrite(target, source)


def zero_(target):
    return fill_(target, 0)


def copy_(target, source):
    from genesis.functional.shape import expand

    if tuple(source.shape) != target.shape:
        source = expand(source, target.shape)
    return _overwrite(target, source.to(target.dtype))


def _overwrite(target, source):
    """Replace every value: the old history is dropped, the source's (if any) is kept."""
    from genesis.functional.shape import clone

    check_inplace_allowed(target)
    if source.requires_grad and grad_mode.is_grad_enabled():
        return assign_inplace(target, clone(source))
    np.copyto(target._data, source._data, casting="unsafe")
    target._version[0] += 1
    if target._node is not None:
        target._node = None
        target.requires_grad = False
    return target


__all__ = ["assign_inplace", "inplace", "fill_", "zero_", "copy_"]
