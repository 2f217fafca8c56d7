"""roll, repeat_interleave and the small Tensor methods a ported program calls (view_as, new_*,
type_as), against PyTorch: values, dtypes, gradients, and compiled against eager."""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_numerical_grad, check_torch

import genesis
from genesis import compiler

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def lib(x):
    return genesis if isinstance(x, genesis.Tensor) else torch


def _repeats(x, values):
    return genesis.tensor(values) if isinstance(x, genesis.Tensor) else torch.tensor(values)


CASES = {
    "roll_flat": lambda x: x.roll(2),
    "roll_flat_negative": lambda x: lib(x).roll(x, -7),
    "roll_dim": lambda x: x.roll(1, 1),
    "roll_dims": lambda x: x.roll((2, -1), (0, -1)),
    "roll_by_more_than_the_size": lambda x: x.roll(9, dims=2),
    "roll_by_zero": lambda x: x.roll(0, 0) * 1,
    "roll_same_dim_twice": lambda x: x.roll((1, 2), (1, 1)),
    "repeat_flat": lambda x: x.repeat_interleave(2),
    "repeat_dim": lambda x: lib(x).repeat_interleave(x, 3, dim=1),
    "repeat_negative_dim": lambda x: x.repeat_interleave(2, dim=-1),
    "repeat_zero": lambda x: x.repeat_interleave(0, dim=0),
    "repeat_tensor": lambda x: x.repeat_interleave(_repeats(x, [2, 0, 1, 3]), dim=1),
    "repeat_tensor_zeros_at_the_ends": lambda x: x.repeat_interleave(_repeats(x, [0, 2, 1, 0]), dim=-2),
    "repeat_tensor_all_zero": lambda x: x.repeat_interleave(_repeats(x, [0, 0]), dim=0),
    "repeat_tensor_flat": lambda x: x.repeat_interleave(_repeats(x, [1]), output_size=24),
    "repeat_one_element_tensor": lambda x: x.repeat_interleave(_repeats(x, 2), dim=0),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch(name, dtype):
    check_torch(CASES[name], [rand(2, 4, 3)], dtype=dtype)


@pytest.mark.parametrize("name", sorted(CASES))
def test_numerical_gradient(name):
    check_numerical_grad(CASES[name], [rand(2, 4, 3)])


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.bool], ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["roll_dims", "repeat_dim", "repeat_tensor"])
def test_other_dtypes(name, dtype):
    data = RNG.integers(0, 2 if dtype is genesis.bool else 100, (2, 4, 3))
    g = genesis.tensor(data.astype(bool) if dtype is genesis.bool else data)
    t = torch.tensor(data.astype(bool) if dtype is genesis.bool else data)
    got, expected = CASES[name](g), CASES[name](t)
    assert got.dtype is dtype
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_repeat_interleave_of_counts_alone():
    counts = [3, 0, 1, 2]
    np.testing.assert_array_equal(
        genesis.repeat_interleave(genesis.tensor(counts)).numpy(), torch.repeat_interleave(torch.tensor(counts))
    )


def test_zero_dim_and_empty():
    check_torch(lambda x: x.roll(3), [np.array(2.0)])
    check_torch(lambda x: x.repeat_interleave(3), [np.array(2.0)])
    check_torch(lambda x: x.roll(1, 1), [np.zeros((2, 0))])


def test_roll_returns_a_copy():
    x = genesis.arange(4.0)
    y = x.roll(0)
    y[0] = 10.0
    assert x[0].item() == 0.0


def test_bad_arguments_are_named():
    x = genesis.zeros(2, 3)
    with pytest.raises(ValueError, match="same length"):
        x.roll((1, 2), 0)
    with pytest.raises(ValueError, match="one number"):
        x.roll((1, 2))
    with pytest.raises(ValueError, match="non-negative"):
        x.repeat_interleave(genesis.tensor([1, -1, 2]), dim=1)
    with pytest.raises(genesis.errors.ShapeError, match="2 repeats for dim 1 of size 3"):
        x.repeat_interleave(genesis.tensor([1, 2]), dim=1)
    with pytest.raises(TypeError, match="integer tensor"):
        x.repeat_interleave(genesis.tensor([1.0, 2.0]), dim=0)
    with pytest.raises(ValueError, match="output_size 5"):
        x.repeat_interleave(2, dim=0, output_size=5)


