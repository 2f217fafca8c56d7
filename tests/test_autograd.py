"""Autograd: the engine's contract, checked against PyTorch on the same graphs.

Each test builds one graph twice, in genesis and in torch (the APIs match, so
one function serves both where possible), and compares gradients: explicit
output gradients, accumulation, retain_graph, hooks, retain_grad,
`autograd.grad` with and without `create_graph`, second and third
derivatives, a Hessian-vector product, diamonds and reused tensors. Grad
modes are tested as context managers and as decorators. A 5000-op chain
checks that backward (and freeing the chain) never recurses in Python.
"""

import sys

import numpy as np
import pytest
import torch
from optest import assert_close

import genesis

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """A failing grad-mode test must not leave grad recording off for the tests after it."""
    yield
    genesis.set_grad_enabled(True)


def pair(shape, dtype=genesis.float64, requires_grad=True):
    """The same random values as a genesis leaf and a torch leaf."""
    array = RNG.standard_normal(shape)
    g = genesis.tensor(array, dtype=dtype, requires_grad=requires_grad)
    t = torch.tensor(
        array, dtype=torch.float64 if dtype is genesis.float64 else torch.float32, requires_grad=requires_grad
    )
    return g, t


def close(g, t, what="", dtype=genesis.float64):
    assert g is not None, f"{what}: genesis has no gradient"
    assert_close(g, t, dtype, what)


# ---- backward ----------------------------------------------------------------
def test_backward_with_an_explicit_gradient():
    (gx, tx), (gw, tw) = pair((3, 5)), pair((5,))
    seed = RNG.standard_normal((3, 5))
    (gx * gw).tanh().backward(genesis.tensor(seed))
    (tx * tw).tanh().backward(torch.tensor(seed))
    close(gx.grad, tx.grad, "x")
    close(gw.grad, tw.grad, "w (broadcast, summed back to its shape)")
    assert gw.grad.shape == (5,)


def test_gradients_accumulate_across_backward_calls():
    gx, tx = pair((4, 3))
    for fn in (lambda x: (x * x).sum(), lambda x: x.exp().mean(), lambda x: (x * 3).sum()):
        fn(gx).backward()
        fn(tx).backward()
        close(gx.grad, tx.grad, "accumulated")
    assert not gx.grad.requires_grad and gx.grad.is_leaf


def test_second_backward_needs_retain_graph():
    gx, tx = pair((3,))
    g_out, t_out = (gx.sin() * gx).sum(), (tx.sin() * tx).sum()
    g_out.backward(retain_graph=True)
    t_out.backward(retain_graph=True)
    g_out.backward()
    t_out.backward()
    close(gx.grad, tx.grad, "twice the gradient")
    with pytest.raises(RuntimeError, match="backward through the graph a second time.*retain_graph=True"):
        g_out.backward()
    with pytest.raises(RuntimeError, match="second time"):
        t_out.backward()


def test_backward_of_a_tensor_that_needs_no_grad_is_refused():
    with pytest.raises(RuntimeError, match="does not require grad"):
        genesis.ones(3).sum().backward()
    with genesis.no_grad():
        out = (genesis.ones(3, requires_grad=True) * 2).sum()
    with pytest.raises(RuntimeError, match="no_grad"):
        out.backward()


def test_backward_with_a_gradient_of_the_wrong_shape_is_refused():
    x = genesis.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient of shape \[3, 2\].*output of shape \[2, 3\]"):
        (x * 2).backward(genesis.ones(3, 2))


def test_backward_with_inputs_only_fills_those():
    (ga, ta), (gb, tb) = pair((3,)), pair((3,))
    (ga * gb).sum().backward(inputs=[ga])
    (ta * tb).sum().backward(inputs=[ta])
    close(ga.grad, ta.grad, "a")
    assert gb.grad is None and tb.grad is None


