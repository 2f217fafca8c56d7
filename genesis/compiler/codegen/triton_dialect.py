"""How Triton code spells things: dtypes and pointer types, literals, casts, low-precision rounding.

The Triton backend writes kernel source through these functions. Which ops exist is not known
here: an op's expression is its record's `codegen["triton"]` snippet (`snippet`).
"""

from __future__ import annotations

import math

from genesis import dtypes
from genesis.compiler.codegen.kernel import kernel_dtype
from genesis.runtime.cpu import wrapped_integer

TL_DTYPES = {
    dtypes.bool_: "tl.int1",
    dtypes.uint8: "tl.uint8",
    dtypes.int8: "tl.int8",
    dtypes.int16: "tl.int16",
    dtypes.int32: "tl.int32",
    dtypes.int64: "tl.int64",
    dtypes.float16: "tl.float16",
    dtypes.bfloat16: "tl.bfloat16",
    dtypes.float32: "tl.float32",
    dtypes.float64: "tl.float64",
}
# the pointer types `triton.compile` wants in a signature
SIGNATURE_TYPES = {
    dtypes.bool_: "*u1",
    dtypes.uint8: "*u8",
    dtypes.int8: "*i8",
    dtypes.int16: "*i16",
    dtypes.int32: "*i32",
    dtypes.int64: "*i64",
    dtypes.float16: "*fp16",
    dtypes.bfloat16: "*bf16",
    dtypes.float32: "*fp32",
    dtypes.float64: "*fp64",
}


def snippet(op) -> str | None:
    return op.codegen.get("triton")


def literal(value, compute: dtypes.DType | None, typed: bool = True) -> str:
    """A Python value as Triton source, typed like the statement computes: libdevice wants one type
    for all operands, so an operand of an fp64 statement is an fp64 scalar (`typed`); attributes
    stay Python values, which snippets may compare with None at compile time."""
    if isinstance(value, dtypes.DType):
        return TL_DTYPES[kernel_dtype(value)]
    if value is None:
        return "None"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, float) or (compute is not None and compute.is_floating_point):
        value = float(value)
        text = (
            repr(value)
            if math.isfinite(value)
            else ('float("nan")' if math.isnan(value) else f'{"" if value > 0 else "-"}float("inf")')
        )
        return f"tl.full([], {text}, tl.float64)" if typed and compute is dtypes.float64 else text
    if typed and type(value) is int and compute is not None and compute.category == dtypes.INT:
        # wrapped into the statement's dtype first, as eager's dispatch does (uint8 + -2), and typed so:
        # Triton refuses a scalar outside a narrow integer type's range
        return f"tl.full([], {int(wrapped_integer(value, compute))}, {TL_DTYPES[compute]})"
    return repr(value)


def cast_to(expression: str, dtype: dtypes.DType) -> str:
    return f"{expression}.to({TL_DTYPES[dtype]})"


def round_lines(value: str, dtype: dtypes.DType) -> list[str]:
    """Round `value`, held in fp32, to its fp16/bf16 dtype, as eager's result is (bf16 with integer
    arithmetic in the program's `round_to_bfloat16`: exact everywhere)."""
    if dtype is dtypes.float16:
        return [f"{value} = {value}.to(tl.float16).to(tl.float32)"]
    if dtype is dtypes.bfloat16:
        return [f"{value} = round_to_bfloat16({value})"]
    return []
