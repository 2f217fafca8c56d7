"""Creating tensors: from data, filled, ranges, random. The boundary where host data enters."""

from __future__ import annotations

import math
import numbers

import numpy as np

from genesis import dispatch, dtypes
from genesis.arguments import normalize_shape
from genesis.ops import random as random_ops
from genesis.ops import transfer
from genesis.random import draw_seed, rng
from genesis.runtime import cuda as cuda_runtime
from genesis.runtime.cpu import NUMPY_DTYPE, from_numpy_dtype, wrapped_integer
from genesis.runtime.devices import cpu
from genesis.runtime.devices import device as as_device
from genesis.tensor import Tensor


def tensor(data, dtype=None, device=None, requires_grad=False) -> Tensor:
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or dtypes.as_dtype(dtype) is data.dtype):
        return data
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """Shares memory with `array`, as in PyTorch."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor._make(array, from_numpy_dtype(array.dtype))


def from_dlpack(data) -> Tensor:
    """A CPU tensor sharing memory with `data`, any object with `__dlpack__` (a PyTorch, CuPy or
    JAX array on the CPU, a numpy array), as `torch.from_dlpack`: numpy reads the capsule, so the
    dtypes are numpy's (not bfloat16)."""
    if not hasattr(data, "__dlpack__"):
        raise TypeError(f"from_dlpack expects an object with __dlpack__ (a tensor or array), got {type(data).__name__}")
    try:
        array = np.from_dlpack(data)
    except (BufferError, TypeError, RuntimeError) as error:
        raise TypeError(
            f"from_dlpack: {type(data).__name__} could not be shared with genesis on the CPU: {error}"
        ) from None
    return Tensor._make(array, from_numpy_dtype(array.dtype))