def test_gradient_dtype_follows_the_leaf():
    for dtype in (genesis.float16, genesis.bfloat16, genesis.float32):
        x = genesis.tensor([0.5, -1.5, 2.0], dtype=dtype, requires_grad=True)
        (x.float() * genesis.tensor([1.0, 2.0, 3.0])).sum().backward()
        assert x.grad.dtype is dtype and x.grad.tolist() == [1.0, 2.0, 3.0]


# ---- graph shapes -----------------------------------------------------------------
def diamond(x):
    y = x * 2 + 1
    return (y.exp() * y.sin() + y).sum()


def reused(x):
    return (x * x * x + x / (x * x + 1)).sum()


def several_consumers(x, w):
    h = x @ w
    return (h.tanh().sum(0) * h.sigmoid().mean(0) + (h * h).sum(0)).sum() + (w * w).sum()


@pytest.mark.parametrize("fn", [diamond, reused])
def test_diamonds_and_reused_tensors_match_torch(fn):
    gx, tx = pair((3, 4))
    fn(gx).backward()
    fn(tx).backward()
    close(gx.grad, tx.grad, fn.__name__)


def test_one_tensor_feeding_many_branches_matches_torch():
    (gx, tx), (gw, tw) = pair((5, 3)), pair((3, 7))
    several_consumers(gx, gw).backward()
    several_consumers(tx, tw).backward()
    close(gx.grad, tx.grad, "x")
    close(gw.grad, tw.grad, "w")


def test_long_chain_does_not_recurse():
    x = genesis.tensor([0.5, -0.25], requires_grad=True)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(500)  # far below the chain's depth: any recursion would fail
    try:
        y = x
        for _ in range(5000):
            y = y * 1.0001 + 0.001
        y.sum().backward()
        del y  # freeing the chain must not recurse either
    finally:
        sys.setrecursionlimit(limit)
    expected = 1.0001**5000
    np.testing.assert_allclose(x.grad.numpy(), [expected, expected], rtol=1e-3)


# ---- grad modes ----------------------------------------------------------------
def records(x) -> bool:
    return (x * 2).requires_grad


def test_no_grad_and_enable_grad_nest():
    x = genesis.ones(2, requires_grad=True)
    assert genesis.is_grad_enabled() and records(x)
    with genesis.no_grad():
        assert not genesis.is_grad_enabled() and not records(x)
        with genesis.enable_grad():
            assert records(x)
            with genesis.no_grad():
                assert not records(x)
            assert records(x)
        assert not records(x)
    assert records(x)


def test_grad_modes_restore_after_an_exception():
    with pytest.raises(ValueError):
        with genesis.no_grad():
            raise ValueError("inside")
    assert genesis.is_grad_enabled()


# built inside the test: set_grad_enabled(False) changes the mode the moment it is called
@pytest.mark.parametrize(
    "make_decorator, expected",
    [
        (lambda: genesis.no_grad(), False),
        (lambda: genesis.no_grad, False),
        (lambda: genesis.enable_grad(), True),
        (lambda: genesis.enable_grad, True),
        (lambda: genesis.set_grad_enabled(False), False),
        (lambda: genesis.set_grad_enabled(True), True),
        (lambda: genesis.inference_mode(), False),
        (lambda: genesis.inference_mode, False),
    ],
    ids=["no_grad()", "no_grad", "enable_grad()", "enable_grad", "set_false", "set_true", "inference()", "inference"],
)
def test_grad_modes_as_decorators(make_decorator, expected):
    @make_decorator()
    def fn(x):
        """docstring"""
        return records(x), genesis.is_grad_enabled()

    assert genesis.is_grad_enabled()  # set_grad_enabled(False) used as a decorator must not leak
    x = genesis.ones(2, requires_grad=True)
    assert fn(x) == (expected, expected)
    assert genesis.is_grad_enabled()
    with genesis.no_grad():
        assert fn(x) == (expected, expected)  # a decorator sets the mode, whatever the caller's
        assert not genesis.is_grad_enabled()
    assert fn.__doc__ == "docstring"


