"""Norms, the scaled products (addmm, baddbmm, addmv, mv, outer), cross, diag, diagonal, trace and the
softmax methods against PyTorch."""

import math

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_numerical_grad, check_torch

import genesis
from genesis.errors import ShapeError

RNG = np.random.default_rng(2)
X = RNG.standard_normal((3, 4, 5))


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, math.inf, -math.inf, 0, "fro"])
def test_norm(p):
    for dim, keepdim in ((None, False), (1, False), (-1, True), ((0, 2), False)):
        check_torch(lambda x: x.norm(p, dim, keepdim), [X], grad=p != 0)
    check_torch(lambda x: x.norm(p), [np.array(-2.5)], grad=p != 0)


def test_norm_gradient_at_zero_is_zero():
    for p in (2, 3, "fro"):
        check_torch(lambda x: x.norm(p, dim=1), [np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])])
    check_numerical_grad(lambda x: x.norm(2.5, dim=1), [RNG.standard_normal((2, 3))])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_vector_norm_dtypes(dtype):
    check_torch(
        lambda x: (genesis if isinstance(x, genesis.Tensor) else torch).linalg.vector_norm(x, 2, 1), [X], dtype=dtype
    )
    check_torch(lambda x: genesis.norm(x, 1) if isinstance(x, genesis.Tensor) else torch.norm(x, 1), [X], dtype=dtype)


def test_norm_refuses_integers_and_matrix_norms():
    with pytest.raises(TypeError, match="floating-point"):
        genesis.tensor([1, 2]).norm()
    with pytest.raises(ValueError, match="matrix norm"):
        genesis.tensor(X).norm("nuc")


@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0), (0, 1.5)])
def test_scaled_products(beta, alpha):
    m, a, b = RNG.standard_normal((3, 5)), RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))
    check_torch(lambda m, a, b: m.addmm(a, b, beta=beta, alpha=alpha), [m, a, b])
    check_torch(lambda m, a, b: m.addmm(a, b, beta=beta, alpha=alpha), [m[0], a, b])  # a broadcast input
    batch = RNG.standard_normal((2, 3, 5)), RNG.standard_normal((2, 3, 4)), RNG.standard_normal((2, 4, 5))
    check_torch(lambda m, a, b: m.baddbmm(a, b, beta=beta, alpha=alpha), list(batch))
    check_torch(lambda v, m, w: v.addmv(m, w, beta=beta, alpha=alpha), [m[:, 0], a, b[:, 0]])
    check_torch(
        lambda m, a, b: (genesis if isinstance(m, genesis.Tensor) else torch).addmm(m, a, b, beta=beta, alpha=alpha),
        [m, a, b],
    )


def test_beta_zero_ignores_nan_in_input():
    nan = np.full((3, 5), np.nan)
    check_torch(lambda m, a, b: m.addmm(a, b, beta=0), [nan, RNG.standard_normal((3, 4)), RNG.standard_normal((4, 5))])


def test_mv_outer_and_shape_errors():
    check_torch(lambda m, v: m.mv(v), [RNG.standard_normal((3, 4)), RNG.standard_normal(4)])
    check_torch(lambda a, b: a.outer(b), [RNG.standard_normal(3), RNG.standard_normal(4)])
    check_torch(lambda m, v: m.mv(v), [np.array([[1, 2], [3, 4]]), np.array([1, -1])], dtype=genesis.int64)
    with pytest.raises(ShapeError, match="mv"):
        genesis.ones(3, 4).mv(genesis.ones(4, 1))
    with pytest.raises(ShapeError, match="addmm"):
        genesis.ones(2, 2).addmm(genesis.ones(3, 4), genesis.ones(4, 5))


def test_cross():
    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))
    check_torch(lambda a, b: a.cross(b, dim=1), [a, b])
    check_torch(lambda a, b: a.cross(b, dim=0), [a.T.copy(), b.T.copy()])
    check_torch(lambda a, b: a.cross(b, dim=-1), [a, b[:1]])  # broadcast
    check_torch(lambda a, b: (genesis if isinstance(a, genesis.Tensor) else torch).linalg.cross(a, b), [a, b])
    check_torch(lambda a, b: a.cross(b, dim=1), [np.array([[1, 0, 0]]), np.array([[0, 1, 0]])], dtype=genesis.int64)
    with pytest.warns(UserWarning, match="dim"):
        genesis.tensor(a).cross(genesis.tensor(b))
    with pytest.raises(ShapeError, match="size 3"):
        genesis.ones(2, 4).cross(genesis.ones(2, 4), dim=1)


@pytest.mark.parametrize("offset", [0, 1, 2, -1, -3, 7])
def test_diagonal_and_diag(offset):
    check_torch(lambda x: x.diagonal(offset), [X[0]])
    check_torch(lambda x: x.diagonal(offset, 0, 2), [X])
    check_torch(lambda x: x.diagonal(offset, -1, 1), [X])
    check_torch(lambda x: x.diag(offset), [X[0]])
    check_torch(lambda v: v.diag(offset), [RNG.standard_normal(4)])
    check_torch(lambda v: v.diag(offset), [np.array([1, 2, 3])], dtype=genesis.int64)
    check_torch(lambda x: (genesis if isinstance(x, genesis.Tensor) else torch).linalg.diagonal(x, offset=offset), [X])


def test_trace():
    check_torch(lambda x: x.trace(), [X[0]])
    check_torch(lambda x: x.trace(), [X[:, :, 0]])
    check_torch(lambda x: x.trace(), [np.arange(12).reshape(3, 4)], dtype=genesis.int32)
    check_torch(lambda x: x.trace(), [np.zeros((0, 3))])
    with pytest.raises(ShapeError, match="2-D"):
        genesis.ones(3).trace()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_methods(name, dtype):
    check_torch(lambda x: getattr(x, name)(-1), [X], dtype=dtype)
    check_torch(lambda x: getattr(x, name)(dim=0), [X], dtype=dtype)
    check_torch(
        lambda x: getattr(x, name)(1, dtype=torch.float64 if isinstance(x, torch.Tensor) else genesis.float64),
        [X],
        dtype=dtype,
    )
    check_torch(lambda x: getattr(genesis if isinstance(x, genesis.Tensor) else torch, name)(x, 1), [X], dtype=dtype)
    check_torch(lambda x: getattr(x, name)(0), [np.array(1.5)], dtype=dtype)


def _double_the_diagonal(x, offset):
    y = x * 1
    y.diagonal(offset).mul_(2)
    return y


@pytest.mark.parametrize("offset", [0, 1, -2])
def test_writes_into_the_diagonal_reach_the_tensor(offset):
    check_torch(lambda x: _double_the_diagonal(x, offset), [X[0]])
    g, t = genesis.zeros(3, 4), torch.zeros(3, 4)
    g.diagonal(offset).fill_(7.0)
    t.diagonal(offset).fill_(7.0)
    np.testing.assert_array_equal(g.numpy(), t.numpy())
