"""Writes through views of views, into tensors with live views, and in-place reshapes, compiled.

Eager views share memory, so a write through `x[1:][:, 0]` reaches x and every
other view of x sees it. Traced, each base up the chain takes the write in turn
and every live view of the undivided base is made again from its new value.
Each case compiles whole (`fullgraph=True`), on two calls with fresh inputs, and
must equal eager in results, gradients and the arguments it writes.
"""

import numpy as np
import pytest

import genesis

BACKENDS = ["c", "numpy", "eager"]


def values(shape, seed):
    return np.random.default_rng(seed).uniform(-2.0, 2.0, shape).astype(np.float32)


def run(fn, shape, seed, requires_grad, compiled=None):
    """(result, gradient or None, the argument after the call) of one call of fn (or of `compiled`)."""
    x = genesis.tensor(values(shape, seed), requires_grad=requires_grad)
    out = (compiled or fn)(x)
    grad = None
    if requires_grad:
        (out * genesis.tensor(values(out.shape, seed + 50))).sum().backward()
        grad = x.grad.numpy()
    return out.detach().numpy(), grad, x.detach().numpy()


def assert_compiled_matches_eager(fn, shape, backend, requires_grad):
    compiled = genesis.compile(fn, backend=backend, fullgraph=True)
    for seed in (0, 1):  # a second call with fresh inputs: the program is not bound to the first
        expected = run(fn, shape, seed, requires_grad)
        got = run(fn, shape, seed, requires_grad, compiled)
        for what, e, g in zip(("result", "gradient", "argument"), expected, got):
            if e is None:
                assert g is None
                continue
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5, err_msg=what)
    assert compiled.graph_break is None


def view_of_a_view(x):
    y = x * 1
    rows = y[1:]
    column = rows[:, 0]
    column.mul_(2)  # reaches rows and y
    return y + rows.sum()


def chain_in_one_expression(x):
    y = x * 1
    y[1:].T[2:].add_(1.5)
    return y.exp()


def base_written_while_views_live(x):
    y = x * 1
    row, diagonal = y[1], y.diagonal()
    y.mul_(3)  # both views see it
    return row * 2 + diagonal.sum()


def write_through_windows(x):
    y = x * 1
    columns = y.T
    columns.unfold(0, 2, 2)[1:].mul_(columns[0:2].unfold(0, 2, 2)[:1].exp())
    return y


def reshape_in_place_then_write(x):
    y = x * 2
    y.unsqueeze_(0)
    y[0, 1:].add_(y[0, 0])
    y[:, :1].squeeze_(1)  # a reshape in place of a view: the write above is not undone
    return y.squeeze(0) * x


CASES = [view_of_a_view, chain_in_one_expression, base_written_while_views_live, write_through_windows]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn", [*CASES, reshape_in_place_then_write], ids=lambda f: f.__name__)
@pytest.mark.parametrize("requires_grad", [False, True], ids=["values", "gradients"])
def test_compiled_equals_eager(fn, backend, requires_grad):
    assert_compiled_matches_eager(fn, (4, 5), backend, requires_grad)


def write_into_an_argument_through_a_view_of_a_view(x):
    x[1:][:, 0].mul_(2)
    return x.sum(0)


def write_into_an_argument_with_a_live_view(x):
    first = x[0]
    x.add_(1)
    return first * 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "fn",
    [write_into_an_argument_through_a_view_of_a_view, write_into_an_argument_with_a_live_view],
    ids=lambda f: f.__name__,
)
def test_writes_reach_the_callers_tensor(fn, backend):
    assert_compiled_matches_eager(fn, (3, 4), backend, requires_grad=False)


def test_writes_reach_a_captured_tensor_through_a_view_of_a_view():
    state = {}

    def step(x):
        state["buffer"][1:][:, 1].add_(x.sum())
        return x * 2

    results = []
    for run_step in (step, genesis.compile(step, fullgraph=True)):
        state["buffer"] = genesis.zeros(3, 4)
        for seed in (0, 1):
            run_step(genesis.tensor(values((2,), seed)))
        results.append(state["buffer"].numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)
    assert np.count_nonzero(results[0]) == 2


def test_a_write_into_a_detached_view_still_breaks_the_graph():
    # the detached tensor shares the view's memory but not its making: the base cannot be rebuilt
    def fn(x):
        y = x * 1
        y[1:].detach().mul_(2)
        return y

    x = genesis.tensor(values((3, 4), 0))
    with pytest.raises(genesis.compiler.GraphBreak, match="base is not known"):
        genesis.compile(fn, fullgraph=True)(x)
    with pytest.warns(UserWarning, match="runs eagerly"):
        got = genesis.compile(fn)(x)
    np.testing.assert_array_equal(got.numpy(), fn(x).numpy())