def test_inference_mode_records_nothing_and_inference_mode_false_keeps_the_callers_mode():
    x = genesis.ones(2, requires_grad=True)
    with genesis.inference_mode():
        assert not records(x) and genesis.is_inference_mode_enabled()
        with genesis.inference_mode(False):
            assert not records(x) and not genesis.is_inference_mode_enabled()
        assert genesis.is_inference_mode_enabled()
    assert records(x) and not genesis.is_inference_mode_enabled()
    with genesis.inference_mode(False):
        assert records(x)
    with pytest.raises(ValueError):
        with genesis.inference_mode():
            raise ValueError("inside")
    assert records(x) and not genesis.is_inference_mode_enabled()


def test_set_grad_enabled_as_a_call_and_a_context():
    x = genesis.ones(2, requires_grad=True)
    try:
        genesis.set_grad_enabled(False)  # takes effect at once, as in PyTorch
        assert not records(x)
    finally:
        genesis.set_grad_enabled(True)
    with genesis.set_grad_enabled(False):
        assert not records(x)
        with genesis.set_grad_enabled(True):
            assert records(x)
    assert records(x)


# ---- detach, requires_grad_ ------------------------------------------------------
def test_detach_shares_data_and_stops_gradients():
    gx, tx = pair((3,))
    g_d, t_d = (gx * 2).detach(), (tx * 2).detach()
    assert not g_d.requires_grad and g_d.is_leaf and g_d.grad_fn is None
    (gx * g_d).sum().backward()
    (tx * t_d).sum().backward()
    close(gx.grad, tx.grad, "detached factor is a constant")
    base = genesis.zeros(3)
    base.detach().add_(1.0)
    assert base.tolist() == [1.0, 1.0, 1.0]


def test_requires_grad_():
    x = genesis.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    with pytest.raises(RuntimeError, match="only change requires_grad of leaf"):
        (x * 2).requires_grad_(False)
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients, got int64"):
        genesis.tensor([1, 2]).requires_grad_()
    with pytest.raises(RuntimeError, match="floating-point"):
        genesis.tensor([1, 2], requires_grad=True)


# ---- hooks and retain_grad ----------------------------------------------------------
def hooked_backward(x):
    """Hooks on an intermediate and on the leaf; returns (x.grad, y.grad, what the observer saw)."""
    seen = []
    y = x * 3
    y.register_hook(lambda g: seen.append(g.tolist()))  # observes, returns None
    y.register_hook(lambda g: g * 10)  # replaces the gradient for everything upstream
    y.retain_grad()
    x.register_hook(lambda g: g + 1)  # a leaf hook sees the total gradient, once
    (y * y + y.sin()).sum().backward()
    return x.grad.tolist(), y.grad.tolist(), seen


def test_hooks_that_modify_gradients_match_torch():
    gx, tx = pair((4,))
    for g, t in zip(hooked_backward(gx), hooked_backward(tx)):
        np.testing.assert_allclose(g, t, rtol=1e-12)


def test_hook_handle_removes_the_hook():
    x = genesis.tensor([1.0, 2.0], requires_grad=True)
    y = x * 1
    handle = y.register_hook(lambda g: g * 100)
    handle.remove()
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        genesis.ones(2).register_hook(lambda g: g)


def test_retain_grad_keeps_intermediate_gradients_like_torch():
    gx, tx = pair((2, 3))
    g_mid, t_mid = gx.exp(), tx.exp()
    g_mid.retain_grad()
    t_mid.retain_grad()
    g_unretained, t_unretained = g_mid * 2, t_mid * 2
    (g_unretained * gx).sum().backward()
    (t_unretained * tx).sum().backward()
    close(g_mid.grad, t_mid.grad, "retained")
    close(gx.grad, tx.grad, "x")
    assert g_unretained.grad is None


