"""Floor division, remainder and fmod: elementwise primitives with the rounding of Python and PyTorch.

Python's rounding for floor_divide and remainder (the remainder takes the divisor's sign), C's for
fmod, with PyTorch's answers for floats: -4.0 % 2 is -0.0 (the sign of fmod's zero), 1 // 0.1 is 9.
Integers divide exactly (never through a float) and wrap where the quotient overflows (the most
negative value // -1). An integer divisor of 0 has no answer: eager raises, as PyTorch does; a
compiled kernel cannot raise from its loop, so there the snippets give numpy's 0 (never x86's trap)
and `checked_divisor` refuses a zero before the kernel runs.
"""

from __future__ import annotations

import numpy as np

from genesis.dtypes import BOOL
from genesis.errors import IntegerDivisionByZeroError
from genesis.ops import dtype_rules as dt
from genesis.ops import elementwise as E
from genesis.ops import shape_rules
from genesis.ops.constants import zeros_like
from genesis.ops.elementwise import SAVES_INPUTS, SAVES_NOTHING, elementwise_op
from genesis.ops.op import Autocast, Kind, Op, register


def _numeric(name):
    """Defined for numbers, not for bools: a bool divided by an int divides integers, as in PyTorch."""

    def checked(inputs, **attrs):
        compute, out = dt.same(inputs, **attrs)
        if out.category == BOOL:
            raise TypeError(f"{name} is not defined for bool tensors")
        return compute, out

    return checked


def refuse_zero_divisor(name, divisor, dtype) -> None:
    """An integer division by a divisor holding a 0 has no answer: IntegerDivisionByZeroError."""
    if not np.all(divisor):
        raise IntegerDivisionByZeroError(
            f"{name}: integer division by zero (a divisor of dtype {dtype.name} holds 0; "
            "divide floating-point tensors to get inf or nan)"
        )


def _nonzero_integer_divisor(name, kernel):
    def checked(a, b):
        common = np.result_type(a, b)
        if common.kind in "iu":
            refuse_zero_divisor(name, b, common)
        return kernel(a, b)

    return checked


def _checked_divisor_kernel(b, *, divides):
    refuse_zero_divisor(divides, b, b.dtype)
    return b


# A traced integer division reads its divisor through this check, which a compiled program runs as a
# library call before the division's kernel: the check eager's kernel makes, where a fused loop
# cannot raise. Its value is the divisor itself.
checked_divisor = register(
    Op(
        name="checked_divisor",
        kind=Kind.OPAQUE,
        kernel=_checked_divisor_kernel,
        shape=shape_rules.same_as_first,
        dtype=dt.first_input,
        vjp=None,
        saves=SAVES_NOTHING,
        upcasts_low_precision=False,
    )
)


def _remainder_kernel(a, b):
    # fmod, moved onto the divisor's side where the signs differ: PyTorch's formula, which keeps
    # fmod's signed zero (np.remainder would give the divisor's sign to a zero)
    mod = np.asarray(np.fmod(a, b))
    return np.where((mod != 0) & ((mod < 0) != (np.asarray(b) < 0)), mod + b, mod)


def _numeric_op(name, kernel, vjp, *, numpy, c, triton, saves=SAVES_INPUTS):
    return elementwise_op(
        name,
        _nonzero_integer_divisor(name, kernel),
        vjp,
        dtype=_numeric(name),
        saves=saves,
        autocast=Autocast.PROMOTE,
        numpy=numpy,
        c=c,
        triton=triton,
        c_helpers=("division.h",),
        triton_helpers=("division.triton",),
    )


def _truncated_quotient(a, b):
    """a / b rounded toward zero, for floating operands (fmod's gradient: fmod(a, b) = a - trunc(a / b) * b)."""
    quotient = E.div(a, b)
    return E.where(quotient < 0, E.ceil(quotient), E.floor(quotient))


floor_divide = _numeric_op(
    "floor_divide",
    np.floor_divide,
    (lambda g, out, a, b: zeros_like(g), lambda g, out, a, b: zeros_like(g)),
    saves=SAVES_NOTHING,
    numpy="np.floor_divide({0}, {1}, out={out}, casting='unsafe')",
    c="g_floor_divide({0}, {1})",
    triton="floor_divide({0}, {1})",
)
remainder = _numeric_op(
    "remainder",
    _remainder_kernel,
    (lambda g, out, a, b: g, lambda g, out, a, b: -g * floor_divide(a, b)),
    numpy="np.fmod({0}, {1}, out={out}, casting='unsafe'); np.add({out}, {1}, out={out}, casting='unsafe', "
    "where=({out} != 0) & (({out} < 0) != (np.asarray({1}) < 0)))",
    c="g_remainder({0}, {1})",
    triton="remainder({0}, {1})",
)
fmod = _numeric_op(
    "fmod",
    np.fmod,
    (lambda g, out, a, b: g, lambda g, out, a, b: -g * _truncated_quotient(a, b)),
    numpy="np.fmod({0}, {1}, out={out}, casting='unsafe')",
    c="g_fmod({0}, {1})",
    triton="fmod({0}, {1})",
)
