"""Dead-code elimination: drop every node that no output depends on.

Graph inputs stay even when unread: their positions are the compiled
function's calling convention.
"""

from __future__ import annotations

from genesis.compiler.ir import Graph


def dce(graph: Graph) -> Graph:
    graph = graph.copy()
    # one walk back from all outputs at once: a training step has hundreds of outputs (every updated
    # parameter and state tensor), and a walk per output went over most of the graph each time
    live = set(graph.inputs)
    frontier = [name for name in graph.outputs if name not in live]
    live.update(frontier)
    while frontier:
        for producer in graph.nx.predecessors(frontier.pop()):
            if producer not in live:
                live.add(producer)
                frontier.append(producer)
    graph.nx.remove_nodes_from([name for name in list(graph.nx) if name not in live])
    return graph
