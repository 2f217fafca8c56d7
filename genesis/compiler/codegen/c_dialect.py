"""How C spells genesis's values: the types arrays and kernel values are held in, loads and
stores (fp16/bf16 converted, bool as bytes), rounding to fp16/bf16, exact literals, and the combine
of a reduction (initial value, update, OpenMP clause). It knows no op: statements' lines are the op
records' `codegen["c"]` snippets, and a reduction is spelled by its record's `combine`.

Numerics follow eager as the other backends do: values are held in their kernel dtype (fp16/bf16 as
float), each statement computes in the op's compute dtype, a value whose eager dtype is fp16/bf16 is
rounded to it at once, and literals are typed like the statement (`0x1p-1f`), so float math stays
float. Sums over the rows accumulate in double; sums within a row of up to FLOAT_ROW_SUM_LIMIT float32
values in float (as accurate as numpy's pairwise sum there); a flat loop's float32 sums add each
FLAT_SUM_BLOCK elements in float, then the block's sum in double.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from genesis import dtypes
from genesis.compiler.codegen.kernel import kernel_dtype
from genesis.ops.op import Combine
from genesis.runtime.cpu import wrapped_integer

# the C type of each dtype's arrays; bool arrays as bytes, since gcc vectorises no load of a _Bool
# array (a loop that reads a mask stayed scalar), while values inside a kernel are _Bool (c_type)
STORAGE_TYPES = {
    dtypes.bool_: "uint8_t",
    dtypes.uint8: "uint8_t",
    dtypes.int8: "int8_t",
    dtypes.int16: "int16_t",
    dtypes.int32: "int32_t",
    dtypes.int64: "int64_t",
    dtypes.float16: "_Float16",
    dtypes.bfloat16: "uint16_t",
    dtypes.float32: "float",
    dtypes.float64: "double",
}


@dataclass(frozen=True)
class _CombineSpelling:
    clause: str  # OpenMP's reduction operator
    initial: str
    update: str  # `{a}` combined with `{x}`, in place; max/min track NaN apart (see `propagates_nan`)


_COMBINES = {
    Combine.ADD: _CombineSpelling("+", "0", "{a} += {x};"),
    Combine.MULTIPLY: _CombineSpelling("*", "1", "{a} *= {x};"),
    Combine.MAXIMUM: _CombineSpelling("max", "-INFINITY", "{a} = {x} > {a} ? {x} : {a};"),
    Combine.MINIMUM: _CombineSpelling("min", "INFINITY", "{a} = {x} < {a} ? {x} : {a};"),
}


class Refused(Exception):
    """C does not take this kernel; the message says why."""


def c_type(dtype: dtypes.DType) -> str:
    """The C type a value of `dtype` is held in inside a kernel (fp16/bf16 as float, bool as _Bool)."""
    return "_Bool" if dtype is dtypes.bool_ else STORAGE_TYPES[kernel_dtype(dtype)]


def load(expression: str, dtype: dtypes.DType) -> str:
    if dtype is dtypes.bfloat16:
        return f"g_bf16_load({expression})"
    if dtype is dtypes.bool_:
        return f"(_Bool){expression}"
    return f"(float){expression}" if dtype is dtypes.float16 else expression


def round_lines(s) -> list[str]:
    """Round a statement's value to its fp16/bf16 dtype right away, as eager stores it."""
    if s.dtype is dtypes.float16:
        return [f"v_{s.value} = (float)(_Float16)v_{s.value};"]
    if s.dtype is dtypes.bfloat16:
        return [f"v_{s.value} = g_bf16_round(v_{s.value});"]
    return []


def store(value: str, dtype: dtypes.DType) -> str:
    if dtype is dtypes.bfloat16:
        return f"g_bf16_store({value})"
    return f"({STORAGE_TYPES[dtype]}){value}"


