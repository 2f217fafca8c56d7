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

Where every left factor is a transpose (g_t^T), their columns are joined as the
rows of the g_t, a contiguous copy, and the product reads that transposed: a
cat of 32 transposed (512, 16) blocks took 0.62 ms, the rows' cat 0.14. Where
the graph already joins the same g_t along their rows (an RNN's input
projection gets its gradient from the g_t of every step), the terms are taken
in that cat's order and the product reads it: no copy at all.

The same join serves sums of row sums: a bias used at every step gets
sum_t sum_rows(g_t), one small reduction per step (32 kernels of an LSTM's
step). Where a cat of the g_t along their rows exists, the sum becomes the row
sum of that cat, or the reduction already made of it (an LSTM's two biases
get the same gradient).
"""

from __future__ import annotations

import networkx as nx

from genesis.compiler.ir import Graph
from genesis.ops import OPS
from genesis.ops.elementwise import add
from genesis.ops.matmul import matmul
from genesis.ops.movement import cat, permute, reshape
from genesis.ops.reduction import sum as sum_op

MIN_PRODUCTS = 3  # two products joined save one GEMM call and pay two copies: not worth it


def _private(graph: Graph, name: str) -> bool:
    """Read by exactly one node and not a result: a rewrite may consume it."""
    return len(graph.users(name)) == 1 and name not in graph.outputs


def _thin_product(graph: Graph, name: str, shape, dtype) -> str | None:
    """`name` itself where it is a product this pass joins into a sum of `shape` and `dtype`."""
    node = graph[name]
    if OPS.get(node.op) is not matmul or node.shape != shape or node.dtype is not dtype:
        return None
    if not all(isinstance(x, str) for x in node.inputs):
        return None
    a, b = (graph[x] for x in node.inputs)
    if len(a.shape) != 2 or len(b.shape) != 2 or a.dtype is not dtype or b.dtype is not dtype:
        return None
    return name if 2 * a.shape[1] <= min(shape) else None


def _terms(graph: Graph, name: str, shape, dtype, term, found: list) -> bool:
    """Collect, left to right, `term(graph, leaf, shape, dtype)` of each leaf of the sum rooted at
    `name` (additions of `shape` and `dtype` whose parts nothing else reads); False where a leaf is
    not a term."""
    leaf = term(graph, name, shape, dtype)
    if leaf is not None:
        found.append(leaf)
        return True
    node = graph[name]
    if OPS.get(node.op) is not add or node.shape != shape or node.dtype is not dtype:
        return False
    if not all(isinstance(x, str) and _private(graph, x) for x in node.inputs):
        return False
    return all(_terms(graph, x, shape, dtype, term, found) for x in node.inputs)


def _transposed(graph: Graph, names: list) -> list | None:
    """The matrices whose transposes `names` are, each once; None unless every one is a transpose."""
    sources = []
    for name in names:
        node = graph[name]
        if (
            OPS.get(node.op) is not permute
            or tuple(node.attrs["dims"]) != (1, 0)
            or not isinstance(node.inputs[0], str)
        ):
            return None
        sources.append(node.inputs[0])
    return sources if len(set(sources)) == len(sources) else None


def _existing_rows_cat(graph: Graph, sources: list, root: str):
    """A cat along dim 0 of exactly `sources`, in any order, that does not depend on `root`, or None."""
    wanted = sorted(sources)
    for node in graph.nodes():
        if OPS.get(node.op) is cat and node.attrs.get("dim") == 0 and sorted(node.inputs) == wanted:
            if not nx.has_path(graph.nx, root, node.name):
                return node
    return None


def _joined_left(graph: Graph, node, found: list) -> tuple[str, list]:
    """The joined left factor [a_1 ... a_n] (m, inner) and the products in the order it joins them."""
    lefts = [graph[p].inputs[0] for p in found]
    (m, _), inner = node.shape, sum(graph[a].shape[1] for a in lefts)
    sources = _transposed(graph, lefts)
    if sources is None:
        joined = graph.add(
            cat.name, tuple(lefts), {"dim": 1}, shape=(m, inner), dtype=node.dtype, source=node.source, before=node.name
        )
        return joined.name, found
    rows = _existing_rows_cat(graph, sources, node.name)
    if rows is None:
        rows = graph.add(
            cat.name,
            tuple(sources),
            {"dim": 0},
            shape=(inner, m),
            dtype=node.dtype,
            source=node.source,
            before=node.name,
        )
    product_of = dict(zip(sources, found))
    joined = graph.add(
        permute.name,
        (rows.name,),
        {"dims": (1, 0)},
        shape=(m, inner),
        dtype=node.dtype,
        source=node.source,
        before=node.name,
    )
    return joined.name, [product_of[x] for x in rows.inputs]


def _row_sum_of(graph: Graph, name: str, shape, dtype):
    """The g whose row sum `name` is, shaped `shape`: sum(g, dims=(0,)), or a reshape of it kept
    (sum_to's form); None for anything else, or a reduction someone else reads too."""
    node = graph[name]
    if OPS.get(node.op) is reshape and node.shape == shape and isinstance(node.inputs[0], str):
        if not _private(graph, node.inputs[0]):
            return None
        node = graph[node.inputs[0]]
    g = graph[node.inputs[0]] if OPS.get(node.op) is sum_op and isinstance(node.inputs[0], str) else None
    if g is None or tuple(node.attrs.get("dims") or ()) != (0,) or len(g.shape) != 2 or g.dtype is not dtype:
        return None
    return g.name if g.shape[1:] == tuple(shape[-1:]) and len(shape) == 1 else None


def _join_row_sums(graph: Graph, node) -> None:
    """sum_t sum_rows(g_t) as the row sum of an existing cat of the g_t, where there is one."""
    found: list = []
    if not _terms(graph, node.name, node.shape, node.dtype, _row_sum_of, found) or len(found) < MIN_PRODUCTS:
        return
    if len(set(found)) != len(found):
        return
    rows = _existing_rows_cat(graph, found, node.name)
    if rows is None:
        return
    for user in graph.users(rows.name):  # the reduction made already, taken as it is
        reduced = graph[user]
        if OPS.get(reduced.op) is sum_op and tuple(reduced.attrs.get("dims") or ()) == (0,):
            reshaped = [r for r in graph.users(reduced.name) if OPS.get(graph[r].op) is reshape]
            for reader in [reduced.name, *reshaped]:
                same = graph[reader].shape == node.shape and graph[reader].dtype is node.dtype
                if same and not nx.has_path(graph.nx, node.name, reader):
                    graph.replace_uses(node.name, reader)
                    return
    graph.replace(node.name, op=sum_op.name, inputs=(rows.name,), attrs={"dims": (0,), "keepdim": False})


def products(graph: Graph) -> Graph:
    for node in graph.nodes():
        if node.name not in graph or OPS.get(node.op) is not add or len(node.shape) not in (1, 2):
            continue
        users = graph.users(node.name)
        if len(users) == 1 and OPS.get(graph[users[0]].op) is add and node.name not in graph.outputs:
            continue  # not the root of its sum: the add that reads it joins it
        if len(node.shape) == 1:
            _join_row_sums(graph, node)
            continue
        found: list = []
        if not _terms(graph, node.name, node.shape, node.dtype, _thin_product, found) or len(found) < MIN_PRODUCTS:
            continue
        joined_left, found = _joined_left(graph, node, found)
        rights = [graph[graph[p].inputs[1]] for p in found]
        inner = sum(b.shape[0] for b in rights)
        joined_right = graph.add(
            cat.name,
            tuple(b.name for b in rights),
            {"dim": 0},
            shape=(inner, node.shape[1]),
            dtype=node.dtype,
            source=node.source,
            before=node.name,
        )
        graph.replace(node.name, op=matmul.name, inputs=(joined_left, joined_right.name), attrs={})
    return graph
