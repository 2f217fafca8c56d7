"""genesis.nn.utils.rnn against torch.nn.utils.rnn: packing and padding round trips (values,
batch_sizes, sorted and unsorted indices, every option) with their gradients, the recurrent layers
on packed batches (outputs, final states at each sequence's own length, every gradient), the
errors, and packed batches under genesis.compile against eager."""

import numpy as np
import pytest
import torch
from torch.nn.utils import rnn as R

import genesis
from genesis.compiler.trace import GraphBreak
from genesis.errors import ShapeError
from genesis.nn.utils import rnn as G

# distinct, tied and already sorted lengths; batches of at most 16, where torch's sort is stable
LENGTHS = [[2, 5, 1, 3], [3, 1, 3, 2, 3, 1], [5, 4, 4, 2], [1]]


def values(x):
    return x.detach().numpy()


def assert_packed_equal(got, expected):
    assert isinstance(got, G.PackedSequence) and got._fields == expected._fields
    np.testing.assert_array_equal(values(got.data), values(expected.data))
    assert got.batch_sizes.dtype == genesis.int64
    assert got.batch_sizes.tolist() == expected.batch_sizes.tolist()
    for field in ("sorted_indices", "unsorted_indices"):
        mine, theirs = getattr(got, field), getattr(expected, field)
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert mine.tolist() == theirs.tolist()


@pytest.mark.parametrize("lengths", LENGTHS, ids=str)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("as_tensor", [False, True], ids=["list", "tensor"])
def test_pack_and_pad_round_trip_is_torchs(lengths, batch_first, as_tensor):
    rng = np.random.default_rng(0)
    steps, batch = max(lengths) + 1, len(lengths)
    x = rng.standard_normal((batch, steps, 3, 2) if batch_first else (steps, batch, 3, 2))
    enforce_sorted = lengths == sorted(lengths, reverse=True)
    g_lengths = genesis.tensor(lengths) if as_tensor else lengths
    t_lengths = torch.tensor(lengths) if as_tensor else lengths
    gx, tx = genesis.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g_packed = G.pack_padded_sequence(gx, g_lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    t_packed = R.pack_padded_sequence(tx, t_lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    assert_packed_equal(g_packed, t_packed)
    for options in (dict(), dict(padding_value=-2.5, total_length=steps + 2)):
        g_padded, g_lengths_out = G.pad_packed_sequence(g_packed, batch_first=batch_first, **options)
        t_padded, t_lengths_out = R.pad_packed_sequence(t_packed, batch_first=batch_first, **options)
        assert tuple(g_padded.shape) == tuple(t_padded.shape)
        np.testing.assert_array_equal(values(g_padded), values(t_padded))
        assert g_lengths_out.dtype == genesis.int64 and g_lengths_out.tolist() == t_lengths_out.tolist() == lengths
    seed = rng.standard_normal(tuple(t_padded.shape))
    (g_padded * genesis.tensor(seed)).sum().backward()
    (t_padded * torch.from_numpy(seed)).sum().backward()
    np.testing.assert_array_equal(gx.grad.numpy(), tx.grad.numpy())  # zeros at padded positions


def test_unsorted_packing_of_a_sorted_batch_still_records_the_order():
    x = np.arange(24.0).reshape(4, 3, 2)
    got = G.pack_padded_sequence(genesis.tensor(x), [4, 2, 1], enforce_sorted=False)
    expected = R.pack_padded_sequence(torch.tensor(x), [4, 2, 1], enforce_sorted=False)
    assert_packed_equal(got, expected)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("padding_value", [0.0, -1.5])
def test_pad_sequence_is_torchs(batch_first, padding_side, padding_value):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((n, 2, 3)) for n in (3, 5, 1, 5)]
    g_seqs = [genesis.tensor(a, requires_grad=True) for a in arrays]
    t_seqs = [torch.tensor(a, requires_grad=True) for a in arrays]
    options = dict(batch_first=batch_first, padding_value=padding_value, padding_side=padding_side)
    got, expected = G.pad_sequence(g_seqs, **options), R.pad_sequence(t_seqs, **options)
    assert tuple(got.shape) == tuple(expected.shape)
    np.testing.assert_array_equal(values(got), values(expected))
    seed = rng.standard_normal(tuple(expected.shape))
    (got * genesis.tensor(seed)).sum().backward()
    (expected * torch.from_numpy(seed)).sum().backward()
    for g, t in zip(g_seqs, t_seqs):
        np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())


