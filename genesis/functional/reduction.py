"""Reductions: primitives with normalized dims, and composites (mean, var, std, logsumexp, max/min)."""

from __future__ import annotations

import builtins
from collections import namedtuple

from genesis import dtypes
from genesis.arguments import is_tensor, normalize_dim, normalize_dims
from genesis.autocast_state import is_autocast_enabled
from genesis.dispatch import apply
from genesis.functional.elementwise import exp, isfinite, log, maximum, minimum, sqrt, where
from genesis.functional.indexing import gather
from genesis.functional.shape import squeeze
from genesis.grad_mode import no_grad
from genesis.ops import reduction as R

MaxMin = namedtuple("MaxMin", ["values", "indices"])


def _reduce(op, x, dim, keepdim):
    return apply(op, x, dims=normalize_dims(dim, x.ndim), keepdim=bool(keepdim))


def sum(x, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    return _reduce(R.sum, x, dim, keepdim)


def prod(x, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    return _reduce(R.prod, x, dim, keepdim)


def amax(x, dim=None, keepdim=False):
    return _reduce(R.amax, x, dim, keepdim)


def amin(x, dim=None, keepdim=False):
    return _reduce(R.amin, x, dim, keepdim)


def all(x, dim=None, keepdim=False):
    return _reduce(R.all, x, dim, keepdim)


def any(x, dim=None, keepdim=False):
    return _reduce(R.any, x, dim, keepdim)


def _arg(op, x, dim, keepdim):
    dim = None if dim is None else normalize_dim(dim, x.ndim)
    if dim is not None and x.ndim == 0:
        dim = None
    return apply(op, x, dim=dim, keepdim=bool(keepdim))


def argmax(x, dim=None, keepdim=False):
    return _arg(R.argmax, x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _arg(R.argmin, x, dim, keepdim)


def _extremum_with_index(x, dim, keepdim, reduce_op, arg_op, name):
    if x.ndim == 0:
        return MaxMin(x.clone(), _arg(arg_op, x, None, False))
    dim = normalize_dim(dim, x.ndim)
    # argmax refuses bool (as in PyTorch), but max(dim) of a bool tensor is defined
    indices = _arg(arg_op, x.to(dtypes.uint8) if x.dtype is dtypes.bool_ else x, dim, True)
    values = gather(x, dim, indices)  # the gradient goes to the chosen element, as in PyTorch
    if not keepdim:
        values, indices = squeeze(values, dim), squeeze(indices, dim)
    return MaxMin(values, indices)


def max(x, dim=None, keepdim=False):
    """max(x) -> the largest element; max(x, dim) -> (values, indices); max(x, other) -> maximum."""
    if is_tensor(dim):
        return maximum(x, dim)
    if dim is None:
        return amax(x)
    return _extremum_with_index(x, dim, keepdim, R.amax, R.argmax, "max")


def min(x, dim=None, keepdim=False):
    if is_tensor(dim):
        return minimum(x, dim)
    if dim is None:
        return amin(x)
    return _extremum_with_index(x, dim, keepdim, R.amin, R.argmin, "min")


def _count(x, dims) -> int:
    n = 1
    for d in dims:
        n *= x.shape[d]
    return n


def _float_input(x, name):
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} needs a floating-point tensor, got {x.dtype.name}; cast it first, e.g. x.float()")
    # fp16/bf16 accumulate in fp32 and round once at the end, as PyTorch does; inside an
    # autocast region the result stays fp32 (reductions are autocast's FP32 class)
    if not x.dtype.is_low_precision:
        return x, None
    return x.to(dtypes.float32), (None if is_autocast_enabled() else x.dtype)


def mean(x, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        x = x.to(dtype)
    x, round_to = _float_input(x, "mean")
    dims = normalize_dims(dim, x.ndim)
    out = sum(x, dims, keepdim) / _count(x, dims) if _count(x, dims) else sum(x, dims, keepdim) * float("nan")
    return out.to(round_to) if round_to else out


def var(x, dim=None, *, correction=1, keepdim=False, unbiased=None):
    if unbiased is not None:
        correction = 1 if unbiased else 0
    x, round_to = _float_input(x, "var")
    dims = normalize_dims(dim, x.ndim)
    centered = x - mean(x, dims, keepdim=True)
    out = sum(centered * centered, dims, keepdim) / builtins.max(_count(x, dims) - correction, 0)
    return out.to(round_to) if round_to else out


def std(x, dim=None, *, correction=1, keepdim=False, unbiased=None):
    return sqrt(var(x, dim, correction=correction, keepdim=keepdim, unbiased=unbiased))


def logsumexp(x, dim, keepdim=False):
    if not x.dtype.is_floating_point:  # PyTorch takes integers here, unlike mean and var
        x = x.to(dtypes.get_default_dtype())
    x, round_to = _float_input(x, "logsumexp")
    dims = normalize_dims(dim, x.ndim)
    with no_grad():  # the shift only steadies the numbers; it carries no gradient
        if _count(x, dims):
            shift = amax(x, dims, keepdim=True)
            shift = where(isfinite(shift), shift, 0.0)
        else:  # nothing to reduce: the answer is log(0) = -inf, and amax has no identity
            shift = 0.0
    out = log(sum(exp(x - shift), dims, keepdim=True)) + shift
    if not keepdim:
        out = squeeze(out, dims)
    return out.to(round_to) if round_to else out


__all__ = [
    "sum",
    "prod",
    "amax",
    "amin",
    "all",
    "any",
    "argmax",
    "argmin",
    "max",
    "min",
    "mean",
    "var",
    "std",
    "logsumexp",
    "MaxMin",
]
