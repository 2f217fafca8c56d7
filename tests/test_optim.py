"""Optimizers against torch.optim.

The main table runs every optimizer option that changes the math for 20
steps next to torch.optim (single-tensor path), from the same initial
parameters, with two parameter groups and a parameter that has no gradient
on odd steps. Each step's gradient is the same numpy function of each
side's current parameters, so only the optimizer math can differ; the
parameters must agree to 1e-6 in float32 and 1e-12 in float64. Further
tests: gradients from autograd on both sides, the parameter-group API,
state_dict layout and exact resumption, the errors, a check that `step()`
never reads a tensor back to the host, 0-d tensor hyperparameters, and
GradScaler + Adam against torch.amp.GradScaler + torch Adam.
"""

import copy
import inspect

import numpy as np
import pytest
import torch
from optest import TORCH_DTYPE, assert_close, make_pair, to_numpy

import genesis
import genesis.optim
from genesis.amp import GradScaler
from genesis.errors import ShapeError
from genesis.tensor import Tensor

f32, f64 = genesis.float32, genesis.float64
SHAPES = [(7, 13), (31,), ()]  # awkward sizes and a 0-d parameter
STEPS = 20
TOL = {f32: 1e-6, f64: 1e-12}

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.1, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.7))),  # lerp's other formula (weight >= 0.5)
    ("Adam", dict(lr=0.02, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True)),
    ("Adam", dict(lr=0.05, eps=1e-3, betas=(0.8, 0.99))),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.5)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.2)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.5, alpha=0.3)),  # centered lerp, weight >= 0.5
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.05, maximize=True, eps=1e-4)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.05, weight_decay=0.1, eps=1e-3, maximize=True)),
    ("Adadelta", dict(lr=1.0)),
    ("Adadelta", dict(lr=0.5, rho=0.6, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(lr=2.0, rho=0.95, maximize=True)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.02, betas=(0.3, 0.8), eps=1e-3, weight_decay=0.1)),  # lerp's other formula
    ("Adamax", dict(lr=0.01, weight_decay=0.05, maximize=True)),
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, betas=(0.4, 0.9), momentum_decay=0.05, weight_decay=0.1)),
    ("NAdam", dict(lr=0.02, weight_decay=0.2, decoupled_weight_decay=True, maximize=True, eps=1e-4)),
    ("RAdam", dict(lr=0.01)),  # beta2 0.999: rectified from step 6 on
    ("RAdam", dict(lr=0.01, betas=(0.3, 0.6), weight_decay=0.1)),  # rho_inf 4: never rectified
    ("RAdam", dict(lr=0.02, betas=(0.8, 0.9), weight_decay=0.2, decoupled_weight_decay=True, maximize=True)),
]


def initial_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in SHAPES]


def gradient_of(values: np.ndarray, index: int, step: int) -> np.ndarray:
    """A fresh random gradient each step plus a mild pull towards 0 (float64 math, the same on both sides).

    The dependence on the parameter is kept weak on purpose: a strongly coupled
    gradient turns the last-bit differences of fused multiply-adds (PyTorch's
    vectorised `add(alpha=)` uses one, numpy cannot) into chaos over 20 steps.
    """
    noise = np.random.default_rng([step, index]).standard_normal(values.shape)
    return noise * (1.0 + index) + 0.1 * values


def make_optimizers(name, config, dtype, arrays):
    g_params, t_params = zip(*(make_pair(a, dtype, requires_grad=True) for a in arrays))
    second = dict(lr=config["lr"] * 0.5, weight_decay=0.02)  # a group that overrides two defaults

    def groups(params):
        return [{"params": list(params[:2])}, {"params": [params[2]], **second}]

    g_opt = getattr(genesis.optim, name)(groups(g_params), **config)
    t_opt = getattr(torch.optim, name)(groups(t_params), **config, foreach=False)
    return g_params, t_params, g_opt, t_opt


