"""sort, argsort, topk, kthvalue, cumsum and cumprod against PyTorch, eagerly and compiled.

Values are distinct in every dtype (a permutation of small integers, exact even in
bfloat16), so the positions are defined; ties get rows of their own with
`stable=True`, where PyTorch defines the order. Gradients go through the same
random cotangent in both (optest.check_torch); cumprod's also with zeros in the
input, and against central differences (a product is smooth at zero).
"""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, check_numerical_grad, check_torch, make_pair

import genesis

RNG = np.random.default_rng(0)
SHAPE = (3, 4, 5)


def distinct(*shape):
    """Distinct small integers as floats: no ties in any dtype, bfloat16 included."""
    count = int(np.prod(shape))
    return (RNG.permutation(count) - count // 2).reshape(shape).astype(np.float64)


def with_ties(*shape):
    return RNG.integers(-2, 3, shape).astype(np.float64)


def near_one(*shape):
    return RNG.choice([-1.0, 1.0], shape) * RNG.uniform(0.5, 1.5, shape)


def lib(x):
    return genesis if isinstance(x, genesis.Tensor) else torch


SORTS = {
    "sort_last": lambda x: x.sort(),
    "sort_dim0_descending": lambda x: x.sort(dim=0, descending=True),
    "sort_negative_dim": lambda x: lib(x).sort(x, dim=-2, descending=False),
    "argsort": lambda x: x.argsort(dim=1, descending=True),
    "topk_largest": lambda x: x.topk(3, dim=-1),
    "topk_smallest_dim1": lambda x: lib(x).topk(x, 2, dim=1, largest=False),
    "topk_all": lambda x: x.topk(5),
    "topk_zero": lambda x: x.topk(0, dim=0),
    "kthvalue": lambda x: x.kthvalue(2, dim=-1),
    "kthvalue_keepdim_dim0": lambda x: lib(x).kthvalue(x, 3, dim=0, keepdim=True),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(SORTS))
def test_sorting_matches_torch(name, dtype):
    check_torch(SORTS[name], [distinct(*SHAPE)], dtype=dtype)


@pytest.mark.parametrize("name", ["sort_last", "sort_dim0_descending", "kthvalue", "cumsum_0", "cumprod_1"])
def test_strided_inputs(name):
    fn = {**SORTS, **SCANS}[name]
    check_torch(fn, [distinct(4, 6) / 10 if name.startswith("cum") else distinct(4, 6)], non_contiguous=True)


@pytest.mark.parametrize("name", sorted(set(SORTS) - {"argsort"}))  # positions have no gradient
def test_sorting_numerical_gradient(name):
    fn = SORTS[name]
    check_numerical_grad(lambda x: fn(x)[0], [distinct(*SHAPE) / 7])


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32, genesis.uint8], ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["sort_last", "sort_dim0_descending", "topk_largest", "kthvalue", "argsort"])
def test_sorting_integers(name, dtype):
    data = (distinct(*SHAPE) + 30).astype(np.int64)  # non-negative, for uint8
    # check_torch makes the integer input `dtype` and compares the dtypes too: values keep the input's,
    # indices are int64
    out = check_torch(SORTS[name], [data], int_inputs=(0,), dtype=dtype, grad=False)
    values = out if name == "argsort" else out[0]
    assert values.dtype is (genesis.int64 if name == "argsort" else dtype)


def _pair(data, dtype):
    return make_pair(data, dtype, False)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", [genesis.float32, genesis.int64, genesis.bool], ids=lambda d: d.name)
def test_stable_sort_keeps_the_order_of_ties(descending, dtype):
    g, t = _pair(with_ties(4, 9) > 0 if dtype is genesis.bool else with_ties(4, 9), dtype)
    got = genesis.sort(g, dim=1, descending=descending, stable=True)
    expected = torch.sort(t, dim=1, descending=descending, stable=True)
    np.testing.assert_array_equal(got.indices.numpy(), expected.indices.numpy())
    np.testing.assert_array_equal(got.values.numpy(), expected.values.numpy())
    assert got.indices.dtype is genesis.int64
    np.testing.assert_array_equal(
        g.argsort(dim=1, descending=descending, stable=True).numpy(),
        torch.argsort(t, dim=1, descending=descending, stable=True).numpy(),
    )


