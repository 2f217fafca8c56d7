"""Splice a feature marker's composite into the graph in the marker's place.

Shared by the lowering passes of the training features (loss_scaling.py,
clipping.py): each replaces the markers of its feature (ops/markers.py) by
running the marker's composite, the feature's one eager definition, on the
marker's inputs while the graph records. Gradients that flowed through a
marker flow through the composite's ops, so autodiff, which runs after,
differentiates them as eager autograd would.
"""

from __future__ import annotations

from genesis.compiler.ir import Graph
from genesis.compiler.trace import recording_into
from genesis.markers import MARKERS


def inline_markers(graph: Graph, feature: str) -> Graph:
    names = [node.name for node in graph.nodes() if node.op in MARKERS and MARKERS[node.op].feature == feature]
    if not names:
        return graph
    results: dict = {}  # a marker call -> what its composite returned (several nodes share one call)
    with recording_into(graph, grad=True) as tracer:
        for name in names:
            node = graph[name]  # afresh: splicing in an earlier marker renamed what this one reads
            attrs = dict(node.attrs)
            output, call = attrs.pop("output", None), attrs.pop("call", node.name)
            if call not in results:
                edges = node.grads or (False,) * len(node.inputs)
                inputs = [tracer.tensor_of(x, edge) if isinstance(x, str) else x for x, edge in zip(node.inputs, edges)]
                tracer.before = node.name
                try:
                    results[call] = MARKERS[node.op].composite(*inputs, **attrs)
                finally:
                    tracer.before = None
            result = results[call] if output is None else results[call][output]
            graph.replace_uses(node.name, tracer.value(result))
            graph.remove(node.name)
    return graph