def set_gradients(params, dtype, step, from_torch):
    for index, param in enumerate(params):
        if index == 2 and step % 2 == 1:  # no gradient this step: the parameter and its state stay as they are
            param.grad = None
            continue
        values = param.detach().double().numpy() if from_torch else to_numpy(param)
        grad = gradient_of(values, index, step)
        if from_torch:
            param.grad = torch.tensor(grad).to(param.dtype)
        else:
            param.grad = genesis.tensor(grad, dtype=dtype)


def assert_params_close(g_params, t_params, dtype, what):
    tol = TOL[dtype]
    for index, (g, t) in enumerate(zip(g_params, t_params)):
        np.testing.assert_allclose(to_numpy(g), to_numpy(t), rtol=tol, atol=tol, err_msg=f"{what}: parameter {index}")


@pytest.mark.parametrize("dtype", [f32, f64], ids=["float32", "float64"])
@pytest.mark.parametrize("name,config", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_matches_torch(name, config, dtype):
    g_params, t_params, g_opt, t_opt = make_optimizers(name, config, dtype, initial_arrays())
    for step in range(STEPS):
        set_gradients(g_params, dtype, step, from_torch=False)
        set_gradients(t_params, dtype, step, from_torch=True)
        g_opt.step()
        t_opt.step()
        assert_params_close(g_params, t_params, dtype, f"{name} {config} step {step}")
    for g, t in zip(g_params, t_params):
        assert g.dtype is dtype and g.is_leaf and g.requires_grad
    # the same state buffers as PyTorch (names and values; the step count is an int here, a tensor there)
    for g, t in zip(g_params, t_params):
        g_state, t_state = g_opt.state[g], t_opt.state[t]
        assert set(g_state) == set(t_state)
        for key, value in g_state.items():
            if key == "step":
                assert value == int(t_state[key])
            elif value is not None:
                np.testing.assert_allclose(
                    to_numpy(value), to_numpy(t_state[key]), rtol=TOL[dtype] * 10, atol=TOL[dtype], err_msg=key
                )


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"])
def test_gradients_from_autograd(name):
    """The whole loop: a loss in genesis and the same loss in torch, backward, step, zero_grad.

    The gradients themselves differ in their last bits (reduction order), and
    RMSprop divides by their running RMS, so this end-to-end check uses the
    float32 tolerance of the op tests (1e-5); torch's own float32 run sits
    1e-6 away from its float64 run here.
    """
    rng = np.random.default_rng(3)
    weight_g, weight_t = make_pair(rng.standard_normal((5, 3)) * 0.5, f32, requires_grad=True)
    bias_g, bias_t = make_pair(rng.standard_normal(3) * 0.1, f32, requires_grad=True)
    inputs_g, inputs_t = make_pair(rng.standard_normal((11, 5)), f32, requires_grad=False)
    targets_g, targets_t = make_pair(rng.standard_normal((11, 3)), f32, requires_grad=False)
    config = {
        "SGD": dict(lr=0.05, momentum=0.9),
        "RMSprop": dict(lr=0.002, momentum=0.9),
        "Adadelta": dict(lr=1.0),
    }.get(name, dict(lr=0.02))
    g_opt = getattr(genesis.optim, name)([weight_g, bias_g], **config)
    t_opt = getattr(torch.optim, name)([weight_t, bias_t], **config, foreach=False)
    for step in range(STEPS):
        for opt, lib, w, b, x, y in (
            (g_opt, genesis, weight_g, bias_g, inputs_g, targets_g),
            (t_opt, torch, weight_t, bias_t, inputs_t, targets_t),
        ):
            opt.zero_grad()
            loss = ((lib.tanh(x @ w + b) - y) ** 2).mean()
            loss.backward()
            opt.step()
        assert_close(weight_g, weight_t, f32, f"weight, step {step}")
        assert_close(bias_g, bias_t, f32, f"bias, step {step}")


def test_closure_runs_with_grad_and_returns_the_loss():
    param = genesis.tensor([1.0, -2.0, 0.5], requires_grad=True)
    opt = genesis.optim.SGD([param], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (param * param).sum()
        assert genesis.is_grad_enabled()
        loss.backward()
        return loss

    with genesis.no_grad():
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.25)
    np.testing.assert_allclose(to_numpy(param), [0.8, -1.6, 0.4], rtol=1e-6)


def test_lr_is_read_at_every_step():
    """A group's lr (and other hyperparameters) changed between steps is used, as in torch."""
    g, t = make_pair(np.linspace(-1, 1, 9), f32, requires_grad=True)
    g_opt = genesis.optim.Adam([g], lr=0.1)
    t_opt = torch.optim.Adam([t], lr=0.1, foreach=False)
    for step in range(8):
        for opt in (g_opt, t_opt):
            opt.param_groups[0]["lr"] = 0.1 / (step + 1)
            opt.param_groups[0]["betas"] = (0.9 - 0.05 * step, 0.999)
        g.grad = genesis.tensor(np.cos(to_numpy(g) * 2), dtype=f32)
        t.grad = torch.cos(t.detach() * 2)
        g_opt.step()
        t_opt.step()
    np.testing.assert_allclose(to_numpy(g), to_numpy(t), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "name,config",
    [
        ("SGD", dict(momentum=0.9, nesterov=True, weight_decay=0.1)),
        ("Adam", dict(amsgrad=True, weight_decay=0.1)),
        ("AdamW", dict()),
        ("RMSprop", dict(centered=True, momentum=0.5)),
        ("Adagrad", dict(lr_decay=0.1, weight_decay=0.1)),
        ("Adadelta", dict(weight_decay=0.1)),
        ("Adamax", dict(weight_decay=0.1)),
        ("NAdam", dict(weight_decay=0.1, decoupled_weight_decay=True)),
        ("RAdam", dict(betas=(0.9, 0.9), weight_decay=0.1)),
    ],
)
def test_tensor_hyperparameters_give_the_same_update(name, config):
    """A 0-d tensor lr (how a compiled step takes it as a graph input) computes what the float does."""
    arrays = initial_arrays(5)
    results = []
    for lr in (0.01, genesis.tensor(0.01, dtype=f64)):
        params = [genesis.tensor(a, dtype=f64, requires_grad=True) for a in arrays]
        opt = getattr(genesis.optim, name)(params, lr=lr, **config)
        for step in range(5):
            for index, p in enumerate(params):
                p.grad = genesis.tensor(gradient_of(to_numpy(p), index, step), dtype=f64)
            opt.step()
        results.append([to_numpy(p) for p in params])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)


