"""Random primitives: uniform and normal floats from a seed, one definition for eager and compiled code.

The seed is a 0-d int64 *input*, drawn from a `genesis.Generator` each time
a draw is made: in eager mode when `rand` runs, in a compiled program at
every call (the tracer makes it a host scalar read per call). So a compiled
step draws fresh dropout masks every call, and `genesis.manual_seed` makes
both modes reproducible. The kernel builds a PCG64 stream from the seed.
"""

from __future__ import annotations

import numpy as np

from genesis import dtypes
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