# ---- autograd.grad and higher order ------------------------------------------------
def test_autograd_grad_returns_gradients_without_touching_dot_grad():
    (ga, ta), (gb, tb) = pair((3, 2)), pair((2,))
    seed = RNG.standard_normal((3, 2))
    g_found = genesis.autograd.grad(ga * gb.exp(), [ga, gb], grad_outputs=genesis.tensor(seed))
    t_found = torch.autograd.grad(ta * tb.exp(), [ta, tb], grad_outputs=torch.tensor(seed))
    assert isinstance(g_found, tuple) and len(g_found) == 2
    for g, t in zip(g_found, t_found):
        close(g, t, "grad")
    assert ga.grad is None and gb.grad is None
    assert not g_found[0].requires_grad  # create_graph=False: plain values


def test_autograd_grad_allow_unused():
    a = genesis.tensor([1.0, 2.0], requires_grad=True)
    unused = genesis.tensor([3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="not used.*allow_unused=True"):
        genesis.autograd.grad((a * a).sum(), [a, unused])
    found = genesis.autograd.grad((a * a).sum(), [a, unused], allow_unused=True)
    assert found[0].tolist() == [2.0, 4.0] and found[1] is None


def tanh_cubed(x):
    return x.tanh() * x**3


def test_second_and_third_derivatives_match_torch():
    gx, tx = pair((7,))
    g_current, t_current = tanh_cubed(gx).sum(), tanh_cubed(tx).sum()
    for order in range(3):
        (g_current,) = genesis.autograd.grad(g_current, gx, create_graph=True)
        (t_current,) = torch.autograd.grad(t_current, tx, create_graph=True)
        close(g_current, t_current, f"derivative {order + 1}")
        assert g_current.requires_grad and g_current.grad_fn is not None
        g_current, t_current = g_current.sum(), t_current.sum()


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")  # torch's advice, not ours
def test_second_derivative_through_backward_with_create_graph():
    gx, tx = pair((4,))
    (gx.sin() * gx * gx).sum().backward(create_graph=True)
    (tx.sin() * tx * tx).sum().backward(create_graph=True)
    g_first, t_first = gx.grad, tx.grad
    assert g_first.requires_grad
    (g_second,) = genesis.autograd.grad(g_first.sum(), gx)
    (t_second,) = torch.autograd.grad(t_first.sum(), tx)
    close(g_second, t_second, "second derivative")


def test_hessian_vector_product_matches_torch():
    (gx, tx), (gv, tv) = pair((6,)), pair((6,), requires_grad=False)
    a = RNG.standard_normal((6, 6))
    ga, ta = genesis.tensor(a), torch.tensor(a)

    def f(x, m):
        return ((m @ x).tanh() * x.exp()).sum() + (x * x * x).sum()

    (g_grad,) = genesis.autograd.grad(f(gx, ga), gx, create_graph=True)
    (g_hvp,) = genesis.autograd.grad((g_grad * gv).sum(), gx)
    _, t_hvp = torch.autograd.functional.hvp(lambda x: f(x, ta), tx.detach(), tv)
    close(g_hvp, t_hvp, "Hessian-vector product")


def test_create_graph_through_broadcasting_and_reductions():
    (gx, tx), (gw, tw) = pair((3, 4)), pair((4,))

    def f(x, w):
        return ((x * w).sum(1) ** 2).mean() + (x - w).var()

    g_grads = genesis.autograd.grad(f(gx, gw), [gx, gw], create_graph=True)
    t_grads = torch.autograd.grad(f(tx, tw), [tx, tw], create_graph=True)
    g_second = genesis.autograd.grad(sum((g * g).sum() for g in g_grads), [gx, gw])
    t_second = torch.autograd.grad(sum((t * t).sum() for t in t_grads), [tx, tw])
    for g, t in zip(g_second, t_second):
        close(g, t, "second order")


def _sliced_sum(lib, x, y):
    """Many views of one tensor: overlapping slices, a slice of a slice, steps of a split, a pass-
    through add that hands one gradient to two inputs, and a view whose gradient meets another."""
    parts = lib.split(x, 1, 0)
    total = (parts[0] * y).sum() + (x[1:4] * 2).sum() + (x[0:3][1:] ** 2).sum()
    both = x[2] + x[2]  # add's vjp passes the same gradient to both inputs, which are one view
    total = total + (both * x[3]).sum() + (x.reshape(-1)[::3] * 3).sum()
    # a gradient summed from two views, then handed on as it is by add to both of its inputs, each
    # of which takes another gradient afterwards: neither may be added into the other's
    a, b = x * 1.5, x * -2
    joined = a + b
    return (a * 3).sum() + (b * 7).sum() + total + (joined[0] * y).sum() + (joined[1:] ** 2).sum()


def test_gradients_of_many_views_of_one_tensor_add_up_in_place_as_pytorch():
    """Eager backward adds each view's gradient into its input's buffer (engine._add_into_region);
    the sums must be PyTorch's, and a second backward and a double backward must see the same."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((1, 4))
    gx, gy = genesis.tensor(x, requires_grad=True), genesis.tensor(y, requires_grad=True)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    g_loss, t_loss = _sliced_sum(genesis, gx, gy), _sliced_sum(torch, tx, ty)
    g_loss.backward(retain_graph=True)
    t_loss.backward(retain_graph=True)
    g_loss.backward()  # a second backward accumulates into .grad
    t_loss.backward()
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gy.grad.numpy(), ty.grad.numpy(), rtol=1e-12)
    (g_first,) = genesis.autograd.grad(_sliced_sum(genesis, gx, gy), [gx], create_graph=True)
    (t_first,) = torch.autograd.grad(_sliced_sum(torch, tx, ty), [tx], create_graph=True)
    np.testing.assert_allclose(g_first.detach().numpy(), t_first.detach().numpy(), rtol=1e-12)
    (g_second,) = genesis.autograd.grad((g_first * g_first).sum(), [gx])
    (t_second,) = torch.autograd.grad((t_first * t_first).sum(), [tx])
    np.testing.assert_allclose(g_second.numpy(), t_second.numpy(), rtol=1e-12)


def test_post_accumulate_grad_hook_sees_the_whole_gradient_as_soon_as_it_is_whole():
    """As PyTorch's `register_post_accumulate_grad_hook`: the hook gets the leaf once its `.grad` holds
    the whole gradient of the pass (and what earlier passes accumulated), before the backward reaches
    leaves used earlier in the forward."""
    torch = pytest.importorskip("torch")
    seen = {}
    for lib in (genesis, torch):
        first = lib.tensor([1.0, 2.0], requires_grad=True)
        last = lib.tensor([3.0, -1.0], requires_grad=True)
        log = []
        last.register_post_accumulate_grad_hook(
            lambda t, log=log, first=first: log.append((t.grad.tolist(), first.grad is None))
        )
        h = (first * 2).exp()
        loss = (h * last).sum() + (last * last).sum()
        loss.backward()
        loss = (h.detach() * last).sum()
        loss.backward()
        seen[lib.__name__] = log
    assert [flag for _, flag in seen["genesis"]] == [flag for _, flag in seen["torch"]] == [True, False]
    np.testing.assert_allclose([g for g, _ in seen["genesis"]], [g for g, _ in seen["torch"]], rtol=1e-6)
    assert seen["genesis"][0][1]  # `first` had no gradient yet when `last`'s was whole


def test_post_accumulate_grad_hook_refuses_a_non_leaf_and_is_removable():
    x = genesis.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2).register_post_accumulate_grad_hook(print)
    calls = []
    handle = x.register_post_accumulate_grad_hook(calls.append)
    (x * 2).sum().backward()
    handle.remove()
    (x * 2).sum().backward()
    assert calls == [x]


def test_queue_callback_runs_after_every_gradient_is_stored():
    from genesis.autograd import queue_callback

    with pytest.raises(RuntimeError, match="during a backward pass"):
        queue_callback(print)
    a, b = genesis.ones(2, requires_grad=True), genesis.ones(2, requires_grad=True)
    stored = []
    a.register_post_accumulate_grad_hook(lambda t: queue_callback(lambda: stored.append(b.grad.tolist())))
    ((a * 3) * b).sum().backward()
    assert stored == [[3.0, 3.0]]