def test_nan_sorts_above_every_number():
    data = np.array([[2.0, np.nan, -1.0, 5.0], [np.nan, 0.0, 3.0, np.nan]])
    g, t = genesis.tensor(data), torch.tensor(data)
    for descending in (False, True):
        got, expected = g.sort(descending=descending, stable=True), t.sort(descending=descending, stable=True)
        np.testing.assert_array_equal(got.indices.numpy(), expected.indices.numpy())
        np.testing.assert_array_equal(got.values.numpy(), expected.values.numpy())
    # topk's order among tied NaNs is not defined: the first row has one
    np.testing.assert_array_equal(g[0].topk(2).indices.numpy(), t[0].topk(2).indices.numpy())
    np.testing.assert_array_equal(g.topk(2, largest=False).values.numpy(), t.topk(2, largest=False).values.numpy())


def test_tied_values_share_no_gradient_between_positions():
    """The gradient of a sorted value goes to the one element it was taken from (a stable order)."""
    data = np.array([1.0, 3.0, 1.0, 3.0, 2.0])
    g = genesis.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    weights = np.array([1.0, 10.0, 100.0, 1000.0, 10000.0])
    (g.sort(stable=True).values * genesis.tensor(weights)).sum().backward()
    (t.sort(stable=True).values * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())


def test_unsorted_topk_selects_the_same_elements():
    data = distinct(6, 10)
    g, t = genesis.tensor(data), torch.tensor(data)
    got, expected = g.topk(4, sorted=False), t.topk(4, sorted=False)
    np.testing.assert_array_equal(np.sort(got.values.numpy(), -1), np.sort(expected.values.numpy(), -1))
    np.testing.assert_array_equal(np.sort(got.indices.numpy(), -1), np.sort(expected.indices.numpy(), -1))


def test_zero_dim_tensors():
    for fn in (
        lambda x: x.sort(),
        lambda x: x.sort(dim=0, descending=True),
        lambda x: x.topk(1),
        lambda x: x.kthvalue(1),
        lambda x: x.argsort(),
    ):
        check_torch(fn, [np.array(2.5)])


def test_results_are_named_pairs():
    x = genesis.tensor(distinct(3, 4))
    values, indices = x.sort()
    assert values is not None and indices.dtype is genesis.int64
    assert type(x.topk(2)).__name__ == "topk" and type(x.kthvalue(1)).__name__ == "kthvalue"
    assert x.sort().indices.shape == (3, 4)


def test_bad_arguments_are_named():
    x = genesis.tensor(distinct(3, 4))
    with pytest.raises(IndexError, match="topk: k=5"):
        x.topk(5)
    with pytest.raises(IndexError, match="kthvalue: k=0"):
        x.kthvalue(0)
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        x.sort(dim=2)


# ---- cumsum and cumprod ----------------------------------------------------------------------
SCANS = {
    "cumsum_0": lambda x: x.cumsum(0),
    "cumsum_last": lambda x: lib(x).cumsum(x, dim=-1),
    "cumprod_1": lambda x: x.cumprod(1),
    "cumprod_negative": lambda x: lib(x).cumprod(x, -3),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(SCANS))
def test_scans_match_torch(name, dtype):
    check_torch(SCANS[name], [near_one(*SHAPE)], dtype=dtype)


@pytest.mark.parametrize("name", sorted(SCANS))
def test_scans_numerical_gradient(name):
    check_numerical_grad(SCANS[name], [near_one(*SHAPE)])


@pytest.mark.parametrize(
    "zeros",
    [[2], [0], [4], [1, 3], [0, 4], [2, 2]],
    ids=["one", "first", "last", "two", "ends", "one_again"],
)
def test_cumprod_gradient_with_zeros(zeros):
    data = near_one(3, 5)
    data[1, zeros] = 0.0
    data[2, :] = 0.0  # a slice of zeros only
    check_torch(lambda x: x.cumprod(1), [data], dtype=genesis.float64)
    check_numerical_grad(lambda x: x.cumprod(1), [data])


