"""median, mode, quantile, the nan* reductions, count_nonzero and the composite scans against PyTorch."""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_numerical_grad, check_torch

import genesis

RNG = np.random.default_rng(1)
X = RNG.standard_normal((4, 7))
TIES = np.array([[3.0, 1, 3, 1, 2, 2], [5, 5, 4, 4, 4, 1], [0, 0, 0, 0, 0, 0]])
WITH_NAN = np.array([[1.0, np.nan, 2, 5, 4, np.nan], [3, 1, 2, 0, 6, 5], [np.nan] * 6])


def _same_picks(g_out, t_out, x):
    """Values equal torch's, and each index points at an element holding that value."""
    np.testing.assert_array_equal(g_out.values.numpy(), t_out.values.numpy())
    picked = np.take_along_axis(x, np.expand_dims(g_out.indices.numpy(), -1), -1)[..., 0]
    np.testing.assert_array_equal(picked, g_out.values.numpy())


@pytest.mark.parametrize("name", ["median", "nanmedian"])
def test_median(name):
    for values in (X, TIES, WITH_NAN[:2]):
        for keepdim in (False, True):
            check_torch(lambda x: getattr(x, name)(-1, keepdim=keepdim), [values], grad=not np.isnan(values).any())
        check_torch(lambda x: getattr(x, name)(), [values], grad=False)
        check_torch(lambda x: getattr(x, name)(0), [values], grad=False)
    check_torch(lambda x: getattr(x, name)(0), [np.array(2.5)])
    check_torch(lambda x: getattr(x, name)(), [np.zeros((0,))], grad=False)
    # a row of NaNs: PyTorch leaves which NaN's position is returned open
    x = WITH_NAN.astype(np.float32)
    _same_picks(getattr(genesis.tensor(x), name)(1), getattr(torch.tensor(x), name)(1), x)


def test_median_gradient_and_indices_on_ties():
    check_torch(lambda x: x.median(1).values, [X], dtype=genesis.float64)
    x = TIES.astype(np.float32)
    out = genesis.tensor(x).median(1)
    _same_picks(out, torch.tensor(x).median(1), x)
    np.testing.assert_array_equal(out.indices.numpy(), torch.tensor(x).median(1).indices.numpy())


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32])
def test_median_and_mode_of_integers(dtype):
    values = np.array([[3, 1, 3, 1, 2], [5, 5, 4, 4, 4], [-1, 7, 7, -1, 0]])
    check_torch(lambda x: x.median(1), [values], dtype=dtype)
    check_torch(lambda x: x.mode(1), [values], dtype=dtype)
    check_torch(lambda x: x.median(), [values], dtype=dtype)


def test_mode():
    for values in (TIES, np.round(X * 2)):
        check_torch(lambda x: x.mode(), [values])
        check_torch(lambda x: x.mode(0, keepdim=True), [values])
        check_torch(lambda x: genesis.mode(x, -1) if isinstance(x, genesis.Tensor) else torch.mode(x, -1), [values])
    check_torch(lambda x: x.mode(), [np.array(4.0)])