def _make(array, dtype, device, requires_grad):
    """A tensor of host-made `array` on `device` (a device's by a copy: runtime/cuda.py counts it)."""
    device = as_device(device)
    if device is not cpu:
        array = cuda_runtime.transfer(array, device.type)
    t = Tensor._make(array, dtype, device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _dtype(dtype, default=None):
    return dtypes.as_dtype(dtype) if dtype is not None else (default or dtypes.get_default_dtype())


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    shape = normalize_shape((size,) if isinstance(size, int) else (tuple(size),))
    if dtype is None:
        dtype = dtypes.default_dtype_for_category(dtypes.scalar_category(fill_value))
    dtype = dtypes.as_dtype(dtype)
    if type(fill_value) is int and dtype.category == dtypes.INT:
        fill_value = _integer_fill(fill_value, dtype)
    return _make(np.full(shape, fill_value, dtype=NUMPY_DTYPE[dtype]), dtype, device, requires_grad)


def _integer_fill(value: int, dtype) -> int:
    """As PyTorch: a negative value that fits the width of an unsigned dtype wraps into it (uint8's -2
    is 254); any other value outside the dtype is an error, not numpy's OverflowError."""
    info = np.iinfo(NUMPY_DTYPE[dtype])
    if info.min <= value <= info.max:
        return value
    if info.min == 0 and -(1 << (info.bits - 1)) <= value < 0:
        return int(wrapped_integer(value, dtype))
    raise ValueError(f"fill value {value} does not fit {dtype.name} [{info.min}, {info.max}]")


def zeros(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = _dtype(dtype)
    return _make(np.zeros(normalize_shape(size), dtype=NUMPY_DTYPE[dtype]), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = _dtype(dtype)
    return _make(np.ones(normalize_shape(size), dtype=NUMPY_DTYPE[dtype]), dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = _dtype(dtype)
    return _make(np.empty(normalize_shape(size), dtype=NUMPY_DTYPE[dtype]), dtype, device, requires_grad)


def _device_of(x, device):
    """A `*_like` factory's device: `x`'s unless told otherwise, as in PyTorch."""
    return x.device if device is None else device


def zeros_like(x, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(x.shape, dtype=dtype or x.dtype, device=_device_of(x, device), requires_grad=requires_grad)


def ones_like(x, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return ones(x.shape, dtype=dtype or x.dtype, device=_device_of(x, device), requires_grad=requires_grad)


def empty_like(x, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return empty(x.shape, dtype=dtype or x.dtype, device=_device_of(x, device), requires_grad=requires_grad)


def full_like(x, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=_device_of(x, device), requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    if dtype is None:
        is_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = dtypes.int64 if is_int else dtypes.get_default_dtype()
    dtype = dtypes.as_dtype(dtype)
    count = max(0, math.ceil((end - start) / step))
    array = start + np.arange(count, dtype=np.float64 if dtype.is_floating_point else np.int64) * step
    return _make(array.astype(NUMPY_DTYPE[dtype]), dtype, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = _dtype(dtype)
    if steps < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    array = np.linspace(start, end, steps, dtype=np.float64).astype(NUMPY_DTYPE[dtype])
    return _make(array, dtype, device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = _dtype(dtype)
    return _make(np.eye(n, m, dtype=NUMPY_DTYPE[dtype]), dtype, device, requires_grad)


def _seed(generator):
    """A 0-d int64 seed for one draw: drawn now in eager mode; while tracing, a graph input that
    draws a fresh seed from the generator at every call of the compiled program."""
    seed = dispatch.host_scalar(lambda: draw_seed(generator), dtypes.int64, key=("seed", object()))
    return seed if isinstance(seed, Tensor) else _make(np.array(seed, dtype=np.int64), dtypes.int64, None, False)


def _random_float(op, shape, generator, dtype, requires_grad, device=None):
    out = dispatch.apply(op, _seed(generator), shape=shape, dtype=_dtype(dtype))
    device = as_device(device)
    if device is not cpu:  # drawn on the host, from the one generator, then copied (runtime/cuda.py)
        out = dispatch.apply(transfer.to_device, out, device=str(device))
    if requires_grad:
        out.requires_grad_(True)
    return out


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1): 1.0 itself never appears, in any dtype."""
    return _random_float(random_ops.uniform, normalize_shape(size), generator, dtype, requires_grad, device)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _random_float(random_ops.normal, normalize_shape(size), generator, dtype, requires_grad, device)


def multinomial(input, num_samples, replacement=False, *, generator=None) -> Tensor:
    """`num_samples` category indices per row of (unnormalised) weights, each drawn in proportion to
    its weight; without replacement, each category at most once. A primitive with a seed input, as
    rand's, so it traces, a compiled program draws afresh at each call, and `manual_seed` repeats it."""
    return dispatch.apply(
        random_ops.multinomial, _seed(generator), input, num_samples=int(num_samples), replacement=bool(replacement)
    )


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high  # randint(high, size), as in PyTorch
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint needs a size, e.g. randint(0, 10, (3,))")
    if low >= high:
        raise ValueError(f"randint: low ({low}) must be less than high ({high})")
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    array = rng(generator).integers(low, high, size=normalize_shape((size,)), dtype=np.int64)
    return _make(array.astype(NUMPY_DTYPE[dtype]), dtype, device, False)


def randperm(n, *, generator=None, dtype=None, device=None) -> Tensor:
    dtype = dtypes.as_dtype(dtype) if dtype is not None else dtypes.int64
    return _make(rng(generator).permutation(n).astype(NUMPY_DTYPE[dtype]), dtype, device, False)


def rand_like(x, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return rand(
        x.shape, generator=generator, dtype=dtype or x.dtype, device=_device_of(x, device), requires_grad=requires_grad
    )


def randn_like(x, *, generator=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return randn(
        x.shape, generator=generator, dtype=dtype or x.dtype, device=_device_of(x, device), requires_grad=requires_grad
    )


def randint_like(x, low, high=None, *, generator=None, dtype=None) -> Tensor:
    return randint(low, high, x.shape, generator=generator, dtype=dtype or x.dtype)
