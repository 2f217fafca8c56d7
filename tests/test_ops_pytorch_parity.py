"""flip, masked_fill, tril/triu with a diagonal and clamp with tensor bounds: the corners a ported
PyTorch program reaches, against PyTorch with gradients."""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_torch

import genesis

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def lib(x):
    return genesis if isinstance(x, genesis.Tensor) else torch


CASES = {
    "flip_negative_dims": ([rand(2, 3, 4)], lambda x: x.flip([-1, 0])),
    "flip_no_dims": ([rand(3, 4)], lambda x: x.flip([]) * 2),
    "flip_0d": ([rand()], lambda x: x.flip(0)),
    "tril_far_below": ([rand(2, 3, 4)], lambda x: x.tril(-5)),
    "tril_above": ([rand(2, 3, 4)], lambda x: lib(x).tril(x, diagonal=2)),
    "triu_below": ([rand(3, 5)], lambda x: x.triu(-1)),
    "triu_far_above": ([rand(3, 5)], lambda x: lib(x).triu(x, diagonal=10)),
    "triu_empty": ([np.zeros((0, 3))], lambda x: x.triu()),
    "clamp_tensor_min": ([rand(3, 4), rand(4)], lambda x, low: x.clamp(min=low)),
    "clamp_tensor_max_broadcasts_x": ([rand(4), rand(3, 4)], lambda x, high: x.clamp(max=high)),
    "clamp_min_method": ([rand(3, 4), rand(3, 1)], lambda x, low: x.clamp_min(low)),
    "clamp_max_function": ([rand(3, 4)], lambda x: lib(x).clamp_max(x, 0.3)),
    "clamp_inplace": ([rand(3, 4), rand(4) - 1, rand(3, 1) + 1], lambda x, lo, hi: (x * 1).clamp_(lo, hi)),
    "masked_fill_tensor_value": ([rand(3, 4), rand()], lambda x, v: x.masked_fill(x > 0, v)),
    "masked_fill_mask_broadcasts_x": ([rand(4), rand(3, 4)], lambda x, m: x.masked_fill(m > 0, 1.5)),
    "masked_fill_inplace": ([rand(3, 4)], lambda x: (x * 1).masked_fill_(x < 0, -2.0)),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_with_gradients(name, dtype):
    inputs, fn = CASES[name]
    check_torch(fn, inputs, dtype=dtype)


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.bool], ids=lambda d: d.name)
def test_integer_and_bool_tensors(dtype):
    data = RNG.integers(0, 2 if dtype is genesis.bool else 9, (3, 4))
    data = data.astype(bool) if dtype is genesis.bool else data
    g, t = genesis.tensor(data), torch.tensor(data)
    for fn in (
        lambda x: x.flip(1),
        lambda x: x.flip([]),
        lambda x: x.tril(1),
        lambda x: x.triu(-1),
        lambda x: x.masked_fill(x == x[0, 0], x[1, 1]),
    ):
        got, expected = fn(g), fn(t)
        assert got.dtype is dtype
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_flip_with_no_dims_is_a_copy():
    x = genesis.arange(4)
    y = x.flip([])
    y[0] = 9
    assert x[0].item() == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda lib, x, b: lib.clamp(x, min=-0.2, max=b),
        lambda lib, x, b: lib.clamp(x, min=b, max=1),
        lambda lib, x, b: lib.clip(x, -0.2, b),
        lambda lib, x, b: x.clamp(b[0], 0.5),
        lambda lib, x, b: (x * 1).clamp_(-0.2, b),
    ],
)
def test_clamp_refuses_a_number_beside_a_tensor_bound_as_torch_does(call):
    bound = rand(3, 4)
    with pytest.raises(TypeError):
        call(torch, torch.tensor(bound), torch.tensor(bound))
    with pytest.raises(TypeError, match="both be tensors or both be numbers"):
        call(genesis, genesis.tensor(bound), genesis.tensor(bound))


def test_clamp_with_one_tensor_bound_and_none_matches_torch():
    check_torch(lambda x, b: x.clamp(min=None, max=b), [rand(3, 4), rand(3, 4)])
    check_torch(lambda x, b: x.clamp(b, None), [rand(3, 4), rand(4)])
