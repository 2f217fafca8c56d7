"""Autocast: insert the casts that autocast regions ask for.

A trace marks each op that ran inside an autocast region with the region's
dtype and records it on its inputs as they were (`ir.Node.autocast`). This
pass inserts a `cast` before each input that the op's autocast class casts,
by `amp.autocast.cast_targets`, the same rule eager's hook applies, so the
graph holds the ops eager AMP runs. A cast passes on the gradient edge of the
input it casts: the autodiff pass, which runs next, then differentiates
through it as eager autograd does through autocast's casts.
"""

from __future__ import annotations

from genesis.amp.autocast import cast_targets
from genesis.compiler.ir import Graph
from genesis.ops import movement
from genesis.ops.op import OPS


def autocast(graph: Graph) -> Graph:
    for node in graph.nodes():
        if node.autocast is None:
            continue
        metas = [graph[x].meta if isinstance(x, str) else x for x in node.inputs]
        inputs = list(node.inputs)
        grads = list(node.grads) if node.grads is not None else None
        for i, target in enumerate(cast_targets(OPS[node.op], metas, node.autocast)):
            if target is None:
                continue
            edge = grads[i] if grads is not None else False
            cast = graph.add(
                movement.cast.name,
                (inputs[i],),
                {"dtype": target},
                shape=metas[i].shape,
                dtype=target,
                source=node.source,
                grads=None if edge is False else (edge,),
                before=node.name,
            )
            inputs[i] = cast.name
            if grads is not None:
                grads[i] = edge is not False
        graph.replace(node.name, inputs=tuple(inputs), grads=None if grads is None else tuple(grads), autocast=None)
    return graph
