"""The program generator's families that contract dims: reductions (sum, mean, prod, amax/amin,
max/min with indices, argmax/argmin, var/std, logsumexp, all/any; dim lists and keepdim) and
matmuls (matrix, vector, batched, F.linear with and without a bias)."""

from __future__ import annotations

import math

import genesis
from genesis.testing import shapes


def reduction(b) -> bool:
    name = b.weighted(
        [
            ("sum", 5),
            ("mean", 4),
            ("amax", 3),
            ("amin", 2),
            ("prod", 2),
            ("var", 2),
            ("std", 1),
            ("logsumexp", 2),
            ("argmax", 1),
            ("argmin", 1),
            ("max_dim", 1),
            ("all_any", 1),
        ]
    )
    floats_only = name in ("mean", "var", "std", "logsumexp")
    v = b.pick(
        lambda v: (
            (v.is_float or not floats_only or b.chance(0.03))
            and (name not in ("argmax", "argmin", "max_dim") or v.exact and not v.is_bool)
            and (name not in ("amax", "amin", "max_dim") or v.kink_ok)
        )
    )
    if v is None:
        return False
    dim = shapes.reduction_dims(b.rng, v.shape)
    keepdim = b.chance(0.4) and dim is not None
    if name in ("argmax", "argmin", "max_dim") and isinstance(dim, tuple):
        dim = dim[0]
    if name == "logsumexp" and dim is None:
        dim = tuple(range(v.rank)) if v.rank else 0
    shape = shapes.reduced(v.shape, dim, keepdim)
    length = shapes.reduction_length(v.shape, dim)
    args = _reduce_args(dim, keepdim)
    cost = 1 + math.log2(1 + length)
    real = v.dtype if v.is_float else genesis.float32
    wide = v.dtype if v.is_float else genesis.int64
    if name == "sum":
        b.emit(
            "sum",
            "reduction",
            f"{{0}}.sum({args})",
            [v],
            shape,
            wide,
            exact=not v.is_float,
            bound=v.bound * max(length, 1),
            cost=cost,
        )
    elif name == "mean":
        b.emit("mean", "reduction", f"{{0}}.mean({args})", [v], shape, real, exact=False, cost=cost + 1)
    elif name in ("amax", "amin"):
        b.emit(name, "reduction", f"{{0}}.{name}({args})", [v], shape, v.dtype, cost=cost)
    elif name == "prod":
        if v.is_float and length <= 16:
            b.emit(
                "prod",
                "reduction",
                f"({{0}}.tanh() * 0.25 + 1).prod({args})",
                [v],
                shape,
                v.dtype,
                exact=False,
                bound=1.25**length,
                cost=cost + length,
            )
        elif not v.is_float and length * math.log2(max(v.bound, 1)) < 62:  # no float overflow of bound**length
            b.emit("prod", "reduction", f"{{0}}.prod({args})", [v], shape, wide, bound=v.bound**length, cost=cost)
        else:
            return False
    elif name in ("var", "std"):
        correction = b.rng.choice([0, 1, 1])
        extra = ", ".join(
            p for p in (_dim_arg(dim), f"correction={correction}", "keepdim=True" if keepdim else "") if p
        )
        b.emit(
            name,
            "reduction",
            f"{{0}}.{name}({extra})",
            [v],
            shape,
            real,
            exact=False,
            bound=2 * v.bound * v.bound + 1,
            cost=cost + 3,
            finite=length > correction,
        )  # else nan
    elif name == "logsumexp":
        b.emit(
            "logsumexp",
            "reduction",
            f"{{0}}.logsumexp({_dim_arg(dim)}{', keepdim=True' if keepdim else ''})",
            [v],
            shape,
            real,
            exact=False,
            bound=v.bound + math.log(max(length, 1)) + 1,
            cost=cost + 2,
        )
    elif name in ("argmax", "argmin"):
        b.emit(name, "reduction", f"{{0}}.{name}({args})", [v], shape, genesis.int64, bound=max(v.shape, default=1))
    elif name == "max_dim":
        if dim is None:
            return False
        which = b.rng.choice(["max", "min"])
        part = b.rng.choice([0, 1])
        b.emit(
            f"{which}_dim",
            "reduction",
            f"{{0}}.{which}({args})[{part}]",
            [v],
            shape,
            v.dtype if part == 0 else genesis.int64,
            bound=v.bound if part == 0 else max(v.shape, default=1),
        )
    else:
        which = b.rng.choice(["all", "any"])
        b.emit(which, "reduction", f"{{0}}.{which}({args})", [v], shape, genesis.bool)
    return True


