"""Algebraic simplification: rewrite nodes that compute nothing new into their input.

- an op applied with its identity literal (`x * 1`, `1 * x`, `x / 1`, `x + 0`,
  `0 + x`, `x - 0`, `x ** 1`: vjp rules make these), as the op record's
  `identity_right` and `identity_left` say;
- an op that only converts (the record's `converts_only`: a cast to the dtype
  the value already has, a reshape or expand to the shape it already has);
- a permute (a view whose `index_map` is PERMUTE) of a permute: composed into
  one, and dropped when the composition is the identity (a double transpose);
- (a @ b).T read only transposed becomes b.T @ a.T, so the product is made in
  the layout its readers want;
- a copy read only by reshapes, and not an output, is skipped: the reshapes
  read its source. Tracing copies before a reshape where eager does (a
  reshape of a transpose), so that the result aliases nothing, as eager's;
  once the graph holds values, not buffers, the copy computes nothing new,
  and a backend folds the reshape of the source into its indexing.

A rewrite applies only when the node's shape and dtype equal its input's, so
broadcasting and type promotion are never lost (`int_tensor * 1.0` is a float
tensor and stays a multiply). The one rounding difference: `-0.0 + 0` is
`+0.0` in IEEE arithmetic, so dropping `x + 0` can keep a negative zero.
"""

from __future__ import annotations

from genesis.compiler.ir import Graph
from genesis.ops import OPS
from genesis.ops.matmul import matmul
from genesis.ops.movement import copy, permute
from genesis.ops.op import IndexMap, Kind


def _is_literal(x, value) -> bool:
    return not isinstance(x, (str, bool)) and isinstance(x, (int, float)) and x == value


def _index_map(node) -> IndexMap | None:
    """The node's op's index map; None for other ops and for graph inputs and constants."""
    return getattr(OPS.get(node.op), "index_map", None)


def _is_permute(node) -> bool:
    return _index_map(node) is IndexMap.PERMUTE


def _passthrough(graph: Graph, node):
    """The input that `node` merely repeats, or None."""
    op, inputs = OPS.get(node.op), node.inputs
    candidate = None
    if op is None:
        return None
    if op.identity_right is not None and len(inputs) == 2 and _is_literal(inputs[1], op.identity_right):
        candidate = inputs[0]
    elif op.identity_left is not None and len(inputs) == 2 and _is_literal(inputs[0], op.identity_left):
        candidate = inputs[1]
    elif op.converts_only:
        candidate = inputs[0]
    elif _is_permute(node) and tuple(node.attrs["dims"]) == tuple(range(len(node.shape))):
        candidate = inputs[0]
    if not isinstance(candidate, str):
        return None
    source = graph[candidate]
    if source.shape != node.shape or source.dtype is not node.dtype:
        return None
    return candidate


def _compose_permutes(graph: Graph, node) -> None:
    """permute(permute(x, a), b) reads x through one permutation: out[i] = x[a[b[i]]]."""
    inner = graph[node.inputs[0]]
    if not _is_permute(inner) or not isinstance(inner.inputs[0], str):
        return
    dims = tuple(inner.attrs["dims"][d] for d in node.attrs["dims"])
    graph.replace(node.name, inputs=(inner.inputs[0],), attrs={**node.attrs, "dims": dims})


def _transpose_product(graph: Graph, node) -> None:
    """(a @ b).T, read only as such, is b.T @ a.T: the product comes out contiguous (a backward's weight
    gradient), where the transposed view would make every reader stride or copy."""
    product = graph[node.inputs[0]]
    is_product = getattr(OPS.get(product.op), "kind", None) is Kind.MATMUL
    if not is_product or len(product.shape) != 2 or tuple(node.attrs["dims"]) != (1, 0):
        return
    if graph.users(product.name) != [node.name] or product.name in graph.outputs:
        return
    a, b = (graph[x] for x in product.inputs)
    if len(a.shape) != 2 or len(b.shape) != 2:
        return
    transposes = [
        graph.add(permute.name, (x.name,), {"dims": (1, 0)}, shape=x.shape[::-1], dtype=x.dtype, source=node.source)
        for x in (b, a)
    ]
    operands = []
    for transposed in transposes:  # a transposed transpose is the matrix itself: no permute at all
        _compose_permutes(graph, transposed)
        operands.append(_passthrough(graph, graph[transposed.name]) or transposed.name)
    swapped = graph.add(matmul.name, tuple(operands), {}, shape=node.shape, dtype=node.dtype, source=node.source)
    graph.replace_uses(node.name, swapped.name)


def _skip_copy(graph: Graph, node) -> None:
    """reshape(copy(x)) reads x, when the copy has no other reader and is not an output."""
    source = node.inputs[0] if node.inputs else None
    if not isinstance(source, str) or OPS.get(graph[source].op) is not copy or source in graph.outputs:
        return
    if all(_index_map(graph[reader]) is IndexMap.RESHAPE for reader in graph.users(source)):
        copied = graph[source].inputs[0]
        if isinstance(copied, str):
            graph.replace(node.name, inputs=(copied,) + tuple(node.inputs[1:]))


def simplify(graph: Graph) -> Graph:
    graph = graph.copy()
    for node in graph.nodes():
        node = graph[node.name]  # earlier rewrites may have changed its inputs
        if _is_permute(node) and isinstance(node.inputs[0], str):
            _compose_permutes(graph, node)
            node = graph[node.name]
            _transpose_product(graph, node)
        if _index_map(node) is IndexMap.RESHAPE:
            _skip_copy(graph, node)
            node = graph[node.name]
        source = _passthrough(graph, node)
        if source is not None:
            graph.replace_uses(node.name, source)
    return graph
