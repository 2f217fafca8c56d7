"""Autocast: run each op in the precision its autocast class asks for.

The op table decides, not a list kept here: every `Op` carries an `Autocast`
class, and inside an autocast region dispatch hands each op's inputs to
`cast_inputs` before the dtype rule runs:

- LOW_PRECISION (matmul): float32 (and the other low dtype) inputs are cast
  to the region's dtype; the kernel accumulates in fp32 and returns the low
  dtype.
- FP32 (exp, log, pow, reductions): fp16/bf16 inputs are cast to float32.
  Composites built from them (softmax, layer_norm, losses, mean, var) thus
  run in fp32 without a rule of their own.
- PROMOTE (add, mul, where, ...): floating inputs narrower than the op's
  promoted dtype are cast up to it. This is PyTorch's type promotion made
  explicit (a 0-d tensor does not widen a tensor with dims, as for a Python
  scalar), so a fp16 loss times a 0-d fp32 loss scale stays fp16 as in
  PyTorch; a wider input is never cast down, so no value is rounded here.
- NONE (views, casts, integer ops): untouched.

float64 inputs are never cast, as in PyTorch: a double is a deliberate
choice. The casts are ordinary `cast` ops (class NONE, so the hook does not
recurse), so autograd records them and a float32 parameter gets a float32
gradient. The backward engine turns autocast off while it runs the vjp rules:
backward ops run in the dtypes their forward ops used, as in PyTorch.

`cast_targets` is the policy itself, shared with the compiler: a trace marks
each op of a region instead of casting, and the autocast pass inserts the
casts this function names (compiler/passes/autocast.py).

The hook is installed in dispatch only while autocast is on, so the hot path
costs nothing outside a region. The state is one module global, as grad mode
is: genesis runs ops on one thread.

Differences from PyTorch's CPU autocast, on purpose: PyTorch's CPU lists keep
exp, log, pow, sum, softmax and layer_norm in the low dtype; genesis follows
the CUDA lists (the issue's policy), where those run in fp32. The default
dtype is float16 (PyTorch's CPU default is bfloat16), and an unsupported dtype
raises instead of warning and disabling autocast.
"""

from __future__ import annotations

import functools

from genesis import autocast_state, dispatch, dtypes
from genesis.autocast_state import get_autocast_dtype, is_autocast_enabled  # noqa: F401  (amp's API)
from genesis.functional.shape import cast
from genesis.ops.op import Autocast

SUPPORTED_DTYPES = (dtypes.float16, dtypes.bfloat16)
DEVICE_TYPES = ("cpu", "cuda")


def _set_state(enabled: bool, dtype: dtypes.DType) -> None:
    autocast_state.set_state(enabled, dtype)
    dispatch.autocast_hook = cast_inputs if enabled else None


def _float_dtype(x):
    """The dtype of a floating tensor (or of a graph value's meta); None for anything else."""
    dtype = getattr(x, "dtype", None)
    return dtype if isinstance(dtype, dtypes.DType) and dtype.category == dtypes.FLOAT else None


def cast_targets(op, inputs, region_dtype) -> list:
    """Per input of `op`, the dtype autocast casts it to in a region of `region_dtype`, or None.

    The one statement of the policy: eager's hook applies it at once, and the compiler's
    autocast pass applies it to the ops a trace marked (passes/autocast.py). `inputs` are
    tensors, graph metas (anything with dtype and ndim) or Python scalars."""
    policy = op.autocast
    found = [_float_dtype(x) for x in inputs]
    if policy is Autocast.NONE:
        return [None] * len(inputs)
    if policy is Autocast.LOW_PRECISION:
        return [
            region_dtype if d is not None and d is not region_dtype and d is not dtypes.float64 else None for d in found
        ]
    if policy is Autocast.FP32:
        return [dtypes.float32 if d is not None and d.is_low_precision else None for d in found]
    floats = [(d, x.ndim) for d, x in zip(found, inputs) if d is not None]
    if len(floats) < 2 or all(d is floats[0][0] for d, _ in floats):
        return [None] * len(inputs)
    target = dtypes.result_type([d for d, ndim in floats if ndim], [d for d, ndim in floats if not ndim], [])
    return [
        target if d is not None and d is not target and dtypes.promote_types(d, target) is target else None
        for d in found
    ]


def cast_inputs(op, inputs):
    """The dispatch hook: rewrite `op`'s inputs by its autocast class."""
    if op.autocast is Autocast.NONE:
        return inputs
    targets = cast_targets(op, inputs, autocast_state.dtype)
    return tuple(x if target is None else cast(x, target) for x, target in zip(inputs, targets))


def _check_dtype(dtype) -> dtypes.DType:
    dtype = dtypes.as_dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"autocast runs in float16 or bfloat16, got {dtype.name}")
    return dtype


class autocast:
    """Context manager and decorator: ops inside run by their autocast class.

    `autocast(enabled=True, dtype=None, device_type="cpu")`. `dtype=None`
    keeps the current region's dtype (float16 outside any region);
    `enabled=False` turns autocast off inside an enabled region. Leaving a
    region restores the state it found, also when an exception leaves it.
    PyTorch's argument order `autocast("cpu", dtype=...)` is accepted too.
    """

    def __init__(self, enabled=True, dtype=None, device_type: str = "cpu", cache_enabled=None):
        if isinstance(enabled, str):  # torch.autocast("cpu", ...): the device type comes first
            device_type, enabled = enabled, True
        if device_type not in DEVICE_TYPES:
            raise ValueError(f"autocast: device_type must be one of {', '.join(DEVICE_TYPES)}, got {device_type!r}")
        self.device_type = device_type
        self.enabled = bool(enabled)
        self.dtype = None if dtype is None else _check_dtype(dtype)
        # cache_enabled is accepted for PyTorch compatibility: genesis keeps no cast cache.
        self._outer_states = []

    def __enter__(self):
        self._outer_states.append((autocast_state.enabled, autocast_state.dtype))
        _set_state(self.enabled, self.dtype if self.dtype is not None else autocast_state.dtype)
        return self

    def __exit__(self, *exc):
        _set_state(*self._outer_states.pop())
        return False

    def __call__(self, fn):
        enabled, dtype, device_type = self.enabled, self.dtype, self.device_type

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            # a fresh region per call, so recursive and concurrent calls nest correctly
            with autocast(enabled, dtype, device_type):
                return fn(*args, **kwargs)

        return wrapper

    def __repr__(self) -> str:
        dtype = self.dtype.name if self.dtype is not None else "inherited"
        return f"autocast(enabled={self.enabled}, dtype={dtype}, device_type={self.device_type!r})"


__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "cast_inputs", "cast_targets", "SUPPORTED_DTYPES"]
