"""passes/products.py: a sum of thin products becomes one product of joined factors."""

import numpy as np
import pytest

import genesis
from genesis import nn


def arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [genesis.tensor(rng.standard_normal(shape).astype(np.float32)) for shape in shapes]


def op_counts(compiled):
    (graph,) = compiled.graphs
    ops = [node.op for node in graph.nodes()]
    return {name: ops.count(name) for name in ("matmul", "cat", "add")}


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_a_weights_gradient_over_unrolled_steps_is_one_product(backend):
    if backend == "c" and not genesis.compiler.native.compiler_available():
        pytest.skip("no C compiler")
    genesis.manual_seed(0)
    cell = nn.RNNCell(6, 40)
    (x,) = arrays((8, 4, 6))

    def step(x):
        cell.zero_grad()
        h = genesis.zeros(4, 40)
        for t in range(x.shape[0]):
            h = cell(x[t], h)
        loss = (h * h).sum()
        loss.backward()
        return loss

    compiled = genesis.compile(step, backend=backend)
    got = [compiled(x).item()] + [p.grad.numpy().copy() for p in cell.parameters()]
    expected = [step(x).item()] + [p.grad.numpy().copy() for p in cell.parameters()]
    for a, b in zip(got, expected):  # the joined product adds in another order: float32 rounding
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    joined = genesis.compile(step, backend=backend)
    joined(x)
    per_step = genesis.compile(step, backend=backend, disable_passes=("products",))
    per_step(x)
    # the hidden weight's (40, 40) gradient: 8 products over the batch of 4 become one; the input
    # weight's (40, 6) ones contract over 4 of min(40, 6) and stay
    assert op_counts(per_step)["matmul"] - op_counts(joined)["matmul"] == 8 - 1


def test_two_products_or_products_over_wide_dims_stay_as_they_are():
    a, b, c, d, e, f = arrays((64, 4), (4, 64), (64, 4), (4, 64), (64, 48), (48, 64))
    two = genesis.compile(lambda a, b, c, d: a @ b + c @ d)
    np.testing.assert_allclose(two(a, b, c, d).numpy(), (a @ b + c @ d).numpy(), rtol=1e-6)
    assert op_counts(two)["matmul"] == 2
    wide = genesis.compile(lambda a, b, c, d, e, f: a @ b + c @ d + e @ f)  # e @ f contracts over 48 of 64
    np.testing.assert_allclose(wide(a, b, c, d, e, f).numpy(), (a @ b + c @ d + e @ f).numpy(), rtol=1e-5)
    assert op_counts(wide)["matmul"] == 3


def test_a_sum_whose_parts_are_read_elsewhere_is_left_alone():
    a, b, c, d, e, f = arrays((32, 2), (2, 32), (32, 2), (2, 32), (32, 2), (2, 32), seed=1)

    def fn(a, b, c, d, e, f):
        first = a @ b
        return first + c @ d + e @ f, first * 2

    compiled = genesis.compile(fn)
    for got, expected in zip(compiled(a, b, c, d, e, f), fn(a, b, c, d, e, f)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    joined = genesis.compile(lambda a, b, c, d, e, f: a @ b + c @ d + e @ f)
    np.testing.assert_allclose(joined(a, b, c, d, e, f).numpy(), (a @ b + c @ d + e @ f).numpy(), rtol=1e-5)
    assert op_counts(joined) == {"matmul": 1, "cat": 2, "add": 0}
    assert op_counts(compiled)["matmul"] == 3


def cats_by_dim(compiled):
    (graph,) = compiled.graphs
    dims = [node.attrs["dim"] for node in graph.nodes() if node.op == "cat"]
    return {dim: dims.count(dim) for dim in set(dims)}


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_transposed_left_factors_are_joined_as_rows_and_an_existing_join_is_reused(backend):
    steps = 6
    gs, hs = arrays((steps, 4, 40), (steps, 4, 16))

    def weight_gradient(gs, hs):  # g_t^T @ h_t summed over the steps, as an RNN's hidden weight gets it
        total = gs[0].t() @ hs[0]
        for t in range(1, steps):
            total = total + gs[t].t() @ hs[t]
        return total

    def with_input_gradient(gs, hs):  # the g_t already joined by rows, latest first, for another product
        joined = genesis.cat([gs[t] for t in reversed(range(steps))], 0)
        return weight_gradient(gs, hs), joined.sum(0)

    for fn, cats in ((weight_gradient, {0: 2}), (with_input_gradient, {0: 2})):
        compiled = genesis.compile(fn, backend=backend)
        got, expected = compiled(gs, hs), fn(gs, hs)
        got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
        for a, b in zip(got, expected):  # the joined product adds in another order: float32 rounding
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
        # the g_t's columns joined as their rows (never a cat along dim 1 of transposes), and with
        # the rows already joined, that cat serves the product too: the h_t's cat is the other one
        assert cats_by_dim(compiled) == cats, fn.__name__
        assert op_counts(compiled)["matmul"] == 1


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_row_sums_of_blocks_joined_by_rows_become_the_joins_row_sum(backend):
    steps = 6
    (gs,) = arrays((steps, 4, 40))

    def bias_gradients(gs):  # an LSTM's two biases: one summed per step, one over the joined steps
        per_step = gs[0].sum(0)
        for t in range(1, steps):
            per_step = per_step + gs[t].sum(0)
        joined = genesis.cat([gs[t] for t in reversed(range(steps))], 0).sum(0)
        return per_step, joined

    compiled = genesis.compile(bias_gradients, backend=backend)
    for _ in range(2):
        got, expected = compiled(gs), bias_gradients(gs)
        for a, b in zip(got, expected):  # one sum in another order: float32 rounding
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    (graph,) = compiled.graphs
    assert [node.op for node in graph.nodes()].count("sum") == 1  # the join's, serving both
    assert not np.shares_memory(got[0].numpy(), got[1].numpy())  # eager's two tensors stay two
    got[0].add_(1)
    np.testing.assert_allclose(got[1].numpy(), expected[1].numpy(), rtol=1e-5, atol=1e-5)

    def joined_but_not_summed(gs):
        per_step = gs[0].sum(0)
        for t in range(1, steps):
            per_step = per_step + gs[t].sum(0)
        return per_step, genesis.cat([gs[t] for t in range(steps)], 0) * 2

    compiled = genesis.compile(joined_but_not_summed, backend=backend)
    for a, b in zip(compiled(gs), joined_but_not_summed(gs)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
    ops = [node.op for node in compiled.graphs[0].nodes()]
    assert ops.count("sum") == 1 and ops.count("add") == 0  # one row sum of the join, no additions
