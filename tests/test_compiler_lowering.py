"""The lowering passes: markers a trace leaves, and the passes that write them out.

A traced step records autocast regions, GradScaler's steps, clipping's norm
and coefficient, and each backward() as markers; the passes autocast,
loss_scaling, clipping and autodiff replace them with the features' own
eager definitions. These tests read the dumped graph before and after each
pass, run single passes on graphs traced by hand, and check the results
against eager.
"""

import warnings

import numpy as np
import pytest

import genesis
from genesis import nn
from genesis.amp import GradScaler, autocast
from genesis.amp.grad_scaler import found_inf
from genesis.compiler import interpret
from genesis.compiler.ir import GraphError
from genesis.compiler.passes.autocast import autocast as autocast_pass
from genesis.compiler.passes.loss_scaling import loss_scaling
from genesis.compiler.trace import Tracer, tracing
from genesis.nn import utils as nn_utils
from tests.test_compile_training import plain_step

f32, bf16, f16 = genesis.float32, genesis.bfloat16, genesis.float16
MARKER_OPS = (
    "loss_scale",
    "found_inf",
    "unscale",
    "skip_update",
    "scale_update",
    "grad_norm",
    "clip_coefficient",
    "grad",
)


def randn(*shape, seed=0, dtype=f32, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return genesis.tensor(data, dtype=dtype, requires_grad=requires_grad)


def ops_in(text: str) -> set:
    """The op names of a dumped graph's lines (`v3 = mul(v1, 2.0)  shape=...`)."""
    return {line.split(" = ")[1].split("(")[0] for line in text.splitlines() if " = " in line}


def amp_step_setup():
    genesis.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3))
    optimizer = genesis.optim.AdamW(model.parameters(), lr=1e-2)
    return model, optimizer, GradScaler(init_scale=2.0**8, growth_interval=3)


def amp_step(model, optimizer, scaler, x, y):
    optimizer.zero_grad()
    with autocast(dtype=bf16):
        loss = nn.functional.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    nn_utils.clip_grad_norm_(model.parameters(), 0.5)
    scaler.step(optimizer)
    scaler.update()
    return loss


def batch(seed):
    rng = np.random.default_rng(seed)
    return genesis.tensor(rng.standard_normal((5, 6)).astype(np.float32)), genesis.tensor(rng.integers(0, 3, 5))


def dumped(tmp_path, step, *args) -> dict:
    step(*args)
    step(*args)  # the second trace is the one that serves (the optimizer made its state on the first)
    directory = sorted(tmp_path.iterdir())[-1]
    return {p.stem: p.read_text() for p in directory.glob("*.txt")}


def test_each_marker_is_in_the_traced_graph_until_its_pass_writes_it_out(tmp_path):
    setup = amp_step_setup()
    step = genesis.compile(lambda x, y: amp_step(*setup, x, y), dump_dir=tmp_path)
    passes = dumped(tmp_path, step, *batch(0))
    traced = passes["00_traced"]
    assert set(MARKER_OPS) <= ops_in(traced)
    assert "matmul(v" in traced and "autocast=bfloat16" in traced
    assert "autocast=" not in passes["01_autocast"]
    # autocast's casts feed the matmuls: the forward's matmuls run in bf16
    assert any("= matmul(" in line and "bfloat16" in line for line in passes["01_autocast"].splitlines())
    written_out_by = [
        ("01_autocast", ()),
        ("02_loss_scaling", ("loss_scale", "found_inf", "unscale", "skip_update", "scale_update")),
        ("03_clipping", ("grad_norm", "clip_coefficient")),
        ("04_autodiff", ("grad",)),
    ]
    before = traced
    for name, markers in written_out_by:
        assert set(markers) <= ops_in(before) and not set(markers) & ops_in(passes[name]), name
        before = passes[name]
    # what they became: the select of a skipped step, the finite check, the backward's matmuls
    lowered = ops_in(passes["04_autodiff"])
    assert {"where", "isfinite", "all", "reciprocal", "clamp", "sqrt", "matmul"} <= lowered
    assert not set(MARKER_OPS) & lowered


def test_the_lowered_amp_step_matches_eager_over_steps_with_a_skipped_one():
    eager, fused = amp_step_setup(), amp_step_setup()
    step = genesis.compile(lambda x, y: amp_step(*fused, x, y))
    for k in range(8):
        x, y = batch(k)
        if k == 3:
            x = x * float("inf")
        expected = amp_step(*eager, x, y).item()
        assert step(x, y).item() == pytest.approx(expected, rel=1e-5, nan_ok=True)
    for a, b in zip(eager[0].parameters(), fused[0].parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert (
        fused[2].get_scale() == eager[2].get_scale()
        and fused[2]._get_growth_tracker() == eager[2]._get_growth_tracker()
    )
    assert step.stats["fallbacks"] == []


def test_the_options_of_a_plain_step_record_the_same_markers(tmp_path):
    genesis.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3))
    optimizer = genesis.optim.SGD(model.parameters(), lr=0.1)
    step = genesis.compile(
        plain_step(model, optimizer), amp="fp16", loss_scale="dynamic", clip_grad_norm=1.0, dump_dir=tmp_path
    )
    traced = dumped(tmp_path, step, *batch(0))["00_traced"]
    assert set(MARKER_OPS) <= ops_in(traced) and "autocast=float16" in traced


