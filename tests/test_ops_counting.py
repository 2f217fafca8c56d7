"""unique and bincount against PyTorch, and their graph break under genesis.compile (their output
sizes depend on the values)."""

import numpy as np
import pytest
import torch
from optest import TORCH_DTYPE

import genesis
from genesis import compiler

RNG = np.random.default_rng(0)


def assert_same(got, expected):
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for g, t in zip(got, expected):
        assert TORCH_DTYPE[g.dtype] == t.dtype and g.shape == tuple(t.shape)
        np.testing.assert_array_equal(g.numpy(), t.numpy())


DATA = {
    "floats": np.array([[2.5, -1.0, 2.5], [0.0, -1.0, 7.0]]),
    "nan": np.array([3.0, np.nan, 1.0, np.nan, 3.0]),
    "ints": RNG.integers(-3, 4, (4, 5)),
    "bools": RNG.integers(0, 2, (3, 3)).astype(bool),
    "scalar": np.array(4),
    "empty": np.zeros((0, 3)),
}
FLAGS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("inverse, counts", FLAGS)
@pytest.mark.parametrize("name", sorted(DATA))
def test_unique_matches_torch(name, inverse, counts):
    data = DATA[name]
    got = genesis.unique(genesis.tensor(data), return_inverse=inverse, return_counts=counts)
    expected = torch.unique(torch.tensor(data), return_inverse=inverse, return_counts=counts)
    assert_same(got, expected)
    assert_same(genesis.tensor(data).unique(sorted=False), torch.tensor(data).unique(sorted=True))


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("inverse, counts", FLAGS)
def test_unique_slices_along_a_dim(dim, inverse, counts):
    data = RNG.integers(0, 2, (6, 3, 2))
    data[3] = data[0]  # some slices repeat along every dim
    data[:, 2] = data[:, 0]
    data[..., 1] = data[..., 0]
    got = genesis.unique(genesis.tensor(data), dim=dim, return_inverse=inverse, return_counts=counts)
    expected = torch.unique(torch.tensor(data), dim=dim, return_inverse=inverse, return_counts=counts)
    assert_same(got, expected)


def test_unique_of_floats_along_a_dim():
    data = np.array([[1.5, 0.0], [-2.0, 3.0], [1.5, 0.0], [1.5, -1.0]], dtype=np.float32)
    assert_same(
        genesis.unique(genesis.tensor(data), dim=0, return_counts=True),
        torch.unique(torch.tensor(data), dim=0, return_counts=True),
    )


@pytest.mark.parametrize("minlength", [0, 3, 12])
def test_bincount_matches_torch(minlength):
    data = RNG.integers(0, 8, 50)
    assert_same(
        genesis.bincount(genesis.tensor(data), minlength=minlength), torch.bincount(torch.tensor(data), None, minlength)
    )
    weights = RNG.standard_normal(50)
    for dtype in (genesis.float32, genesis.float64, genesis.float16, genesis.int64):
        g_weights = genesis.tensor(weights if dtype.is_floating_point else (weights * 10).round()).to(dtype)
        t_weights = torch.tensor(g_weights.to(genesis.float64).numpy()).to(TORCH_DTYPE[dtype])
        got = genesis.tensor(data).bincount(g_weights, minlength)
        expected = torch.bincount(torch.tensor(data), t_weights, minlength)
        assert TORCH_DTYPE[got.dtype] == expected.dtype
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_bincount_of_nothing_and_of_small_integers():
    assert_same(
        genesis.bincount(genesis.tensor([], dtype=genesis.int64)), torch.bincount(torch.tensor([], dtype=torch.int64))
    )
    assert_same(
        genesis.bincount(genesis.tensor([0, 3, 3], dtype=genesis.uint8), minlength=2),
        torch.bincount(torch.tensor([0, 3, 3], dtype=torch.uint8), minlength=2),
    )


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="negative value -1"):
        genesis.bincount(genesis.tensor([1, -1]))
    with pytest.raises(TypeError, match="1-d tensor of non-negative integers, got float32"):
        genesis.bincount(genesis.tensor([1.0]))
    with pytest.raises(TypeError, match="shape \\[2, 1\\]"):
        genesis.bincount(genesis.tensor([[1], [2]]))
    with pytest.raises(genesis.errors.ShapeError, match="weights of shape \\[3\\]"):
        genesis.bincount(genesis.tensor([1, 2]), genesis.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        genesis.unique(genesis.zeros(2, 2), dim=2)


@pytest.mark.parametrize(
    "name, fn",
    [
        ("unique", lambda x: genesis.unique(x.long(), return_counts=True)[1] * 2),
        ("bincount", lambda x: genesis.bincount(x.long().abs()) + 1),
    ],
)
def test_compiled_functions_break_the_graph_here(name, fn):
    x = genesis.tensor([1.0, 3.0, 3.0, -2.0])
    with pytest.raises(compiler.GraphBreak, match=f"{name} \\(the number of"):
        genesis.compile(fn, fullgraph=True)(x)
    with pytest.warns(UserWarning, match=name):
        got = genesis.compile(fn)(x)
    np.testing.assert_array_equal(got.numpy(), fn(x).numpy())
