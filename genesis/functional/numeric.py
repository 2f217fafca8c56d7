"""Rounding, logarithms in other bases, NaN cleanup and closeness, as composites of primitives.

round rounds half to even, as PyTorch (and IEEE) do: it reads the fraction
x - floor(x), exact in floating point, so nothing is lost to an added 0.5.
"""

from __future__ import annotations

import math

from genesis import dtypes
from genesis.arguments import is_tensor
from genesis.functional.elementwise import ceil, floor, isfinite, isnan, log, pow, remainder, where
from genesis.functional.reduction import all
from genesis.functional.shape import clone

# the largest finite value of each floating dtype (PyTorch's torch.finfo(dtype).max)
_LARGEST = {
    dtypes.float16: 65504.0,
    dtypes.bfloat16: 3.3895313892515355e38,
    dtypes.float32: 3.4028234663852886e38,
    dtypes.float64: 1.7976931348623157e308,
}


def _round_half_even(x):
    below = floor(x)
    fraction = x - below
    out = where(fraction > 0.5, below + 1, below)
    return where(fraction == 0.5, below + remainder(below, 2), out)  # an odd floor goes up, an even one stays


def round(x, *, decimals=0):
    """Round half to even; with `decimals`, at that many places after the point (as PyTorch: scale, round,
    unscale)."""
    if not x.dtype.is_floating_point:
        return clone(x)
    if decimals == 0:
        return _round_half_even(x)
    if decimals > 0:
        scale = 10.0**decimals
        return _round_half_even(x * scale) / scale
    scale = 10.0 ** (-decimals)
    return _round_half_even(x / scale) * scale


def trunc(x):
    """Round toward zero."""
    if not x.dtype.is_floating_point:
        return clone(x)
    return where(x < 0, ceil(x), floor(x))


def frac(x):
    """x - trunc(x): the fractional part, with x's sign."""
    if not x.dtype.is_floating_point:
        raise TypeError(f"frac needs a floating-point tensor, got {x.dtype.name}")
    return x - trunc(x)


def log2(x):
    return log(x) * (1.0 / math.log(2.0))


def log10(x):
    return log(x) * (1.0 / math.log(10.0))


def exp2(x):
    return pow(2.0, x)  # exact at integers, where exp(x * ln 2) is not


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    """NaN, +inf and -inf replaced by `nan`, `posinf` and `neginf` (by default the dtype's extremes)."""
    if not x.dtype.is_floating_point:
        return clone(x)
    largest = _LARGEST[x.dtype]
    posinf = largest if posinf is None else posinf
    neginf = -largest if neginf is None else neginf
    out = where(x == float("inf"), posinf, x)
    out = where(x == float("-inf"), neginf, out)
    return where(isnan(x), nan, out).to(x.dtype)


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b|, elementwise; equal values (infinities too) are close."""
    if is_tensor(a) and is_tensor(b) and a.dtype is not b.dtype:
        raise TypeError(f"isclose: a and b must have the same dtype, got {a.dtype.name} and {b.dtype.name}")
    close = a == b
    if a.dtype.is_floating_point:
        finite = isfinite(a) & isfinite(b)  # an infinity is close only to itself
        close = close | (finite & ((a - b).abs() <= atol + rtol * b.abs()))
        if equal_nan:
            close = close | (isnan(a) & isnan(b))
    elif a.dtype is not dtypes.bool_:
        wide = dtypes.float64
        close = close | ((a.to(wide) - b.to(wide)).abs() <= atol + rtol * b.to(wide).abs())
    return close


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Whether every pair is close (a host read: a compiled function breaks its graph here)."""
    return bool(all(isclose(a, b, rtol, atol, equal_nan)).item())


def equal(a, b) -> bool:
    """Same shape and the same values (a host read)."""
    if a.shape != b.shape:
        return False
    return bool(all(a == b).item())


__all__ = [
    "round",
    "trunc",
    "frac",
    "log2",
    "log10",
    "exp2",
    "nan_to_num",
    "isclose",
    "allclose",
    "equal",
]
