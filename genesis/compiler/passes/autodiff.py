"""Autodiff: write out each traced backward() with the ops' vjp rules.

A backward() while tracing computes nothing: it hands out `grad` markers
(ops/markers.py), one per tensor that gets a gradient, and every traced
node keeps where a gradient flows through each of its inputs (`ir.Node.grads`).
This pass runs after autocast's casts are explicit and does what the eager
engine does, with the engine's own pieces: the same walk over the values in
the same order (`topological_order`), gradients summed per value before its
rules run (`accumulate`), each input's gradient fitted to its shape and dtype
(`input_gradient`). The rules are genesis ops, so they append the backward to
the graph; each marker is then replaced by the gradient it stands for.
"""

from __future__ import annotations

from genesis.autograd.engine import accumulate, input_gradient, topological_order
from genesis.compiler.ir import Graph
from genesis.compiler.trace import recording_into
from genesis.creation import zeros
from genesis.markers import GRAD
from genesis.ops.op import OPS


def autodiff(graph: Graph) -> Graph:
    calls: dict[int, list] = {}
    for node in graph.nodes():
        if node.op == GRAD.name:
            calls.setdefault(node.attrs["call"], []).append(node.name)
    if calls:
        with recording_into(graph) as tracer:
            for markers in calls.values():  # in order: a later backward may read an earlier one's gradients
                _lower_call(graph, tracer, [graph[name] for name in markers])
    return graph


def _lower_call(graph, tracer, markers) -> None:
    edges = markers[0].attrs["roots"]
    roots, root_grads = markers[0].inputs[: len(edges)], markers[0].inputs[len(edges) : 2 * len(edges)]
    tensors: dict = {}

    def value(x):
        if not isinstance(x, str):
            return x
        if x not in tensors:
            tensors[x] = tracer.tensor_of(x)
        return tensors[x]

    pending, leaf_pending, totals = {}, {}, {}
    for root, grad, edge in zip(roots, root_grads, edges):
        if edge is True:
            accumulate(pending, root, value(grad))
        else:
            accumulate(leaf_pending, edge, value(grad))
    wanted = {m.inputs[-1] for m in markers if m.attrs["leaf"] is None}

    def children(name):
        node = graph[name]
        return [x if edge is True else None for x, edge in zip(node.inputs, node.grads or ())]

    for name in topological_order([r for r, edge in zip(roots, edges) if edge is True], children, key=str):
        grad = pending.pop(name, None)
        if grad is None:
            continue
        if name in wanted:
            totals[name] = grad
        node = graph[name]
        op, inputs = OPS[node.op], [value(x) for x in node.inputs]
        for i, edge in enumerate(node.grads):
            if edge is False:
                continue
            g = input_gradient(op, i, grad, value(name), inputs, node.attrs)
            if g is not None:
                accumulate(pending if edge is True else leaf_pending, node.inputs[i] if edge is True else edge, g)
    for marker in markers:
        leaf = marker.attrs["leaf"]
        found = leaf_pending.get(leaf) if leaf is not None else totals.get(marker.inputs[-1])
        if found is None:  # the rules on the way gave none: eager would leave it unset; zeros are the same sum
            found = zeros(marker.shape, dtype=marker.dtype)
        graph.replace_uses(marker.name, tracer.value(found))
        graph.remove(marker.name)
