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


def write_between_in_place_reshapes(x):
    y = x * 2
    y.unsqueeze_(0)
    y[0].add_(1.0)  # its history reads y's shape then, (1, 4, 5)
    y.squeeze_(0)
    return y * 1


def view_made_before_unsqueeze_then_written(x):
    y = x * 2
    row = y[1]  # made from y's (4, 5), and written after y took (1, 4, 5)
    y.unsqueeze_(0)
    row.mul_(3)
    return y * y


def base_written_while_a_view_made_before_its_squeeze_is_alive(x):
    y = (x * 1).unsqueeze(0)
    first = y[0]  # its making reads y's old shape when the write remakes it
    y.squeeze_(0)
    y.add_(1)
    return y * 2 + first


def a_detached_view_outlives_its_view(x):
    y = x * 1
    row = y[1]
    alias = row.detach()  # shares the row's memory, so it sees the write below
    del row
    y.add_(1)
    return alias * y


CASES = [
    view_of_a_view,
    chain_in_one_expression,
    base_written_while_views_live,
    write_through_windows,
    a_detached_view_outlives_its_view,
]


IN_PLACE_RESHAPES = [
    reshape_in_place_then_write,
    write_between_in_place_reshapes,
    view_made_before_unsqueeze_then_written,
    base_written_while_a_view_made_before_its_squeeze_is_alive,
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn", [*CASES, *IN_PLACE_RESHAPES], ids=lambda f: f.__name__)
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
    with pytest.raises(genesis.compiler.GraphBreak, match="bases is not known"):
        genesis.compile(fn, fullgraph=True)(x)
    with pytest.warns(UserWarning, match="runs eagerly"):
        got = genesis.compile(fn)(x)
    np.testing.assert_array_equal(got.numpy(), fn(x).numpy())


# ---- a view's history after a write elsewhere in its memory: its base's as it is now ----


def returns_a_view_its_bases_write_gave_a_history(x, w):
    # eager renews the view's history when it is looked at: both results' gradients reach w
    view = x.transpose(0, 1)
    x.sub_(w)
    return view, view * 2


def returns_a_view_of_a_base_that_was_zeroed(x, w):
    y = x * w
    view = y.unsqueeze(0)
    y.zero_()  # y keeps requiring grad, with a zero gradient: so does the view
    return (view,)


def returns_a_view_of_a_written_minimum(x, w):
    # the view's old history runs through amin, whose saved output the write changed: its renewed
    # history runs through the division instead
    smallest = (x * w).amin()
    view = smallest.reshape(1)
    smallest.div_(w.abs().sum() + 1)
    return (view,)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "fn",
    [
        returns_a_view_its_bases_write_gave_a_history,
        returns_a_view_of_a_written_minimum,
        returns_a_view_of_a_base_that_was_zeroed,
    ],
    ids=lambda f: f.__name__,
)
def test_a_views_history_follows_eager_after_a_write_into_its_base(fn, backend):
    results = []
    compiled = genesis.compile(fn, backend=backend, fullgraph=True)
    for run_fn in (fn, compiled):
        x, w = genesis.tensor(values((3, 4), 0)), genesis.tensor(values((4,), 1), requires_grad=True)
        outputs = run_fn(x, w)
        flags = [out.requires_grad for out in outputs]
        assert all(flags)  # as in PyTorch: every result carries the history its base has now
        sum((out * genesis.tensor(values(out.shape, 2))).sum() for out in outputs).backward()
        results.append((flags, [out.detach().numpy() for out in outputs], w.grad.numpy(), x.detach().numpy()))
    (e_flags, e_values, e_grad, e_x), (g_flags, g_values, g_grad, g_x) = results
    assert g_flags == e_flags
    for e, g in zip(e_values + [e_x], g_values + [g_x]):
        np.testing.assert_allclose(g, e, rtol=1e-6)
    np.testing.assert_allclose(g_grad, e_grad, rtol=1e-5)
    assert compiled.stats["fallbacks"] == [] and compiled.stats["eager_calls"] == 0


def test_a_write_under_no_grad_into_a_tensor_with_a_history_breaks_the_graph():
    # eager's tensor keeps its history for the new values; a graph's gradient follows values only
    def fn(x, w):
        y = x * w
        view = y[1:]
        with genesis.no_grad():
            y.zero_()
        return view * 2

    def run(run_fn):
        x, w = genesis.tensor(values((3, 4), 0)), genesis.tensor(values((4,), 1), requires_grad=True)
        out = run_fn(x, w)
        out.sum().backward()
        return out.detach().numpy(), w.grad.numpy()

    with pytest.raises(genesis.compiler.GraphBreak, match="under no_grad"):
        run(genesis.compile(fn, fullgraph=True))
    with pytest.warns(UserWarning, match="runs eagerly"):
        got = run(genesis.compile(fn))
    for g, e in zip(got, run(fn)):
        np.testing.assert_allclose(g, e, rtol=1e-6)