SCHEDULED = [
    ("Adagrad", lambda lib, opt: lib.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)),
    ("Adadelta", lambda lib, opt: lib.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)),
    ("Adamax", lambda lib, opt: lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)),
    ("NAdam", lambda lib, opt: lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)),
    ("RAdam", lambda lib, opt: lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)),
]


@pytest.mark.parametrize("name,make_scheduler", SCHEDULED, ids=[name for name, _ in SCHEDULED])
def test_scheduled_hyperparameters_match_torch(name, make_scheduler):
    """A scheduler changes lr (OneCycleLR the betas too) at every step, on both sides."""
    g_params, t_params, g_opt, t_opt = make_optimizers(name, dict(lr=0.02), f32, initial_arrays(2))
    g_scheduler, t_scheduler = make_scheduler(genesis, g_opt), make_scheduler(torch, t_opt)
    for step in range(STEPS):
        set_gradients(g_params, f32, step, from_torch=False)
        set_gradients(t_params, f32, step, from_torch=True)
        g_opt.step()
        t_opt.step()
        g_scheduler.step()
        t_scheduler.step()
        assert g_opt.param_groups[0]["lr"] == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-12)
        assert_params_close(g_params, t_params, f32, f"{name} step {step}")
    if "betas" in g_opt.defaults:  # OneCycleLR cycled them
        assert g_opt.param_groups[0]["betas"] == pytest.approx(t_opt.param_groups[0]["betas"], rel=1e-12)
        assert g_opt.param_groups[0]["betas"][0] != 0.9


