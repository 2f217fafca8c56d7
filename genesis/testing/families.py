"""The op families of the program generator: elementwise math, and the table of all families.

Each family is a function of the `Builder` that appends one statement (or
returns False when nothing it can build fits the program so far). The
templates carry the guards that keep an op well defined and well conditioned:
a log reads `abs() + 0.5`, an exp a clamped value, a divisor `abs() + 1`. A
few statements that genesis must refuse are generated on purpose (a mean of
integers, an in-place write into a leaf that requires grad), at a low rate, so
that refusals are compared too. Reductions and matmul are in `families_reduction.py`; views, in-place writes,
cat/stack and indexing in `families_memory.py`, composites in
`families_composite.py`.
"""

from __future__ import annotations

import math

import genesis
from genesis.testing import families_composite, families_memory, families_reduction, shapes
from genesis.testing.families_memory import condition

# name, template, domain, exact, bound of the result from the operand's bound, kinked
#   domain: "f" reals (an integer operand becomes the default float), "F" float tensors only,
#   "n" any non-bool dtype (kept), "x" like "n" but the operand must be exact (discontinuous ops),
#   "p" any dtype to bool, "b" integers and bools
UNARY = [
    ("exp", "{0}.clamp(-4, 4).exp()", "f", False, lambda b: 55.0, True),
    ("expm1", "{0}.clamp(-4, 4).expm1()", "f", False, lambda b: 55.0, True),
    ("log", "({0}.abs() + 0.5).log()", "f", False, lambda b: math.log(b + 0.5) + 1, False),
    ("log1p", "{0}.abs().log1p()", "f", False, lambda b: math.log1p(b) + 1, False),
    ("sqrt", "({0}.abs() + 0.25).sqrt()", "f", True, lambda b: math.sqrt(b + 0.25), False),
    ("rsqrt", "({0}.abs() + 0.5).rsqrt()", "f", True, lambda b: 1.5, False),
    ("reciprocal", "({0}.abs() + 1).reciprocal()", "f", True, lambda b: 1.0, False),
    ("sin", "{0}.sin()", "f", False, lambda b: 1.0, False),
    ("cos", "{0}.cos()", "f", False, lambda b: 1.0, False),
    ("tanh", "{0}.tanh()", "f", False, lambda b: 1.0, False),
    ("sigmoid", "{0}.sigmoid()", "f", False, lambda b: 1.0, False),
    ("erf", "{0}.erf()", "f", False, lambda b: 1.0, False),
    ("relu", "{0}.relu()", "n", True, lambda b: b, True),
    ("abs", "{0}.abs()", "n", True, lambda b: b, True),
    ("neg", "-{0}", "n", True, lambda b: b, False),
    ("square", "{0}.square()", "n", True, lambda b: b * b, False),
    ("gelu", "F.gelu({0})", "F", False, lambda b: b, False),
    ("gelu_tanh", "F.gelu({0}, approximate='tanh')", "F", False, lambda b: b, False),
    ("silu", "F.silu({0})", "F", False, lambda b: b, False),
    ("softplus", "F.softplus({0})", "F", False, lambda b: b + 1, False),
    ("mish", "F.mish({0})", "F", False, lambda b: b, False),
    ("elu", "F.elu({0})", "F", False, lambda b: b, False),
    ("leaky_relu", "F.leaky_relu({0}, 0.1)", "F", True, lambda b: b, True),
    ("hardtanh", "F.hardtanh({0})", "F", True, lambda b: 1.0, True),
    ("relu6", "F.relu6({0})", "F", True, lambda b: 6.0, True),
    ("logsigmoid", "F.logsigmoid({0})", "F", False, lambda b: b + 1, False),
    ("floor", "{0}.floor()", "x", True, lambda b: b + 1, False),
    ("ceil", "{0}.ceil()", "x", True, lambda b: b + 1, False),
    ("sign", "{0}.sign()", "x", True, lambda b: 1.0, False),
    ("isnan", "{0}.isnan()", "p", True, lambda b: 1.0, False),
    ("isinf", "{0}.isinf()", "p", True, lambda b: 1.0, False),
    ("isfinite", "{0}.isfinite()", "p", True, lambda b: 1.0, False),
    ("logical_not", "{0}.logical_not()", "p", True, lambda b: 1.0, False),
    ("bitwise_not", "~{0}", "b", True, lambda b: b + 1, False),
]


