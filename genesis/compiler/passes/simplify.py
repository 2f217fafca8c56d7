"""Algebraic simplification: rewrite nodes that compute nothing new into their input.

- `x * 1`, `1 * x`, `x / 1`, `x + 0`, `0 + x`, `x - 0`, `x ** 1` (vjp rules make these);
- a cast to the dtype the value already has; a reshape or expand to the shape
  it already has;
- a permute of a permute: composed into one, and dropped when the composition
  is the identity (a double transpose);
- (a @ b).T read only transposed becomes b.T @ a.T, so the product is made in
  the layout its readers want.

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


def _transpose_product(graph: Graph, node) -> None:
    """(a @ b).T, read only as such, is b.T @ a.T: the product comes out contiguous (a backward's weight
    gradient), where the transposed view would make every reader stride or copy."""
    product = graph[node.inputs[0]]
    if product.op != "matmul" or len(product.shape) != 2 or tuple(node.attrs["dims"]) != (1, 0):
        return
    if graph.users(product.name) != [node.name] or product.name in graph.outputs:
        return
    a, b = (graph[x] for x in product.inputs)
    if len(a.shape) != 2 or len(b.shape) != 2:
        return
    b_t = graph.add("permute", (b.name,), {"dims": (1, 0)}, shape=b.shape[::-1], dtype=b.dtype, source=node.source)
    a_t = graph.add("permute", (a.name,), {"dims": (1, 0)}, shape=a.shape[::-1], dtype=a.dtype, source=node.source)
    operands = []
    for transposed in (b_t, a_t):  # a transposed transpose is the matrix itself: no permute at all
        _compose_permutes(graph, transposed)
        operands.append(_passthrough(graph, graph[transposed.name]) or transposed.name)
    swapped = graph.add("matmul", tuple(operands), {}, shape=node.shape, dtype=node.dtype, source=node.source)
    graph.replace_uses(node.name, swapped.name)


def simplify(graph: Graph) -> Graph:
    graph = graph.copy()
    for node in graph.nodes():
        node = graph[node.name]  # earlier rewrites may have changed its inputs
        if node.op == "permute" and isinstance(node.inputs[0], str):
            _compose_permutes(graph, node)
            node = graph[node.name]
            _transpose_product(graph, node)
        source = _passthrough(graph, node)
        if source is not None:
            graph.replace_uses(node.name, source)
    return graph