QS = [0.0, 0.25, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("interpolation", ["linear", "lower", "higher", "midpoint", "nearest"])
@pytest.mark.parametrize("name", ["quantile", "nanquantile"])
def test_quantile(name, interpolation):
    q = np.array(QS)
    for values in (X, TIES, WITH_NAN):
        grad = values is X  # among ties, which one takes the gradient depends on the sort PyTorch runs
        for dim, keepdim in ((1, False), (0, True), (-1, True), (None, False), (None, True)):
            check_torch(
                lambda x, q: getattr(x, name)(q, dim, keepdim, interpolation=interpolation),
                [values, q],
                grad=grad,
                dtype=genesis.float64,
            )
        check_torch(lambda x: getattr(x, name)(0.3, 1, interpolation=interpolation), [values], grad=grad)
        check_torch(lambda x, q: getattr(x, name)(q, interpolation=interpolation), [values, np.array(0.7)], grad=grad)


def test_quantile_errors():
    x = genesis.tensor(X)
    with pytest.raises(ValueError, match="range"):
        x.quantile(1.5)
    with pytest.raises(ValueError, match="interpolation"):
        x.quantile(0.5, interpolation="cubic")
    with pytest.raises(TypeError, match="floating-point"):
        genesis.tensor([1, 2]).quantile(0.5)
    with pytest.raises(TypeError, match="dtype"):
        x.float().quantile(genesis.tensor([0.5], dtype=genesis.float64))


@pytest.mark.parametrize("name", ["nansum", "nanmean"])
def test_nan_reductions(name):
    for values in (X, WITH_NAN[:2]):
        check_torch(lambda x: getattr(x, name)(), [values])
        check_torch(lambda x: getattr(x, name)(1), [values])
        check_torch(lambda x: getattr(x, name)((0, 1), keepdim=True), [values])
    # a row of NaNs: the value is 0 (nansum) or NaN (nanmean); PyTorch's gradient there is NaN, genesis's 0
    check_torch(lambda x: getattr(x, name)(1), [WITH_NAN], grad=False)
    check_torch(lambda x: getattr(x, name)(), [np.zeros((0, 2))])


def test_nansum_of_integers():
    check_torch(lambda x: x.nansum(0), [np.array([[1, 2], [3, 4]])], dtype=genesis.int64)


def test_count_nonzero():
    values = np.array([[0.0, 1, np.nan], [0, 0, -2]])
    check_torch(lambda x: x.count_nonzero(), [values], grad=False)
    check_torch(lambda x: x.count_nonzero(1), [values], grad=False)
    check_torch(lambda x: x.count_nonzero((0, 1)), [values], grad=False)
    check_torch(lambda x: x.count_nonzero(0), [np.array([[0, 3], [0, 0]])], dtype=genesis.int64)


@pytest.mark.parametrize("name", ["cummax", "cummin"])
def test_cummax_cummin(name):
    ties = np.array([[1.0, 1, 0, 2, np.nan, 3, np.nan, 0], [2, 2, 2, 1, 1, 3, 3, 0]])
    for values in (X, ties, RNG.integers(-3, 3, (3, 9)).astype(np.float64)):
        for dim in (0, 1, -1):
            check_torch(lambda x: getattr(x, name)(dim), [values], grad=not np.isnan(values).any())
    check_torch(lambda x: getattr(x, name)(0), [np.array([[2, 5, 1, 5]]).T], dtype=genesis.int64)
    check_torch(lambda x: getattr(x, name)(0), [np.array(1.5)])
    check_torch(lambda x: getattr(x, name)(1), [np.zeros((2, 0))])


def test_logcumsumexp():
    wide = np.array([[-1000.0, 0, 1000, -np.inf, 3], [np.inf, 1, 2, 3, 4], [-np.inf] * 5])
    for values in (X, X * 50):
        check_torch(lambda x: x.logcumsumexp(1), [values])
        check_torch(lambda x: x.logcumsumexp(0), [values], dtype=genesis.float64)
    check_torch(lambda x: x.logcumsumexp(-1), [wide], dtype=genesis.float64, grad=False)
    check_torch(lambda x: x.logcumsumexp(0), [np.array(0.5)])
    check_numerical_grad(lambda x: x.logcumsumexp(1), [X])


def test_diff():
    check_torch(lambda x: x.diff(), [X])
    check_torch(lambda x: x.diff(n=2, dim=0), [X])
    check_torch(lambda x: x.diff(n=3, dim=1), [X])
    check_torch(lambda x, p, a: x.diff(dim=1, prepend=p, append=a), [X, X[:, :2], X[:, :1]])
    check_torch(lambda x, p: x.diff(dim=0, prepend=p), [X, X[:1]])
    check_torch(lambda x: x.diff(), [np.array([3, 1, 4, 1, 5])], dtype=genesis.int64)
    check_torch(lambda x: x.diff(), [np.array([True, False, False, True])], dtype=genesis.bool)
    check_torch(lambda x: x.diff(n=5), [np.array([1.0, 2.0])])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_low_precision_and_double(dtype):
    values = RNG.standard_normal((3, 6))
    for fn in (
        lambda x: x.median(1),
        lambda x: x.mode(1),
        lambda x: x.cummax(1),
        lambda x: x.cummin(0),
        lambda x: x.logcumsumexp(1),
        lambda x: x.nansum(1),
        lambda x: x.nanmean(1),
        lambda x: x.diff(),
    ):
        check_torch(fn, [values], dtype=dtype)
