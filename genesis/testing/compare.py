"""Judging a compiled call against the eager call: tolerances from the dtype and the program's depth.

Compiled code computes elementwise chains exactly as eager does (it rounds
where eager stores), so the only honest differences are the order of a
reduction's additions, libm's transcendentals against numpy's, and the last
bits those flips carry through later statements. The tolerance is therefore
the unit roundoff of the lowest-precision float the program touches, times
the program's steps (each statement's roundings; a reduction adds the log of
its length), times a small constant; the absolute floor is that relative
tolerance scaled by the larger of 1 and the largest expected magnitude, so a
difference that cancelled down to a small result is judged against the size
of what cancelled. Integers and bools must be equal; nan and inf must sit
where eager has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}
# multiples of the unit roundoff per step: fp32/fp64 results differ by a few ulp per libm call;
# fp16/bf16 results are rounded to few bits, so one flip is already most of an ulp
PER_STEP = {"float16": 1.0, "bfloat16": 1.0, "float32": 4.0, "float64": 4.0}


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    floor: float  # added to the absolute tolerance as a multiple of rtol: atol = rtol * max(1, max|expected|)


def tolerance(dtype: str, program_precision: str | None, steps: float, *, backward: bool = False) -> Tolerance | None:
    """None for exact dtypes. `program_precision` is the lowest-precision float the program touches."""
    if dtype not in UNIT_ROUNDOFF:
        return None
    coarse = max([dtype] + ([program_precision] if program_precision else []), key=UNIT_ROUNDOFF.get)
    depth = steps * (2 if backward else 1) + 2
    return Tolerance(PER_STEP[coarse] * UNIT_ROUNDOFF[coarse] * depth, 1.0)


def describe_difference(expected, got, tol: Tolerance | None) -> str | None:
    """None when `got` (a (values, dtype name) pair, or None) is close enough to `expected`; else what differs."""
    if expected is None or got is None:
        if expected is None and got is None:
            return None
        eager, compiled = ("None" if value is None else "a tensor" for value in (expected, got))
        return f"eager gives {eager}, compiled {compiled}"
    (e, e_dtype), (g, g_dtype) = expected, got
    if e.shape != g.shape:
        return f"shape {tuple(g.shape)}, eager's is {tuple(e.shape)}"
    if e_dtype != g_dtype:
        return f"dtype {g_dtype}, eager's is {e_dtype}"
    if e.size == 0:
        return None
    if tol is None:
        wrong = e != g
        if not wrong.any():
            return None
        where = tuple(int(i) for i in np.argwhere(wrong)[0])
        return (
            f"{int(wrong.sum())} of {e.size} elements differ (exact dtype); "
            f"first at {where}: {g[where]!r} vs {e[where]!r}"
        )
    e64, g64 = e.astype(np.float64), g.astype(np.float64)
    e_nan, g_nan = np.isnan(e64), np.isnan(g64)
    if (e_nan != g_nan).any():
        where = tuple(int(i) for i in np.argwhere(e_nan != g_nan)[0])
        return f"nan at different places: at {where} compiled {g64[where]!r}, eager {e64[where]!r}"
    e_inf, g_inf = np.isinf(e64), np.isinf(g64)
    if (e_inf != g_inf).any() or (e64[e_inf] != g64[e_inf]).any():
        where = tuple(int(i) for i in np.argwhere((e_inf != g_inf) | (e_inf & (e64 != g64)))[0])
        return f"inf at different places: at {where} compiled {g64[where]!r}, eager {e64[where]!r}"
    finite = ~(e_nan | e_inf)
    if not finite.any():
        return None
    scale = max(1.0, float(np.abs(e64[finite]).max()))
    atol = tol.rtol * tol.floor * scale
    error = np.where(finite, np.abs(g64 - e64), 0.0)
    allowed = atol + tol.rtol * np.abs(np.where(finite, e64, 0.0))
    if (error <= allowed).all():
        return None
    where = np.unravel_index(int(np.argmax(error - allowed)), e.shape)
    relative = error[where] / max(abs(e64[where]), 1e-300)
    return (
        f"max abs error {float(error.max()):.3g} (rel {float(relative):.3g} at {tuple(int(i) for i in where)}: "
        f"compiled {g64[where]:.9g}, eager {e64[where]:.9g}); allowed rtol {tol.rtol:.2g}, atol {atol:.2g}"
    )
