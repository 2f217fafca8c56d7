"""Run a graph node by node with the eager kernels: the `eager` backend, and the debugging mode.

Each node goes through the same bind point as user code, so the results are
eager's by construction, and with grad mode on the tape records as usual
(backward through an interpreted graph needs nothing more). Autocast is off
while it runs: the graph already holds the casts autocast chose.

Values are dropped after their last reader, so an interpreted graph holds no
more memory than the user's eager code would.
"""

from __future__ import annotations

from genesis import dispatch
from genesis.compiler.ir import CONSTANT, INPUT, Graph
from genesis.ops.op import OPS


def last_uses(graph: Graph) -> dict[str, list[str]]:
    """For each node, the values whose last reader it is (outputs are never freed)."""
    order = {node.name: i for i, node in enumerate(graph.nodes())}
    last: dict[str, str] = {}
    for node in graph.nodes():
        for producer in node.value_inputs():
            if order[node.name] >= order.get(last.get(producer), -1):
                last[producer] = node.name
    keep = set(graph.outputs)
    freed: dict[str, list[str]] = {}
    for producer, reader in last.items():
        if producer not in keep:
            freed.setdefault(reader, []).append(producer)
    return freed


def run(graph: Graph, inputs, freed=None) -> list:
    """Outputs of `graph` for `inputs` (tensors in the order of `graph.inputs`)."""
    freed = last_uses(graph) if freed is None else freed
    env = dict(zip(graph.inputs, inputs))
    hook, dispatch.autocast_hook = dispatch.autocast_hook, None
    try:
        for node in graph.nodes():
            if node.op == INPUT:
                continue
            if node.op == CONSTANT:
                env[node.name] = node.attrs["value"]
                continue
            args = [env[x] if isinstance(x, str) else x for x in node.inputs]
            env[node.name] = dispatch.apply(OPS[node.op], *args, **node.attrs)
            for name in freed.get(node.name, ()):
                del env[name]
    finally:
        dispatch.autocast_hook = hook
    return [env[name] for name in graph.outputs]