def _dim_arg(dim):
    return "" if dim is None else f"dim={dim!r}"


def _reduce_args(dim, keepdim):
    parts = [_dim_arg(dim)] if dim is not None else []
    if keepdim and dim is not None:
        parts.append("keepdim=True")
    return ", ".join(parts)


def matmul(b) -> bool:
    a = b.pick(lambda v: v.rank >= 1 and (v.is_float or b.chance(0.05)) and not v.is_bool)
    if a is None:
        return False
    k = a.shape[-1]
    n, m = b.rng.choice(b.sizes), b.rng.choice(b.sizes)
    if a.rank >= 2 and b.chance(0.2):  # the value on the right: (m, p) @ (..., p, k)
        return _matmul_emit(b, "{0} @ {1}", b.new_input((m, a.shape[-2]), a.dtype), a)
    if a.rank == 1:
        form = b.weighted([("vec", 2), ("mat", 3), ("batched", 1)])
        other_shape = {"vec": (k,), "mat": (k, n), "batched": (m, k, n)}[form]
    else:
        form = b.weighted([("vec", 1), ("mat", 4), ("batched", 2), ("linear", 2)])
        batch = (
            shapes.partner(b.rng, a.shape[:-2], b.sizes, b.cap)
            if a.rank > 2
            else tuple(b.rng.choice(b.sizes) for _ in range(b.rng.randint(0, 1)))
        )
        other_shape = {"vec": (k,), "mat": (k, n), "batched": batch + (k, n), "linear": (n, k)}[form]
    if _matmul_shape(a.shape, other_shape if form != "linear" else (k, n)) is None:
        return False
    other = b.pick(lambda v: v.shape == other_shape and v.dtype is a.dtype and v.name != a.name)
    other = other if other is not None and b.chance(0.5) else b.new_input(other_shape, a.dtype)
    if form == "linear":
        bias = b.new_input((n,), a.dtype) if b.chance(0.5) else None
        template = "F.linear({0}, {1}, {2})" if bias is not None else "F.linear({0}, {1})"
        return _matmul_emit(b, template, a, other, bias)
    if a.rank == 2 and len(other_shape) == 2 and b.chance(0.3):
        template = "{0}.mm({1})"
    elif a.rank == 1 and len(other_shape) == 1 and b.chance(0.3):
        template = "{0}.dot({1})"
    else:
        template = b.rng.choice(["{0} @ {1}", "{0} @ {1}", "genesis.matmul({0}, {1})"])
    return _matmul_emit(b, template, a, other)


def _matmul_emit(b, template, left, right, bias=None):
    if left is None or right is None:
        return False
    linear = template.startswith("F.linear")
    out = _matmul_shape(left.shape, right.shape[::-1] if linear else right.shape)
    if out is None or shapes.numel(out) > b.cap:
        return False
    k = left.shape[-1]
    bound = max(k, 1) * left.bound * right.bound + (bias.bound if bias is not None else 0.0)
    operands = [left, right] + ([bias] if bias is not None else [])
    b.emit(
        "linear" if linear else "matmul",
        "matmul",
        template,
        operands,
        out,
        left.dtype,
        exact=False,
        bound=bound,
        cost=2 + math.log2(1 + k),
    )
    return True


def _matmul_shape(a, c):
    """torch.matmul's result shape, or None where it refuses."""
    if not a or not c:
        return None
    left = (1,) + a if len(a) == 1 else a
    right = c + (1,) if len(c) == 1 else c
    if left[-1] != right[-2]:
        return None
    batch = shapes.broadcast(left[:-2], right[:-2])
    if batch is None:
        return None
    out = batch + (left[-2], right[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(c) == 1:
        out = out[:-1]
    return out