def test_pad_sequence_of_integer_sequences_and_of_a_tensor():
    got = G.pad_sequence([genesis.tensor([1, 2, 3]), genesis.tensor([4])], padding_value=-1)
    expected = R.pad_sequence([torch.tensor([1, 2, 3]), torch.tensor([4])], padding_value=-1)
    assert got.dtype == genesis.int64 and got.tolist() == expected.tolist()
    stacked = np.arange(6.0).reshape(2, 3)
    got = G.pad_sequence(genesis.tensor(stacked), batch_first=True)
    np.testing.assert_array_equal(values(got), R.pad_sequence(torch.tensor(stacked), batch_first=True).numpy())


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_sequence_unpack_sequence_and_unpad_sequence_are_torchs(enforce_sorted):
    rng = np.random.default_rng(2)
    sizes = (4, 3, 3, 1) if enforce_sorted else (2, 4, 1, 3)
    arrays = [rng.standard_normal((n, 3)) for n in sizes]
    g_packed = G.pack_sequence([genesis.tensor(a) for a in arrays], enforce_sorted=enforce_sorted)
    t_packed = R.pack_sequence([torch.tensor(a) for a in arrays], enforce_sorted=enforce_sorted)
    assert_packed_equal(g_packed, t_packed)
    for got, array in zip(G.unpack_sequence(g_packed), arrays):
        np.testing.assert_array_equal(values(got), array)
    for batch_first in (False, True):
        padded = np.asarray(R.pad_sequence([torch.tensor(a) for a in arrays], batch_first=batch_first))
        lengths = torch.tensor(sizes)
        expected = R.unpad_sequence(torch.tensor(padded), lengths, batch_first=batch_first)
        got = G.unpad_sequence(genesis.tensor(padded), genesis.tensor(sizes), batch_first=batch_first)
        assert len(got) == len(expected)
        for g, t in zip(got, expected):
            np.testing.assert_array_equal(values(g), t.numpy())


def test_packed_sequence_is_a_namedtuple_that_moves_with_to():
    data = genesis.tensor(np.arange(6.0, dtype=np.float32).reshape(3, 2))
    packed = G.PackedSequence(data, genesis.tensor([2, 1]), genesis.tensor([1, 0]))
    assert packed._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    assert packed.unsorted_indices.tolist() == [1, 0]  # the inverse, as PyTorch computes it
    assert G.PackedSequence((data, packed.batch_sizes)).sorted_indices is None
    assert packed.to(genesis.float32) is packed and packed.cpu() is packed
    doubled = packed.double()
    assert isinstance(doubled, G.PackedSequence) and doubled.data.dtype == genesis.float64
    np.testing.assert_array_equal(doubled.data.numpy(), data.numpy())
    assert doubled.batch_sizes is packed.batch_sizes and doubled.sorted_indices.tolist() == [1, 0]
    assert packed.to(dtype=genesis.float16).data.dtype == genesis.float16 and not packed.is_cuda
    assert genesis.nn.utils.rnn.pack_padded_sequence is G.pack_padded_sequence