def test_the_autocast_pass_casts_by_the_eager_policy_on_a_graph_traced_by_hand():
    tracer = Tracer()
    with tracing(tracer), autocast(dtype=bf16):
        x, w, b = tracer.add_input(randn(4, 3)), tracer.add_input(randn(3, 2)), tracer.add_input(randn(2))
        y = (x @ w).exp() + b
    graph = tracer.graph
    graph.outputs = [y._data.name]
    graph.verify()  # a marked node verifies by the dtypes its casts will give
    matmul = next(node for node in graph.nodes() if node.op == "matmul")
    assert matmul.autocast is bf16 and matmul.dtype is bf16
    assert [graph[name].dtype for name in matmul.inputs] == [f32, f32]
    autocast_pass(graph).verify()
    casts = [node for node in graph.nodes() if node.op == "cast"]
    # matmul's two inputs down to bf16, exp's input up to fp32 (an fp32-class op)
    assert sorted(node.attrs["dtype"].name for node in casts) == ["bfloat16", "bfloat16", "float32"]
    assert all(node.autocast is None for node in graph.nodes())
    with autocast(dtype=bf16):
        expected = (randn(4, 3) @ randn(3, 2)).exp() + randn(2)
    (got,) = interpret.run(graph, [randn(4, 3), randn(3, 2), randn(2)])
    assert got.dtype is expected.dtype
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_a_marker_with_wrong_meta_fails_verify():
    tracer = Tracer()
    with tracing(tracer):
        grads = [tracer.add_input(randn(3)), tracer.add_input(randn(2, 2))]
        flag = found_inf(*grads)
    graph = tracer.graph
    graph.outputs = [flag._data.name]
    graph.verify()
    graph.replace(flag._data.name, dtype=f16)
    with pytest.raises(GraphError, match="found_inf"):
        graph.verify()


@pytest.mark.parametrize("bad", [False, True])
def test_the_loss_scaling_pass_splices_in_the_eager_finite_check(bad):
    values = [randn(3), randn(2, 2, seed=1)]
    if bad:
        values[1]._data[0, 1] = np.inf
    tracer = Tracer()
    with tracing(tracer):
        flag = found_inf(*[tracer.add_input(v) for v in values])
    graph = tracer.graph
    graph.outputs = [flag._data.name]
    loss_scaling(graph).verify()
    assert "found_inf" not in {node.op for node in graph.nodes()}
    (got,) = interpret.run(graph, values)
    assert got.dtype is f32 and got.item() == found_inf(*values).item() == float(bad)


def test_lowering_passes_cannot_be_switched_off():
    with pytest.raises(ValueError, match=r"lowering passes \['autodiff'\] cannot be switched off"):
        genesis.compile(lambda x: x * 2, disable_passes=("autodiff",))(randn(3))


@pytest.mark.parametrize("case", ["create_graph", "hook"])
def test_what_a_deferred_backward_cannot_do_breaks_the_graph_and_runs_eagerly(case):
    w = randn(3, requires_grad=True)
    if case == "hook":
        w.register_hook(lambda g: g * 2)

    def fn(x):
        y = (x * w).sum()
        y.backward(create_graph=case == "create_graph")
        return y

    with pytest.warns(UserWarning, match="runs eagerly"):
        genesis.compile(fn)(randn(3, seed=1))
    expected = randn(3, seed=1).numpy() * (2 if case == "hook" else 1)
    np.testing.assert_allclose(w.grad.detach().numpy(), expected, rtol=1e-6)


def test_a_gradient_through_a_shared_value_sums_as_eager_does():
    # a value read by three ops: its gradient is a sum of three terms, added in eager's order
    w = randn(64, requires_grad=True)
    x = randn(64, seed=1)

    def loss_of(x):
        h = (x * w).tanh()
        return (h.exp() + h * h + h.sin()).sum()

    def step(x):
        w.grad = None
        loss = loss_of(x)
        loss.backward()
        return loss

    compiled = genesis.compile(step, backend="numpy")
    compiled(x)
    got = w.grad.numpy().copy()
    w.grad = None
    loss_of(x).backward()
    np.testing.assert_array_equal(got, w.grad.numpy())  # the numpy backend runs eager's ufuncs: same bits


def test_no_warning_from_a_plain_compiled_backward():
    w = randn(3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = genesis.compile(lambda x: (x * w).sum())(randn(3, seed=1))
        out.backward()
    np.testing.assert_allclose(w.grad.numpy(), randn(3, seed=1).numpy(), rtol=1e-6)
