"""Composites that eager runs compiled (genesis/functional/fused.py): batch_norm on big inputs.

The fused path must give the op-by-op path's values to rounding (outputs, gradients, running
statistics, second derivatives) and PyTorch's; it must step aside under a trace, under autocast,
for small inputs and with GENESIS_FUSED_EAGER=0.
"""

import numpy as np
import pytest
import torch

import genesis
import genesis.nn.functional as F
from genesis.functional import fused
from genesis.nn.functional.attention import _attention
from genesis.nn.functional.normalization import _batch_norm, _layer_norm

pytestmark = pytest.mark.c_compiler


@pytest.fixture(autouse=True)
def _fused_from_the_first_call(monkeypatch):
    monkeypatch.setenv("GENESIS_FUSED_EAGER", "1")  # the suite runs op by op otherwise (conftest.py)
    monkeypatch.setattr(fused, "HOT_AFTER", 1)


BIG = (8, 8, 64, 64)  # 256K elements: the fused path's threshold


def values(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def run_batch_norm(x_values, training, second_order=False):
    """A BatchNorm2d step: output, gradients, running statistics (and a second derivative)."""
    genesis.manual_seed(0)
    layer = genesis.nn.BatchNorm2d(x_values.shape[1], dtype=genesis.float64 if x_values.dtype == np.float64 else None)
    layer.weight.data = genesis.tensor(values((x_values.shape[1],), 5, x_values.dtype))
    layer.train(training)
    x = genesis.tensor(x_values, requires_grad=True)
    upstream = genesis.tensor(values(x_values.shape, 6, x_values.dtype))
    out = layer(x)
    if second_order:
        (gx,) = genesis.autograd.grad((out * upstream).sum(), [x], create_graph=True)
        (gx * upstream).sum().backward()
        result = [gx]
    else:
        (out * upstream).sum().backward()
        result = [out]
    return [t.detach().numpy() for t in (*result, x.grad, layer.weight.grad, layer.running_mean, layer.running_var)]


def fused_and_op_by_op(monkeypatch, *args, **kwargs):
    _batch_norm.programs.clear()
    fused_result = run_batch_norm(*args, **kwargs)
    ran_fused = len(_batch_norm.programs) == 1  # compiled for this call's signature
    monkeypatch.setenv("GENESIS_FUSED_EAGER", "0")
    op_by_op = run_batch_norm(*args, **kwargs)
    monkeypatch.setenv("GENESIS_FUSED_EAGER", "1")
    return fused_result, op_by_op, ran_fused


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_fused_gives_the_op_by_op_values_and_pytorchs(monkeypatch, training, dtype):
    x = values(BIG, 1, dtype)
    got, expected, ran_fused = fused_and_op_by_op(monkeypatch, x, training)
    assert ran_fused
    rtol = 2e-5 if dtype == np.float32 else 1e-12  # sums over 32K elements per channel, in another order
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)
    layer = torch.nn.BatchNorm2d(BIG[1], dtype=torch.float64 if dtype == np.float64 else None)
    layer.weight.data = torch.from_numpy(values((BIG[1],), 5, dtype))
    layer.train(training)
    t = torch.from_numpy(x).requires_grad_()
    out = layer(t)
    (out * torch.from_numpy(values(BIG, 6, dtype))).sum().backward()
    reference = [out, t.grad, layer.weight.grad, layer.running_mean, layer.running_var]
    for g, e in zip(got, reference):
        np.testing.assert_allclose(g, e.detach().numpy(), rtol=10 * rtol, atol=10 * rtol)


def test_batch_norm_fused_differentiates_twice_as_op_by_op(monkeypatch):
    got, expected, ran_fused = fused_and_op_by_op(monkeypatch, values(BIG, 2, np.float64), True, second_order=True)
    assert ran_fused
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10)


