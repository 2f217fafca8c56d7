"""LBFGS against torch.optim.LBFGS: the same iterates, losses and evaluation counts.

Each problem is one loss written once for both libraries, minimised from the
same start by genesis's and torch's LBFGS, with and without the strong Wolfe
line search, over several `step(closure)` calls. After every call the
parameters, the returned loss and the state's evaluation and iteration counts
must agree. The two sides differ only in rounding (dot products summed in
another order, PyTorch's fused multiply-adds), which a well-conditioned
problem keeps at that size: float64 to 1e-9 here, where the runs agree to
about 1e-12 (the small network's loss surface amplifies them: one step of 20
iterations there). In float32 the iterates are compared where the problem
damps rounding (a convex least squares, one step of a small network), to 1e-4.
"""

import copy
import warnings

import numpy as np
import pytest
import torch
from optest import make_pair, to_numpy

import genesis
import genesis.optim
from genesis.errors import ShapeError

f32, f64 = genesis.float32, genesis.float64


def rosenbrock(lib, params):
    (x,) = params
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def least_squares(lib, params):
    weight, bias, _unused = params  # the third parameter never has a gradient: it must stay put
    inputs, targets = _least_squares_data(lib, weight)
    return ((inputs @ weight + bias - targets) ** 2).mean()


def mlp(lib, params):
    w1, b1, w2, b2 = params
    inputs, targets = _mlp_data(lib, w1)
    return ((lib.tanh(inputs @ w1 + b1) @ w2 + b2 - targets) ** 2).mean()


def _constant(lib, array, like):
    if lib is torch:
        return torch.tensor(array, dtype=like.dtype)
    return genesis.tensor(array, dtype=like.dtype)


def _least_squares_data(lib, like):
    rng = np.random.default_rng(11)
    inputs = rng.standard_normal((30, 5))
    targets = inputs @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((30, 3))
    return _constant(lib, inputs, like), _constant(lib, targets, like)


def _mlp_data(lib, like):
    rng = np.random.default_rng(12)
    inputs = rng.standard_normal((20, 3))
    return _constant(lib, inputs, like), _constant(lib, np.sin(inputs.sum(1, keepdims=True)), like)


def initial(problem):
    rng = np.random.default_rng(13)
    if problem is rosenbrock:
        return [np.array([-1.2, 1.0, -1.2, 1.0])]
    if problem is least_squares:
        return [rng.standard_normal((5, 3)), np.zeros(3), rng.standard_normal(4)]
    return [rng.standard_normal((3, 6)) * 0.5, rng.standard_normal(6) * 0.1, rng.standard_normal((6, 1)) * 0.5, [0.0]]


def make_side(lib, problem, dtype, options):
    params = [make_pair(a, dtype, requires_grad=True)[0 if lib is genesis else 1] for a in initial(problem)]
    optimizer = lib.optim.LBFGS(params, **options)

    def closure():
        optimizer.zero_grad()
        loss = problem(lib, params)
        loss.backward()
        return loss

    return params, optimizer, closure


WOLFE = dict(line_search_fn="strong_wolfe")
CASES = [
    # problem, dtype, options, step() calls, tolerance
    (rosenbrock, f64, dict(WOLFE), 5, 1e-9),
    (rosenbrock, f64, dict(lr=0.1), 5, 1e-9),
    (least_squares, f64, dict(WOLFE, history_size=3, max_iter=6), 4, 1e-9),
    (least_squares, f64, dict(lr=0.5, history_size=3, max_iter=6), 4, 1e-9),
    # float32 stops well above its rounding (tolerance_change 1e-6), so both sides stop at the same iteration
    (least_squares, f32, dict(WOLFE, history_size=3, max_iter=6, tolerance_change=1e-6), 3, 1e-4),
    (least_squares, f32, dict(lr=0.5, max_iter=10, tolerance_change=1e-6), 3, 1e-4),
    (mlp, f64, dict(WOLFE, history_size=5), 1, 1e-9),
    (mlp, f64, dict(max_eval=15), 2, 1e-9),
    (mlp, f32, dict(WOLFE, history_size=5), 1, 1e-4),
]


