"""The pass pipeline: each pass is a function Graph -> Graph in a module of its own.

`run_pipeline` applies them in order, verifies the graph after each one (so a
broken pass is caught where it broke, not three passes later), and hands each
result to `on_pass` so the dump can show the graph after every step. A pass
can be switched off by name.
"""

from __future__ import annotations

from typing import Callable

from genesis.compiler.ir import Graph
from genesis.compiler.passes.cse import cse
from genesis.compiler.passes.dce import dce
from genesis.compiler.passes.fusion import fusion
from genesis.compiler.passes.simplify import simplify

PIPELINE: list[tuple[str, Callable[[Graph], Graph]]] = [
    ("dce", dce),
    ("cse", cse),
    ("simplify", simplify),
    ("dce_after_simplify", dce),
    ("fusion", fusion),
]


def run_pipeline(graph: Graph, *, disabled=(), on_pass=None, verify=True) -> Graph:
    unknown = set(disabled) - {name for name, _ in PIPELINE}
    if unknown:
        raise ValueError(f"unknown passes {sorted(unknown)}; the pipeline is {[name for name, _ in PIPELINE]}")
    for name, run in PIPELINE:
        if name in disabled:
            continue
        graph = run(graph)
        if verify:
            graph.verify()
        if on_pass is not None:
            on_pass(name, graph)
    return graph
