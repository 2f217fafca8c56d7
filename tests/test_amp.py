"""Autocast and GradScaler.

Autocast is checked three ways: the region state (nesting, enabled=False,
decorator, exceptions); each autocast class against the same computation
written with explicit casts outside any region (bit for bit); and a
Linear-like chain against PyTorch's CPU autocast, values, dtypes and
gradients. GradScaler runs a full training loop next to
torch.amp.GradScaler (scale history, skipped steps, parameters), plus the
order-of-calls errors, update(new_scale), state_dict and enabled=False.
"""

import math

import numpy as np
import pytest
import torch
from optest import TORCH_DTYPE, assert_close, make_pair, to_numpy

import genesis
from genesis import dispatch
from genesis.amp import GradScaler, autocast, get_autocast_dtype, is_autocast_enabled
from genesis.nn.utils import clip_grad_norm_

# inf and nan are the subject of several tests here: numpy's warnings about making them are expected
pytestmark = pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value encountered:RuntimeWarning"
)

LOW = [genesis.float16, genesis.bfloat16]
f16, bf16, f32, f64 = genesis.float16, genesis.bfloat16, genesis.float32, genesis.float64


def randn(*shape, dtype=f32, seed=0, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return genesis.tensor(data, dtype=dtype, requires_grad=requires_grad)


# ---- the region state --------------------------------------------------------------
def test_state_nesting_and_restoring():
    assert not is_autocast_enabled() and get_autocast_dtype() is f16 and dispatch.autocast_hook is None
    with autocast():
        assert is_autocast_enabled() and get_autocast_dtype() is f16
        with autocast(dtype=genesis.bfloat16):
            assert get_autocast_dtype() is bf16
            with autocast():  # dtype=None keeps the enclosing region's dtype, as in PyTorch
                assert get_autocast_dtype() is bf16
            with autocast(enabled=False):
                assert not is_autocast_enabled() and dispatch.autocast_hook is None
                assert (randn(3, 5) @ randn(5, 3)).dtype is f32
            assert is_autocast_enabled() and (randn(3, 5) @ randn(5, 3)).dtype is bf16
        assert get_autocast_dtype() is f16
    assert not is_autocast_enabled() and dispatch.autocast_hook is None  # the hot path is free again


def test_exception_restores_state():
    with pytest.raises(ValueError, match="boom"):
        with autocast(dtype="bfloat16"):
            raise ValueError("boom")
    assert not is_autocast_enabled() and get_autocast_dtype() is f16 and dispatch.autocast_hook is None


def test_decorator_and_torch_argument_order():
    @autocast(dtype=genesis.bfloat16)
    def forward(a, b):
        return a @ b

    assert forward(randn(3, 5), randn(5, 2)).dtype is bf16
    assert not is_autocast_enabled()
    with autocast("cpu", dtype=genesis.float16) as region:  # torch.autocast("cpu", ...) order
        assert region.device_type == "cpu" and (randn(3, 5) @ randn(5, 2)).dtype is f16
    with autocast(enabled=False):
        assert forward(randn(3, 5), randn(5, 2)).dtype is bf16  # the decorator's region wins inside


def test_bad_arguments():
    with pytest.raises(ValueError, match="float16 or bfloat16, got float32"):
        autocast(dtype=genesis.float32)
    with pytest.raises(ValueError, match="device_type"):
        autocast(device_type="tpu")


# ---- each autocast class, against explicit casts ---------------------------------------
def _cases(low):
    """(name, input dtypes, fn under autocast, the same with explicit casts, expected output dtype)."""
    c = lambda x, d: x.to(d)  # noqa: E731
    return [
        ("matmul", (f32, f32), lambda a, b: a @ b, lambda a, b: c(a, low) @ c(b, low), low),
        ("matmul_mixed_low", (bf16, f32), lambda a, b: a @ b, lambda a, b: c(a, low) @ c(b, low), low),
        ("matmul_double_untouched", (f64, f64), lambda a, b: a @ b, lambda a, b: a @ b, f64),
        ("exp", (low,), lambda a: a.exp(), lambda a: c(a, f32).exp(), f32),
        ("log_abs", (low,), lambda a: a.abs().log(), lambda a: c(a.abs(), f32).log(), f32),
        ("pow", (low,), lambda a: a**2, lambda a: c(a, f32) ** 2, f32),
        ("sum", (low,), lambda a: a.sum(-1), lambda a: c(a, f32).sum(-1), f32),
        ("mean_composite", (low,), lambda a: a.mean(), lambda a: c(a, f32).mean(), f32),
        ("logsumexp_composite", (low,), lambda a: a.logsumexp(-1), lambda a: c(a, f32).logsumexp(-1), f32),
        ("exp_double_untouched", (f64,), lambda a: a.exp(), lambda a: a.exp(), f64),
        ("add_promotes", (low, f32), lambda a, b: a + b, lambda a, b: c(a, f32) + b, f32),
        ("mul_same_dtype", (low, low), lambda a, b: a * b, lambda a, b: a * b, low),
        ("relu_untouched", (low,), lambda a: a.relu(), lambda a: a.relu(), low),
        ("reshape_untouched", (f32,), lambda a: a.reshape(-1), lambda a: a.reshape(-1), f32),
        (
            "where_promotes",
            (low, f32),
            lambda a, b: genesis.where(a > 0, a, b),
            lambda a, b: genesis.where(a > 0, c(a, f32), b),
            f32,
        ),
    ]


@pytest.mark.parametrize("low", LOW, ids=lambda d: d.name)
@pytest.mark.parametrize("case", range(len(_cases(f16))), ids=[c[0] for c in _cases(f16)])
def test_autocast_class_equals_explicit_casts(low, case):
    name, in_dtypes, fn, manual, expected = _cases(low)[case]
    shapes = [(3, 5), (5, 7)] if name.startswith("matmul") else [(3, 5), (3, 5)]
    inputs = [randn(*shape, dtype=d, seed=i) for i, (shape, d) in enumerate(zip(shapes, in_dtypes))]
    with autocast(dtype=low):
        out = fn(*inputs)
    reference = manual(*inputs)
    assert out.dtype is expected and reference.dtype is expected
    np.testing.assert_array_equal(to_numpy(out), to_numpy(reference), err_msg=name)


def test_promote_never_casts_down():
    # a fp16 loss times a 0-d fp32 scale stays fp16 (PyTorch's promotion): the scale is never rounded
    loss = randn(3, dtype=f16)
    scale = genesis.tensor(2.0**15 + 1.0)  # not representable in fp16
    with autocast():
        out = loss * scale
    assert out.dtype is f16
    expected = (torch.tensor(to_numpy(loss)).half() * torch.tensor(2.0**15 + 1.0)).double().numpy()
    np.testing.assert_array_equal(to_numpy(out), expected)


def test_integer_ops_untouched():
    with autocast():
        out = genesis.arange(6).reshape(2, 3).sum(-1) + 1
    assert out.dtype is genesis.int64 and out.tolist() == [4, 13]


# ---- a Linear-like chain against torch's CPU autocast --------------------------------
@pytest.mark.parametrize("low", LOW, ids=lambda d: d.name)
def test_linear_chain_matches_torch_cpu_autocast(low):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((7, 5)) * 0.5, rng.standard_normal((5, 3)) * 0.5, rng.standard_normal(3)]
    g_x, g_w, g_b = (make_pair(a, f32, True)[0] for a in arrays)
    t_x, t_w, t_b = (make_pair(a, f32, True)[1] for a in arrays)
    outs = []
    for x, w, b, ctx in (
        (g_x, g_w, g_b, autocast(dtype=low)),
        (t_x, t_w, t_b, torch.autocast("cpu", dtype=TORCH_DTYPE[low])),
    ):
        with ctx:
            y = x @ w  # low precision in both
            z = y + b  # promotes to fp32 in both
            loss = z.exp().sum(-1).log().sum()  # fp32 in both (fp32 inputs)
        outs.append((y, z, loss))
    (gy, gz, gl), (ty, tz, tl) = outs
    for g, t, what in ((gy, ty, "x @ w"), (gz, tz, "+ b"), (gl, tl, "loss")):
        assert TORCH_DTYPE[g.dtype] == t.dtype, f"{what}: {g.dtype} vs torch {t.dtype}"
        assert_close(g, t, low, what)
    gl.backward()
    tl.backward()
    for g, t, what in ((g_x, t_x, "x"), (g_w, t_w, "w"), (g_b, t_b, "b")):
        assert g.grad.dtype is f32 and t.grad.dtype == torch.float32  # gradients land in the leaves' dtype
        assert_close(g.grad, t.grad, low, f"gradient of {what}")


