"""scatter, scatter_reduce, the index_* writes, masked_scatter and the index reads against PyTorch."""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_torch, make_pair

import genesis
from genesis.errors import ShapeError

RNG = np.random.default_rng(3)
X = RNG.standard_normal((4, 5))
INDEX = np.array([[0, 1, 2, 0, 3], [3, 2, 0, 1, 1]])  # repeats within columns
UNIQUE_ROWS = np.array([[2, 0, 1, 3, 0], [1, 3, 3, 2, 2]])  # no repeat within a column


def test_scatter_with_src_and_value():
    src = RNG.standard_normal((2, 5))
    check_torch(lambda x, i, s: x.scatter(0, i, s), [X, UNIQUE_ROWS, src], int_inputs=(1,))
    check_torch(lambda x, i: x.scatter(0, i, 2.5), [X, UNIQUE_ROWS])
    check_torch(lambda x, i, s: x.scatter(1, i, s), [X, np.array([[4, 0], [1, 2]]), RNG.standard_normal((2, 2))])
    # a src larger than the index: its corner is used (PyTorch's own backward refuses this case)
    check_torch(
        lambda x, i, s: x.scatter(1, i, s), [X, np.array([[4, 0], [1, 2]]), RNG.standard_normal((3, 3))], grad=False
    )
    check_torch(lambda x, i, s: x.scatter(-1, i, s), [X, np.array([[4, 0]]), src[:1, :2]])
    check_torch(
        lambda x, i, s: x.scatter(0, i, s),
        [np.array([[1, 2], [3, 4]]), np.array([[1, 0]]), np.array([[9, 8]])],
        dtype=genesis.int64,
    )
    check_torch(lambda x, i, s: x.scatter(0, i, s), [X, np.zeros((0, 5), dtype=np.int64), src], grad=False)


@pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")
@pytest.mark.parametrize("reduce", ["add", "multiply"])
def test_scatter_legacy_reduce(reduce):
    check_torch(lambda x, i, s: x.scatter(0, i, s, reduce=reduce), [X, INDEX, RNG.standard_normal((2, 5))], grad=False)


def test_scatter_in_place_forms():
    for method, args in (("scatter_", (0.5,)), ("scatter_add_", ()), ("scatter_reduce_", ("amax",))):
        g, t = make_pair(X, genesis.float32, False)
        src = RNG.standard_normal((2, 5))
        extra = args if args and not isinstance(args[0], str) else (genesis.tensor(src, dtype=genesis.float32),) + args
        t_extra = args if args and not isinstance(args[0], str) else (torch.tensor(src, dtype=torch.float32),) + args
        if method == "scatter_add_":
            extra, t_extra = (genesis.tensor(src, dtype=genesis.float32),), (torch.tensor(src, dtype=torch.float32),)
        getattr(g, method)(0, genesis.tensor(INDEX), *extra)
        getattr(t, method)(0, torch.tensor(INDEX), *t_extra)
        np.testing.assert_allclose(g.numpy(), t.numpy(), rtol=1e-6, err_msg=method)


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("reduce", ["sum", "prod", "mean", "amax", "amin"])
def test_scatter_reduce(reduce, include_self):
    src = RNG.standard_normal((2, 5))
    check_torch(
        lambda x, i, s: x.scatter_reduce(0, i, s, reduce, include_self=include_self),
        [X, INDEX, src],
        dtype=genesis.float64,
    )
    check_torch(
        lambda x, i, s: x.scatter_reduce(1, i, s, reduce, include_self=include_self),
        [X, np.array([[1, 1, 0], [4, 4, 4]]), RNG.standard_normal((2, 3))],
        dtype=genesis.float64,
    )
    ints = RNG.integers(-5, 6, (4, 5))
    check_torch(
        lambda x, i, s: x.scatter_reduce(0, i, s, reduce, include_self=include_self),
        [ints, INDEX, RNG.integers(-5, 6, (2, 5))],
        dtype=genesis.int64,
    )


@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_gradients_at_ties_and_zeros(include_self):
    x = np.array([[1.0, 2, 0, 4], [3, 0, 5, 4]])
    src = np.array([[3.0, 0, 0, 4], [1, 2, 5, 1]])
    index = np.array([[0, 0, 0, 1], [0, 1, 1, 1]])
    if not include_self:
        # PyTorch still counts an excluded self equal to the result when it shares the gradient (so the
        # shares do not sum to the gradient); genesis does not. Keep self apart from the results here.
        x = x + 0.5
    for reduce in ("amax", "amin", "prod"):
        check_torch(
            lambda x, i, s: x.scatter_reduce(0, i, s, reduce, include_self=include_self),
            [x, index, src],
            dtype=genesis.float64,
        )


def test_scatter_errors():
    x = genesis.tensor(X)
    with pytest.raises(ValueError, match="reduce"):
        x.scatter_reduce(0, genesis.tensor(INDEX), x[:2], "max")
    with pytest.raises(TypeError, match="integer index"):
        x.scatter(0, genesis.tensor(INDEX).float(), x[:2])
    with pytest.raises(IndexError, match="negative"):
        x.scatter(0, genesis.tensor([[-1, 0, 0, 0, 0]]), x[:1])
    with pytest.raises(TypeError, match="dtype"):
        x.scatter(0, genesis.tensor(INDEX), x[:2].float())


