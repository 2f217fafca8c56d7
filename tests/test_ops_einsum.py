"""einsum against PyTorch: values and gradients over the equation forms ported code uses
(products, batches, traces, diagonals, outer products, sums, `...`, implicit outputs,
broadcast size-1 labels, three operands), integers, and compiled against eager."""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_numerical_grad, check_torch

import genesis

RNG = np.random.default_rng(0)

EQUATIONS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("iij->j", [(3, 3, 2)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ij,ij->ij", [(3, 4), (1, 4)]),
    ("ij,kj->", [(3, 4), (2, 1)]),
    ("ba,ab->a", [(3, 4), (4, 3)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i...->...", [(2, 3, 4)]),
    ("...", [(2, 3)]),
    ("b...,b...->b", [(2, 3, 4), (2, 3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 6)]),
    ("i j , j k -> i k", [(2, 3), (3, 2)]),
    ("Ab,bA->A", [(3, 2), (2, 3)]),
    ("ij,jk->ik", [(0, 4), (4, 5)]),
    ("ij,jk->ik", [(3, 0), (0, 5)]),
]
IDS = [f"{eq.replace(' ', '_')}-{'x'.join(str(s) for s in shapes[0])}" for eq, shapes in EQUATIONS]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("equation, shapes", EQUATIONS, ids=IDS)
def test_matches_torch(equation, shapes, dtype):
    inputs = [RNG.standard_normal(shape) for shape in shapes]
    lib = lambda x: genesis if isinstance(x, genesis.Tensor) else torch
    check_torch(lambda *xs: lib(xs[0]).einsum(equation, *xs), inputs, dtype=dtype)


@pytest.mark.parametrize("equation, shapes", EQUATIONS[:24], ids=IDS[:24])
def test_numerical_gradient(equation, shapes):
    inputs = [RNG.standard_normal(shape) for shape in shapes]
    check_numerical_grad(lambda *xs: genesis.einsum(equation, *xs), inputs)


def test_operands_of_different_dtypes_are_refused():
    with pytest.raises(TypeError, match=r"one dtype, got \['float32', 'float64'\]"):
        genesis.einsum("i,i->", genesis.zeros(2), genesis.zeros(2, dtype=genesis.float64))


def test_integers_and_a_list_of_operands():
    a, b = RNG.integers(-5, 5, (3, 4)), RNG.integers(-5, 5, (4, 2))
    got = genesis.einsum("ij,jk->ik", [genesis.tensor(a), genesis.tensor(b)])
    expected = torch.einsum("ij,jk->ik", [torch.tensor(a), torch.tensor(b)])
    assert got.dtype is genesis.int64
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize(
    "equation, shapes, error, message",
    [
        ("ij,jk->ik", [(3, 4)], ValueError, "has 2 operands, 1 were given"),
        ("ij,jk->ik", [(3, 4), (5, 6)], genesis.errors.ShapeError, "'j' has sizes 4 and 5"),
        ("ijk->i", [(3, 4)], genesis.errors.ShapeError, "operand 0 has 2 dims"),
        ("ij->k", [(3, 4)], ValueError, "'k' appears in no operand"),
        ("ij->ii", [(3, 4)], ValueError, "more than once"),
        ("i1->i", [(3, 4)], ValueError, "'1' in subscripts"),
        ("ii->i", [(3, 4)], genesis.errors.ShapeError, "repeated over dims of sizes 3 and 4"),
        ("i....->i", [(3, 4)], ValueError, "malformed"),
    ],
)
def test_bad_equations_are_named(equation, shapes, error, message):
    with pytest.raises(error, match=message):
        genesis.einsum(equation, *[genesis.zeros(shape) for shape in shapes])


@pytest.mark.parametrize("backend", ["numpy", "c", "eager"])
@pytest.mark.parametrize("equation, shapes", [EQUATIONS[i] for i in (2, 3, 4, 15, 21)], ids=lambda v: str(v))
def test_compiled_equals_eager_with_gradients(equation, shapes, backend):
    data = [RNG.standard_normal(shape) for shape in shapes]
    fn = lambda *xs: genesis.einsum(equation, *xs).tanh()
    eager = [genesis.tensor(d, dtype=genesis.float32, requires_grad=True) for d in data]
    compiled = [genesis.tensor(d, dtype=genesis.float32, requires_grad=True) for d in data]
    expected = fn(*eager)
    got = genesis.compile(fn, backend=backend, fullgraph=True)(*compiled)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    cotangent = genesis.tensor(RNG.standard_normal(expected.shape), dtype=genesis.float32)
    (expected * cotangent).sum().backward()
    (got * cotangent).sum().backward()
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-5)