@pytest.mark.parametrize("low", LOW, ids=lambda d: d.name)
def test_fp32_class_on_low_precision_input_matches_torch_with_explicit_float(low):
    # PyTorch's CPU autocast leaves exp/sum/log of a fp16 tensor in fp16; genesis follows the CUDA
    # policy (fp32), so the torch reference writes the cast that policy implies: y.float().
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((7, 5)) * 0.5, rng.standard_normal((5, 3)) * 0.5]
    (g_x, t_x), (g_w, t_w) = (make_pair(a, f32, True) for a in arrays)
    with autocast(dtype=low):
        g_y = g_x @ g_w
        g_soft = g_y.exp() / g_y.exp().sum(-1, keepdim=True)  # softmax from primitives
        g_loss = g_soft.log().mean()
    with torch.autocast("cpu", dtype=TORCH_DTYPE[low]):
        t_y = t_x @ t_w
        t_soft = t_y.float().softmax(-1)
        t_loss = t_soft.log().mean()
    assert g_soft.dtype is f32 and g_loss.dtype is f32
    assert_close(g_soft, t_soft, low, "softmax")
    assert_close(g_loss, t_loss, low, "loss")
    g_loss.backward()
    t_loss.backward()
    assert_close(g_w.grad, t_w.grad, low, "gradient of w")
    assert_close(g_x.grad, t_x.grad, low, "gradient of x")


