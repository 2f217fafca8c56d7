"""Algebraic simplification: rewrite nodes that compute nothing new into their input.

- `x * 1`, `1 * x`, `x / 1`, `x + 0`, `0 + x`, `x - 0`, `x ** 1` (vjp rules make these);
- a cast to the dtype the value already has; a reshape or expand to the shape
  it already has;
- a permute of a permute: composed into one, and dropped when the composition
  is the identity (a double transpose).

A rewrite applies only when the node's shape and dtype equal its input's, so
broadcasting and type promotion are never lost (`int_tensor * 1.0` is a float
tensor and stays a multiply). The one rounding difference: `-0.0 + 0` is
`+0.0` in IEEE arithmetic, so dropping `x + 0` can keep a negative zero.
"""

from __future__ import annotations

from genesis.compiler.ir import Graph

_IDENTITY_RIGHT = {"mul": 1, "div": 1, "add": 0, "sub": 0, "pow": 1}
_IDENTITY_LEFT = {"mul": 1, "add": 0}


def _is_literal(x, value) -> bool:
    return not isinstance(x, (str, bool)) and isinstance(x, (int, float)) and x == value


def _passthrough(graph: Graph, node):
    """The input that `node` merely repeats, or None."""
    inputs = node.inputs
    candidate = None
    if node.op in _IDENTITY_RIGHT and len(inputs) == 2 and _is_literal(inputs[1], _IDENTITY_RIGHT[node.op]):
        candidate = inputs[0]
    elif node.op in _IDENTITY_LEFT and len(inputs) == 2 and _is_literal(inputs[0], _IDENTITY_LEFT[node.op]):
        candidate = inputs[1]
    elif node.op in ("cast", "reshape", "expand"):
        candidate = inputs[0]
    elif node.op == "permute" and tuple(node.attrs["dims"]) == tuple(range(len(node.shape))):
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
    if inner.op != "permute" or not isinstance(inner.inputs[0], str):
        return
    dims = tuple(inner.attrs["dims"][d] for d in node.attrs["dims"])
    graph.replace(node.name, inputs=(inner.inputs[0],), attrs={**node.attrs, "dims": dims})


def simplify(graph: Graph) -> Graph:
    graph = graph.copy()
    for node in graph.nodes():
        node = graph[node.name]  # earlier rewrites may have changed its inputs
        if node.op == "permute" and isinstance(node.inputs[0], str):
            _compose_permutes(graph, node)
            node = graph[node.name]
        source = _passthrough(graph, node)
        if source is not None:
            graph.replace_uses(node.name, source)
    return graph
