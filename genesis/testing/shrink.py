"""Cutting a failing program down to what still fails the same way.

Greedy, in the spirit of Hypothesis' shrinking but with moves that know the
program's structure: drop an output; drop a statement with everything that
reads its result; read a statement's operand in place of its result (when
they have the same shape and dtype); stop an input requiring grad; drop
inputs nothing reads. A move is kept when the program still fails with the
same outcome (status, call, and for an error its type and place), and the
moves repeat until none helps or the budget of runs is spent.
"""

from __future__ import annotations

import time

from genesis.testing.program import Program
from genesis.testing.runner import Outcome, run_backend


def same_failure(a: Outcome, b: Outcome) -> bool:
    if a.status != b.status or a.call != b.call:
        return False
    if a.status == "mismatch":
        return True
    return a.error.split(":")[0] == b.error.split(":")[0] and a.location == b.location


def candidates(program: Program):
    """Smaller programs, the biggest cuts first."""
    for index in reversed(range(len(program.statements))):
        smaller = program.without_statement(index)
        if smaller is not None:
            yield smaller
    for name in program.outputs:
        smaller = program.without_output(name)
        if smaller is not None:
            yield smaller
    for index, statement in enumerate(program.statements):
        if statement.target is None:
            continue
        for operand in statement.operands:
            spec = _meta(program, operand, index)
            if spec == (statement.shape, statement.dtype):
                yield program.bypassing(index, operand)
                break
    for index, spec in enumerate(program.inputs):
        if spec.requires_grad:
            yield program.with_input(index, requires_grad=False)


def _meta(program: Program, name: str, before: int):
    for spec in program.inputs:
        if spec.name == name:
            return tuple(spec.shape), spec.dtype
    for statement in program.statements[:before]:
        if statement.target == name:
            return statement.shape, statement.dtype
    return None


def shrink(program: Program, outcome: Outcome, *, max_runs: int = 150, max_seconds: float = 60.0) -> Program:
    """The smallest program found that fails as `outcome` says `program` does (on the same backend)."""
    runs, start = 0, time.monotonic()
    improved = True
    while improved and runs < max_runs and time.monotonic() - start < max_seconds:
        improved = False
        for smaller in candidates(program):
            smaller = smaller.without_unused_inputs()
            if _size(smaller) >= _size(program):
                continue
            runs += 1
            try:
                result = run_backend(smaller, outcome.backend)
            except Exception:  # noqa: BLE001 (a candidate that cannot even compile is not the same failure)
                continue
            if same_failure(outcome, result):
                program = smaller
                improved = True
                break
            if runs >= max_runs or time.monotonic() - start >= max_seconds:
                break
    return program.without_unused_inputs()


def _size(program: Program) -> tuple:
    return (
        len(program.statements),
        len(program.outputs),
        len(program.inputs),
        sum(spec.requires_grad for spec in program.inputs),
    )
