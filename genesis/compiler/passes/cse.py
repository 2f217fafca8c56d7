"""Common-subexpression elimination: one node for each distinct (op, inputs, attributes).

Two nodes are the same computation when their op, their ordered inputs (after
earlier merges) and their attributes agree; the later one's readers are
pointed at the earlier one. Inputs and constants are never merged: two inputs
are different values even when they look alike.
"""

from __future__ import annotations

from genesis.compiler.ir import STRUCTURAL_OPS, Graph


def _key(node):
    attrs = tuple(sorted((k, repr(v)) for k, v in node.attrs.items()))
    # a literal 1 and 1.0 promote differently (int tensor * 1 stays int): the type is part of the key
    inputs = tuple(x if isinstance(x, str) else (type(x).__name__, repr(x)) for x in node.inputs)
    return node.op, inputs, attrs


def cse(graph: Graph) -> Graph:
    graph = graph.copy()
    seen: dict = {}
    for node in graph.nodes():
        if node.op in STRUCTURAL_OPS:
            continue
        node = graph[node.name]  # earlier merges may have rewritten its inputs
        key = _key(node)
        twin = seen.get(key)
        if twin is None:
            seen[key] = node.name
            continue
        graph.replace_uses(node.name, twin)
        graph.remove(node.name)
    return graph