def test_gradient_lands_in_each_leafs_dtype():
    a = randn(3, 5, dtype=bf16, requires_grad=True)
    b = randn(5, 2, dtype=f32, requires_grad=True, seed=1)
    with autocast(dtype=genesis.float16):
        out = (a @ b).exp().sum()
    out.backward()
    assert a.grad.dtype is bf16 and b.grad.dtype is f32


def test_backward_inside_a_region_runs_in_the_forward_dtypes():
    # forward in fp32 outside autocast; a backward inside a region must not cast its matmuls to fp16
    a = randn(7, 5, requires_grad=True)
    b = randn(5, 3, requires_grad=True, seed=1)
    (a @ b).tanh().sum().backward()
    expected = to_numpy(a.grad).copy(), to_numpy(b.grad).copy()
    a.grad = b.grad = None
    loss = (a @ b).tanh().sum()
    with autocast():
        loss.backward()
        assert dispatch.autocast_hook is not None  # restored after backward
    np.testing.assert_array_equal(to_numpy(a.grad), expected[0])
    np.testing.assert_array_equal(to_numpy(b.grad), expected[1])


# ---- GradScaler ------------------------------------------------------------------------
class PlainSGD:
    """The smallest optimizer GradScaler needs (param_groups and step); the same class drives torch."""

    def __init__(self, params, lr, no_grad):
        self.param_groups = [{"params": list(params), "lr": lr}]
        self._no_grad = no_grad
        self.steps = 0

    def step(self):
        with self._no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.sub_(p.grad * group["lr"])
        self.steps += 1
        return self.steps

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


def _scaler(lib, **kwargs):
    return GradScaler(**kwargs) if lib is genesis else torch.amp.GradScaler("cpu", **kwargs)


def _region(lib, low):
    """An autocast region in `low` precision, or a disabled one when `low` is None."""
    if lib is genesis:
        return autocast(enabled=low is not None, dtype=low)
    return torch.autocast("cpu", dtype=TORCH_DTYPE[low] if low else torch.float16, enabled=low is not None)


