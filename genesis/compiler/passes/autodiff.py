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

One departure from the eager walk: the gradients a value gets through views
that select a block of it along one dim (`Op.region_block`: slices, split,
chunk, a time step `x[t]`) are joined with one cat, zeros in the gaps, where
the vjp would put each into a zeros tensor of the value's size. Eager adds
them into one buffer in place (autograd/engine.py); a graph has no in-place
adds, and an LSTM's T steps cost T whole-size puts.
"""

from __future__ import annotations

import functools

from genesis import functional as GF
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

    # value (or a leaf's edge) -> [(dim, start, stop, the block's gradient, its vjp as a fallback)]
    blocks: dict = {}
    leaf_blocks: dict = {}
    for name in topological_order([r for r, edge in zip(roots, edges) if edge is True], children, key=str):
        grad = pending.pop(name, None)
        if name in blocks:
            grad = _joined(blocks.pop(name), value(name), grad)
        if grad is None:
            continue
        if name in wanted:
            totals[name] = grad
        node = graph[name]
        op, inputs = OPS[node.op], [value(x) for x in node.inputs]
        for i, edge in enumerate(node.grads):
            if edge is False:
                continue
            block = op.region_block(inputs[0].shape, **node.attrs) if i == 0 and op.region_block else None
            if block is not None and grad.dtype is inputs[0].dtype:
                vjp = functools.partial(input_gradient, op, i, grad, value(name), inputs, node.attrs)
                if edge is True:
                    blocks.setdefault(node.inputs[0], []).append((*block, grad, vjp))
                else:
                    leaf_blocks.setdefault(edge, (inputs[0], []))[1].append((*block, grad, vjp))
                continue
            g = input_gradient(op, i, grad, value(name), inputs, node.attrs)
            if g is not None:
                accumulate(pending if edge is True else leaf_pending, node.inputs[i] if edge is True else edge, g)
    for edge, (leaf, found) in leaf_blocks.items():
        leaf_pending[edge] = _joined(found, leaf, leaf_pending.get(edge))
    for marker in markers:
        leaf = marker.attrs["leaf"]
        found = leaf_pending.get(leaf) if leaf is not None else totals.get(marker.inputs[-1])
        if found is None:  # the rules on the way gave none: eager would leave it unset; zeros are the same sum
            found = zeros(marker.shape, dtype=marker.dtype, device=tracer.device_of(marker.inputs[-1]))
        graph.replace_uses(marker.name, tracer.value(found))
        graph.remove(marker.name)


def _joined(blocks, x, grad):
    """`grad` (or None) plus the block gradients of `x`: per dim one cat of the blocks in order with
    zeros in the gaps; where two blocks overlap, each block's own vjp instead."""
    by_dim: dict = {}
    for dim, start, stop, g, vjp in blocks:
        by_dim.setdefault(dim, []).append((start, stop, g, vjp))
    for dim, pieces in by_dim.items():
        pieces.sort(key=lambda piece: piece[0])
        if any(a[1] > b[0] for a, b in zip(pieces, pieces[1:])):
            for *_, vjp in pieces:
                grad = _add(grad, vjp())
            continue
        parts, at = [], 0
        for start, stop, g, _ in pieces:
            if start > at:
                parts.append(zeros(_resized(x.shape, dim, start - at), dtype=x.dtype, device=x.device))
            parts.append(g.reshape(_resized(x.shape, dim, stop - start)))
            at = stop
        if at < x.shape[dim]:
            parts.append(zeros(_resized(x.shape, dim, x.shape[dim] - at), dtype=x.dtype, device=x.device))
        grad = _add(grad, parts[0] if len(parts) == 1 else GF.cat(parts, dim))
    return grad


def _resized(shape, dim, size):
    return (*shape[:dim], size, *shape[dim + 1 :])


def _add(total, grad):
    return grad if total is None else total + grad
