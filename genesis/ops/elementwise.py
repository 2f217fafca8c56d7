"""Elementwise primitives: one record each, meta + numpy kernel + vjp + snippets.

The vjp rules are genesis expressions (op records and tensor operators), so the
same rule runs in eager autograd, in the traced backward graph, and again for
higher-order gradients. The Triton snippets are format strings over the
operand names; kernels compute in fp32, so they need no dtype logic.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from genesis.dtypes import FLOAT, INT
from genesis.ops import dtype_rules as dt
from genesis.ops import shape_rules
from genesis.ops.constants import zeros_like
from genesis.ops.op import Autocast, Kind, Op, register
from genesis.runtime.blocks import slow_ufunc_in_parts
from genesis.runtime.cpu import NUMPY_DTYPE

SAVES_INPUTS = frozenset({"inputs"})
SAVES_OUTPUT = frozenset({"output"})
SAVES_NOTHING = frozenset()


def elementwise_op(
    name,
    kernel,
    vjp,
    *,
    dtype=dt.same,
    saves=SAVES_INPUTS,
    autocast=Autocast.NONE,
    triton=None,
    numpy=None,
    c=None,
    c_helpers=(),
    triton_helpers=(),
    identity_right=None,
    identity_left=None,
    generated_eager_from=None,
):
    # A numpy ufunc kernel is its own fused-kernel line (called with out=); other kernels
    # give `numpy`, the line that computes the same values into {out}. `c` is a C expression
    # (math functions are <tgmath.h>'s, so one line serves float and double); the helpers are
    # files in ops/helpers/ that define the functions a snippet calls.
    codegen = {"triton": triton, "numpy": numpy, "c": c, "c_helpers": c_helpers, "triton_helpers": triton_helpers}
    return register(
        Op(
            name=name,
            kind=Kind.ELEMENTWISE,
            kernel=kernel,
            shape=shape_rules.broadcast,
            dtype=dtype,
            vjp=vjp,
            saves=saves,
            autocast=autocast,
            codegen={backend: text for backend, text in codegen.items() if text},
            identity_right=identity_right,
            identity_left=identity_left,
            generated_eager_from=generated_eager_from,
        )
    )


# scipy's erf costs 15 ns per element, a C kernel's vectorised erff well under 1: from this many
# elements on, a generated kernel beats it even with its 15-20 us of wrapper (benchmarks/eager_overhead.py)
ERF_IN_C_FROM = 4096
# numpy's float32 exp, log, tanh, ... are SIMD only with AVX-512 (on an AVX2 machine: exp 3.6, tanh
# 6.3, expm1 16 ns per element; a C kernel on 2 threads 1.6, 1.2, 1.1 for 1M elements). From this many
# elements a generated kernel wins on either kind of machine, its ~30 us of wrapper included.
TRANSCENDENTAL_IN_C_FROM = 1 << 17
# numpy's add, sqrt, reciprocal, ... run on one core at memory speed; 2 threads: 1M float32 additions
# 0.79 -> 0.54 ms. Exact in IEEE arithmetic, they give the same bits either way.
ARITHMETIC_IN_C_FROM = 1 << 20


def _no_bool(name, rule):
    def checked(inputs, **attrs):
        for x in inputs:
            # a Python bool counts too: PyTorch refuses `x - True` as it refuses bool tensors
            if isinstance(x, bool) or (getattr(x, "dtype", None) is not None and x.dtype.category == 0):
                raise TypeError(f"{name} is not defined for bool tensors or values")
        return rule(inputs, **attrs)

    return checked


def _zero_grad(g, out, x):
    return zeros_like(g)


# ---- unary ---------------------------------------------------------------
neg = elementwise_op(
    "neg",
    np.negative,
    (lambda g, out, x: -g,),
    dtype=_no_bool("neg", dt.same),
    saves=SAVES_NOTHING,
    c="-{0}",
    triton="-{0}",
)
abs = elementwise_op(
    "abs",
    np.abs,
    (lambda g, out, x: g * sign(x),),
    dtype=_no_bool("abs", dt.same),
    c="g_abs({0})",
    c_helpers=("abs.h",),
    triton="tl.abs({0})",
)
exp = elementwise_op(
    "exp",
    np.exp,
    (lambda g, out, x: g * out,),
    dtype=dt.floating,
    saves=SAVES_OUTPUT,
    autocast=Autocast.FP32,
    c="g_exp({0})",
    c_helpers=("exp.h",),
    triton="tl.exp({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
log = elementwise_op(
    "log",
    np.log,
    (lambda g, out, x: g / x,),
    dtype=dt.floating,
    autocast=Autocast.FP32,
    c="log({0})",
    triton="tl.log({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
log1p = elementwise_op(
    "log1p",
    np.log1p,
    (lambda g, out, x: g / (x + 1),),
    dtype=dt.floating,
    autocast=Autocast.FP32,
    c="log1p({0})",
    triton="libdevice.log1p({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
expm1 = elementwise_op(
    "expm1",
    np.expm1,
    (lambda g, out, x: g * (out + 1),),
    dtype=dt.floating,
    saves=SAVES_OUTPUT,
    autocast=Autocast.FP32,
    c="expm1({0})",
    triton="libdevice.expm1({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
sqrt = elementwise_op(
    "sqrt",
    np.sqrt,
    (lambda g, out, x: g / (out * 2),),
    dtype=dt.floating,
    saves=SAVES_OUTPUT,
    autocast=Autocast.FP32,
    c="sqrt({0})",
    triton="tl.sqrt({0})",
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
rsqrt = elementwise_op(
    "rsqrt",
    lambda a: np.reciprocal(np.sqrt(a)),
    (lambda g, out, x: g * out * out * out * -0.5,),
    dtype=dt.floating,
    saves=SAVES_OUTPUT,
    autocast=Autocast.FP32,
    c="1 / sqrt({0})",
    triton="tl.full([], 1, {0}.dtype) / tl.sqrt({0})",
    numpy="np.sqrt({0}, out={out}); np.reciprocal({out}, out={out})",
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
reciprocal = elementwise_op(
    "reciprocal",
    np.reciprocal,
    (lambda g, out, x: -g * out * out,),
    dtype=dt.floating,
    saves=SAVES_OUTPUT,
    autocast=Autocast.FP32,
    c="1 / {0}",
    triton="tl.full([], 1, {0}.dtype) / {0}",
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
sin = elementwise_op(
    "sin",
    np.sin,
    (lambda g, out, x: g * cos(x),),
    dtype=dt.floating,
    c="sin({0})",
    triton="libdevice.sin({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
cos = elementwise_op(
    "cos",
    np.cos,
    (lambda g, out, x: -g * sin(x),),
    dtype=dt.floating,
    c="cos({0})",
    triton="libdevice.cos({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
tanh = elementwise_op(
    "tanh",
    np.tanh,
    (lambda g, out, x: g * (1 - out * out),),
    dtype=dt.floating,
    saves=SAVES_OUTPUT,
    c="tanh({0})",
    triton="libdevice.tanh({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
sigmoid = elementwise_op(
    "sigmoid",
    special.expit,
    (lambda g, out, x: g * out * (1 - out),),
    dtype=dt.floating,
    saves=SAVES_OUTPUT,
    c="1 / (1 + g_exp(-{0}))",
    c_helpers=("exp.h",),
    triton="tl.sigmoid({0})",
    generated_eager_from=TRANSCENDENTAL_IN_C_FROM,
)
# ReLU's gradient as one op, PyTorch's threshold_backward: `where(out > 0, g, 0)` is a compare and a
# select, two passes over the activation in eager (numpy's where alone 3 ms for 2M floats), where a
# generated kernel makes one. As PyTorch's: 0 where out <= 0 (even for a NaN g), g elsewhere (also
# where out is NaN).
relu_backward = elementwise_op(
    "relu_backward",
    lambda g, out: np.where(out <= 0, 0, g).astype(np.result_type(g, out), copy=False),
    (lambda gg, result, g, out: relu_backward(gg, out), None),
    c="({1} <= 0 ? 0 : {0})",
    triton="tl.where({1} <= 0, 0.0, {0})",
    numpy="np.copyto({out}, {0}, casting='unsafe'); np.copyto({out}, 0, where={1} <= 0)",
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
relu = elementwise_op(
    "relu",
    lambda a: np.maximum(a, 0).astype(a.dtype, copy=False),
    (lambda g, out, x: relu_backward(g, out),),
    dtype=_no_bool("relu", dt.same),
    saves=SAVES_OUTPUT,
    c="g_relu({0})",
    c_helpers=("relu.h",),
    triton="tl.maximum({0}, 0, propagate_nan=tl.PropagateNan.ALL)",
    numpy="np.maximum({0}, 0, out={out})",
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
erf = elementwise_op(
    "erf",
    lambda a: slow_ufunc_in_parts(special.erf, a),
    (lambda g, out, x: g * exp(-(x * x)) * (2.0 / math.sqrt(math.pi)),),
    dtype=dt.floating,
    numpy="special.erf({0}, out={out}, casting='unsafe')",
    c="erf({0})",
    triton="libdevice.erf({0})",
    generated_eager_from=ERF_IN_C_FROM,
)


def _sign_kernel(a):
    # PyTorch computes (0 < x) - (x < 0): sign(nan) is 0 where numpy's sign gives nan,
    # and a bool tensor is its own sign
    if a.dtype == np.bool_:
        return a.copy()
    return np.nan_to_num(np.asarray(np.sign(a)), copy=False)  # np.sign of a 0-d array is a scalar


sign = elementwise_op(
    "sign",
    _sign_kernel,
    (_zero_grad,),
    saves=SAVES_NOTHING,
    c="({0} > 0) - ({0} < 0)",
    triton="({0} > 0).to(tl.float32) - ({0} < 0).to(tl.float32)",
)
floor = elementwise_op(
    "floor",
    np.floor,
    (_zero_grad,),
    dtype=_no_bool("floor", dt.same),
    saves=SAVES_NOTHING,
    c="floor({0})",
    triton="rounded_down({0})",
    triton_helpers=("rounding.triton",),
)
ceil = elementwise_op(
    "ceil",
    np.ceil,
    (_zero_grad,),
    dtype=_no_bool("ceil", dt.same),
    saves=SAVES_NOTHING,
    c="ceil({0})",
    triton="rounded_up({0})",
    triton_helpers=("rounding.triton",),
)
isnan = elementwise_op("isnan", np.isnan, None, dtype=dt.predicate, c="{0} != {0}", triton="{0} != {0}")
isinf = elementwise_op(
    "isinf", np.isinf, None, dtype=dt.predicate, c="fabs({0}) == INFINITY", triton='tl.abs({0}) == float("inf")'
)
isfinite = elementwise_op(
    "isfinite", np.isfinite, None, dtype=dt.predicate, c="fabs({0}) < INFINITY", triton='tl.abs({0}) < float("inf")'
)
logical_not = elementwise_op("logical_not", np.logical_not, None, dtype=dt.logical, c="!{0}", triton="{0} == 0")


# ---- binary --------------------------------------------------------------
def _pow_grad_base(g, out, x, y):
    grad = g * y * x ** (y - 1)
    return where(y == 0, 0.0, grad) if hasattr(y, "shape") else (grad if y != 0 else zeros_like(grad))


def _pow_grad_exponent(g, out, x, y):
    if not hasattr(x, "shape"):  # a Python base: 2 ** t
        log_base = math.log(x) if x > 0 else (0.0 if x == 0 else math.nan)
        return g * out * log_base
    # log in the result's dtype: an int64 base's log would otherwise be the default float32
    grad = g * out * log(x if x.dtype is out.dtype else x.to(out.dtype))
    return where((x == 0) & (y >= 0), 0.0, grad)


def _max_grad(g, out, a, b):
    return where(a == b, g / 2, where(a > b, g, 0.0))


def _min_grad(g, out, a, b):
    return where(a == b, g / 2, where(a < b, g, 0.0))


add = elementwise_op(
    "add",
    np.add,
    (lambda g, out, a, b: g, lambda g, out, a, b: g),
    saves=SAVES_NOTHING,
    autocast=Autocast.PROMOTE,
    c="{0} + {1}",
    triton="{0} + {1}",
    identity_right=0,
    identity_left=0,
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
sub = elementwise_op(
    "sub",
    np.subtract,
    (lambda g, out, a, b: g, lambda g, out, a, b: -g),
    dtype=_no_bool("sub", dt.same),
    saves=SAVES_NOTHING,
    autocast=Autocast.PROMOTE,
    c="{0} - {1}",
    triton="{0} - {1}",
    identity_right=0,
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
mul = elementwise_op(
    "mul",
    np.multiply,
    (lambda g, out, a, b: g * b, lambda g, out, a, b: g * a),
    autocast=Autocast.PROMOTE,
    c="{0} * {1}",
    triton="{0} * {1}",
    identity_right=1,
    identity_left=1,
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
div = elementwise_op(
    "div",
    np.true_divide,
    (lambda g, out, a, b: g / b, lambda g, out, a, b: -g * a / (b * b)),
    dtype=dt.floating,
    autocast=Autocast.PROMOTE,
    c="{0} / {1}",
    triton="{0} / {1}",
    identity_right=1,
    generated_eager_from=ARITHMETIC_IN_C_FROM,
)
pow = elementwise_op(
    "pow",
    np.power,
    (_pow_grad_base, _pow_grad_exponent),
    saves=frozenset({"inputs", "output"}),
    autocast=Autocast.FP32,
    c="pow({0}, {1})",
    triton="libdevice.pow({0}, {1})",
    identity_right=1,
)
maximum = elementwise_op(
    "maximum",
    np.maximum,
    (_max_grad, lambda g, out, a, b: _max_grad(g, out, b, a)),
    autocast=Autocast.PROMOTE,
    c="g_max({0}, {1})",
    c_helpers=("extrema.h",),
    triton="tl.maximum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
)
minimum = elementwise_op(
    "minimum",
    np.minimum,
    (_min_grad, lambda g, out, a, b: _min_grad(g, out, b, a)),
    autocast=Autocast.PROMOTE,
    c="g_min({0}, {1})",
    c_helpers=("extrema.h",),
    triton="tl.minimum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
)
eq = elementwise_op("eq", np.equal, None, dtype=dt.compare, c="{0} == {1}", triton="{0} == {1}")
ne = elementwise_op("ne", np.not_equal, None, dtype=dt.compare, c="{0} != {1}", triton="{0} != {1}")
lt = elementwise_op("lt", np.less, None, dtype=dt.compare, c="{0} < {1}", triton="{0} < {1}")
le = elementwise_op("le", np.less_equal, None, dtype=dt.compare, c="{0} <= {1}", triton="{0} <= {1}")
gt = elementwise_op("gt", np.greater, None, dtype=dt.compare, c="{0} > {1}", triton="{0} > {1}")
ge = elementwise_op("ge", np.greater_equal, None, dtype=dt.compare, c="{0} >= {1}", triton="{0} >= {1}")
logical_and = elementwise_op(
    "logical_and", np.logical_and, None, dtype=dt.logical, c="({0} != 0) & ({1} != 0)", triton="({0} != 0) & ({1} != 0)"
)
logical_or = elementwise_op(
    "logical_or", np.logical_or, None, dtype=dt.logical, c="({0} != 0) | ({1} != 0)", triton="({0} != 0) | ({1} != 0)"
)


def _integral(name, rule=dt.same):
    """Bitwise ops are defined on integers and bools only (on bools they are the logical ones)."""

    def checked(inputs, **attrs):
        compute, out = rule(inputs, **attrs)
        if out.category == FLOAT:
            raise TypeError(f"{name} is only defined for integer and bool tensors, got {out.name}")
        return compute, out

    return checked


bitwise_and = elementwise_op(
    "bitwise_and",
    np.bitwise_and,
    None,
    dtype=_integral("bitwise_and"),
    saves=SAVES_NOTHING,
    c="{0} & {1}",
    triton="{0} & {1}",
)
bitwise_or = elementwise_op(
    "bitwise_or",
    np.bitwise_or,
    None,
    dtype=_integral("bitwise_or"),
    saves=SAVES_NOTHING,
    c="{0} | {1}",
    triton="{0} | {1}",
)
bitwise_xor = elementwise_op(
    "bitwise_xor",
    np.bitwise_xor,
    None,
    dtype=_integral("bitwise_xor"),
    saves=SAVES_NOTHING,
    c="{0} ^ {1}",
    triton="{0} ^ {1}",
)
bitwise_not = elementwise_op(
    "bitwise_not",
    np.invert,
    None,
    dtype=_integral("bitwise_not"),
    saves=SAVES_NOTHING,
    c="g_not({0})",
    c_helpers=("bitwise_not.h",),
    triton="~{0}",
)


# ---- selection and clamping ------------------------------------------------
def _where_dtype(inputs, **attrs):
    values = dt.promoted(inputs[1:])
    return None, values


def _where_kernel(condition, a, b):
    # Values of mixed dtypes arrive uncast (the condition must stay bool), and numpy has no
    # common type for some pairs (bfloat16 with int32); dispatch casts the result to the
    # promoted dtype afterwards, so a wide common type here loses nothing.
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype != b.dtype:
        try:
            common = np.result_type(a, b)
        except TypeError:  # numpy's DTypePromotionError
            common = np.dtype(np.float64)
        a, b = a.astype(common, copy=False), b.astype(common, copy=False)
    return np.where(condition, a, b)


where = elementwise_op(
    "where",
    _where_kernel,
    (None, lambda g, out, c, a, b: where(c, g, 0.0), lambda g, out, c, a, b: where(c, 0.0, g)),
    dtype=_where_dtype,
    autocast=Autocast.PROMOTE,
    c="g_where({0}, {1}, {2})",
    c_helpers=("where.h",),
    triton="tl.where({0}, {1}, {2})",
    numpy="np.copyto({out}, {2}, casting='unsafe'); np.copyto({out}, {1}, casting='unsafe', where={0})",
)


def _clamp_dtype(inputs, *, min, max):
    bounds = [v for v in (min, max) if v is not None]
    dtype = dt.promoted(list(inputs) + bounds)
    if dtype.category == 0:  # as in PyTorch: clamping a bool against bools has no meaning
        raise TypeError("clamp is not defined for bool tensors with bool bounds")
    if dtype.category == INT:  # PyTorch wraps -2 into uint8's 254 and refuses 300; a clear error for both
        info = np.iinfo(NUMPY_DTYPE[dtype])
        for bound in bounds:
            if isinstance(bound, (int, float)) and not info.min <= bound <= info.max:
                raise ValueError(
                    f"clamp: the bound {bound} is outside the range of {dtype.name} [{info.min}, {info.max}]"
                )
    return dtype, dtype


def _clamp_grad(g, out, x, *, min, max):
    inside = None
    if min is not None:
        inside = x >= min
    if max is not None:
        upper = x <= max
        inside = upper if inside is None else inside & upper
    return where(inside, g, 0.0)


# a missing bound is None, which Triton resolves at compile time; NaN stays NaN as in np.clip
_TRITON_LOWER = "({0} if {min} == None else tl.maximum({0}, {min}, propagate_nan=tl.PropagateNan.ALL))"
_TRITON_CLAMP = (
    f"({_TRITON_LOWER} if {{max}} == None else tl.minimum({_TRITON_LOWER}, {{max}}, propagate_nan=tl.PropagateNan.ALL))"
)

clamp = register(
    Op(
        name="clamp",
        kind=Kind.ELEMENTWISE,
        kernel=lambda a, *, min, max: np.clip(a, min, max),
        shape=shape_rules.same_as_first,
        dtype=_clamp_dtype,
        vjp=(_clamp_grad,),
        codegen={
            "triton": _TRITON_CLAMP,
            "numpy": "np.clip({0}, {min}, {max}, out={out})",
            # the C backend renders a missing bound (None) as NaN, which no comparison is true for
            "c": "g_clamp_upper(g_clamp_lower({0}, {min}), {max})",
            "c_helpers": ("clamp.h",),
        },
    )
)
