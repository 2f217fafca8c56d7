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
