"""softmax and log_softmax, as compositions of genesis primitives.

They live in the functional layer (not only in `nn.functional`) because
`Tensor.softmax` and `genesis.softmax` are bound from here.

Both subtract the row maximum before `exp`. The shift is taken under
`no_grad`: softmax is invariant to it, so the true gradient does not flow
through it, and detaching keeps the backward graph short. A row whose maximum
is not finite (all -inf, as in a fully masked attention row) is shifted by 0
instead, which gives NaN for that row, as PyTorch does.

Under autocast, `exp`, `log` and the reductions are FP32-class primitives, so
these run in float32 without a rule of their own.
"""

from __future__ import annotations

from genesis import dtypes
from genesis.autocast_state import is_autocast_enabled
from genesis.functional.elementwise import exp, isfinite, log, where
from genesis.functional.reduction import amax, sum
from genesis.grad_mode import no_grad


def _softmax_dim(x, dim):
    if dim is None:  # PyTorch's legacy choice for an implicit dim
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return dim


def _as_float(x, dtype):
    if dtype is not None:
        return x.to(dtype)
    if not x.dtype.is_floating_point:
        raise TypeError(f"softmax/log_softmax need a floating-point input, got {x.dtype.name}")
    return x


def upcast(x):
    """fp16/bf16 composites compute in fp32 and round once at the end, as PyTorch's fused kernels do."""
    return x.to(dtypes.float32) if x.dtype.is_low_precision else x


def round_like(out, x):
    """Round an fp32 result of an fp16/bf16 input back to its dtype, except under autocast.

    Under autocast these composites are FP32-class (their exp/log/reductions
    are), so their results stay float32 there, as PyTorch's autocast gives.
    """
    if x.dtype.is_low_precision and out.dtype is not x.dtype and not is_autocast_enabled():
        return out.to(x.dtype)
    return out


def _shift(x, dim):
    with no_grad():
        shift = amax(x, dim, keepdim=True)
        return where(isfinite(shift), shift, 0.0)


def softmax(x, dim=None, dtype=None):
    """exp(x - max) / sum(exp(x - max)) along `dim`."""
    x = _as_float(x, dtype)
    dim = _softmax_dim(x, dim)
    work = upcast(x)
    e = exp(work - _shift(work, dim))
    return round_like(e / sum(e, dim, keepdim=True), x)


def log_softmax(x, dim=None, dtype=None):
    """(x - max) - log(sum(exp(x - max))) along `dim`."""
    x = _as_float(x, dtype)
    dim = _softmax_dim(x, dim)
    work = upcast(x)
    shifted = work - _shift(work, dim)
    return round_like(shifted - log(sum(exp(shifted), dim, keepdim=True)), x)


__all__ = ["softmax", "log_softmax"]