def test_index_add_copy_fill():
    index = np.array([3, 0, 3])
    source = RNG.standard_normal((3, 5))
    check_torch(lambda x, i, s: x.index_add(0, i, s), [X, index, source])
    check_torch(lambda x, i, s: x.index_add(0, i, s, alpha=-2.0), [X, index, source])
    check_torch(lambda x, i, s: x.index_add(-1, i, s), [X, np.array([4, 1]), RNG.standard_normal((4, 2))])
    check_torch(lambda x, i, s: x.index_copy(0, i, s), [X, np.array([3, 0, 1]), source])
    check_torch(lambda x, i, s: x.index_copy(1, i, s), [X, np.array([4, 2]), RNG.standard_normal((4, 2))])
    check_torch(lambda x, i: x.index_fill(1, i, -1.5), [X, np.array([0, 3, 3])])
    check_torch(lambda x, i, v: x.index_fill(0, i, v), [X, np.array([2]), np.array(7.0)])
    check_torch(
        lambda x, i, s: x.index_add(0, i, s),
        [np.arange(6).reshape(3, 2), np.array([1, 1]), np.ones((2, 2), dtype=np.int64)],
        dtype=genesis.int64,
    )
    check_torch(lambda x, i, s: x.index_add(0, i, s), [X, np.zeros(0, dtype=np.int64), np.zeros((0, 5))])
    with pytest.raises(ShapeError, match="index_add"):
        genesis.tensor(X).index_add(0, genesis.tensor([0, 1]), genesis.ones(3, 5, dtype=genesis.float64))


def test_index_in_place_forms():
    g, t = make_pair(X, genesis.float32, False)
    g.index_add_(0, genesis.tensor([1, 1]), genesis.ones(2, 5))
    t.index_add_(0, torch.tensor([1, 1]), torch.ones(2, 5))
    g.index_fill_(1, genesis.tensor([0]), 3.0)
    t.index_fill_(1, torch.tensor([0]), 3.0)
    g.index_copy_(0, genesis.tensor([2]), genesis.zeros(1, 5))
    t.index_copy_(0, torch.tensor([2]), torch.zeros(1, 5))
    np.testing.assert_allclose(g.numpy(), t.numpy(), rtol=1e-6)


def test_masked_scatter_and_select():
    mask = RNG.uniform(size=(4, 5)) > 0.5
    source = RNG.standard_normal((5, 5))
    check_torch(lambda x, m, s: x.masked_scatter(m, s), [X, mask, source])
    check_torch(lambda x, m, s: x.masked_scatter(m, s), [X, mask[:1], source])  # a broadcast mask
    check_torch(lambda x, m, s: x.masked_scatter(m, s), [X, np.zeros((4, 5), bool), np.zeros((0,))], grad=False)
    check_torch(lambda x, m: x.masked_select(m), [X, mask])
    check_torch(lambda x, m: x.masked_select(m), [X[:1], mask])  # x broadcast to the mask
    check_torch(
        lambda x, m: x.masked_select(m), [np.arange(4), np.array([True, False, True, True])], dtype=genesis.int64
    )
    with pytest.raises(ShapeError, match="selects"):
        genesis.tensor(X).masked_scatter(genesis.tensor(np.ones((4, 5), bool)), genesis.ones(3, dtype=genesis.float64))
    g, t = make_pair(X, genesis.float32, False)
    g.masked_scatter_(genesis.tensor(mask), genesis.tensor(source, dtype=genesis.float32))
    t.masked_scatter_(torch.tensor(mask), torch.tensor(source, dtype=torch.float32))
    np.testing.assert_allclose(g.numpy(), t.numpy())


def test_take_take_along_dim_argwhere():
    check_torch(lambda x, i: x.take(i), [X, np.array([[0, 19], [-1, 7]])])
    check_torch(lambda x, i: x.take(i), [X, np.array(3)])
    order = np.argsort(X, axis=1)
    check_torch(lambda x, i: x.take_along_dim(i, 1), [X, order])
    check_torch(lambda x, i: x.take_along_dim(i, dim=0), [X, np.argsort(X, axis=0)[:2]])
    check_torch(lambda x, i: x.take_along_dim(i, 1), [X, order[:1]])  # indices broadcast over rows
    check_torch(lambda x, i: x.take_along_dim(i), [X, np.array([3, 0, 19])])
    check_torch(lambda x: x.argwhere(), [np.array([[0.0, 1.5], [np.nan, 0.0]])], grad=False)
    check_torch(lambda x: x.argwhere(), [np.array(3.0)], grad=False)
    check_torch(
        lambda x: (genesis if isinstance(x, genesis.Tensor) else torch).argwhere(x),
        [np.array([0, 2, 0, 1])],
        dtype=genesis.int64,
    )


def test_writes_into_a_zero_dim_tensor():
    one = np.array(1.5)
    check_torch(lambda x, i: x.scatter(0, i, 5.0), [one, np.array(0)])
    check_torch(lambda x, i, s: x.scatter_reduce(0, i, s, "amax"), [one, np.array(0), np.array(3.0)])
    check_torch(lambda x, i, s: x.index_add(0, i, s), [one, np.array([0]), np.array(3.0)])
    check_torch(lambda x, i, s: x.index_copy(0, i, s), [one, np.array([0]), np.array(3.0)])
    check_torch(lambda x, i: x.index_fill(0, i, -2.0), [one, np.array([0])])
    check_torch(lambda x, m, s: x.masked_scatter(m, s), [one, np.array(True), np.array([4.0])])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_low_precision_and_double(dtype):
    src = RNG.standard_normal((2, 5))
    for reduce in ("sum", "prod", "mean", "amax", "amin"):
        check_torch(lambda x, i, s: x.scatter_reduce(0, i, s, reduce), [X, INDEX, src], dtype=dtype)
    check_torch(lambda x, i, s: x.scatter(0, i, s), [X, UNIQUE_ROWS, src], dtype=dtype)
    check_torch(lambda x, i, s: x.index_add(0, i, s), [X, np.array([1, 1]), src], dtype=dtype)
    check_torch(lambda x, s: x.masked_scatter(x > 0, s), [X, RNG.standard_normal(20)], dtype=dtype)
