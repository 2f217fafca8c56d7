"""Random primitives: uniform and normal floats, and multinomial draws, from a seed, one definition for
eager and compiled code.

The seed is a 0-d int64 *input*, drawn from a `genesis.Generator` each time
a draw is made: in eager mode when `rand` runs, in a compiled program at
every call (the tracer makes it a host scalar read per call). So a compiled
step draws fresh dropout masks every call, and `genesis.manual_seed` makes
both modes reproducible. The kernel builds a PCG64 stream from the seed.
"""

from __future__ import annotations

import numpy as np

from genesis import dtypes
from genesis.errors import ShapeError
from genesis.ops.op import Kind, Op, register

# Significand bits of the low-precision floats. uniform draws multiples of 2**-bits, so every
# value is exact in the dtype: rounding a float32 draw instead would turn values just
# under 1 into 1.0 (about 1 in 500 for bfloat16), breaking the promise of [0, 1).
RAND_BITS = {dtypes.float16: 11, dtypes.bfloat16: 8}


def _stream(seed) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(int(seed)))


def _wide(dtype):
    return np.float64 if dtype is dtypes.float64 else np.float32


def _uniform_kernel(seed, *, shape, dtype):
    bits = RAND_BITS.get(dtype)
    if bits is not None:
        return _stream(seed).integers(0, 2**bits, size=shape).astype(np.float32) * np.float32(2.0**-bits)
    return _stream(seed).random(shape, dtype=_wide(dtype))


def _normal_kernel(seed, *, shape, dtype):
    return _stream(seed).standard_normal(shape, dtype=_wide(dtype))


def _shape(seed_shape, *, shape, dtype):
    return tuple(shape)


def _dtype(inputs, *, shape, dtype):
    if not dtype.is_floating_point:
        raise TypeError(f"random floats need a floating-point dtype, got {dtype.name}")
    return None, dtype


uniform = register(
    Op(
        name="random_uniform",
        kind=Kind.OPAQUE,
        kernel=_uniform_kernel,
        shape=_shape,
        dtype=_dtype,
        vjp=None,
        saves=frozenset(),
        upcasts_low_precision=False,
    )
)
normal = register(
    Op(
        name="random_normal",
        kind=Kind.OPAQUE,
        kernel=_normal_kernel,
        shape=_shape,
        dtype=_dtype,
        vjp=None,
        saves=frozenset(),
        upcasts_low_precision=False,
    )
)


# ---- multinomial: category indices drawn from rows of weights -------------------------------------
def _check_weights(rows):
    """What PyTorch checks of the values, with its words: a kernel error, eager or compiled alike."""
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise ValueError("multinomial: probability tensor contains either inf, nan or element < 0")
    if np.any(rows.sum(axis=1) <= 0):
        raise ValueError("multinomial: invalid distribution (sum of probabilities <= 0)")


def _multinomial_kernel(seed, weights, *, num_samples, replacement):
    rows = weights.reshape(-1, weights.shape[-1]).astype(np.float64)
    _check_weights(rows)
    stream = _stream(seed)
    if replacement:
        # one uniform per draw, found in the row's cumulative weights: a category of weight 0 has an
        # empty interval there, so it is never drawn
        bounds = np.cumsum(rows, axis=1)
        bounds /= bounds[:, -1:]
        draws = stream.random((rows.shape[0], num_samples))
        picked = np.stack([np.searchsorted(b, u, side="right") for b, u in zip(bounds, draws)])
        picked = np.minimum(picked, rows.shape[1] - 1)
    else:
        # Drawing one by one without replacement, each in proportion to the weights left, is taking
        # the smallest of Exp(1) / weight (the first of independent exponential clocks to ring);
        # weight 0 never rings, so its categories come only after every other one
        with np.errstate(divide="ignore"):
            clocks = stream.exponential(size=rows.shape) / rows
        picked = np.argsort(clocks, axis=1, kind="stable")[:, :num_samples]
    return picked.astype(np.int64).reshape(weights.shape[:-1] + (num_samples,))


def _multinomial_shape(seed_shape, weights_shape, *, num_samples, replacement):
    if len(weights_shape) not in (1, 2):
        raise ShapeError(f"multinomial: weights must be 1-d or 2-d, got shape {list(weights_shape)}")
    if num_samples <= 0:
        raise ValueError(f"multinomial: cannot draw {num_samples} samples; num_samples must be positive")
    if not replacement and num_samples > weights_shape[-1]:
        raise ValueError(
            f"multinomial: cannot draw {num_samples} samples without replacement from {weights_shape[-1]} categories"
        )
    return tuple(weights_shape[:-1]) + (num_samples,)


def _multinomial_dtype(inputs, **attrs):
    if not inputs[1].dtype.is_floating_point:
        raise TypeError(f"multinomial: weights must be floating point, got {inputs[1].dtype.name}")
    return None, dtypes.int64


multinomial = register(
    Op(
        name="multinomial",
        kind=Kind.OPAQUE,
        kernel=_multinomial_kernel,
        shape=_multinomial_shape,
        dtype=_multinomial_dtype,
        vjp=None,
        saves=frozenset(),
        upcasts_low_precision=False,
    )
)