def _fits(domain, v, b):
    if domain == "f":
        return v.is_float or b.chance(0.1)
    if domain == "F":
        return v.is_float
    if domain in "nx":
        return not v.is_bool and (domain == "n" or v.exact)
    if domain == "b":
        return not v.is_float
    return True


def unary(b) -> bool:
    name, template, domain, exact, bound, kinked = b.rng.choice(UNARY)
    v = b.pick(
        lambda v: _fits(domain, v, b) and (not kinked or v.kink_ok) and (name not in ("sin", "cos") or v.bound <= 16)
    )
    if v is None:
        return False
    if domain == "p" or name == "logical_not":
        dtype = genesis.bool
    elif domain == "f" and not v.is_float:
        dtype = genesis.float32
    else:
        dtype = v.dtype
    b.emit(name, "unary", template, [v], v.shape, dtype, exact=exact, bound=bound(v.bound))
    return True


def _scalar(b, v):
    """A Python scalar operand: an int for integer values (mostly), else a float."""
    if not v.is_float and b.chance(0.8):
        return b.rng.choice([2, 3, -1, -2])
    return b.rng.choice([0.5, 1.5, -2.25, 3.0, 0.125])


def binary(b) -> bool:
    name = b.weighted(
        [
            ("add", 4),
            ("sub", 3),
            ("mul", 4),
            ("div", 3),
            ("maximum", 2),
            ("minimum", 2),
            ("pow", 2),
            ("scalar", 4),
            ("floor_divide", 1),
            ("lerp", 1),
            ("bitwise", 2),
            ("logical", 1),
            ("alpha", 1),
        ]
    )
    a = b.pick(lambda v: not v.is_bool or name in ("bitwise", "logical", "add", "mul") or b.chance(0.05))
    if a is None:
        return False
    if name == "scalar":
        return _binary_scalar(b, a)
    if name == "bitwise":
        other = b.broadcast_operand(a, lambda v: not v.is_float)
        if other is None or (a.is_float or other.is_float) and not b.chance(0.05):
            return False
        op = b.rng.choice(["&", "|", "^"])
        return _emit_binary(
            b,
            {"&": "bitwise_and", "|": "bitwise_or", "^": "bitwise_xor"}[op],
            f"{{0}} {op} {{1}}",
            a,
            other,
            b.promote(a, other),
            a.bound + other.bound,
        )
    if name == "logical":
        other = b.broadcast_operand(a)
        if other is None:
            return False
        op = b.rng.choice(["logical_and", "logical_or"])
        return _emit_binary(b, op, f"genesis.{op}({{0}}, {{1}})", a, other, genesis.bool, 1.0)
    if name in ("maximum", "minimum") and not a.kink_ok:
        return False
    other = b.broadcast_operand(a, lambda v: not v.is_bool and (name not in ("maximum", "minimum") or v.kink_ok))
    if other is None or other.is_bool:
        return False
    dtype = b.promote(a, other)
    if name in ("add", "sub", "mul"):
        symbol = {"add": "+", "sub": "-", "mul": "*"}[name]
        bound = a.bound * other.bound if name == "mul" else a.bound + other.bound
        return _emit_binary(b, name, f"{{0}} {symbol} {{1}}", a, other, dtype, bound)
    if name == "alpha":
        alpha = b.rng.choice([2, -1]) if not dtype.is_floating_point else b.rng.choice([2, 0.5, -1.5])
        return _emit_binary(
            b, "add", f"genesis.add({{0}}, {{1}}, alpha={alpha!r})", a, other, dtype, a.bound + abs(alpha) * other.bound
        )
    if name == "div":
        real = dtype if dtype.is_floating_point else genesis.float32
        return _emit_binary(b, "div", "{0} / ({1}.abs() + 1)", a, other, real, a.bound)
    if name == "floor_divide":
        if a.is_float or other.is_float:
            return False
        return _emit_binary(b, "floor_divide", "{0} // ({1}.abs() + 1)", a, other, dtype, a.bound)
    if name in ("maximum", "minimum"):
        return _emit_binary(b, name, f"genesis.{name}({{0}}, {{1}})", a, other, dtype, max(a.bound, other.bound))
    if name == "pow":
        if not a.is_float:
            return False
        return _emit_binary(
            b,
            "pow",
            "({0}.abs() + 0.5) ** {1}.clamp(-2, 2)",
            a,
            other,
            dtype,
            max(4.0, (a.bound + 0.5) ** 2),
            exact=False,
        )
    if not (a.is_float and other.dtype is a.dtype):
        return False
    return _emit_binary(b, "lerp", "genesis.lerp({0}, {1}, 0.25)", a, other, dtype, a.bound + other.bound, exact=False)