@pytest.mark.parametrize(
    "problem,dtype,options,steps,tol",
    CASES,
    ids=[f"{c[0].__name__}-{c[1].name}-{'wolfe' if 'line_search_fn' in c[2] else 'fixed'}" for c in CASES],
)
def test_lbfgs_matches_torch(problem, dtype, options, steps, tol):
    g_params, g_opt, g_closure = make_side(genesis, problem, dtype, options)
    t_params, t_opt, t_closure = make_side(torch, problem, dtype, options)
    for step in range(steps):
        g_loss, t_loss = g_opt.step(g_closure), t_opt.step(t_closure)
        assert float(g_loss.detach()) == pytest.approx(float(t_loss.detach()), rel=tol, abs=tol), step
        for index, (g, t) in enumerate(zip(g_params, t_params)):
            np.testing.assert_allclose(
                to_numpy(g), to_numpy(t), rtol=tol, atol=tol, err_msg=f"step {step}, parameter {index}"
            )
        g_state, t_state = g_opt.state[g_params[0]], t_opt.state[t_params[0]]
        assert (g_state["func_evals"], g_state["n_iter"]) == (t_state["func_evals"], t_state["n_iter"]), step
    assert set(g_state) == set(t_state)
    if problem is least_squares:  # the parameter without a gradient has not moved
        np.testing.assert_array_equal(to_numpy(g_params[2]), initial(least_squares)[2].astype(dtype.name))
    if problem is rosenbrock and "line_search_fn" in options:
        np.testing.assert_allclose(to_numpy(g_params[0]), np.ones(4), atol=1e-4)  # converged to the minimum


def test_lbfgs_stops_at_once_where_the_gradient_is_below_tolerance_grad():
    x = genesis.tensor([1.0, 1.0], dtype=f64, requires_grad=True)
    optimizer = genesis.optim.LBFGS([x])

    def closure():
        optimizer.zero_grad()
        loss = rosenbrock(genesis, [x])
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 0.0
    assert optimizer.state[x] == {"func_evals": 1, "n_iter": 0}
    np.testing.assert_array_equal(to_numpy(x), [1.0, 1.0])


def test_a_resumed_lbfgs_continues_exactly():
    """state_dict after two steps, loaded into a new optimizer over a copy of the parameters: the next
    steps are those of the optimizer that went straight on."""
    options = dict(WOLFE, history_size=3, max_iter=5)
    straight, straight_opt, straight_closure = make_side(genesis, least_squares, f64, options)
    for _ in range(2):
        straight_opt.step(straight_closure)
    saved = copy.deepcopy(straight_opt.state_dict())
    assert {"d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss", "al"} <= set(
        saved["state"][0]
    )

    resumed, resumed_opt, resumed_closure = make_side(genesis, least_squares, f64, options)
    for target, source in zip(resumed, straight):
        with genesis.no_grad():
            target.copy_(source)
    resumed_opt.load_state_dict(saved)
    for _ in range(2):
        straight_opt.step(straight_closure)
        resumed_opt.step(resumed_closure)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert resumed_opt.state[resumed[0]]["func_evals"] == straight_opt.state[straight[0]]["func_evals"]


def test_lbfgs_under_compile_runs_eagerly_with_the_same_results():
    """L-BFGS reads the loss and its tests back to the host: a compiled step falls back to eager
    with one warning, and computes what eager does."""
    results = []
    for compiled in (False, True):
        params, optimizer, closure = make_side(genesis, mlp, f64, dict(WOLFE))

        def step():
            return optimizer.step(closure)

        run = genesis.compile(step) if compiled else step
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                run()
        if compiled:
            assert any("runs eagerly" in str(w.message) for w in caught)
        results.append([to_numpy(p) for p in params])
    for eager, compiled in zip(*results):
        np.testing.assert_array_equal(compiled, eager)


def test_lbfgs_errors():
    a = genesis.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="line_search_fn must be None or 'strong_wolfe', got 'armijo'"):
        genesis.optim.LBFGS([a], line_search_fn="armijo")
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        genesis.optim.LBFGS([{"params": [a]}, {"params": [genesis.zeros(2, requires_grad=True)], "lr": 0.1}])
    optimizer = genesis.optim.LBFGS([a])
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        optimizer.add_param_group({"params": [genesis.zeros(2, requires_grad=True)]})
    with pytest.raises(RuntimeError, match="needs a closure"):
        optimizer.step(None)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        genesis.optim.LBFGS([a], lr=-1.0)
    with pytest.raises(TypeError, match="closure must return the loss"):
        optimizer.step(lambda: None)

    def wrong_gradient():
        a.grad = genesis.ones(4)
        return a.sum()

    with pytest.raises(ShapeError, match=r"shape \[3\] has a gradient of shape \[4\]"):
        optimizer.step(wrong_gradient)


def test_lbfgs_defaults_are_torchs():
    a = genesis.zeros(3, requires_grad=True)
    group = genesis.optim.LBFGS([a]).param_groups[0]
    expected = torch.optim.LBFGS([torch.zeros(3, requires_grad=True)]).param_groups[0]
    assert {k: v for k, v in group.items() if k != "params"} == {k: v for k, v in expected.items() if k != "params"}
    assert genesis.optim.LBFGS([a], max_iter=8).param_groups[0]["max_eval"] == 10