@pytest.mark.parametrize("name,config", CONFIGS[::3] + CONFIGS[-1:], ids=lambda v: str(v))
def test_step_reads_nothing_back_to_the_host(monkeypatch, name, config):
    """A compiler traces step(): no .item(), float(t), bool(t), .numpy() or .tolist() inside it."""
    params = [genesis.tensor(a, dtype=f32, requires_grad=True) for a in initial_arrays()]
    opt = getattr(genesis.optim, name)(params, **config)

    def refuse(*args, **kwargs):
        raise AssertionError("optimizer.step() read a tensor back to the host")

    for method in ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__", "__array__"):
        monkeypatch.setattr(Tensor, method, refuse)
    for step in range(3):
        for index, p in enumerate(params):
            p.grad = genesis.full(p.shape, 0.1 * (index + step + 1), dtype=f32)
        opt.step()


# ---- parameter groups --------------------------------------------------------------
def test_param_groups_take_defaults_and_overrides():
    a, b, c = (genesis.zeros(3, requires_grad=True) for _ in range(3))
    opt = genesis.optim.Adam(
        [{"params": [a, b]}, {"params": c, "lr": 0.5, "betas": (0.5, 0.6)}], lr=0.01, weight_decay=0.1
    )
    first, second = opt.param_groups
    assert first["params"] == [a, b] and first["lr"] == 0.01 and first["betas"] == (0.9, 0.999)
    assert second["params"][0] is c and second["lr"] == 0.5 and second["betas"] == (0.5, 0.6)
    assert first["weight_decay"] == second["weight_decay"] == 0.1
    assert (
        set(first)
        == set(second)
        == {"params", "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"}
    )
    d = genesis.zeros(2, requires_grad=True)
    opt.add_param_group({"params": [d], "eps": 1e-3})
    assert opt.param_groups[2]["eps"] == 1e-3 and opt.param_groups[2]["lr"] == 0.01
    assert "Parameter Group 2" in repr(opt)