COMPILED = {
    "roll": lambda x: (x * 2).roll((1, -2), (0, 2)).exp(),
    "roll_flat": lambda x: x.roll(5) + x,
    "repeat_interleave": lambda x: x.repeat_interleave(2, dim=1).tanh(),
}


@pytest.mark.parametrize("backend", ["numpy", "c", "eager"])
@pytest.mark.parametrize("name", sorted(COMPILED))
def test_compiled_equals_eager_with_gradients(name, backend):
    fn, data = COMPILED[name], rand(3, 4, 5)
    x_eager = genesis.tensor(data, dtype=genesis.float32, requires_grad=True)
    x_compiled = genesis.tensor(data, dtype=genesis.float32, requires_grad=True)
    expected = fn(x_eager)
    got = genesis.compile(fn, backend=backend, fullgraph=True)(x_compiled)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-6)
    cotangent = genesis.tensor(rand(*expected.shape), dtype=genesis.float32)
    (expected * cotangent).sum().backward()
    (got * cotangent).sum().backward()
    np.testing.assert_allclose(x_compiled.grad.numpy(), x_eager.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_tensor_repeats_break_the_graph():
    fn = lambda x, r: x.repeat_interleave(r, dim=0) * 2
    x, repeats = genesis.tensor(rand(3, 2)), genesis.tensor([1, 0, 2])
    with pytest.raises(compiler.GraphBreak, match="repeat_interleave with a tensor of repeats"):
        genesis.compile(fn, fullgraph=True)(x, repeats)
    with pytest.warns(UserWarning, match="repeat_interleave"):
        got = genesis.compile(fn)(x, repeats)
    np.testing.assert_array_equal(got.numpy(), fn(x, repeats).numpy())


# ---- view_as, new_*, type_as ----------------------------------------------------------------
def test_new_factories_take_the_tensors_dtype():
    for dtype, torch_dtype in ((genesis.float64, torch.float64), (genesis.int32, torch.int32)):
        g, t = genesis.ones(2, dtype=dtype), torch.ones(2, dtype=torch_dtype)
        pairs = [
            (g.new_zeros(2, 3), t.new_zeros(2, 3)),
            (g.new_zeros((4,)), t.new_zeros((4,))),
            (g.new_ones([1, 2]), t.new_ones([1, 2])),
            (g.new_full((3,), 7), t.new_full((3,), 7)),
            (g.new_tensor([[1, 2], [3, 4]]), t.new_tensor([[1, 2], [3, 4]])),
            (g.new_zeros(2, dtype=genesis.float16), t.new_zeros(2, dtype=torch.float16)),
            (g.new_tensor([1.5], dtype=genesis.float32), t.new_tensor([1.5], dtype=torch.float32)),
        ]
        for got, expected in pairs:
            assert got.shape == tuple(expected.shape) and str(got.dtype).split(".")[-1] == str(expected.dtype)[6:]
            np.testing.assert_array_equal(got.numpy(), expected.numpy())
        assert g.new_empty(2, 5).shape == (2, 5) and g.new_empty(2).dtype is dtype


def test_new_tensor_copies_without_history():
    x = genesis.tensor([1.0, 2.0], requires_grad=True)
    y = x.new_tensor(x * 2)
    assert y.requires_grad is False and y.grad_fn is None
    assert x.new_ones(2, requires_grad=True).requires_grad


def test_type_as_and_view_as():
    x = genesis.arange(6)
    assert x.type_as(genesis.zeros(1, dtype=genesis.float16)).dtype is genesis.float16
    check_torch(lambda a, b: a.view_as(b) * 2, [rand(2, 6), rand(3, 4)])
    check_torch(lambda a, b: a.type_as(b), [rand(3), np.arange(3)])
    with pytest.raises(RuntimeError, match="view of a tensor"):
        genesis.zeros(3, 4).T.view_as(genesis.zeros(12))