def test_the_fused_path_steps_aside_where_it_should(monkeypatch):
    calls = []
    real = fused._compile
    monkeypatch.setattr(fused, "_compile", lambda fn: calls.append(fn) or real(fn))
    small = genesis.tensor(values((4, 8, 8, 8), 3))
    big = genesis.tensor(values(BIG, 3))
    F.batch_norm(small, None, None, training=True)  # too small to pay for a compile
    with genesis.amp.autocast("cpu", dtype=genesis.bfloat16):
        F.batch_norm(big, None, None, training=True)
    genesis.compile(lambda x: F.batch_norm(x, None, None, training=True))(big)  # the outer trace sees the ops
    F.batch_norm(big.to(genesis.float16), None, None, training=True)
    assert calls == []
    F.batch_norm(big, None, None, training=True, eps=1e-3)
    assert len(calls) == 1


def layer_norm_and_attention(x_values, mask, seed):
    """layer_norm and attention (causal, with a boolean mask, with dropout) and their gradients."""
    genesis.manual_seed(seed)
    x = genesis.tensor(x_values, requires_grad=True)
    weight = genesis.tensor(values(x_values.shape[-1:], 7), requires_grad=True)
    normed = F.layer_norm(x, x_values.shape[-1:], weight, None)
    q = genesis.reshape(x, (32, 4, 64, 32))
    causal = F.scaled_dot_product_attention(q, q * 0.5, q, is_causal=True)
    masked = F.scaled_dot_product_attention(q, q, q * 2.0, attn_mask=genesis.tensor(mask), dropout_p=0.25)
    ((normed * normed).sum() + (causal * causal).sum() + masked.sum()).backward()
    return [t.detach().numpy() for t in (normed, causal, masked, x.grad, weight.grad)]


def test_layer_norm_and_attention_fused_give_the_op_by_op_values(monkeypatch):
    x = values((8 * 4, 64, 128), 8)  # 2048 tokens of 128: 256K elements
    mask = np.random.default_rng(9).random((64, 64)) < 0.7
    _layer_norm.programs.clear()
    _attention.programs.clear()
    fused_result = layer_norm_and_attention(x, mask, seed=4)
    assert len(_layer_norm.programs) == 1 and len(_attention.programs) == 2
    monkeypatch.setenv("GENESIS_FUSED_EAGER", "0")
    op_by_op = layer_norm_and_attention(x, mask, seed=4)  # the same dropout masks from the same seed
    for got, expected in zip(fused_result, op_by_op):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    t = torch.from_numpy(x)
    expected = torch.nn.functional.layer_norm(t, (128,), torch.from_numpy(values((128,), 7)))
    np.testing.assert_allclose(fused_result[0], expected.numpy(), rtol=1e-4, atol=1e-5)
    tq = t.reshape(32, 4, 64, 32)
    expected = torch.nn.functional.scaled_dot_product_attention(tq, tq * 0.5, tq, is_causal=True)
    np.testing.assert_allclose(fused_result[1], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_a_recurrent_layer_runs_its_loop_compiled_from_a_signatures_second_call(monkeypatch):
    from genesis.nn.modules.rnn import _time_loop

    monkeypatch.setattr(fused, "HOT_AFTER", 2)
    _time_loop.programs.clear()
    _time_loop.compiles.clear()
    genesis.manual_seed(0)
    gru = genesis.nn.GRU(6, 8, bidirectional=True, batch_first=True)  # (an LSTM's loop is one op)
    x = genesis.tensor(values((3, 5, 6), 10), requires_grad=True)

    def step():
        out, h = gru(x)
        (out.square().sum() + h.sum()).backward()
        grads = [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in gru.parameters()]
        x.grad = None
        gru.zero_grad()
        return [out.detach().numpy(), h.detach().numpy(), *grads]

    first = step()  # op by op: the signature's first call
    assert not _time_loop.compiles
    second = step()  # compiled: the loop of each direction
    assert len(_time_loop.compiles) == 2
    for got, expected in zip(second, first):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(fused, "MAX_COMPILES", 2)
    gru(genesis.tensor(values((3, 4, 6), 11)))  # a new length, twice: past the cap, op by op
    gru(genesis.tensor(values((3, 4, 6), 11)))
    assert len(_time_loop.compiles) == 2


def test_cross_entropy_fused_gives_the_op_by_op_values_and_eagers_errors(monkeypatch):
    from genesis.nn.functional.loss import _cross_entropy

    logits = values((512, 1000), 12)
    target = np.random.default_rng(13).integers(0, 1000, 512)
    target[:5] = -100  # ignored

    def loss_and_grad(smoothing):
        x = genesis.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(x, genesis.tensor(target), label_smoothing=smoothing)
        loss.backward()
        return loss.detach().numpy(), x.grad.numpy()

    _cross_entropy.programs.clear()
    fused_result = [loss_and_grad(0.0), loss_and_grad(0.1)]
    assert len(_cross_entropy.programs) == 2
    monkeypatch.setenv("GENESIS_FUSED_EAGER", "0")
    for got, expected in zip(fused_result, [loss_and_grad(0.0), loss_and_grad(0.1)]):
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-7)
    monkeypatch.setenv("GENESIS_FUSED_EAGER", "1")
    bad = target.copy()
    bad[7] = 1000
    with pytest.raises(IndexError, match="nll_loss: target 1000 is out of range for 1000 classes"):
        F.cross_entropy(genesis.tensor(logits), genesis.tensor(bad))  # the compiled program fails: eager's message
    assert len(_cross_entropy.programs) == 3  # it was compiled, and its failure went op by op


