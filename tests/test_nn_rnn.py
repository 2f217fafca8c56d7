"""RNN, LSTM, GRU and their cells against PyTorch: parameter names, shapes and order (a PyTorch
state_dict loads as it is), outputs and final states, gradients of inputs, initial states and
parameters, every layout option, and a compiled LSTM language-model step against eager. An LSTM
layer's time loop is one op (ops/recurrent.py): its C and numpy kernels against each other and
its gradients against finite differences."""

import numpy as np
import pytest
import torch
from optest import check_numerical_grad

import genesis
from genesis.errors import ShapeError
from genesis.functional.recurrent import lstm_layer
from genesis.ops import recurrent

LAYERS = [
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, batch_first=True)),
    ("LSTM", dict(proj_size=3, bidirectional=True)),
    ("LSTM", dict(bias=False)),
    ("LSTM", dict(bidirectional=True)),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict()),
]


def pair(name, options, dtype=torch.float64):
    layer = getattr(genesis.nn, name)(5, 6, **options).double()
    reference = getattr(torch.nn, name)(5, 6, **options).to(dtype)
    assert list(layer.state_dict()) == list(reference.state_dict())
    for key, value in layer.state_dict().items():
        assert tuple(value.shape) == tuple(reference.state_dict()[key].shape), key
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in layer.state_dict().items()})
    return layer, reference


def states(name, options, batch, rng):
    directions = 2 if options.get("bidirectional") else 1
    layers = options.get("num_layers", 1)
    h = rng.standard_normal((layers * directions, batch, options.get("proj_size") or 6))
    if name != "LSTM":
        return h
    return h, rng.standard_normal((layers * directions, batch, 6))


def as_genesis(value):
    if isinstance(value, tuple):
        return tuple(as_genesis(v) for v in value)
    return genesis.tensor(value, requires_grad=True)


def as_torch(value):
    if isinstance(value, tuple):
        return tuple(as_torch(v) for v in value)
    return torch.tensor(value, requires_grad=True)


def flat(value):
    return list(value) if isinstance(value, tuple) else [value]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("name, options", LAYERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LAYERS)])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "given"])