def test_bad_lengths_and_options_name_the_problem():
    x = genesis.zeros(4, 3, 2)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order when `enforce_sorted` is True"):
        G.pack_padded_sequence(x, [2, 4, 1])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        G.pack_padded_sequence(x, [4, 0, 1], enforce_sorted=False)
    with pytest.raises(ShapeError, match=r"length 5 is longer than the input's 4 time steps \(input shape \[4, 3, 2"):
        G.pack_padded_sequence(x, [5, 2, 1])
    with pytest.raises(ShapeError, match="longer than the input's 3 time steps"):
        G.pack_padded_sequence(genesis.zeros(4, 3, 2), [4, 2, 1, 1], batch_first=True, enforce_sorted=False)
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to batch_size, but got 2"):
        G.pack_padded_sequence(x, [4, 2])
    with pytest.raises(ShapeError, match="at least 2 dims"):
        G.pack_padded_sequence(genesis.zeros(4), [4])
    packed = G.pack_padded_sequence(x, [4, 2, 1])
    with pytest.raises(ValueError, match="got total_length=3 and max sequence length being 4"):
        G.pad_packed_sequence(packed, total_length=3)
    with pytest.raises(RuntimeError, match="padding_side to be one of left or right, but got up"):
        G.pad_sequence([genesis.zeros(2)], padding_side="up")
    with pytest.raises(RuntimeError, match="empty list of sequences"):
        G.pad_sequence([])
    with pytest.raises(ShapeError, match=r"got shapes \[\[2, 3\], \[2, 4\]\]"):
        G.pad_sequence([genesis.zeros(2, 3), genesis.zeros(2, 4)])
    with pytest.raises(ShapeError, match="expected input_size=3"):
        genesis.nn.GRU(3, 4)(packed)
    with pytest.raises(ShapeError, match=r"expected h_0 of shape \[1, 3, 4\]"):
        genesis.nn.GRU(2, 4)(packed, genesis.zeros(1, 4, 4))


LAYERS = [
    ("RNN", dict()),
    ("RNN", dict(nonlinearity="relu", num_layers=2, bidirectional=True)),
    ("LSTM", dict()),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=3, bidirectional=True)),
    ("GRU", dict()),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
]


def pair(name, options):
    layer = getattr(genesis.nn, name)(5, 6, **options).double()
    reference = getattr(torch.nn, name)(5, 6, **options).double()
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in layer.state_dict().items()})
    return layer, reference


def initial_states(name, options, batch, rng):
    rows = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    h = rng.standard_normal((rows, batch, options.get("proj_size") or 6))
    return [h, rng.standard_normal((rows, batch, 6))] if name == "LSTM" else [h]


