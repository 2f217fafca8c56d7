"""Activations, as compositions of genesis primitives.

softmax and log_softmax are the functional layer's (`functional/softmax.py`),
re-exported here under their `nn.functional` names.
"""

from __future__ import annotations

from genesis import dtypes
from genesis import functional as GF
from genesis.errors import ShapeError
from genesis.functional.inplace import assign_inplace
from genesis.functional.softmax import _as_float, log_softmax, round_like, softmax, upcast  # noqa: F401
from genesis.grad_mode import is_grad_enabled


def relu(x, inplace: bool = False):
    return _maybe_inplace(x, GF.relu(x), inplace)


def relu6(x, inplace: bool = False):
    return hardtanh(x, 0.0, 6.0, inplace)


def leaky_relu(x, negative_slope: float = 0.01, inplace: bool = False):
    v = _operand(x, inplace)
    return _maybe_inplace(x, GF.where(v > 0, v, v * negative_slope), inplace)


def elu(x, alpha: float = 1.0, inplace: bool = False):
    # expm1 of the non-positive part: the unused branch of `where` never overflows. (`where`, not
    # `minimum`, which would halve the gradient at 0 where PyTorch takes the exponential side fully.)
    v = _operand(x, inplace)
    positive = v > 0
    return _maybe_inplace(x, GF.where(positive, v, GF.expm1(GF.where(positive, 0.0, v)) * alpha), inplace)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x, inplace: bool = False):
    """scale * elu(x, alpha), with the self-normalising constants."""
    return _maybe_inplace(x, elu(_operand(x, inplace), _SELU_ALPHA) * _SELU_SCALE, inplace)


def celu(x, alpha: float = 1.0, inplace: bool = False):
    """x where positive, else alpha * (exp(x / alpha) - 1)."""
    if alpha == 0:
        raise ValueError("ZeroDivisionError: alpha cannot be 0 for CELU")
    v = _operand(x, inplace)
    positive = v > 0
    return _maybe_inplace(x, GF.where(positive, v, GF.expm1(GF.where(positive, 0.0, v) / alpha) * alpha), inplace)


def softsign(x):
    return x / (1 + GF.abs(x))


def tanhshrink(x):
    return x - GF.tanh(x)


def threshold(x, threshold: float, value: float, inplace: bool = False):
    """x where x > threshold, else `value`."""
    v = _operand(x, inplace)
    return _maybe_inplace(x, GF.where(v > threshold, v, value), inplace)


def hardsigmoid(x, inplace: bool = False):
    """relu6(x + 3) / 6, with PyTorch's gradient: 1/6 strictly inside (-3, 3), else 0."""
    v = _operand(x, inplace)
    inside = (v > -3) & (v < 3)
    return _maybe_inplace(x, GF.where(inside, v / 6 + 0.5, (v >= 3).to(v.dtype)), inplace)


def hardswish(x, inplace: bool = False):
    """x * relu6(x + 3) / 6; its gradient is x / 3 + 0.5 strictly inside (-3, 3), 0 below and 1
    above, as PyTorch's."""
    v = _operand(x, inplace)
    middle = v * (v + 3) / 6
    return _maybe_inplace(x, GF.where(v <= -3, 0.0, GF.where(v < 3, middle, v)), inplace)


def prelu(x, weight):
    """x where positive, else weight * x; a weight of C values applies per channel (dim 1)."""
    if weight.numel() != 1:
        if x.ndim < 2 or x.shape[1] != weight.numel():
            raise ShapeError(
                f"prelu: a weight of {weight.numel()} values needs an input with as many channels (dim 1), "
                f"got shape {list(x.shape)}"
            )
        weight = GF.reshape(weight, (1, -1) + (1,) * (x.ndim - 2))
    return GF.where(x > 0, x, weight * x)


def gelu(x, approximate: str = "none"):
    return GF.gelu(x, approximate=approximate)


def silu(x, inplace: bool = False):
    return _maybe_inplace(x, GF.silu(x), inplace)


def mish(x, inplace: bool = False):
    v = _operand(x, inplace)
    return _maybe_inplace(x, v * GF.tanh(softplus(v)), inplace)


def sigmoid(x):
    return GF.sigmoid(x)


def tanh(x):
    return GF.tanh(x)


def hardtanh(x, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """clamp, but with PyTorch's gradient: zero at the bounds themselves (clamp passes it there)."""
    v = _operand(x, inplace)
    inside = (v > min_val) & (v < max_val)
    return _maybe_inplace(x, GF.where(inside, v, GF.clamp(v, min_val, max_val).detach()), inplace)


def logsigmoid(x):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)): stable for large |x|, and exact at 0."""
    return GF.minimum(x, 0.0) - GF.log1p(GF.exp(-GF.abs(x)))


def softplus(x, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold (as PyTorch)."""
    scaled = x * beta if beta != 1 else x
    smooth = GF.maximum(scaled, 0.0) + GF.log1p(GF.exp(-GF.abs(scaled)))
    smooth = smooth / beta if beta != 1 else smooth
    return GF.where(scaled > threshold, x, smooth)


def softmin(x, dim=None, dtype=None):
    return softmax(-_as_float(x, dtype), dim)


def glu(x, dim: int = -1):
    a, b = GF.chunk(x, 2, dim)
    return a * GF.sigmoid(b)


def _operand(x, inplace):
    """What a composite activation computes from. In place under autograd, a copy of `x`: the
    composite's inner nodes (the `x * slope` of leaky_relu) save `x` for backward, and the write
    that follows would leave them stale (a primitive's own node gets the old values from
    `assign_inplace`, but the nodes inside a composite do not)."""
    if inplace and x.requires_grad and is_grad_enabled():
        return GF.clone(x)
    return x


def _maybe_inplace(x, result, inplace):
    if not inplace:
        return result

    return assign_inplace(x, result)


def finfo_eps(dtype) -> float:
    """Machine epsilon of a floating dtype (PyTorch's torch.finfo(dtype).eps)."""
    return {dtypes.float16: 2.0**-10, dtypes.bfloat16: 2.0**-7, dtypes.float32: 2.0**-23, dtypes.float64: 2.0**-52}[
        dtype
    ]


__all__ = [
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "softsign",
    "tanhshrink",
    "threshold",
    "hardsigmoid",
    "hardswish",
    "prelu",
    "gelu",
    "silu",
    "mish",
    "sigmoid",
    "tanh",
    "hardtanh",
    "logsigmoid",
    "softplus",
    "softmax",
    "log_softmax",
    "softmin",
    "glu",
]