def test_recurrent_layers_are_pytorchs(name, options, with_state):
    rng = np.random.default_rng(0)
    layer, reference = pair(name, options)
    x = rng.standard_normal((4, 7, 5) if options.get("batch_first") else (7, 4, 5))
    initial = states(name, options, 4, rng) if with_state else None
    gx, tx = as_genesis(x), as_torch(x)
    g_state = as_genesis(initial) if with_state else None
    t_state = as_torch(initial) if with_state else None
    g_out, g_final = layer(gx, g_state)
    t_out, t_final = reference(tx, t_state)
    for got, expected in zip([g_out, *flat(g_final)], [t_out, *flat(t_final)]):
        assert tuple(got.shape) == tuple(expected.shape)
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    seeds = [rng.standard_normal(tuple(t.shape)) for t in [t_out, *flat(t_final)]]
    sum((g * genesis.tensor(s)).sum() for g, s in zip([g_out, *flat(g_final)], seeds)).backward()
    sum((t * torch.from_numpy(s)).sum() for t, s in zip([t_out, *flat(t_final)], seeds)).backward()
    pairs = [(gx, tx)] + (list(zip(flat(g_state), flat(t_state))) if with_state else [])
    pairs += [(p, dict(reference.named_parameters())[n]) for n, p in layer.named_parameters()]
    for got, expected in pairs:
        np.testing.assert_allclose(got.grad.numpy(), expected.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_are_pytorchs(name):
    rng = np.random.default_rng(1)
    cell = getattr(genesis.nn, name)(5, 6).double()
    reference = getattr(torch.nn, name)(5, 6).double()
    assert list(cell.state_dict()) == list(reference.state_dict())
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in cell.state_dict().items()})
    x = rng.standard_normal((3, 5))
    hidden = rng.standard_normal((3, 6))
    state = (hidden, rng.standard_normal((3, 6))) if name == "LSTMCell" else hidden
    for args in ((x,), (x, state), (x[0], tuple(s[0] for s in state) if name == "LSTMCell" else state[0])):
        got = cell(*[as_genesis(a) if isinstance(a, tuple) else genesis.tensor(a) for a in args])
        expected = reference(*[as_torch(a) if isinstance(a, tuple) else torch.from_numpy(a) for a in args])
        for g, t in zip(flat(got), flat(expected)):
            np.testing.assert_allclose(g.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_recurrent_layer_errors_name_the_problem():
    lstm = genesis.nn.LSTM(5, 6, num_layers=2)
    with pytest.raises(ShapeError, match="expected input_size=5"):
        lstm(genesis.zeros(7, 4, 3))
    with pytest.raises(ShapeError, match=r"expected h_0 of shape \[2, 4, 6\]"):
        lstm(genesis.zeros(7, 4, 5), (genesis.zeros(1, 4, 6), genesis.zeros(2, 4, 6)))
    with pytest.raises(ShapeError, match=r"sequence length to be larger than 0, got input shape \[0, 4, 5\]"):
        lstm(genesis.zeros(0, 4, 5))
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        genesis.nn.GRU(5, 6, proj_size=2)


def test_dropout_between_layers_only_in_training():
    genesis.manual_seed(0)
    gru = genesis.nn.GRU(5, 6, num_layers=2, dropout=0.5)
    x = genesis.tensor(np.random.default_rng(2).standard_normal((7, 4, 5)).astype(np.float32))
    gru.eval()
    first, second = gru(x)[0].detach().numpy(), gru(x)[0].detach().numpy()
    np.testing.assert_array_equal(first, second)
    gru.train()
    assert not np.allclose(gru(x)[0].detach().numpy(), first)


def test_a_compiled_lstm_language_model_step_equals_eager():
    rng = np.random.default_rng(3)
    tokens = genesis.tensor(rng.integers(0, 20, (4, 9)))
    results = []
    for compiled in (False, True):
        genesis.manual_seed(0)
        embedding, lstm, head = (
            genesis.nn.Embedding(20, 8),
            genesis.nn.LSTM(8, 12, batch_first=True),
            genesis.nn.Linear(12, 20),
        )
        params = [*embedding.parameters(), *lstm.parameters(), *head.parameters()]
        optimizer = genesis.optim.Adam(params, lr=1e-2, fused=False)

        def step():
            optimizer.zero_grad()
            hidden, _ = lstm(embedding(tokens[:, :-1]))
            logits = head(hidden)
            loss = genesis.nn.functional.cross_entropy(logits.reshape(-1, 20), tokens[:, 1:].reshape(-1))
            loss.backward()
            optimizer.step()
            return loss

        run = genesis.compile(step) if compiled else step
        losses = [run().item() for _ in range(3)]
        results.append((losses, [p.detach().numpy() for p in params]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5)
    for got, expected in zip(results[1][1], results[0][1]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def lstm_operands(steps, batch, hidden, dtype, seed):
    rng = np.random.default_rng(seed)
    pre = rng.standard_normal((steps, batch, 4 * hidden)).astype(dtype)
    h0, c0 = (rng.standard_normal((batch, hidden)).astype(dtype) for _ in range(2))
    w_hh = (rng.standard_normal((4 * hidden, hidden)) / np.sqrt(hidden)).astype(dtype)
    return pre, h0, c0, w_hh


@pytest.mark.c_compiler
@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("reverse", [False, True])
def test_the_lstm_loop_in_c_is_the_numpy_loop(dtype, tolerance, reverse):
    """Both kernels, forward and backward, with a gradient reaching every part of the result (the
    gates too); 5 sequences on the pool's threads take blocks of unequal sizes."""
    pre, h0, c0, w_hh = lstm_operands(6, 5, 33, dtype, seed=4)
    dy = np.random.default_rng(5).standard_normal(6 * pre.size // 4).astype(dtype)  # the result's size
    assert recurrent.C_KERNELS.kernel("g_lstm_forward", dtype) is not None, "the C kernels did not build"
    results = []
    for in_c in (True, False):
        recurrent.C_KERNELS.enabled = in_c
        try:
            y = recurrent.lstm_layer.kernel(pre, h0, c0, w_hh, reverse=reverse)
            results.append((y, recurrent.lstm_layer_backward.kernel(dy, y, c0, w_hh, reverse=reverse)))
        finally:
            recurrent.C_KERNELS.enabled = True
    (y_c, grads_c), (y_numpy, grads_numpy) = results
    np.testing.assert_allclose(y_c, y_numpy, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(grads_c, grads_numpy, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("in_c", [True, False], ids=["c", "numpy"])
@pytest.mark.parametrize("reverse", [False, True])
def test_the_lstm_loops_gradients_are_finite_differences(in_c, reverse):
    """Every part of the flat result (states and gates) takes a random cotangent."""
    recurrent.C_KERNELS.enabled = in_c
    try:
        check_numerical_grad(
            lambda *operands: genesis.ops.recurrent.lstm_layer(*operands, reverse=reverse),
            list(lstm_operands(3, 2, 4, np.float64, seed=6)),
            rtol=1e-6,
            atol=1e-8,
        )
    finally:
        recurrent.C_KERNELS.enabled = True


def test_the_lstm_loop_names_operands_that_do_not_fit():
    pre, h0, c0, w_hh = (genesis.tensor(a) for a in lstm_operands(3, 2, 4, np.float32, seed=7))
    with pytest.raises(ShapeError, match=r"hidden weights must be \(4H, H\), got shape \[16, 5\]"):
        lstm_layer(pre, h0, c0, genesis.zeros(16, 5))
    with pytest.raises(ShapeError, match=r"input projection must be \(T, N, 16\), got shape \[3, 2, 12\]"):
        lstm_layer(pre[..., :12], h0, c0, w_hh)
    with pytest.raises(ShapeError, match=r"c0 must be \(2, 4\), got shape \[3, 4\]"):
        lstm_layer(pre, h0, genesis.zeros(3, 4), w_hh)
    with pytest.raises(TypeError, match="lstm_layer needs a floating-point tensor, got int64"):
        lstm_layer(pre, h0, c0, genesis.zeros(16, 4, dtype=genesis.int64))


def test_an_lstm_layer_is_one_op_per_direction(monkeypatch):
    """The fast path is taken: two directions, two layers, four forward loops and four backward."""
    from genesis.functional import recurrent as functional_recurrent

    calls = []
    apply, backward = functional_recurrent.apply, recurrent.lstm_layer_backward
    monkeypatch.setattr(functional_recurrent, "apply", lambda op, *a, **k: calls.append(op.name) or apply(op, *a, **k))
    monkeypatch.setattr(recurrent, "lstm_layer_backward", lambda *a, **k: calls.append("backward") or backward(*a, **k))
    lstm = genesis.nn.LSTM(5, 6, num_layers=2, bidirectional=True)
    out, (h, c) = lstm(genesis.tensor(np.ones((7, 3, 5), np.float32)))
    (out.sum() + c.sum()).backward()
    assert calls.count("lstm_layer") == 4 and calls.count("backward") == 4
    assert recurrent._last_backward == [None, None, None]  # the last rule let go of the loop's result


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_an_empty_batch_runs_and_differentiates(name):
    """No sequences: outputs and gradients of batch size 0, as PyTorch gives (the LSTM's fused loop
    needs a sequence, so an empty batch takes the unrolled one)."""
    layer = getattr(genesis.nn, name)(4, 5, bidirectional=True)
    x = genesis.zeros(3, 0, 4, requires_grad=True)
    out, _ = layer(x)
    assert tuple(out.shape) == (3, 0, 10)
    out.sum().backward()
    assert tuple(x.grad.shape) == (3, 0, 4)