@pytest.mark.parametrize("name, options", LAYERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(LAYERS)])
@pytest.mark.parametrize("lengths", [[3, 7, 1, 4, 4], [7, 5, 2]], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zeros", "given"])
def test_recurrent_layers_on_packed_batches_are_torchs(name, options, lengths, with_state):
    rng = np.random.default_rng(3)
    layer, reference = pair(name, options)
    batch_first = options.get("batch_first", False)
    batch, steps = len(lengths), max(lengths)
    x = rng.standard_normal((batch, steps, 5) if batch_first else (steps, batch, 5))
    states = initial_states(name, options, batch, rng) if with_state else []
    g_leaves = [genesis.tensor(a, requires_grad=True) for a in [x, *states]]
    t_leaves = [torch.tensor(a, requires_grad=True) for a in [x, *states]]

    def run(library, utils, module, leaves):
        packed = utils.pack_padded_sequence(leaves[0], lengths, batch_first=batch_first, enforce_sorted=False)
        hx = None if not with_state else (tuple(leaves[1:]) if name == "LSTM" else leaves[1])
        out, final = module(packed, hx)
        assert isinstance(out, utils.PackedSequence)
        padded, _ = utils.pad_packed_sequence(out, batch_first=batch_first)
        return [padded, *(final if name == "LSTM" else [final])]

    got = run(genesis, G, layer, g_leaves)
    expected = run(torch, R, reference, t_leaves)
    for g, t in zip(got, expected):
        assert tuple(g.shape) == tuple(t.shape)
        np.testing.assert_allclose(values(g), values(t), rtol=1e-10, atol=1e-12)
    seeds = [rng.standard_normal(tuple(t.shape)) for t in expected]
    sum((g * genesis.tensor(s)).sum() for g, s in zip(got, seeds)).backward()
    sum((t * torch.from_numpy(s)).sum() for t, s in zip(expected, seeds)).backward()
    pairs = list(zip(g_leaves, t_leaves))
    pairs += [(p, dict(reference.named_parameters())[n]) for n, p in layer.named_parameters()]
    for g, t in pairs:
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_final_states_are_each_sequences_own_last_step():
    """h_n of a shorter sequence equals running that sequence alone, unpadded; likewise backwards."""
    rng = np.random.default_rng(4)
    gru = genesis.nn.GRU(2, 3, bidirectional=True).double()
    arrays = [rng.standard_normal((n, 2)) for n in (2, 5, 3)]
    _, h_n = gru(G.pack_sequence([genesis.tensor(a) for a in arrays], enforce_sorted=False))
    for b, array in enumerate(arrays):
        _, alone = gru(genesis.tensor(array))
        np.testing.assert_allclose(values(h_n[:, b]), values(alone), rtol=1e-12, atol=1e-14)


def lstm_step(lstm, head, x, lengths):
    """Pack, run, pad, a loss and its backward: what a training step on variable lengths does."""
    out, (h_n, c_n) = lstm(G.pack_padded_sequence(x, lengths, enforce_sorted=False))
    padded, _ = G.pad_packed_sequence(out, total_length=x.shape[0])
    loss = (head(padded) ** 2).mean() + (h_n * c_n).sum()
    loss.backward()
    return loss, padded, h_n


def test_compiled_packing_specialises_on_the_lengths_and_equals_eager():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4, 3)).astype(np.float32)
    results = []
    for compiled in (False, True):
        genesis.manual_seed(0)
        lstm, head = genesis.nn.LSTM(3, 5, num_layers=2, bidirectional=True), genesis.nn.Linear(10, 2)
        params = [*lstm.parameters(), *head.parameters()]
        run = genesis.compile(lstm_step) if compiled else lstm_step
        calls = []
        for lengths in ([2, 6, 1, 4], [2, 6, 1, 4], [6, 3, 3, 5]):
            for p in params:
                p.grad = None
            outputs = run(lstm, head, genesis.tensor(x), lengths)
            calls.append([values(o) for o in outputs] + [p.grad.numpy().copy() for p in params])
        results.append(calls)
        if compiled:
            assert run.stats["fallbacks"] == [] and run.stats["eager_calls"] == 0
            assert run.stats["recompiles"] == 1  # the new lengths, a guarded argument, trace anew
    for got_call, expected_call in zip(results[1], results[0]):
        for got, expected in zip(got_call, expected_call):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_packed_batch_given_to_a_compiled_function_breaks_the_graph_with_a_clear_warning():
    rng = np.random.default_rng(6)
    rnn = genesis.nn.RNN(3, 4)
    packed = G.pack_padded_sequence(genesis.tensor(rng.standard_normal((5, 3, 3)).astype(np.float32)), [5, 3, 2])

    def run(sequence):
        out, h_n = rnn(sequence)
        return out.data, h_n

    compiled = genesis.compile(run)
    with pytest.warns(UserWarning, match="PackedSequence's batch_sizes given to a compiled function as a tensor"):
        got = compiled(packed)
    for g, e in zip(got, run(packed)):
        np.testing.assert_array_equal(values(g), values(e))
    with pytest.raises(GraphBreak, match="lengths of a packed batch given to a compiled function as a tensor"):
        genesis.compile(G.pack_padded_sequence, fullgraph=True)(packed.data, genesis.tensor([2, 2, 1]))
