"""Data types and PyTorch's type-promotion rules.

A `DType` is a small immutable record; the numpy dtype that stores it on the
CPU lives in the runtime (`genesis.runtime.cpu`), so nothing here needs numpy.
Promotion follows PyTorch: categories bool < integer < floating; a Python
scalar or a 0-d tensor only widens the result when it is of a higher category
than the dimensioned tensors (`int32_tensor + 2.5` is float32, not float64;
`float16_tensor + 2.5` stays float16).
"""

from __future__ import annotations

from dataclasses import dataclass

BOOL, INT, FLOAT = 0, 1, 2


@dataclass(frozen=True, eq=False)
class DType:
    name: str
    itemsize: int
    category: int
    is_signed: bool = True

    @property
    def is_floating_point(self) -> bool:
        return self.category == FLOAT

    @property
    def is_low_precision(self) -> bool:
        """fp16 and bf16: kernels compute in fp32 and round once per op."""
        return self.category == FLOAT and self.itemsize == 2

    def __repr__(self) -> str:
        return f"genesis.{self.name}"

    def __reduce__(self):
        return self.name


bool_ = DType("bool", 1, BOOL, is_signed=False)
uint8 = DType("uint8", 1, INT, is_signed=False)
int8 = DType("int8", 1, INT)
int16 = DType("int16", 2, INT)
int32 = DType("int32", 4, INT)
int64 = DType("int64", 8, INT)
float16 = DType("float16", 2, FLOAT)
bfloat16 = DType("bfloat16", 2, FLOAT)
float32 = DType("float32", 4, FLOAT)
float64 = DType("float64", 8, FLOAT)

ALL_DTYPES = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
FLOAT_DTYPES = (float16, bfloat16, float32, float64)

_ALIASES = {
    "bool": bool_,
    "uint8": uint8,
    "int8": int8,
    "int16": int16,
    "short": int16,
    "int32": int32,
    "int": int32,
    "int64": int64,
    "long": int64,
    "float16": float16,
    "half": float16,
    "bfloat16": bfloat16,
    "float32": float32,
    "float": float32,
    "float64": float64,
    "double": float64,
}

_default_float = float32


def get_default_dtype() -> DType:
    return _default_float


def set_default_dtype(dtype) -> None:
    global _default_float
    dtype = as_dtype(dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"the default dtype must be a floating-point dtype, got {dtype.name}")
    _default_float = dtype


def as_dtype(value) -> DType:
    """Accept a DType, its name ("float32", "half", ...) or a Python type."""
    if isinstance(value, DType):
        return value
    if value is float:
        return _default_float
    if value is int:
        return int64
    if value is bool:
        return bool_
    if isinstance(value, str) and value in _ALIASES:
        return _ALIASES[value]
    name = getattr(value, "name", None) or str(value)
    name = name.replace("torch.", "").replace("genesis.", "")
    if name in _ALIASES:
        return _ALIASES[name]
    raise TypeError(f"unknown dtype {value!r}; genesis supports: {', '.join(d.name for d in ALL_DTYPES)}")


def _promote_pair(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.category != b.category:
        return a if a.category > b.category else b
    if a.category == FLOAT:
        if a.itemsize == b.itemsize == 2:  # float16 with bfloat16: neither holds the other
            return float32
        return a if a.itemsize > b.itemsize else b
    if a.category == INT:
        if a.is_signed == b.is_signed:
            return a if a.itemsize > b.itemsize else b
        signed, unsigned = (a, b) if a.is_signed else (b, a)
        if signed.itemsize > unsigned.itemsize:
            return signed
        return {1: int16, 2: int32, 4: int64}.get(signed.itemsize, int64)
    return bool_


_PROMOTE: dict[tuple[DType, DType], DType] = {(a, b): _promote_pair(a, b) for a in ALL_DTYPES for b in ALL_DTYPES}


def promote_types(a: DType, b: DType) -> DType:
    return _PROMOTE[a, b]


def scalar_category(value) -> int:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    return FLOAT


def default_dtype_for_category(category: int) -> DType:
    return (bool_, int64, _default_float)[category]


def result_type(dimensioned: list[DType], zero_dim: list[DType], scalars: list) -> DType:
    """PyTorch's three-tier promotion: tensors with dims, 0-d tensors, Python scalars."""
    result = None
    for tier in (dimensioned, zero_dim):
        if not tier:
            continue
        tier_type = tier[0]
        for dt in tier[1:]:
            tier_type = _PROMOTE[tier_type, dt]
        if result is None or tier_type.category > result.category:
            result = tier_type
    if scalars:
        category = max(scalar_category(s) for s in scalars)
        if result is None or category > result.category:
            result = default_dtype_for_category(category)
    return result