def literal(value, compute: dtypes.DType | None) -> str:
    """A Python value as a C literal of the statement's compute dtype (exact: hex floats)."""
    if isinstance(value, dtypes.DType):
        return c_type(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    floating = compute is not None and compute.is_floating_point
    if value is None:  # a missing bound: NaN, which no comparison is true for
        if not floating:
            raise Refused("a missing bound on integers has no C literal")
        return "NAN"
    if isinstance(value, float) or floating:
        value = float(value)
        if math.isnan(value):
            return "NAN"
        if math.isinf(value):
            return "INFINITY" if value > 0 else "(-INFINITY)"
        suffix = "f" if compute is None or kernel_dtype(compute) is dtypes.float32 else ""
        return f"({value.hex()}{suffix})"
    if isinstance(value, int):
        if compute is not None and compute.category == dtypes.INT:  # wrapped as eager's dispatch does: uint8 == -1
            value = int(wrapped_integer(value, compute))
        return f"({value}LL)" if not -(1 << 31) <= value < (1 << 31) else f"({value})"
    raise Refused(f"no C literal for {value!r}")


def propagates_nan(combine: Combine) -> bool:
    """max and min compare, so a NaN would lose every comparison: they note one in a flag and
    return NaN at the end, as numpy's do. Sums and products carry NaN by arithmetic."""
    return combine in (Combine.MAXIMUM, Combine.MINIMUM)


def combine_clause(combine: Combine) -> str:
    return _COMBINES[combine].clause


def combine_initial(combine: Combine) -> str:
    return _COMBINES[combine].initial


def combine_update(combine: Combine, target: str, x: str) -> str:
    return _COMBINES[combine].update.format(a=target, x=x)


def update_partial(s, x: str, target: str) -> str:
    """`target` combined with `x` by the statement's reduction; max/min let a NaN through, as numpy's."""
    if not propagates_nan(s.combine):
        return combine_update(s.combine, target, x)
    comparison = ">" if s.combine is Combine.MAXIMUM else "<"
    return f"{target} = ({x} != {x} || {x} {comparison} {target}) ? {x} : {target};"


def nan_flag(s) -> str:
    """The declaration of the flag that notes a NaN for a max/min accumulator, else nothing."""
    return f" int n_{s.value} = 0;" if propagates_nan(s.combine) else ""


def with_nan(s, accumulator: str) -> str:
    """The accumulator's final value: NaN where a max/min saw one."""
    return f"n_{s.value} ? NAN : {accumulator}" if propagates_nan(s.combine) else accumulator


# A float32 sum within a row of up to this many elements accumulates in float: each of the 16 SIMD
# lanes adds at most 1K values, about as accurate as numpy's pairwise sum, and softmax runs 11% faster
# than with double lanes. Longer rows, and sums over the rows (which can add millions), use double.
FLOAT_ROW_SUM_LIMIT = 1 << 14


# A flat loop's float32 sum adds blocks of this many elements in float, each block in FLAT_SUM_LANES
# lanes (lane l the elements l, l + 16, ...: 64 values each), whose sums are added pairwise, and the
# blocks' sums in double: 4M floats took 270 us on one core of an AVX-512 machine, against 380 us with
# double lanes, whose conversions bound the loop, and the error stays that of 64 additions. The lanes
# are the kernel's, not the machine's vector width, so every machine adds in the same order.
FLAT_SUM_BLOCK = 1024
FLAT_SUM_LANES = 16


def sums_in_float_blocks(s) -> bool:
    """Whether a flat loop's accumulator `s` adds float32 values in float blocks (FLAT_SUM_BLOCK)."""
    return s.combine is Combine.ADD and s.compute is dtypes.float32 and accumulator_type(s) == "double"


def accumulator_type(s, row_elements: int | None = None) -> str:
    """The C type `s`'s reduction accumulates in; `row_elements` for a reduction within a row."""
    if propagates_nan(s.combine):
        return c_type(s.compute)
    if not s.compute.is_floating_point:
        return "int64_t"
    within_short_row = row_elements is not None and row_elements <= FLOAT_ROW_SUM_LIMIT
    return "float" if within_short_row and s.compute is dtypes.float32 else "double"