def _emit_binary(b, name, template, a, other, dtype, bound, exact=True):
    shape = shapes.broadcast(a.shape, other.shape)
    if shape is None:
        return False
    b.emit(name, "binary", template, [a, other], shape, dtype, exact=exact, bound=bound)
    return True


def _binary_scalar(b, a):
    s = _scalar(b, a)
    form = b.rng.choice(["mul", "add", "rsub", "div", "rdiv", "pow2", "pow3", "rpow", "sqrt_pow"])
    if form == "mul":
        template, bound, exact = f"{{0}} * {s!r}", a.bound * abs(s), True
    elif form == "add":
        template, bound, exact = f"{{0}} + {s!r}", a.bound + abs(s), True
    elif form == "rsub":
        template, bound, exact = f"{s!r} - {{0}}", a.bound + abs(s), True
    elif form == "div":
        template, bound, exact = f"{{0}} / {s!r}", a.bound / abs(s), True
    elif form == "rdiv":
        template, bound, exact = f"{s!r} / ({{0}}.abs() + 1)", abs(s), True
    elif form == "pow2":
        template, bound, exact = "{0} ** 2", a.bound**2, True
    elif form == "pow3":
        template, bound, exact = "{0} ** 3", a.bound**3, not a.is_float
    elif form == "rpow":
        template, bound, exact = "2 ** {0}.clamp(-3, 3)", 8.0, False
    else:
        template, bound, exact = "{0}.abs() ** 0.5", math.sqrt(a.bound), False
    if a.is_bool and form not in ("mul", "add") or form == "rpow" and not a.is_float:
        return False  # an integer to a negative integer power is refused
    dtype = b.promote(a, s) if form in ("mul", "add", "rsub", "div", "rdiv") else a.dtype
    if form in ("div", "rdiv") or (form in ("rpow", "sqrt_pow") and not a.is_float):
        dtype = dtype if dtype.is_floating_point else genesis.float32
    b.emit(f"scalar_{form}", "binary", template, [a], a.shape, dtype, exact=exact, bound=bound)
    return True


def compare(b) -> bool:
    a = b.pick(lambda v: v.exact)
    if a is None:
        return False
    symbol = b.rng.choice(["<", "<=", ">", ">=", "==", "!="])
    if b.chance(0.4):
        s = b.rng.choice([0, 1, -1, 0.5]) if not a.is_bool else b.rng.choice([True, False])
        b.emit("compare", "compare", f"{{0}} {symbol} {s!r}", [a], a.shape, genesis.bool)
        return True
    other = b.broadcast_operand(a, lambda v: v.exact)
    if other is None or not other.exact:
        return False
    return _emit_compare(b, symbol, a, other)


def _emit_compare(b, symbol, a, other):
    shape = shapes.broadcast(a.shape, other.shape)
    if shape is None:
        return False
    b.emit("compare", "compare", f"{{0}} {symbol} {{1}}", [a, other], shape, genesis.bool)
    return True


