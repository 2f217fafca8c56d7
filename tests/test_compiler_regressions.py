"""Programs that once compiled to wrong values or crashed: each runs compiled on every CPU backend
and must equal eager, values and gradients (with a fixed random upstream gradient)."""

import numpy as np
import pytest

import genesis

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

BACKENDS = ["c", "numpy", "triton", "eager"]


def leaf(shape, seed, requires_grad=True):
    values = np.random.default_rng(seed).uniform(-2.0, 2.0, shape).astype(np.float32)
    return genesis.tensor(values, requires_grad=requires_grad)


def assert_compiled_matches_eager(fn, shapes, backend, grad=True, rtol=1e-5, atol=1e-6):
    eager_args = [leaf(shape, seed, grad) for seed, shape in enumerate(shapes)]
    fused_args = [leaf(shape, seed, grad) for seed, shape in enumerate(shapes)]
    expected = fn(*eager_args)
    got = genesis.compile(fn, backend=backend)(*fused_args)
    assert got.shape == expected.shape and got.dtype is expected.dtype
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)
    if grad:
        upstream = leaf(expected.shape, 99, requires_grad=False)
        (expected * upstream).sum().backward()
        (got * upstream).sum().backward()
        for e, g in zip(eager_args, fused_args):
            np.testing.assert_allclose(g.grad.numpy(), e.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reshape_that_broadcasts_differently_from_its_source(backend):
    # C read x.unsqueeze(2) at x's own position in the loop: off by up to 2.0
    assert_compiled_matches_eager(lambda x: x + x.unsqueeze(2), [(1, 3, 1)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_row_sum_plus_a_vector_over_merged_leading_dims(backend):
    # the vector varies along a merged dim: a numpy broadcast error inside the kernel
    assert_compiled_matches_eager(lambda a, b: a.sum(-1) + b, [(4, 3, 8), (3,)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_mean_times_the_tensor_with_its_gradient(backend):
    # the backward has a 0-d group holding a reshape: the numpy kernel had no form for it
    assert_compiled_matches_eager(lambda x: x.mean() * x, [(4,)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_permute_times_the_tensor_with_its_gradient(backend):
    # the backward sums over a middle dim of merged rows, reading a whole operand with leading 1s
    assert_compiled_matches_eager(lambda x: x.permute(2, 0, 1, 3) * x, [(1, 1, 5, 4)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reductions_with_keepdim_over_size_one_dims(backend):
    assert_compiled_matches_eager(lambda x: x.sum(dim=(1, 3), keepdim=True) * x + x.amax(1, keepdim=True),
                                  [(2, 1, 3, 1)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_maximum_with_a_single_element_feeding_a_matmul(backend):
    assert_compiled_matches_eager(lambda a, b: genesis.maximum(a, b) @ a, [(2, 3, 4, 4), (1, 1, 1, 1)], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_with_a_zero_dim_base(backend):
    assert_compiled_matches_eager(lambda a, b: a.abs() ** b, [(), (3,)], backend)