def test_cumprod_second_derivative_matches_torch():
    data = near_one(6)
    data[2] = 0.0
    g = genesis.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    (first_g,) = genesis.autograd.grad(g.cumprod(0).sum(), [g], create_graph=True)
    (first_t,) = torch.autograd.grad(t.cumprod(0).sum(), [t], create_graph=True)
    np.testing.assert_allclose(first_g.detach().numpy(), first_t.detach().numpy(), rtol=1e-12)
    (second_g,) = genesis.autograd.grad((first_g * genesis.tensor(np.arange(6.0))).sum(), [g])
    (second_t,) = torch.autograd.grad((first_t * torch.arange(6.0, dtype=torch.float64)).sum(), [t])
    np.testing.assert_allclose(second_g.numpy(), second_t.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "dtype", [genesis.int64, genesis.int32, genesis.int8, genesis.uint8, genesis.bool], ids=lambda d: d.name
)
@pytest.mark.parametrize("name", sorted(SCANS))
def test_integer_scans_accumulate_in_int64(name, dtype):
    data = RNG.integers(0, 2 if dtype is genesis.bool else 4, SHAPE)
    g, t = _pair(data.astype(bool) if dtype is genesis.bool else data, dtype)
    got, expected = SCANS[name](g), SCANS[name](t)
    assert got.dtype is genesis.int64 and expected.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_scan_dtype_argument_casts_first():
    data = RNG.integers(0, 100, (50,))
    g, t = genesis.tensor(data, dtype=genesis.int32), torch.tensor(data, dtype=torch.int32)
    for kind in ("cumsum", "cumprod"):
        got = getattr(g, kind)(0, dtype=genesis.float64)
        expected = getattr(t, kind)(0, dtype=torch.float64)
        assert got.dtype is genesis.float64
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)


def test_long_float32_cumsum_accumulates_as_torch():
    """PyTorch accumulates float32 in double: a float32 running sum of 10^5 values would drift."""
    data = RNG.uniform(0, 1, 100_000).astype(np.float32)
    got = genesis.tensor(data).cumsum(0).numpy()
    expected = torch.tensor(data).cumsum(0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=0)


def test_scans_of_zero_dim_and_empty_tensors():
    check_torch(lambda x: x.cumsum(0), [np.array(1.5)])
    check_torch(lambda x: x.cumprod(-1), [np.array(1.5)])
    check_torch(lambda x: x.cumsum(1), [np.zeros((2, 0))])
    with pytest.raises(IndexError, match="out of range"):
        genesis.zeros(2, 3).cumsum(2)


# ---- compiled against eager ------------------------------------------------------------------
COMPILED = {
    "sort": lambda x: x.sort(dim=1, descending=True).values * 2 + x.argsort(dim=-1).float(),
    "topk": lambda x: x.topk(2, dim=-1).values.exp() + x.topk(2, dim=-1).indices,
    "kthvalue": lambda x: x.kthvalue(2, dim=0).values - 1,
    "cumsum": lambda x: (x * 2).cumsum(-1) + 1,
    "cumprod": lambda x: (x + 1).cumprod(1).tanh(),
}


@pytest.mark.parametrize("backend", ["numpy", "c", "eager"])
@pytest.mark.parametrize("name", sorted(COMPILED))
def test_compiled_equals_eager_with_gradients(name, backend):
    data = distinct(*SHAPE) / 10
    data[0, 1, 2] = -1.0  # a zero for cumprod's (x + 1)
    fn = COMPILED[name]
    x_eager = genesis.tensor(data, dtype=genesis.float32, requires_grad=True)
    x_compiled = genesis.tensor(data, dtype=genesis.float32, requires_grad=True)
    cotangent = genesis.tensor(RNG.standard_normal(fn(x_eager).shape), dtype=genesis.float32)
    expected = fn(x_eager)
    compiled = genesis.compile(fn, backend=backend, fullgraph=True)
    got = compiled(x_compiled)
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-6)
    (expected * cotangent).sum().backward()
    (got * cotangent).sum().backward()
    # fused elementwise steps may round a last bit differently from eager's, and cumprod's gradient
    # sums terms of up to ~10 to results near 0: an absolute error of a few float32 ulps of the terms
    np.testing.assert_allclose(x_compiled.grad.numpy(), x_eager.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert compiled.stats["compiles"] == 1
