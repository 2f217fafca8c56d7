"""The composite family: functions built from primitives (softmax, norms, losses, attention, glu).

They are plain functions in genesis (nn.functional), so a compiled program
sees their decomposition; the fuzzer calls them as a user would, with the
extra operands (weights, targets, keys) as new inputs.
"""

from __future__ import annotations

import math

import genesis
from genesis.testing import shapes
from genesis.testing.families_memory import same_shape_operand


def composite(b) -> bool:
    kind = b.weighted(
        [
            ("softmax", 4),
            ("log_softmax", 3),
            ("layer_norm", 4),
            ("rms_norm", 1),
            ("normalize", 1),
            ("mse_loss", 2),
            ("smooth_l1_loss", 1),
            ("cross_entropy", 2),
            ("attention", 2),
            ("glu", 1),
        ]
    )
    v = b.pick(lambda v: v.is_float and (v.rank >= 1 or kind in ("softmax", "log_softmax", "mse_loss")))
    if v is None:
        return False
    rank, shape = v.rank, v.shape
    d = b.rng.randint(-rank, rank - 1) if rank else b.rng.choice([0, -1])
    length = shape[d] if rank else 1
    cost = 4 + math.log2(1 + length)
    emit = lambda template, operands, out, bound: (
        b.emit(  # noqa: E731
            kind, "composite", template, operands, out, v.dtype, exact=False, bound=bound, cost=cost
        )
        and True
    )
    if kind in ("softmax", "log_softmax"):
        bound = 1.0 if kind == "softmax" else 2 * v.bound + math.log(max(length, 1)) + 1
        return emit(f"F.{kind}({{0}}, dim={d})", [v], shape, bound)
    if kind in ("layer_norm", "rms_norm"):
        normalized = shape[-b.rng.randint(1, min(2, rank)) :]
        if kind == "layer_norm" and shapes.numel(normalized) < 2:
            # one element has no spread: its variance is 0, and 1/sqrt(eps) magnifies every rounding of
            # the result and its gradient (no program can be held to a tolerance there)
            return False
        cost = 6 + math.log2(1 + shapes.numel(normalized))
        args, operands = ["{0}", repr(normalized)], [v]
        if kind == "layer_norm":
            # nor may the rows be constant, which a broadcast value often is: the gradient is then a sum
            # that cancels to 0, times 1/sqrt(eps), i.e. rounding noise. A spread as large as v's values
            # keeps every row's variance comparable to its magnitude.
            spread = b.new_input(normalized, v.dtype, low=-max(2.0, v.bound), high=max(2.0, v.bound))
            if spread is None:
                return False
            args[0], operands = "{0} + {1}", [v, spread]
        weight = b.new_input(normalized, v.dtype, low=0.5, high=1.5) if b.chance(0.5) else None
        bias = b.new_input(normalized, v.dtype) if kind == "layer_norm" and b.chance(0.5) else None
        for extra in (weight, bias):
            if extra is not None:
                operands.append(extra)
                args.append(f"{{{len(operands) - 1}}}")
            elif bias is not None:
                args.append("None")
        bound = (math.sqrt(max(shapes.numel(normalized), 1)) + 1) * 1.5 + 2
        return (
            b.emit(
                kind,
                "composite",
                f"F.{kind}({', '.join(args)})",
                operands,
                shape,
                v.dtype,
                exact=False,
                bound=bound,
                cost=cost,
            )
            and True
        )
    if kind == "normalize":
        if length < 2:
            # over one element x / |x| is its sign: the gradient is a sum that cancels to 0, times 1/|x|,
            # i.e. rounding noise (seed 410235: bf16, |x| = 0.006), as layer_norm over one element
            return False
        return emit(f"F.normalize({{0}}, dim={d})", [v], shape, 1.0)
    if kind in ("mse_loss", "smooth_l1_loss"):
        other = same_shape_operand(b, v)
        if other is None:
            return False
        reduction = b.rng.choice(["mean", "sum", "none"])
        out = shape if reduction == "none" else ()
        cost = 2 + math.log2(1 + shapes.numel(shape))
        bound = (v.bound + other.bound) ** 2 * (shapes.numel(shape) if reduction == "sum" else 1) + 1
        return (
            b.emit(
                kind,
                "composite",
                f"F.{kind}({{0}}, {{1}}, reduction={reduction!r})",
                [v, other],
                out,
                v.dtype,
                exact=False,
                bound=bound,
                cost=cost,
            )
            and True
        )
    if kind == "cross_entropy" and rank in (2, 3) and shape[1] > 0:
        target_shape = (shape[0],) + shape[2:]
        target = b.new_input(target_shape, genesis.int64, low=0, high=shape[1] - 1)
        if target is None:
            return False
        reduction = b.rng.choice(["mean", "sum", "none"])
        out = target_shape if reduction == "none" else ()
        bound = (2 * v.bound + math.log(shape[1]) + 1) * (shapes.numel(target_shape) if reduction == "sum" else 1)
        return (
            b.emit(
                kind,
                "composite",
                f"F.cross_entropy({{0}}, {{1}}, reduction={reduction!r})",
                [v, target],
                out,
                v.dtype,
                exact=False,
                bound=bound,
                cost=cost + math.log2(1 + shape[1]),
            )
            and True
        )
    if kind == "attention" and rank >= 2:
        source = b.rng.choice(b.sizes)
        key = b.new_input(shape[:-2] + (source, shape[-1]), v.dtype)
        value = b.new_input(shape[:-2] + (source, b.rng.choice(b.sizes)), v.dtype)
        if key is None or value is None:
            return False
        causal = ", is_causal=True" if b.chance(0.3) else ""
        out = shape[:-1] + value.shape[-1:]
        return (
            b.emit(
                kind,
                "composite",
                f"F.scaled_dot_product_attention({{0}}, {{1}}, {{2}}{causal})",
                [v, key, value],
                out,
                v.dtype,
                exact=False,
                bound=value.bound,
                cost=cost + 4 + math.log2(1 + source),
            )
            and True
        )
    if kind == "glu" and rank >= 1 and length % 2 == 0 and length:
        out = list(shape)
        out[d] //= 2
        return emit(f"F.glu({{0}}, dim={d})", [v], tuple(out), v.bound)
    return False