def run_training(lib, *, steps=12, inject=None, low=None, **scaler_kwargs):
    """A Linear + MSE loop with scale, unscale_, clip, step and update; returns params and history."""
    rng = np.random.default_rng(0)
    w, b, x, target = (rng.standard_normal(s) for s in ((5, 3), (3,), (7, 5), (7, 3)))
    make = (
        (lambda a, g: genesis.tensor(a, dtype=f32, requires_grad=g))
        if lib is genesis
        else (lambda a, g: torch.tensor(a, dtype=torch.float32, requires_grad=g))
    )
    w, b, x, target = make(w, True), make(b, True), make(x, False), make(target, False)
    clip = clip_grad_norm_ if lib is genesis else torch.nn.utils.clip_grad_norm_
    scaler = _scaler(lib, **scaler_kwargs)
    opt = PlainSGD([w, b], 0.05, lib.no_grad)
    history = []
    for step in range(steps):
        opt.zero_grad()
        with _region(lib, low):
            loss = ((x @ w + b - target) ** 2).mean()
        scaler.scale(loss).backward()
        if inject and step in inject:
            w.grad[1, 2] = inject[step]
        scaler.unscale_(opt)
        norm = clip([w, b], 2.0)
        result = scaler.step(opt)
        scaler.update()
        history.append((scaler.get_scale(), scaler._get_growth_tracker(), result, float(norm)))
    return w, b, history


TOL = {f32: 1e-5, f16: 1e-2, bf16: 2e-2}  # relative, for the clipped norms


def assert_same_training(g_run, t_run, dtype=f32):
    (gw, gb, g_hist), (tw, tb, t_hist) = g_run, t_run
    for step, (g, t) in enumerate(zip(g_hist, t_hist)):
        assert g[:3] == t[:3], f"step {step}: (scale, tracker, step result) {g[:3]} != torch's {t[:3]}"
        assert (
            math.isclose(g[3], t[3], rel_tol=TOL[dtype]) or (math.isnan(g[3]) and math.isnan(t[3])) or g[3] == t[3]
        ), f"step {step}: norm {g[3]} != {t[3]}"
    assert_close(gw, tw, dtype, "w")
    assert_close(gb, tb, dtype, "b")


def test_training_loop_matches_torch_with_skipped_steps():
    inject = {4: math.inf, 8: math.nan, 9: -math.inf}
    kwargs = dict(init_scale=2.0**10, growth_interval=3, inject=inject)
    g_run, t_run = run_training(genesis, **kwargs), run_training(torch, **kwargs)
    assert_same_training(g_run, t_run)
    scales = [h[0] for h in g_run[2]]
    results = [h[2] for h in g_run[2]]
    assert results[4] is None and results[8] is None and results[9] is None  # skipped
    assert scales[2] == 2.0**11 and scales[4] == 2.0**10  # grew after 3 clean steps, backed off at the inf


@pytest.mark.parametrize("low", LOW, ids=lambda d: d.name)
def test_training_loop_under_autocast_matches_torch(low):
    # a huge initial scale overflows the fp16 gradients of the matmul: the scaler backs off until they fit
    kwargs = dict(init_scale=2.0**24 if low is f16 else 2.0**10, growth_interval=4, low=low)
    g_run, t_run = run_training(genesis, **kwargs), run_training(torch, **kwargs)
    assert_same_training(g_run, t_run, low)
    if low is f16:
        assert g_run[2][0][2] is None  # the first step overflowed and was skipped


def test_odd_factors_match_torch():
    # 1.7 and 0.3 are not float32 numbers: the products must round like PyTorch's (float64, then float32)
    kwargs = dict(
        init_scale=1000.0,
        growth_factor=1.7,
        backoff_factor=0.3,
        growth_interval=2,
        inject={3: math.inf, 4: math.inf},
        steps=9,
    )
    g_run, t_run = run_training(genesis, **kwargs), run_training(torch, **kwargs)
    assert_same_training(g_run, t_run)
    assert len({h[0] for h in g_run[2]}) >= 4


def test_growth_capped_at_float32_range():
    scales = []
    for lib in (genesis, torch):
        p = (genesis if lib is genesis else torch).ones(2, requires_grad=True)
        opt = PlainSGD([p], 0.1, lib.no_grad)
        scaler = _scaler(lib, init_scale=3.0e38, growth_factor=1.7, growth_interval=1)
        scaler.scale(p.sum() * 1e-3).backward()
        assert scaler.step(opt) == 1
        scaler.update()  # 3e38 * 1.7 would be inf: the scale stays, the tracker resets
        scales.append((scaler.get_scale(), scaler._get_growth_tracker()))
    assert scales[0] == scales[1] == (float(np.float32(3.0e38)), 0)


