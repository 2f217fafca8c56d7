"""Rounding, other-base logarithms, nan_to_num, closeness and lerp against PyTorch."""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_torch, make_pair

import genesis

RNG = np.random.default_rng(0)
X = RNG.uniform(-4, 4, (3, 5))
TIES = np.array([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49999997, -0.49999997, 1e20, 7.0])
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.25, -1.25, 2.5])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["round", "trunc", "frac"])
def test_rounding_matches_torch(name, dtype):
    for values in (X, TIES, SPECIAL):
        check_torch(lambda x: getattr(x, name)(), [values], dtype=dtype)
        check_torch(
            lambda x: getattr(genesis if isinstance(x, genesis.Tensor) else torch, name)(x), [values], dtype=dtype
        )


@pytest.mark.parametrize("decimals", [1, 2, -1, -2])
def test_round_decimals(decimals):
    values = np.concatenate([X.ravel() * 37, [0.125, 0.135, 2.5, 15.0, 25.0, 150.0]])
    check_torch(lambda x: x.round(decimals=decimals), [values], dtype=genesis.float64)
    check_torch(lambda x: x.round(decimals=decimals), [values], dtype=genesis.float32)


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32])
def test_round_and_trunc_keep_integers(dtype):
    values = np.array([-3, 0, 7, 12])
    check_torch(lambda x: x.round(), [values], dtype=dtype)
    check_torch(lambda x: x.trunc(), [values], dtype=dtype)


def test_frac_refuses_integers():
    with pytest.raises(TypeError, match="floating-point"):
        genesis.tensor([1, 2]).frac()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["log2", "log10", "exp2"])
def test_other_bases(name, dtype):
    values = np.abs(X) + 0.1 if name != "exp2" else X
    check_torch(lambda x: getattr(x, name)(), [values], dtype=dtype)
    check_torch(lambda x: getattr(x, name)(), [np.array([1.0, 2.0, 8.0, 1024.0, 0.0, np.inf])], dtype=dtype, grad=False)


def test_other_bases_of_integers_are_float():
    check_torch(lambda x: x.log2(), [np.array([1, 2, 8, 1024])], dtype=genesis.int64)
    check_torch(lambda x: x.exp2(), [np.array([0, 3, -2])], dtype=genesis.int64)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_to_num(dtype):
    check_torch(lambda x: x.nan_to_num(), [SPECIAL], dtype=dtype)
    check_torch(lambda x: x.nan_to_num(nan=1.5, posinf=9.0, neginf=-9.0), [SPECIAL], dtype=dtype)
    check_torch(lambda x: x.nan_to_num(posinf=3.0), [SPECIAL], dtype=dtype)


def test_nan_to_num_in_place_and_integers():
    g, t = make_pair(SPECIAL, genesis.float32, False)
    g.nan_to_num_(nan=-1.0)
    t.nan_to_num_(nan=-1.0)
    np.testing.assert_array_equal(g.numpy(), t.numpy())
    check_torch(lambda x: x.nan_to_num(), [np.array([1, -2, 3])], dtype=genesis.int64)


@pytest.mark.parametrize("equal_nan", [False, True])
def test_isclose_allclose_equal(equal_nan):
    a = np.array([1.0, 1.0 + 1e-6, 1.0 + 1e-3, np.nan, np.inf, -np.inf, np.inf, 0.0])
    b = np.array([1.0, 1.0, 1.0, np.nan, np.inf, np.inf, 1e300, 1e-9])
    for rtol, atol in ((1e-5, 1e-8), (1e-2, 0.0), (0.0, 1e-8)):
        check_torch(lambda x, y: x.isclose(y, rtol=rtol, atol=atol, equal_nan=equal_nan), [a, b], dtype=genesis.float64)
        ga, ta = make_pair(a[:3], genesis.float64, False)
        gb, tb = make_pair(b[:3], genesis.float64, False)
        assert ga.allclose(gb, rtol, atol) is torch.allclose(ta, tb, rtol, atol)
    ga, gb = genesis.tensor(a), genesis.tensor(b)
    assert genesis.allclose(ga, ga, equal_nan=True) and not genesis.allclose(ga, ga)
    assert genesis.equal(gb, gb.clone()) is False  # NaN != NaN, as in torch.equal
    assert genesis.equal(ga[:3], ga[:3].clone()) and not genesis.equal(ga, gb) and not genesis.equal(ga, ga[:2])


def test_isclose_integers():
    check_torch(
        lambda x, y: x.isclose(y, rtol=0.1, atol=1),
        [np.array([10, 20, 30, 0]), np.array([11, 23, 30, 1])],
        dtype=genesis.int64,
    )


def test_isclose_refuses_mixed_dtypes():
    with pytest.raises(TypeError, match="same dtype"):
        genesis.tensor([1.0]).isclose(genesis.tensor([1.0], dtype=genesis.float64))


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
def test_lerp(dtype):
    start, end, weight = X, RNG.uniform(-1, 1, (3, 5)), RNG.uniform(0, 1, (5,))
    check_torch(lambda a, b, w: a.lerp(b, w), [start, end, weight], dtype=dtype)
    check_torch(lambda a, b: a.lerp(b, 0.3), [start, end], dtype=dtype)
    check_torch(
        lambda a, b: torch.lerp(a, b, 0.75) if isinstance(a, torch.Tensor) else genesis.lerp(a, b, 0.75),
        [start, end],
        dtype=dtype,
    )


def test_empty_and_zero_dim():
    for name in ("round", "trunc", "frac", "log2", "exp2", "nan_to_num"):
        check_torch(lambda x: getattr(x, name)(), [np.zeros((0, 3))])
        check_torch(lambda x: getattr(x, name)(), [np.array(2.5)])
