"""Adam's eager fast path: `functional.adam_update` in numpy, on the tensors' buffers.

Written in genesis ops, one Adam step of one parameter dispatches about twenty
ops, each paying dispatch's ~4 us around a kernel: a third of an eager MLP step
at batch 64. A composite may have an eager fast path (its traced form stays the
decomposition), so this one does the same arithmetic straight on the arrays:
the same numpy ufuncs, on the same dtypes, in the same order, so the bits are
those of the op path (`tests/test_optim.py` holds that, option by option). It
takes float32 and float64 parameters whose buffers it may write in place;
anything else (low precision, a view, a traced step) goes through the ops.
"""

from __future__ import annotations

import numpy as np

from genesis import dispatch
from genesis.tensor import Tensor

_FAST_DTYPES = (np.float32, np.float64)


def applies(param, grad, state, hyperparameters) -> bool:
    """Whether the fast path computes what the ops would: plain float buffers, Python numbers for
    the hyperparameters (not tensors: a tensor learning rate promotes differently), eager, no
    autocast."""
    if dispatch.is_tracing() or dispatch.autocast_hook is not None:
        return False
    if not all(type(h) in (int, float) for h in hyperparameters):
        return False
    dtype = param._data.dtype
    if dtype not in _FAST_DTYPES or grad._data.dtype != dtype:
        return False
    return all(
        isinstance(t._data, np.ndarray)
        and t._data.dtype == dtype
        and t._data.flags.c_contiguous
        and t._data.flags.writeable
        and t._view_of is None
        and t._node is None
        for t in (param, *state)
        if t is not None
    )


def _written(*tensors) -> None:
    """A new version of each tensor written in place (what the ops' in-place writes record)."""
    for t in tensors:
        if t is not None:
            t._version[0] += 1


def adam_update(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None,
    *,
    step: Tensor,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> None:
    """`functional.adam_update`, line by line; the comments name the op each line stands for."""
    p, g, m, v = param._data, grad._data, exp_avg._data, exp_avg_sq._data
    dtype = p.dtype.type
    if maximize:
        g = np.negative(g)
    if weight_decay != 0:
        if decoupled_weight_decay:
            np.multiply(p, 1 - lr * weight_decay, out=p)  # param.mul_
        else:
            g = g + p * weight_decay
    weight = 1 - beta1  # lerp_(exp_avg, grad, 1 - beta1), with PyTorch's choice of formula
    if weight < 0.5:
        np.add(m, (g - m) * weight, out=m)
    else:
        np.copyto(m, g - (g - m) * (1 - weight))
    np.multiply(v, beta2, out=v)  # exp_avg_sq.mul_(beta2).add_(grad * (1 - beta2) * grad)
    np.add(v, g * (1 - beta2) * g, out=v)

    count = step._data.astype(np.float64)  # the bias corrections: float64 0-d arithmetic
    bias_correction1 = np.subtract(1, np.power(beta1, count))
    bias_correction2 = np.subtract(1, np.power(beta2, count))
    step_size = np.divide(lr, bias_correction1)
    bias_correction2_sqrt = np.power(bias_correction2, 0.5)

    if amsgrad:
        np.copyto(max_exp_avg_sq._data, np.maximum(max_exp_avg_sq._data, v))
        second_moment = max_exp_avg_sq._data
    else:
        second_moment = v
    # where a 0-d float64 tensor meets the parameter in an op, the op computes in the parameter's dtype
    # (dispatch casts the 0-d one first), unless the parameter is 0-d too: then in float64
    scalars = dtype if p.ndim else np.float64
    denom = np.sqrt(second_moment) / bias_correction2_sqrt.astype(scalars) + eps
    np.add(p, m * np.negative(step_size).astype(scalars) / denom, out=p)
    _written(param, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else None)


__all__ = ["applies", "adam_update"]
