"""A sum of thin products becomes one product: a_1 @ b_1 + ... + a_n @ b_n = [a_1 ... a_n] @ [b_1; ...; b_n].

A weight used at every step of an unrolled loop (an RNN's hidden-to-hidden
matrix, a layer applied per time step) gets its gradient as a sum of one
product per step, g_t^T @ h_t, each contracting over the batch only: T small
GEMMs and T - 1 additions of the weight-sized result. Joined, the factors are
two cats of the small operands (the columns of the left ones, the rows of the
right ones) and the sum is one GEMM that contracts over T times the batch.

Only where the join pays: every product is 2-d, (m, k_i) @ (k_i, n), with the
same m, n and dtype as the sum, and contracts over at most half of min(m, n)
(a forward's `x @ W1 + h @ W2` contracts over features and would copy its
weights every call); the additions and products have no other reader and are
not outputs. The GEMM adds in its own order, so the sum rounds differently from
the additions in the last bits, as any reassociation does.
"""

from __future__ import annotations

from genesis.compiler.ir import Graph
from genesis.ops import OPS
from genesis.ops.elementwise import add
from genesis.ops.matmul import matmul
from genesis.ops.movement import cat

MIN_PRODUCTS = 3  # two products joined save one GEMM call and pay two copies: not worth it


def _private(graph: Graph, name: str) -> bool:
    """Read by exactly one node and not a result: a rewrite may consume it."""
    return len(graph.users(name)) == 1 and name not in graph.outputs


def _thin_product(graph: Graph, name: str, shape, dtype) -> bool:
    node = graph[name]
    if OPS.get(node.op) is not matmul or node.shape != shape or node.dtype is not dtype:
        return False
    if not all(isinstance(x, str) for x in node.inputs):
        return False
    a, b = (graph[x] for x in node.inputs)
    if len(a.shape) != 2 or len(b.shape) != 2 or a.dtype is not dtype or b.dtype is not dtype:
        return False
    return 2 * a.shape[1] <= min(shape)


def _products(graph: Graph, name: str, shape, dtype, found: list) -> bool:
    """Collect the products under the sum rooted at `name`, left to right; False where it is not one."""
    node = graph[name]
    if _thin_product(graph, name, shape, dtype):
        found.append(name)
        return True
    if OPS.get(node.op) is not add or node.shape != shape or node.dtype is not dtype:
        return False
    if not all(isinstance(x, str) and _private(graph, x) for x in node.inputs):
        return False
    return all(_products(graph, x, shape, dtype, found) for x in node.inputs)


def products(graph: Graph) -> Graph:
    for node in graph.nodes():
        if node.name not in graph or OPS.get(node.op) is not add or len(node.shape) != 2:
            continue
        users = graph.users(node.name)
        if len(users) == 1 and OPS.get(graph[users[0]].op) is add and node.name not in graph.outputs:
            continue  # not the root of its sum: the add that reads it joins it
        found: list = []
        if not _products(graph, node.name, node.shape, node.dtype, found) or len(found) < MIN_PRODUCTS:
            continue
        lefts = [graph[graph[p].inputs[0]] for p in found]
        rights = [graph[graph[p].inputs[1]] for p in found]
        inner = sum(a.shape[1] for a in lefts)
        joined_left = graph.add(
            cat.name,
            tuple(a.name for a in lefts),
            {"dim": 1},
            shape=(node.shape[0], inner),
            dtype=node.dtype,
            source=node.source,
            before=node.name,
        )
        joined_right = graph.add(
            cat.name,
            tuple(b.name for b in rights),
            {"dim": 0},
            shape=(inner, node.shape[1]),
            dtype=node.dtype,
            source=node.source,
            before=node.name,
        )
        graph.replace(node.name, op=matmul.name, inputs=(joined_left.name, joined_right.name), attrs={})
    return graph
