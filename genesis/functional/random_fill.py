"""In-place random fills (normal_, uniform_, bernoulli_, exponential_, random_) and bernoulli.

Each draws a fresh tensor through `rand`/`randn` (so `generator=` and
`manual_seed` decide the values, and a compiled program draws afresh at each
call) and copies it into the target, dropping the target's history as
PyTorch's fills do. Integer targets draw in float64 and round down.
"""

from __future__ import annotations

from genesis import dtypes
from genesis.arguments import is_tensor
from genesis.creation import rand, randn
from genesis.functional.elementwise import floor, log1p
from genesis.functional.inplace import copy_
from genesis.grad_mode import no_grad

# PyTorch's random_() bound for floats: every integer up to 2**mantissa is representable
_FLOAT_RANDOM_BOUND = {dtypes.float16: 2**11, dtypes.bfloat16: 2**8, dtypes.float32: 2**24, dtypes.float64: 2**53}


def _sample_dtype(target):
    return target.dtype if target.dtype.is_floating_point else dtypes.float64


def _fill(target, sample):
    return copy_(target, sample.to(target.dtype))


def normal_(target, mean=0.0, std=1.0, *, generator=None):
    with no_grad():
        sample = randn(target.shape, generator=generator, dtype=_sample_dtype(target)) * std + mean
    return _fill(target, sample)


def uniform_(target, low=0.0, high=1.0, *, generator=None, **bounds):
    """Uniform on [from, to); PyTorch names the bounds `from` and `to`."""
    low, high = bounds.pop("from", low), bounds.pop("to", high)
    if bounds:
        raise TypeError(f"uniform_: unexpected arguments {sorted(bounds)}")
    with no_grad():
        sample = rand(target.shape, generator=generator, dtype=_sample_dtype(target)) * (high - low) + low
    return _fill(target, sample)


def exponential_(target, lambd=1.0, *, generator=None):
    """Exponential with rate `lambd`, by the inverse CDF -log(1 - u) / lambd."""
    if lambd <= 0:
        raise ValueError(f"exponential_: lambd must be positive, got {lambd}")
    with no_grad():
        u = rand(target.shape, generator=generator, dtype=_sample_dtype(target))
        sample = -log1p(-u) / lambd
    return _fill(target, sample)


def bernoulli_(target, p=0.5, *, generator=None):
    """1 with probability p (a number or a tensor broadcast to the target), else 0."""
    with no_grad():
        if is_tensor(p):
            p = p.to(dtypes.float64)
        sample = rand(target.shape, generator=generator, dtype=dtypes.float64) < p
    return _fill(target, sample)


def bernoulli(input, p=None, *, generator=None):
    """A tensor of input's shape and dtype with 1 where a draw falls below input's probability (or `p`)."""
    with no_grad():
        probability = input.to(dtypes.float64) if p is None else p
        sample = rand(input.shape, generator=generator, dtype=dtypes.float64) < probability
    return sample.to(input.dtype)


def _random_bounds(target, args, bounds):
    if "from" in bounds or "to" in bounds:
        low, high = bounds.pop("from", 0), bounds.pop("to", None)
    elif len(args) == 2:
        low, high = args
    elif len(args) == 1:  # random_(to)
        low, high = 0, args[0]
    else:
        low, high = 0, None
    if bounds or len(args) > 2:
        raise TypeError(f"random_ takes (to) or (from, to), got {len(args)} numbers and {sorted(bounds)}")
    if high is None:  # the dtype's largest, inclusive
        if target.dtype.is_floating_point:
            high = _FLOAT_RANDOM_BOUND[target.dtype] + 1
        elif target.dtype is dtypes.bool_:
            high = 2
        else:
            high = 2 ** (8 * target.dtype.itemsize - int(target.dtype.is_signed))
    if low >= high:
        raise ValueError(f"random_: from ({low}) must be less than to ({high})")
    return low, high


def random_(target, *args, generator=None, **bounds):
    """Integers uniform on [from, to): random_(to) or random_(from, to); without `to`, up to the dtype's
    largest (for floats 2**mantissa, where every integer is representable), as PyTorch. The draw is a
    float64 uniform scaled to the range, so a range wider than 2**53 (int64's whole one) is covered in
    steps of range / 2**53."""
    low, high = _random_bounds(target, args, bounds)
    with no_grad():
        sample = floor(rand(target.shape, generator=generator, dtype=dtypes.float64) * (high - low)) + low
    return _fill(target, sample)


__all__ = ["bernoulli"]
