"""Elementwise functions: primitives bound through dispatch, and composites built from them."""

from __future__ import annotations

from genesis import dispatch, dtypes
from genesis.arguments import is_tensor
from genesis.creation import full
from genesis.dispatch import apply
from genesis.grad_mode import no_grad
from genesis.ops import activations as A
from genesis.ops import division as D
from genesis.ops import elementwise as E


def _unary(op):
    def fn(x):
        return apply(op, x)

    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise {op.name} (primitive)."
    return fn


def _binary(op):
    def fn(a, b):
        return apply(op, a, b)

    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise {op.name} with broadcasting (primitive)."
    return fn


neg = _unary(E.neg)
abs = _unary(E.abs)
exp = _unary(E.exp)
log = _unary(E.log)
log1p = _unary(E.log1p)
expm1 = _unary(E.expm1)
sqrt = _unary(E.sqrt)
rsqrt = _unary(E.rsqrt)
reciprocal = _unary(E.reciprocal)
sin = _unary(E.sin)
cos = _unary(E.cos)
tanh = _unary(E.tanh)
sigmoid = _unary(E.sigmoid)
relu = _unary(E.relu)
erf = _unary(E.erf)
sign = _unary(E.sign)
floor = _unary(E.floor)
ceil = _unary(E.ceil)
isnan = _unary(E.isnan)
isinf = _unary(E.isinf)
isfinite = _unary(E.isfinite)
logical_not = _unary(E.logical_not)

mul = _binary(E.mul)
pow = _binary(E.pow)
maximum = _binary(E.maximum)
minimum = _binary(E.minimum)
eq = _binary(E.eq)
ne = _binary(E.ne)
lt = _binary(E.lt)
le = _binary(E.le)
gt = _binary(E.gt)
ge = _binary(E.ge)
logical_and = _binary(E.logical_and)
logical_or = _binary(E.logical_or)
bitwise_and = _binary(E.bitwise_and)
bitwise_or = _binary(E.bitwise_or)
bitwise_xor = _binary(E.bitwise_xor)
bitwise_not = _unary(E.bitwise_not)


def _integer_division(op):
    """A division whose integer form has no answer for a 0 divisor. Eager's kernel refuses one; a traced
    one reads its divisor through `checked_divisor`, so that compiled code refuses it too."""

    def fn(a, b):
        integers = not is_tensor(a) or a.dtype.category in (dtypes.INT, dtypes.BOOL)
        if dispatch.is_tracing() and is_tensor(b) and b.dtype.category == dtypes.INT and integers:
            b = apply(D.checked_divisor, b, divides=op.name)
        elif type(b) is int and b == 0 and integers:  # known now: refused now, traced or not
            D.refuse_zero_divisor(op.name, b, a.dtype)
        return apply(op, a, b)

    fn.__name__ = op.name
    fn.__doc__ = f"Elementwise {op.name} with broadcasting (primitive); an integer divisor of 0 is an error."
    return fn


floor_divide = _integer_division(D.floor_divide)
remainder = _integer_division(D.remainder)
fmod = _integer_division(D.fmod)


def add(a, b, *, alpha=1):
    return apply(E.add, a, b if alpha == 1 else b * alpha)


def sub(a, b, *, alpha=1):
    return apply(E.sub, a, b if alpha == 1 else b * alpha)


def div(a, b, *, rounding_mode=None):
    """True division; rounding_mode "floor" is floor_divide, "trunc" rounds the quotient toward zero.

    Integers divide exactly: a truncated quotient is the floor of the exact multiple a - fmod(a, b).
    """
    if rounding_mode is None:
        return apply(E.div, a, b)
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode != "trunc":
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    promoted = dtypes.result_type(
        [x.dtype for x in (a, b) if is_tensor(x) and x.ndim],
        [x.dtype for x in (a, b) if is_tensor(x) and not x.ndim],
        [x for x in (a, b) if not is_tensor(x)],
    )
    if not promoted.is_floating_point:
        exact = a.to(promoted) if is_tensor(a) else a  # a bool dividend takes no part in sub
        return floor_divide(sub(exact, fmod(exact, b)), b)
    out = apply(E.div, a, b)
    return where(out < 0, ceil(out), floor(out))


def where(condition, a, b):
    if not is_tensor(condition) or condition.dtype is not dtypes.bool_:
        got = condition.dtype.name if is_tensor(condition) else type(condition).__name__
        raise TypeError(f"where expects a bool tensor as its condition, got {got}")
    if not is_tensor(a) and not is_tensor(b):
        a = _scalar_like(a, condition)
    return apply(E.where, condition, a, b)


def _scalar_like(value, like):
    """where(c, 1.0, 0.0): with no tensor values, the first value becomes a 0-d tensor."""
    return full((), value, dtype=dtypes.default_dtype_for_category(dtypes.scalar_category(value)))


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp needs at least one of min and max")
    if is_tensor(min) or is_tensor(max):
        if min is not None and max is not None and not (is_tensor(min) and is_tensor(max)):
            # PyTorch has a form with two tensor bounds and one with two numbers, not a mix
            raise TypeError(
                f"clamp: min and max must both be tensors or both be numbers, got min of type "
                f"{type(min).__name__} and max of type {type(max).__name__}; make the number a tensor"
            )
        return _clamp_by_tensors(x, min, max)
    return apply(E.clamp, x, min=min, max=max)


def clamp_min(x, min):
    return clamp(x, min=min)


def clamp_max(x, max):
    return clamp(x, max=max)


def _clamp_by_tensors(x, min, max):
    """clamp with tensor bounds, as a composite that routes the gradient as PyTorch does.

    The value is minimum(maximum(x, min), max) (so NaN propagates and max wins when
    min > max). The gradient goes to x inside [min, max], to max above it or when
    max < min, to min below it only when min < max; the remaining case (x below
    min == max) sends it nowhere. Each region is one branch of a `where`, and the
    value for the gradient-less remainder is computed without a history.
    """
    with no_grad():
        value = x
        if min is not None:
            value = maximum(value, min)
        if max is not None:
            value = minimum(value, max)
    if min is None:
        return where(x <= max, x, where(x > max, max, value))
    if max is None:
        return where(x >= min, x, where(x < min, min, value))
    take_x = (x >= min) & (x <= max)
    take_max = ((x > max) | (max < min)) & (x == x)  # a NaN x stays NaN whatever the bounds
    take_min = (x < min) & (min < max)
    return where(take_x, x, where(take_max, max, where(take_min, min, value)))


clip = clamp


def square(x):
    return x * x


silu = _unary(A.silu)
silu.__doc__ = "x * sigmoid(x), one op: its backward needs x alone."


def gelu(x, approximate: str = "none"):
    """GELU, one op: exact (x * Phi(x), with erf) or the tanh approximation."""
    if approximate == "none":
        return apply(A.gelu, x)
    if approximate == "tanh":
        return apply(A.gelu_tanh, x)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def lerp(start, end, weight):
    return start + (end - start) * weight


__all__ = [
    "add",
    "sub",
    "div",
    "where",
    "clamp",
    "clamp_min",
    "clamp_max",
    "square",
    "silu",
    "gelu",
    "lerp",
    "neg",
    "abs",
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "rsqrt",
    "reciprocal",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "erf",
    "sign",
    "floor",
    "ceil",
    "isnan",
    "isinf",
    "isfinite",
    "logical_not",
    "mul",
    "pow",
    "maximum",
    "minimum",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "logical_or",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_not",
    "floor_divide",
    "remainder",
    "fmod",
    "clip",
]