def where(b) -> bool:
    a = b.pick()
    if a is None:
        return False
    cond = condition(b, a.shape)
    if cond is None:
        return False
    if b.chance(0.3):
        value = 1.5 if not a.is_bool else True
        template = b.rng.choice(["{1}.masked_fill({0}, %r)", "genesis.where({0}, {1}, %r)"]) % value
        dtype = b.promote(a, value) if "where" in template else a.dtype
        b.emit("masked_fill" if "masked" in template else "where", "where", template, [cond, a], a.shape, dtype)
        return True
    other = b.broadcast_operand(a, dtype=a.dtype if b.chance(0.7) else None)
    if other is None:
        return False
    shape = shapes.broadcast(a.shape, other.shape)
    if shape is None or shapes.broadcast(shape, cond.shape) != shape:
        return False
    b.emit(
        "where",
        "where",
        "genesis.where({0}, {1}, {2})",
        [cond, a, other],
        shape,
        b.promote(a, other),
        bound=max(a.bound, other.bound),
    )
    return True


def cast(b) -> bool:
    v = b.pick()
    if v is None:
        return False
    target = b.weighted(
        [
            (genesis.float32, 3),
            (genesis.float64, 1),
            (genesis.float16, 2),
            (genesis.bfloat16, 2),
            (genesis.int64, 1),
            (genesis.int32, 1),
            (genesis.int8, 1),
            (genesis.uint8, 1),
            (genesis.bool, 1),
        ]
    )
    method = {
        genesis.float32: ".float()",
        genesis.float64: ".double()",
        genesis.float16: ".half()",
        genesis.bfloat16: ".bfloat16()",
        genesis.int64: ".long()",
        genesis.int32: ".int()",
        genesis.bool: ".bool()",
    }.get(target)
    call = method if method and b.chance(0.5) else f".to(genesis.{target.name})"
    prefix = "{0}"
    if v.is_float and not target.is_floating_point:
        if not (v.exact and v.finite):
            return False  # truncation would turn a last-bit difference into a whole unit
        if target is genesis.uint8:
            prefix = "{0}.abs().clamp(max=200)" if v.bound > 200 or not v.is_float else "{0}.abs()"
        elif target is genesis.int8 and v.bound > 100:
            prefix = "{0}.clamp(-100, 100)"
    elif target is genesis.uint8 and not v.is_bool:
        prefix = "{0}.abs()"  # a negative integer into uint8 wraps; keep to values it holds
    bound = min(v.bound, 255.0) if target in (genesis.uint8, genesis.int8) else v.bound
    b.emit("cast", "cast", prefix + call, [v], v.shape, target, bound=bound)
    return True


def self_view(b) -> bool:
    """A value combined with a view of itself (x + x.unsqueeze(2), x * x.mT): one buffer read at two
    strides in one kernel, where an index computed for the wrong dim goes unnoticed by shape checks."""
    v = b.pick(lambda v: v.rank >= 1 and not v.is_bool and v.kink_ok)
    if v is None:
        return False
    w = families_memory.view(b, v)
    if not w:
        return False
    shape = shapes.broadcast(v.shape, w.shape)
    if shape is None or shapes.numel(shape) > b.cap or w.is_bool:
        b.emit("mul", "binary", "{0} * 2", [w], w.shape, w.dtype, bound=2 * w.bound)
        return True
    name, symbol = b.rng.choice([("add", "+"), ("sub", "-"), ("mul", "*")])
    bound = v.bound * w.bound if name == "mul" else v.bound + w.bound
    operands = (v, w) if b.chance(0.5) else (w, v)
    return _emit_binary(b, name, f"{{0}} {symbol} {{1}}", *operands, b.promote(v, w), bound)


FAMILIES = {
    "unary": unary,
    "binary": binary,
    "compare": compare,
    "where": where,
    "cast": cast,
    "reduction": families_reduction.reduction,
    "matmul": families_reduction.matmul,
    "view": families_memory.view,
    "composite": families_composite.composite,
    "inplace": families_memory.inplace,
    "join": families_memory.join,
    "index": families_memory.index,
    "self_view": self_view,
}
WEIGHTS = [
    ("unary", 16),
    ("binary", 18),
    ("compare", 4),
    ("where", 5),
    ("cast", 5),
    ("reduction", 12),
    ("view", 20),
    ("matmul", 6),
    ("composite", 7),
    ("inplace", 9),
    ("join", 2),
    ("index", 3),
    ("self_view", 10),
]