def test_scale_outputs_like_torch():
    g_scaler, t_scaler = GradScaler(), torch.amp.GradScaler("cpu")
    g16, t16 = make_pair(np.array([0.5, 1.5, -0.25]), f16, True)
    g32, t32 = make_pair(np.array([[1.0, 2.0]]), f32, True)
    g_out = g_scaler.scale([g16, (g32, [g16])])
    t_out = t_scaler.scale([t16, (t32, [t16])])
    assert type(g_out) is list and type(g_out[1]) is tuple and type(g_out[1][1]) is list
    for g, t in ((g_out[0], t_out[0]), (g_out[1][0], t_out[1][0]), (g_out[1][1][0], t_out[1][1][0])):
        assert TORCH_DTYPE[g.dtype] == t.dtype and g.requires_grad
        assert_close(g, t, g.dtype, "scaled", rtol=0, atol=0)
    assert [x.item() for x in g_scaler.scale(iter([g32.sum()]))] == [3.0 * 2**16]
    with pytest.raises(ValueError, match="Tensor or an iterable"):
        g_scaler.scale([g32, 3.0])


def _one_param_setup(grad_dtype=f32):
    p = genesis.zeros(3, dtype=grad_dtype, requires_grad=True)
    opt = PlainSGD([p], 0.1, genesis.no_grad)
    scaler = GradScaler(init_scale=4.0)
    (scaler.scale((p + 1).sum())).backward()
    return p, opt, scaler


def test_call_order_errors():
    p, opt, scaler = _one_param_setup()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) has already been called on this optimizer"):
        scaler.unscale_(opt)
    assert scaler.step(opt) == 1
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called since the last update"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure"):
        scaler.step(opt, closure=lambda: 0.0)
    scaler.update()
    scaler.unscale_(opt)  # allowed again after update()
    np.testing.assert_array_equal(to_numpy(p.grad), [0.25, 0.25, 0.25])  # 1/4 of the scaled gradient, twice
    fresh = GradScaler()
    for call in (lambda: fresh.unscale_(opt), lambda: fresh.step(opt), lambda: fresh.update()):
        with pytest.raises(RuntimeError, match="before scale"):
            call()
    fresh.scale(p.sum())
    with pytest.raises(RuntimeError, match="no inf checks"):
        fresh.update()
    opt.zero_grad()
    with pytest.raises(RuntimeError, match="no inf checks"):
        fresh.step(opt)


def test_unscale_refuses_fp16_gradients():
    p, opt, scaler = _one_param_setup(f16)
    with pytest.raises(ValueError, match="FP16"):
        scaler.unscale_(opt)


def test_bf16_gradients_unscale_like_torch():
    values = np.array([3.0, -1.5e4, 7.1e-3, 65000.0])
    g_p, t_p = make_pair(values, bf16, True)
    g_p.grad, t_p.grad = make_pair(values * 1.37, bf16, False)
    results = []
    for lib, p in ((genesis, g_p), (torch, t_p)):
        scaler = _scaler(lib, init_scale=3.0)
        scaler.scale(p.sum())
        opt = PlainSGD([p], 0.1, lib.no_grad)
        scaler.unscale_(opt)
        results.append(p.grad)
    assert_close(results[0], results[1], bf16, "unscaled", rtol=0, atol=0)


def test_two_optimizers_one_overflows():
    runs = []
    for lib in (genesis, torch):
        make = genesis.tensor if lib is genesis else torch.tensor
        p, q = make([1.0, 2.0], requires_grad=True), make([3.0], requires_grad=True)
        opt_p, opt_q = PlainSGD([p], 0.5, lib.no_grad), PlainSGD([q], 0.5, lib.no_grad)
        scaler = _scaler(lib, init_scale=8.0)
        scaler.scale((p * p).sum() + (q * q).sum()).backward()
        q.grad[0] = math.inf
        results = (scaler.step(opt_p), scaler.step(opt_q))
        scaler.update()
        runs.append((p.tolist(), q.tolist(), results, scaler.get_scale()))
    assert runs[0] == runs[1]
    assert runs[0][2] == (1, None) and runs[0][3] == 4.0


