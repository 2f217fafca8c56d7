"""RNN, LSTM, GRU and their cells against PyTorch: parameter names, shapes and order (a PyTorch
state_dict loads as it is), outputs and final states, gradients of inputs, initial states and
parameters, every layout option, and a compiled LSTM language-model step against eager."""

import numpy as np
import pytest
import torch

import genesis
from genesis.errors import ShapeError

LAYERS = [
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("LSTM", dict(num_layers=2, batch_first=True)),
    ("LSTM", dict(proj_size=3, bidirectional=True)),
    ("LSTM", dict(bias=False)),
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
