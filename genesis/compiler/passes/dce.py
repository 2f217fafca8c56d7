"""Dead-code elimination: drop every node that no output depends on.

Graph inputs stay even when unread: their positions are the compiled
function's calling convention.
"""

from __future__ import annotations

import networkx as nx

from genesis.compiler.ir import Graph


def dce(graph: Graph) -> Graph:
    graph = graph.copy()
    live = set(graph.outputs) | set(graph.inputs)
    for name in graph.outputs:
        live |= nx.ancestors(graph.nx, name)
    graph.nx.remove_nodes_from([name for name in list(graph.nx) if name not in live])
    return graph