def test_update_with_new_scale():
    p, opt, scaler = _one_param_setup()
    scale_tensor = scaler._scale
    scaler.step(opt)
    scaler.update(1024.0)
    assert scaler.get_scale() == 1024.0
    scaler.update(genesis.tensor([0.125], dtype=f64))
    assert scaler.get_scale() == 0.125 and scaler._scale is scale_tensor  # updated in place
    for bad, error in (
        (genesis.tensor([1.0, 2.0]), ValueError),
        (genesis.ones(1, requires_grad=True), ValueError),
        ("2", TypeError),
    ):
        with pytest.raises(error, match="new_scale"):
            scaler.update(bad)


def test_state_dict_round_trip_matches_torch():
    states = []
    for lib in (genesis, torch):
        scaler = _scaler(lib, init_scale=2.0**6, growth_factor=3.0, backoff_factor=0.25, growth_interval=5)
        assert scaler.state_dict()["scale"] == 2.0**6  # before the first scale()
        states.append(scaler.state_dict())
    assert states[0] == states[1]
    g_scaler = GradScaler(init_scale=2.0**6, growth_interval=5)
    t_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**6, growth_interval=5)
    for scaler, lib in ((g_scaler, genesis), (t_scaler, torch)):
        p = (genesis if lib is genesis else torch).ones(2, requires_grad=True)
        opt = PlainSGD([p], 0.1, lib.no_grad)
        for step in range(3):
            opt.zero_grad()
            scaler.scale(p.sum()).backward()
            if step == 1:
                p.grad[0] = math.inf
            scaler.step(opt)
            scaler.update()
    state = g_scaler.state_dict()
    assert state == t_scaler.state_dict()
    assert set(state) == {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}
    assert state["scale"] == 32.0 and state["_growth_tracker"] == 1
    restored = GradScaler()
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    restored.scale(genesis.ones(1))  # the lazily made tensors start from the loaded state
    assert restored.get_scale() == 32.0 and restored._get_growth_tracker() == 1
    started = GradScaler()
    started.scale(genesis.ones(1))
    scale_tensor = started._scale
    started.load_state_dict(state)
    assert started._scale is scale_tensor and started.get_scale() == 32.0
    with pytest.raises(RuntimeError, match="empty"):
        started.load_state_dict({})


def test_disabled_scaler_is_a_pass_through():
    scaler = GradScaler(enabled=False)
    p = genesis.ones(2, requires_grad=True)
    loss = p.sum()
    assert scaler.scale(loss) is loss and not scaler.is_enabled()
    loss.backward()
    p.grad[0] = math.inf
    opt = PlainSGD([p], 0.5, genesis.no_grad)
    scaler.unscale_(opt)
    assert scaler.step(opt) == 1  # not skipped: the disabled scaler checks nothing
    scaler.update()
    assert scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    assert p.grad[1].item() == 1.0 and p[1].item() == 0.5


def test_bad_factors():
    with pytest.raises(ValueError, match="growth_factor"):
        GradScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor"):
        GradScaler(backoff_factor=1.5)
    assert GradScaler("cpu", enabled=True).get_scale() == 2.0**16  # torch's leading device argument


def test_unscale_and_update_never_read_the_host(monkeypatch):
    # The compiler will trace these: only step() may turn the found-inf flag into a Python bool.
    p, opt, scaler = _one_param_setup()

    def refuse(*args):
        raise AssertionError("a host read")

    for name in ("item", "__bool__", "__float__", "tolist", "numpy"):
        monkeypatch.setattr(genesis.Tensor, name, refuse)
    scaler.unscale_(opt)
    norm = clip_grad_norm_([p], 0.1)
    scaler.update()
    monkeypatch.undo()
    assert norm.item() == pytest.approx(math.sqrt(3)) and scaler.get_scale() == 4.0
    np.testing.assert_allclose(to_numpy(p.grad), [0.1 / math.sqrt(3)] * 3, rtol=1e-5)