def test_a_small_signature_runs_compiled_once_a_loop_has_called_it_often(monkeypatch):
    from genesis.nn.functional.loss import _cross_entropy

    monkeypatch.setattr(fused, "HOT_AFTER_SMALL", 3)
    _cross_entropy.programs.clear()
    _cross_entropy.compiles.clear()
    logits, target = values((64, 10), 14), np.random.default_rng(15).integers(0, 10, 64)

    def loss_and_grad():
        x = genesis.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(x, genesis.tensor(target))
        loss.backward()
        return loss.detach().numpy(), x.grad.numpy()

    op_by_op = [loss_and_grad(), loss_and_grad()]
    assert not _cross_entropy.compiles  # 640 logits: two calls are not worth a compile
    compiled = loss_and_grad()
    assert len(_cross_entropy.compiles) == 1
    t = torch.from_numpy(logits).requires_grad_()
    expected = torch.nn.functional.cross_entropy(t, torch.from_numpy(target))
    expected.backward()
    for got in (*op_by_op, compiled):
        np.testing.assert_allclose(got[0], expected.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(got[1], t.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("norm_type", [2.0, float("inf"), 1.0])
def test_clip_grad_norm_runs_the_gradients_norm_as_one_program(monkeypatch, norm_type):
    from genesis.nn.utils.clip_grad import _total_norm

    monkeypatch.setattr(fused, "HOT_AFTER_SMALL", 2)
    _total_norm.programs.clear()
    _total_norm.compiles.clear()
    shapes = [(64, 33), (64,), (7, 64), (7,)]
    grads = [values(shape, 20 + i) * (i + 1) for i, shape in enumerate(shapes)]
    results = []
    for _ in range(3):
        params = [genesis.tensor(np.zeros(shape, np.float32), requires_grad=True) for shape in shapes]
        for param, grad in zip(params, grads):
            param.grad = genesis.tensor(grad)
        total = genesis.nn.utils.clip_grad_norm_(params, 0.5, norm_type=norm_type)
        results.append([total.numpy(), *(p.grad.numpy() for p in params)])
    assert len(_total_norm.compiles) == 1  # the norm type is part of the signature, as the shapes
    t_params = [torch.zeros(shape, requires_grad=True) for shape in shapes]
    for param, grad in zip(t_params, grads):
        param.grad = torch.from_numpy(grad.copy())
    expected = [torch.nn.utils.clip_grad_norm_(t_params, 0.5, norm_type=norm_type)] + [p.grad for p in t_params]
    for result in results:  # op by op twice, then compiled
        for got, want in zip(result, expected):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-7)
