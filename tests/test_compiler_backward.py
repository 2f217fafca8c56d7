"""Backward through a compiled function: the joint graph is split and the backward compiled too."""

import numpy as np
import pytest

import genesis
import genesis.nn.functional as F
from genesis import nn


def randn(*shape, seed=0, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return genesis.tensor(data, dtype=genesis.float32, requires_grad=requires_grad)


def grads_of(tensors):
    return [None if t.grad is None else t.grad.numpy().copy() for t in tensors]


def compare(fn, inputs, params=(), backend="numpy", seed=3):
    """Run fn compiled and eagerly; the outputs and every gradient must agree."""
    leaves = list(inputs) + list(params)
    compiled = genesis.compile(fn, backend=backend)
    out = compiled(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    cotangents = [randn(*o.shape, seed=seed + k) for k, o in enumerate(outs)]
    sum((o * c).sum() for o, c in zip(outs, cotangents)).backward()
    got = grads_of(leaves)
    for t in leaves:
        t.grad = None
    expected = fn(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    sum((o * c).sum() for o, c in zip(expected, cotangents)).backward()
    for a, b in zip(outs, expected):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    for i, (a, b) in enumerate(zip(got, grads_of(leaves))):
        assert (a is None) == (b is None), f"leaf {i}"
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"gradient of leaf {i}")
    return compiled


@pytest.mark.parametrize("backend", ["numpy", "c", "eager"])
def test_mlp_module_gradients_match_eager(backend):
    genesis.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 3))
    x = randn(17, 12, requires_grad=True)
    compiled = compare(lambda x: nn.functional.log_softmax(model(x), dim=-1), [x], model.parameters(), backend=backend)
    assert compiled.stats["compiles"] == 1


def test_several_outputs_and_an_unused_input():
    a, b, unused = randn(5, 4, requires_grad=True), randn(4, seed=1, requires_grad=True), randn(3, requires_grad=True)
    compare(lambda a, b, unused: ((a * b).tanh(), (a - b).exp().sum(dim=0)), [a, b, unused])
    assert unused.grad is None


def test_a_leaf_returned_as_it_is_and_integer_inputs():
    x = randn(6, requires_grad=True)
    index = genesis.tensor([0, 2, 5])
    compare(lambda x, i: (x, x[i] * 2), [x, index])


def test_the_backward_program_is_compiled_and_dumped(tmp_path):
    w = randn(8, 4, requires_grad=True)
    compiled = genesis.compile(lambda x: (x @ w).relu().sum(), dump_dir=tmp_path)
    compiled(randn(3, 8)).backward()
    (directory,) = tmp_path.iterdir()
    names = {p.name for p in directory.iterdir()}
    assert {"program.py", "backward_program.py", "backward_00_traced.txt"} <= names
    assert "def program(inputs, library)" in (directory / "backward_program.py").read_text()


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_higher_order_gradients_through_a_compiled_function_are_eagers(backend):
    """create_graph=True runs the joint graph with eager kernels: second derivatives, running
    statistics updated once per call, and a gradient of the gradient reaching a weight."""

    def block(x, w, mean, var):
        return F.batch_norm(x.tanh(), mean, var, training=True) * w + x

    def derivatives(fn):
        x, w = randn(4, 3, 5, 5, requires_grad=True), randn(3, 1, 1, seed=1, requires_grad=True)
        mean, var = genesis.zeros(3), genesis.ones(3)
        out = fn(x, w, mean, var)
        (gx,) = genesis.autograd.grad((out * out.detach().cos()).sum(), [x], create_graph=True)
        (gx * gx).sum().backward()
        return [t.detach().numpy() for t in (out, gx, x.grad, w.grad, mean, var)]

    for got, expected in zip(derivatives(genesis.compile(block, backend=backend)), derivatives(block)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    x = randn(4, requires_grad=True)
    out = genesis.compile(lambda x: (x**3).sum(), backend=backend)(x)
    (g,) = genesis.autograd.grad(out, x, create_graph=True)
    (h,) = genesis.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.detach().numpy(), rtol=1e-6)


def test_a_second_derivative_refuses_an_input_changed_in_place_since_the_call():
    x = randn(4, requires_grad=True)
    y = randn(4, seed=1)
    out = genesis.compile(lambda x, y: (x * y * y).sum())(x, y)
    (g,) = genesis.autograd.grad(out, x, create_graph=True)  # fine: y as the call read it
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        genesis.autograd.grad(out, x, create_graph=True)


@pytest.mark.parametrize("make", ["cnn", "attention"])
def test_conv_and_attention_modules_gradients_match_eager(make):
    genesis.manual_seed(0)
    if make == "cnn":
        model = nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)
        )
        x = randn(5, 2, 7, 6, requires_grad=True)
    else:
        model = nn.MultiheadAttention(8, 2, batch_first=True)
        forward = model.forward
        model.forward = lambda x: forward(x, x, x, need_weights=False)[0]
        x = randn(2, 5, 8, requires_grad=True)
    compare(lambda x: model(x), [x], model.parameters())


def _sliced_in_every_way(x, w):
    """Time steps (x[t]), chunks, a slice with a gap before it, overlapping slices and a strided one."""
    h = genesis.zeros(x.shape[1], x.shape[2])
    for t in range(x.shape[0]):
        a, b = (x[t] @ w + h).chunk(2, -1)
        h = genesis.cat([a.tanh(), b.sigmoid()], -1)
    return h.sum() + x[1:, 2:4].exp().sum() + x[:, :3].sum() + x[:, 1:5].sum() + x[..., ::2].sum()


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_block_gradients_of_one_value_are_joined_without_whole_size_puts(backend):
    """A value read as blocks (an RNN's time steps, its gates' chunks) gets one cat of the blocks'
    gradients, not a zeros-and-put per block; overlapping and strided regions keep their vjps."""
    if backend == "c" and not genesis.compiler.native.compiler_available():
        pytest.skip("no C compiler")

    def step(x, w):
        loss = _sliced_in_every_way(x, w)
        loss.backward()
        return loss

    results = []
    for run in (genesis.compile(step, backend=backend), step):
        x, w = randn(5, 6, 4, requires_grad=True), randn(4, 4, seed=1, requires_grad=True)
        results.append([run(x, w).item(), x.grad.numpy(), w.grad.numpy()])
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    ops = [node.op for node in step_graph(genesis.compile(step, backend=backend)).nodes()]
    # the x[t] and chunk blocks are joined; x[:, :3] and x[:, 1:5] overlap, x[1:, 2:4] is a block
    # in two dims and x[..., ::2] is strided: those four keep their vjps' puts
    assert ops.count("index_put") == 4, ops.count("index_put")
    assert ops.count("cat") == 5 + 5 + 1  # forward's h per step, backward's gates per step, x's steps


def step_graph(compiled):
    x, w = randn(5, 6, 4, requires_grad=True), randn(4, 4, seed=1, requires_grad=True)
    compiled(x, w)
    (graph,) = compiled.graphs
    return graph
