"""The pass pipelines: each pass is a function Graph -> Graph in a module of its own.

Two pipelines:

- LOWERING runs on the traced graph before the trace ends, and writes out
  what the trace left as markers (ops/markers.py): autocast's casts,
  GradScaler's steps, clipping's norm and coefficient, then the backward
  (last: it differentiates what the others spliced in). None of them can
  be switched off: a marker has no kernel.
- PIPELINE optimises each program (the forward and the backward of a
  compiled function are two): dead code, common subexpressions,
  simplification, gathers of one position per row made elementwise, sums of thin
  products joined, fusion. A pass can be switched off by name.

`run_pipeline` applies one in order, verifies the graph after each pass (so
a broken pass is caught where it broke, not three passes later), and hands
each result to `on_pass` so the dump can show the graph after every step.
"""

from __future__ import annotations

from collections.abc import Callable

from genesis.compiler.ir import Graph
from genesis.compiler.passes.autocast import autocast
from genesis.compiler.passes.autodiff import autodiff
from genesis.compiler.passes.clipping import clipping
from genesis.compiler.passes.cse import cse
from genesis.compiler.passes.dce import dce
from genesis.compiler.passes.fusion import fusion
from genesis.compiler.passes.gathers import gathers
from genesis.compiler.passes.loss_scaling import loss_scaling
from genesis.compiler.passes.products import products
from genesis.compiler.passes.simplify import simplify

LOWERING: list[tuple[str, Callable[[Graph], Graph]]] = [
    ("autocast", autocast),
    ("loss_scaling", loss_scaling),
    ("clipping", clipping),
    ("autodiff", autodiff),
]

PIPELINE: list[tuple[str, Callable[[Graph], Graph]]] = [
    ("dce", dce),
    ("cse", cse),
    ("simplify", simplify),
    ("gathers", gathers),
    ("products", products),
    ("dce_after_simplify", dce),
    ("fusion", fusion),
]


def check_disabled(disabled) -> None:
    lowering = set(disabled) & {name for name, _ in LOWERING}
    if lowering:
        raise ValueError(
            f"the lowering passes {sorted(lowering)} cannot be switched off: the markers they "
            "replace have no kernels (the dump's 00_traced shows the graph before them)"
        )
    unknown = set(disabled) - {name for name, _ in PIPELINE}
    if unknown:
        raise ValueError(f"unknown passes {sorted(unknown)}; the pipeline is {[name for name, _ in PIPELINE]}")


def run_pipeline(graph: Graph, *, disabled=(), on_pass=None, verify=True, passes=None) -> Graph:
    check_disabled(disabled)
    for name, run in PIPELINE if passes is None else passes:
        if name in disabled:
            continue
        graph = run(graph)
        if verify:
            graph.verify()
        if on_pass is not None:
            on_pass(name, graph)
    return graph