def test_param_group_errors():
    a, b = genesis.zeros(3, requires_grad=True), genesis.zeros(2, requires_grad=True)
    opt = genesis.optim.SGD([a], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [b, a]})
    assert len(opt.param_groups) == 1  # the refused group was not added
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [b, b]})
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        genesis.optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        genesis.optim.Adam([])
    with pytest.raises(TypeError, match="ordered collections"):
        genesis.optim.SGD([{"params": {a}}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        genesis.optim.SGD([a * 2], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        genesis.optim.SGD([a, 3.0], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        genesis.optim.SGD([a], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        genesis.optim.Adam([a], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="learning rate"):
        genesis.optim.RMSprop([a], lr=-1.0)
    a.grad = genesis.zeros(4)
    with pytest.raises(ShapeError, match=r"shape \[3\] has a gradient of shape \[4\]"):
        opt.step()


def test_required_default_must_be_given():
    class Plain(genesis.optim.Optimizer):
        def __init__(self, params, lr=genesis.optim.required):
            super().__init__(params, dict(lr=lr))

    a = genesis.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="required optimization parameter lr"):
        Plain([a])
    assert Plain([{"params": [a], "lr": 0.3}]).param_groups[0]["lr"] == 0.3


def test_named_parameters():
    a, b = genesis.zeros(3, requires_grad=True), genesis.zeros(2, requires_grad=True)
    opt = genesis.optim.SGD([("weight", a), ("bias", b)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"] and opt.param_groups[0]["params"][1] is b


def test_zero_grad():
    a, b = genesis.ones(3, requires_grad=True), genesis.ones(2, requires_grad=True)
    opt = genesis.optim.SGD([a, b], lr=0.1)
    (a.sum() * 2 + b.sum()).backward()
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not np.any(to_numpy(a.grad)) and not np.any(to_numpy(b.grad))
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    opt.zero_grad()  # nothing to do: no error


# ---- state dicts -------------------------------------------------------------------
def run_steps(opt, params, steps, start=0):
    for step in range(start, start + steps):
        set_gradients(params, params[0].dtype, step, from_torch=False)
        opt.step()


@pytest.mark.parametrize("name,config", [c for c in CONFIGS if c[0] != "SGD" or "momentum" in c[1]][::2])
def test_state_dict_resumes_exactly(name, config):
    arrays = initial_arrays(1)
    straight = [genesis.tensor(a, dtype=f32, requires_grad=True) for a in arrays]
    straight_opt = getattr(genesis.optim, name)(straight, **config)
    run_steps(straight_opt, straight, 13)

    first = [genesis.tensor(a, dtype=f32, requires_grad=True) for a in arrays]
    first_opt = getattr(genesis.optim, name)(first, **config)
    run_steps(first_opt, first, 7)
    saved = copy.deepcopy(first_opt.state_dict())
    values = [to_numpy(p).copy() for p in first]
    run_steps(first_opt, first, 3, start=7)  # the first optimizer goes on: the saved copy must not change

    resumed = [genesis.tensor(v, dtype=f32, requires_grad=True) for v in values]
    resumed_opt = getattr(genesis.optim, name)(resumed, lr=123.0)  # hyperparameters come from the state dict
    resumed_opt.load_state_dict(saved)
    assert resumed_opt.param_groups[0]["lr"] == config["lr"]
    run_steps(resumed_opt, resumed, 6, start=7)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))  # bit for bit: the same ops on the same values


def test_state_dict_layout_matches_torch():
    g_params, t_params, g_opt, t_opt = make_optimizers("Adam", dict(lr=0.01, amsgrad=True), f32, initial_arrays())
    for step in range(3):
        for params, from_torch, opt in ((g_params, False, g_opt), (t_params, True, t_opt)):
            set_gradients(params, f32, step, from_torch)
            if step == 0:
                params[0].grad = None  # parameter 0 first gets state at step 1
            opt.step()
    g_state, t_state = g_opt.state_dict(), t_opt.state_dict()
    assert sorted(g_state["state"]) == sorted(t_state["state"]) == [0, 1, 2]
    assert [g["params"] for g in g_state["param_groups"]] == [g["params"] for g in t_state["param_groups"]]
    for index in g_state["state"]:
        assert set(g_state["state"][index]) == set(t_state["state"][index])
        g_step, t_step = g_state["state"][index]["step"], t_state["state"][index]["step"]
        assert g_step == int(t_step)
        # a 0-d float32 tensor, as torch keeps it (and adam.py says), not a Python int
        assert isinstance(g_step, genesis.Tensor) and g_step.shape == tuple(t_step.shape) == ()
        assert TORCH_DTYPE[g_step.dtype] == t_step.dtype == torch.float32
    for g_group, t_group in zip(g_state["param_groups"], t_state["param_groups"]):
        for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"):
            assert g_group[key] == t_group[key], key


@pytest.mark.parametrize("dtype", [f32, f64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"])
def test_state_layout_matches_torch(name, dtype):
    """Which parameters have state when, its names, shapes and dtypes (the step and NAdam's mu_product
    are float32 0-d tensors for parameters of any dtype), and the groups' hyperparameters."""
    lr = {"Adadelta": 1.0}.get(name, 0.01)
    g_params, t_params, g_opt, t_opt = make_optimizers(name, dict(lr=lr), dtype, initial_arrays())
    for step in range(3):
        g_state, t_state = g_opt.state_dict(), t_opt.state_dict()
        assert sorted(g_state["state"]) == sorted(t_state["state"]), step  # Adagrad: state from the start
        for index, t_values in t_state["state"].items():
            g_values = g_state["state"][index]
            assert set(g_values) == set(t_values)
            for key, t_value in t_values.items():
                assert tuple(g_values[key].shape) == tuple(t_value.shape), key
                assert g_values[key].dtype.name == str(t_value.dtype).removeprefix("torch."), key
                np.testing.assert_allclose(to_numpy(g_values[key]), to_numpy(t_value), rtol=1e-6, err_msg=key)
        for params, from_torch, opt in ((g_params, False, g_opt), (t_params, True, t_opt)):
            set_gradients(params, dtype, step, from_torch)
            if step == 0:
                params[0].grad = None  # parameter 0 first gets state at step 1
            opt.step()
    for g_group, t_group in zip(g_opt.param_groups, t_opt.param_groups):
        assert set(g_group) <= set(t_group)
        assert set(t_group) - set(g_group) <= {"foreach", "fused", "differentiable", "capturable"}
        for key in set(g_group) - {"params"}:
            assert g_group[key] == t_group[key], key


def test_new_optimizers_take_torchs_defaults_and_refuse_what_they_do_not_do():

    for name in ("Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"):
        g_signature = inspect.signature(getattr(genesis.optim, name))
        t_signature = inspect.signature(getattr(torch.optim, name))
        for parameter in t_signature.parameters.values():
            mine = g_signature.parameters[parameter.name]
            assert (mine.kind, mine.default) == (parameter.kind, parameter.default), (name, parameter.name)
        a = genesis.zeros(3, requires_grad=True)
        for option in ("differentiable", "capturable"):
            if option in t_signature.parameters:
                with pytest.raises(ValueError, match=f"{name}\\({option}=True\\) is not supported"):
                    getattr(genesis.optim, name)([a], **{option: True})
    a = genesis.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid lr_decay value: -0.1"):
        genesis.optim.Adagrad([a], lr_decay=-0.1)
    with pytest.raises(ValueError, match="Invalid rho value: 1.5"):
        genesis.optim.Adadelta([a], rho=1.5)
    with pytest.raises(ValueError, match="beta parameter at index 0"):
        genesis.optim.Adamax([a], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="Invalid momentum_decay value"):
        genesis.optim.NAdam([a], momentum_decay=-1.0)
    with pytest.raises(ValueError, match="Invalid epsilon value"):
        genesis.optim.RAdam([a], eps=-1.0)


def test_adagrad_state_uses_the_constructors_initial_accumulator_value():
    a, b = genesis.zeros(2, requires_grad=True), genesis.zeros(3, requires_grad=True)
    opt = genesis.optim.Adagrad([a], initial_accumulator_value=0.25)
    opt.add_param_group({"params": [b], "initial_accumulator_value": 4.0})  # as in torch: the group's is ignored
    assert b not in opt.state  # made at its first step
    b.grad = genesis.ones(3)
    opt.step()
    np.testing.assert_array_equal(to_numpy(opt.state[a]["sum"]), [0.25, 0.25])
    np.testing.assert_array_equal(to_numpy(opt.state[b]["sum"]), [1.25, 1.25, 1.25])
    assert opt.state[a]["step"] == 0 and opt.state[b]["step"] == 1


def test_load_state_dict_copies_and_keeps_buffers():
    params = [genesis.tensor(a, dtype=f32, requires_grad=True) for a in initial_arrays()]
    opt = genesis.optim.Adam(params, lr=0.01)
    run_steps(opt, params, 2)
    buffer = opt.state[params[0]]["exp_avg"]
    source = genesis.optim.Adam([genesis.tensor(a, dtype=f32, requires_grad=True) for a in initial_arrays()])
    run_steps(source, source.param_groups[0]["params"], 4)
    saved = source.state_dict()
    opt.load_state_dict(saved)
    assert opt.state[params[0]]["exp_avg"] is buffer  # copied into the existing buffer
    np.testing.assert_array_equal(to_numpy(buffer), to_numpy(saved["state"][0]["exp_avg"]))
    saved["state"][0]["exp_avg"].fill_(7.0)
    assert not np.any(to_numpy(buffer) == 7.0)  # a copy, not an alias
    assert opt.state[params[0]]["step"] == 4


def test_load_state_dict_float64_state_is_cast_to_the_parameter_dtype():
    p64 = genesis.tensor(initial_arrays()[0], dtype=f64, requires_grad=True)
    opt64 = genesis.optim.RMSprop([p64], momentum=0.9)
    p64.grad = genesis.ones(p64.shape, dtype=f64)
    opt64.step()
    p32 = genesis.tensor(initial_arrays()[0], dtype=f32, requires_grad=True)
    opt32 = genesis.optim.RMSprop([p32], momentum=0.9)
    opt32.load_state_dict(opt64.state_dict())
    assert all(v.dtype is f32 for k, v in opt32.state[p32].items() if k != "step")


def test_load_state_dict_keeps_nadams_mu_product_float32():
    """NAdam's mu_product is a float32 0-d tensor like the step, for a float64 parameter too (torch's layout)."""
    source = genesis.tensor(initial_arrays()[0], dtype=f64, requires_grad=True)
    source_opt = genesis.optim.NAdam([source])
    source.grad = genesis.ones(source.shape, dtype=f64)
    source_opt.step()
    target = genesis.tensor(initial_arrays()[0], dtype=f64, requires_grad=True)
    target_opt = genesis.optim.NAdam([target])
    target_opt.load_state_dict(source_opt.state_dict())
    state = target_opt.state[target]
    assert state["mu_product"].dtype is f32 and state["step"].dtype is f32 and state["exp_avg"].dtype is f64
    assert state["mu_product"].item() == source_opt.state[source]["mu_product"].item() < 1.0


def test_load_state_dict_errors():
    params = [genesis.tensor(a, dtype=f32, requires_grad=True) for a in initial_arrays()]
    opt = genesis.optim.Adam(params)
    run_steps(opt, params, 1)
    saved = opt.state_dict()
    two_groups = genesis.optim.Adam([{"params": params[:1]}, {"params": params[1:]}])
    with pytest.raises(ValueError, match="has 1 parameter groups, but the optimizer has 2"):
        two_groups.load_state_dict(saved)
    fewer = genesis.optim.Adam(params[:2])
    with pytest.raises(ValueError, match="group 0 has 3 parameters in the state dict and 2 in the optimizer"):
        fewer.load_state_dict(saved)
    swapped = genesis.optim.Adam([params[1], params[0], params[2]])
    with pytest.raises(ShapeError, match="'exp_avg' of parameter 0 has shape \\[7, 13\\].*shape \\[31\\]"):
        swapped.load_state_dict(saved)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"param_groups": []})


# ---- GradScaler ----------------------------------------------------------------------
@pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)
def test_grad_scaler_with_adam_matches_torch():
    """Scaled loss, unscale, skip on inf/nan, scale back-off and growth, next to torch.amp.GradScaler."""
    rng = np.random.default_rng(7)
    weight_g, weight_t = make_pair(rng.standard_normal((6, 4)) * 0.3, f32, requires_grad=True)
    bias_g, bias_t = make_pair(np.zeros(4), f32, requires_grad=True)
    g_opt = genesis.optim.Adam([weight_g, bias_g], lr=0.01)
    t_opt = torch.optim.Adam([weight_t, bias_t], lr=0.01, foreach=False)
    g_scaler = GradScaler(init_scale=2.0**10, growth_interval=3)
    t_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=3)
    bad_steps = {4, 9}
    for step in range(14):
        batch = rng.standard_normal((9, 6))
        if step in bad_steps:
            batch[2, 3] = np.inf  # an inf input makes inf/nan gradients: the step must be skipped
        x_g, x_t = make_pair(batch, f32, requires_grad=False)
        before = to_numpy(weight_g).copy()
        for opt, scaler, lib, w, b, x in (
            (g_opt, g_scaler, genesis, weight_g, bias_g, x_g),
            (t_opt, t_scaler, torch, weight_t, bias_t, x_t),
        ):
            opt.zero_grad()
            loss = (lib.tanh(x @ w + b) ** 2).sum()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        assert g_scaler.get_scale() == t_scaler.get_scale(), f"step {step}"
        if step in bad_steps:
            np.testing.assert_array_equal(to_numpy(weight_g), before)
        np.testing.assert_allclose(to_numpy(weight_g), to_numpy(weight_t), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(to_numpy(bias_g), to_numpy(bias_t), rtol=1e-6, atol=1e-6)
        g_steps = g_opt.state[weight_g].get("step", 0)
        assert g_steps == int(t_opt.state[weight_t].get("step", 0))
    assert g_opt.state[weight_g]["step"] == 14 - len(bad_steps)


ADAM_FAST_PATH_CONFIGS = [
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.3, 0.99), eps=1e-6)),  # beta1 < 0.5: lerp's other formula
    ("Adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    ("Adam", dict(lr=1e-2, weight_decay=0.05, maximize=True)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True)),
]


@pytest.mark.parametrize("dtype", [f32, f64], ids=lambda d: d.name)
@pytest.mark.parametrize("name,options", ADAM_FAST_PATH_CONFIGS, ids=lambda c: str(c))
def test_eager_adam_fast_path_gives_the_ops_bits(monkeypatch, name, options, dtype):
    """The numpy fast path of an eager Adam step against the same step dispatched op by op."""
    from genesis.optim import eager_adam

    rng = np.random.default_rng(3)
    start = [rng.standard_normal(shape) for shape in SHAPES]
    grads = [[rng.standard_normal(shape) for shape in SHAPES] for _ in range(5)]

    def run(fast):
        monkeypatch.setattr(eager_adam, "applies", eager_adam.applies if fast else (lambda *args: False))
        params = [genesis.tensor(a, dtype=dtype, requires_grad=True) for a in start]
        optimizer = getattr(genesis.optim, name)(params, **options)
        versions = []
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = genesis.tensor(g, dtype=dtype)
            before = [p._version[0] for p in params]
            optimizer.step()
            versions.append(all(p._version[0] > b for p, b in zip(params, before)))
        state = [t.numpy() for p in params for t in optimizer.state[p].values() if t.ndim or t.dtype is dtype]
        return [p.detach().numpy() for p in params], state, versions

    fast_params, fast_state, fast_versions = run(True)
    op_params, op_state, _ = run(False)
    assert all(fast_versions)  # an in-place write is a new version, as the ops' writes are
    for fast, ops in zip(fast_params + fast_state, op_params + op_state):
        np.testing.assert_array_equal(fast, ops)


def test_eager_adam_takes_the_op_path_for_what_it_cannot_compute_the_same():
    from genesis.optim import eager_adam

    param = genesis.zeros(3, requires_grad=True)
    grad, state = genesis.ones(3), (genesis.zeros(3), genesis.zeros(3), None)
    assert eager_adam.applies(param, grad, state, (1e-3, 0.9, 0.999, 1e-8, 0))
    assert not eager_adam.applies(param, grad, state, (genesis.tensor(1e-3), 0.9, 0.999, 1e-8, 0))
    half = genesis.zeros(3, dtype=genesis.bfloat16, requires_grad=True)
    assert not eager_adam.applies(half, grad.bfloat16(), (genesis.zeros_like(half),) * 2 + (None,), (1e-3,))
    view = genesis.zeros(6)[::2]
    assert not eager_adam.applies(param, grad, (view, genesis.zeros(3), None), (1e-3,))
