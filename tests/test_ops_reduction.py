"""Reductions against PyTorch: values, dtypes, indices and gradients over every dim form.

The table is built from a product: each reduction with `dim` as None, an int,
a negative int and a tuple (where the op takes one), with and without
`keepdim`, on a (3, 4, 5) input. Each row runs over the four float dtypes,
contiguous and strided, plus a float64 numerical-gradient check. Ties get
rows of their own because torch defines the gradient there: amax/amin and
full max/min split it evenly among the tied elements, max(dim)/min(dim) give
it all to the index they return (the first). Those rows stay out of the
numerical check, which has no derivative to find at a tie.
"""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, TORCH_DTYPE, check_numerical_grad, check_torch

import genesis

RNG = np.random.default_rng(0)
SHAPE = (3, 4, 5)


def rand(*shape):
    return RNG.standard_normal(shape)


def near_one(*shape):
    """Magnitudes in [0.5, 1.5] of either sign: a product of 60 of them neither over- nor underflows."""
    return RNG.choice([-1.0, 1.0], shape) * RNG.uniform(0.5, 1.5, shape)


def with_ties(*shape):
    return RNG.integers(-1, 2, shape).astype(np.float64)


def lib(x):
    return genesis if isinstance(x, genesis.Tensor) else torch


def case(name, inputs, fn, torch_fn=None, *, smooth=True):
    """smooth=False: ties or zeros where finite differences cannot see torch's choice."""
    return (name, inputs, fn, torch_fn, smooth)


DIMS = [("all", None), ("int", 1), ("negative", -1), ("tuple", (0, 2)), ("negative_tuple", (-1, -3))]
INT_DIMS = DIMS[1:3] + [("first", 0)]


def _dim_cases():
    """(name, fn) for each reduction over each dim form and keepdim."""
    rows = []
    for dim_name, dim in DIMS:
        for keepdim in (False, True):
            tag = f"{dim_name}{'_keepdim' if keepdim else ''}"
            rows += [
                (f"sum_{tag}", lambda x, d=dim, k=keepdim: x.sum(d, keepdim=k)),
                (f"mean_{tag}", lambda x, d=dim, k=keepdim: x.mean(d, keepdim=k)),
                (f"amax_{tag}", lambda x, d=dim, k=keepdim: x.amax(() if d is None else d, keepdim=k)),
                (f"amin_{tag}", lambda x, d=dim, k=keepdim: x.amin(() if d is None else d, keepdim=k)),
                (f"var_{tag}", lambda x, d=dim, k=keepdim: x.var(d, keepdim=k)),
                (f"std_{tag}", lambda x, d=dim, k=keepdim: x.std(d, keepdim=k)),
            ]
            if dim is not None:
                rows.append((f"logsumexp_{tag}", lambda x, d=dim, k=keepdim: x.logsumexp(d, keepdim=k)))
    for dim_name, dim in INT_DIMS:
        for keepdim in (False, True):
            tag = f"{dim_name}{'_keepdim' if keepdim else ''}"
            rows += [
                (f"max_dim_{tag}", lambda x, d=dim, k=keepdim: x.max(d, keepdim=k)),
                (f"min_dim_{tag}", lambda x, d=dim, k=keepdim: x.min(dim=d, keepdim=k)),
                (f"prod_{tag}", lambda x, d=dim, k=keepdim: x.prod(d, keepdim=k)),
            ]
    return rows


CASES = [case(name, [near_one(*SHAPE) if "prod" in name else rand(*SHAPE)], fn) for name, fn in _dim_cases()]
CASES += [
    case("prod_all", [near_one(*SHAPE)], lambda x: x.prod()),
    case("max_full", [rand(*SHAPE)], lambda x: x.max()),
    case("min_full", [rand(*SHAPE)], lambda x: x.min()),
    case("max_function", [rand(3, 5)], lambda x: lib(x).max(x, 1)),
    case("min_function_keepdim", [rand(3, 5)], lambda x: lib(x).min(x, -1, keepdim=True)),
    case("sum_function", [rand(3, 5)], lambda x: lib(x).sum(x, (0, 1))),
    case("sum_list_dim", [rand(3, 5)], lambda x: x.sum([1])),
    case("var_correction_0", [rand(*SHAPE)], lambda x: x.var(1, correction=0)),
    case("var_correction_2", [rand(*SHAPE)], lambda x: x.var((0, 2), correction=2, keepdim=True)),
    case("var_unbiased_false", [rand(*SHAPE)], lambda x: x.var(-1, unbiased=False)),
    case("var_all_correction_0", [rand(*SHAPE)], lambda x: x.var(correction=0)),
    case("std_correction_0", [rand(*SHAPE)], lambda x: x.std(0, correction=0)),
    case("std_correction_2", [rand(*SHAPE)], lambda x: x.std(-1, correction=2)),
    case("logsumexp_all_dims", [rand(3, 5)], lambda x: x.logsumexp((0, 1))),
    case("mean_function", [rand(3, 5)], lambda x: lib(x).mean(x, 0, keepdim=True)),
    case("sum_dtype", [rand(3, 5)], lambda x: x.sum(1, dtype=genesis.float64), lambda x: x.sum(1, dtype=torch.float64)),
    case("argmax_then_values", [rand(3, 5)], lambda x: x.max(1).values * 2),
    # ties
    case("amax_ties", [with_ties(*SHAPE)], lambda x: x.amax(1), smooth=False),
    case("amin_ties_tuple", [with_ties(*SHAPE)], lambda x: x.amin((0, 2), keepdim=True), smooth=False),
    case("max_full_ties", [with_ties(3, 5)], lambda x: x.max(), smooth=False),
    case("min_full_ties", [with_ties(3, 5)], lambda x: x.min(), smooth=False),
    case("max_dim_ties", [with_ties(*SHAPE)], lambda x: x.max(1), smooth=False),
    case("min_dim_ties", [with_ties(*SHAPE)], lambda x: x.min(-1, keepdim=True), smooth=False),
    # prod with zeros: one zero passes the product of the others, two make every gradient zero
    case(
        "prod_zeros",
        [np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 4.0], [1.5, -2.0, 0.5]])],
        lambda x: x.prod(1),
        smooth=False,
    ),
    case("prod_all_one_zero", [np.array([[0.0, 2.0, 3.0], [1.0, 0.5, 4.0]])], lambda x: x.prod(), smooth=False),
    # 0-d tensors
    case("0d_sum", [rand()], lambda x: x.sum()),
    case("0d_sum_dim", [rand()], lambda x: x.sum(0)),
    case("0d_mean_keepdim", [rand()], lambda x: x.mean(-1, keepdim=True)),
    case("0d_amax", [rand()], lambda x: x.amax()),
    case("0d_max_dim", [rand()], lambda x: x.max(0)),
    case("0d_prod", [rand()], lambda x: x.prod(0)),
    case("0d_logsumexp", [rand()], lambda x: x.logsumexp(0)),
    case("0d_var_correction_0", [rand()], lambda x: x.var(correction=0)),
    # empty dimensions
    case("empty_sum", [rand(0, 3)], lambda x: x.sum(0)),
    case("empty_sum_all", [rand(0, 3)], lambda x: x.sum()),
    case("empty_prod", [rand(3, 0)], lambda x: x.prod(1)),
    case("empty_mean", [rand(0, 3)], lambda x: x.mean(0)),
    case("empty_amax_other_dim", [rand(0, 3)], lambda x: x.amax(1)),
    case("empty_max_other_dim", [rand(0, 3)], lambda x: x.max(1)),
    case("empty_logsumexp", [rand(2, 0)], lambda x: x.logsumexp(1)),
]


def _can_be_strided(inputs):
    return all(np.ndim(a) >= 2 and min(np.shape(a)[-2:]) > 1 for a in inputs)


LAYOUTS = [(False, c) for c in CASES] + [(True, c) for c in CASES if _can_be_strided(c[1])]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("non_contiguous,case", LAYOUTS, ids=[("strided-" if s else "") + c[0] for s, c in LAYOUTS])
def test_reduction_matches_torch(case, non_contiguous, dtype):
    name, inputs, fn, torch_fn, smooth = case
    check_torch(fn, inputs, dtype=dtype, torch_fn=torch_fn, non_contiguous=non_contiguous)


def _values(out):
    """The differentiable part of an op that may return (values, indices)."""
    return out[0] if isinstance(out, tuple) else out


SMOOTH = [c for c in CASES if c[4]]


@pytest.mark.parametrize("case", SMOOTH, ids=[c[0] for c in SMOOTH])
def test_reduction_numerical_gradient(case):
    name, inputs, fn, torch_fn, smooth = case
    check_numerical_grad(lambda x: _values(fn(x)), inputs)


# ---- index-valued reductions ------------------------------------------------------------
ARG_CASES = [
    ("argmax_all", lambda x: x.argmax()),
    ("argmin_all", lambda x: x.argmin()),
    ("argmax_dim", lambda x: x.argmax(1)),
    ("argmin_negative", lambda x: x.argmin(-1)),
    ("argmax_keepdim", lambda x: x.argmax(0, keepdim=True)),
    ("argmin_all_keepdim", lambda x: x.argmin(keepdim=True)),
    ("argmax_function", lambda x: lib(x).argmax(x, dim=2)),
]


@pytest.mark.parametrize(
    "dtype", [genesis.float32, genesis.float16, genesis.bfloat16, genesis.int64, genesis.int32, genesis.uint8], ids=str
)
@pytest.mark.parametrize("name,fn", ARG_CASES, ids=[c[0] for c in ARG_CASES])
def test_argmax_argmin_match_torch_including_ties(name, fn, dtype):
    data = np.random.default_rng(1).integers(0, 3, SHAPE)  # many ties: torch and genesis both return the first
    g = fn(genesis.tensor(data).to(dtype))
    t = fn(torch.from_numpy(data).to(TORCH_DTYPE[dtype]))
    assert g.dtype is genesis.int64 and t.dtype == torch.int64
    np.testing.assert_array_equal(g.numpy(), t.numpy())


def test_argmax_of_a_0d_tensor_and_of_nan_match_torch():
    for data in [np.array(2.5), np.array([1.0, np.nan, 3.0, np.nan])]:
        for fn in [lambda x: x.argmax(), lambda x: x.argmin(), lambda x: x.argmax(0), lambda x: x.max(0)[1]]:
            np.testing.assert_array_equal(fn(genesis.tensor(data)).numpy(), fn(torch.tensor(data)).numpy())


def test_max_and_min_with_dim_return_named_values_and_indices():
    x = genesis.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    out = x.max(1)
    assert out.values.tolist() == [5.0, 7.0] and out.indices.tolist() == [1, 0]
    values, indices = x.min(dim=0, keepdim=True)
    assert values.tolist() == [[1.0, 0.0, 2.0]] and indices.tolist() == [[0, 1, 0]]


# ---- NaN and infinity propagate as in torch ------------------------------------------------
def test_nan_and_infinity_propagate_like_torch():
    data = np.array([[1.0, np.nan, 3.0], [-np.inf, -np.inf, -np.inf], [np.inf, 1.0, -2.0]])
    for fn in [
        lambda x: x.sum(1),
        lambda x: x.mean(1),
        lambda x: x.amax(1),
        lambda x: x.amin(0),
        lambda x: x.max(1),
        lambda x: x.prod(1),
        lambda x: x.var(1),
        lambda x: x.logsumexp(1),
        lambda x: x.logsumexp(0),
        lambda x: x.max(),
        lambda x: x.std(0, correction=0),
    ]:
        for dtype in FLOAT_DTYPES:
            check_torch(fn, [data], dtype=dtype, grad=False)


def test_logsumexp_of_all_minus_infinity_has_a_zero_gradient_like_torch():
    data = np.array([[-np.inf, -np.inf], [0.5, -np.inf]])
    check_torch(lambda x: x.logsumexp(1), [data], dtype=genesis.float64)


def test_logsumexp_of_large_values_is_stable():
    """exp(500) overflows even float64 without the shift. The gradient exp(x - lse) carries the
    rounding of x - lse, one float32 ulp of 500 (3e-5), so float32 gets that tolerance."""
    rng = np.random.default_rng(5)
    for dtype, rtol in [(genesis.float32, 1e-4), (genesis.float64, None)]:
        check_torch(lambda x: x.logsumexp(1), [rng.standard_normal((3, 5)) * 50 + 500], dtype=dtype, rtol=rtol)
        check_torch(lambda x: x.logsumexp(0), [rng.standard_normal((3, 5)) * 50 - 800], dtype=dtype, rtol=rtol)


def test_var_with_correction_at_least_the_count_matches_torch():
    """One element with correction 1, two with correction 2: 0/0 is nan; three with correction 5 is -0/2."""
    rng = np.random.default_rng(2)
    for data, correction in [
        (rng.standard_normal((3, 1)), 1),
        (rng.standard_normal((2, 2)), 2),
        (rng.standard_normal((3, 3)), 5),
    ]:
        check_torch(lambda x: x.var(1, correction=correction), [data], dtype=genesis.float64, grad=False)
        check_torch(lambda x: x.std(1, correction=correction), [data], dtype=genesis.float64, grad=False)


# ---- integer and bool inputs ------------------------------------------------------------------
INT_REDUCTIONS = [
    ("sum", lambda x: x.sum()),
    ("sum_dim", lambda x: x.sum(1)),
    ("prod", lambda x: x.prod(0)),
    ("amax", lambda x: x.amax(1)),
    ("amin", lambda x: x.amin()),
    ("max_dim", lambda x: x.max(1)),
    ("max_full", lambda x: x.max()),
    ("min_dim", lambda x: x.min(0, keepdim=True)),
    ("all", lambda x: x.all()),
    ("any_dim", lambda x: x.any(1)),
    ("all_keepdim", lambda x: x.all(-1, keepdim=True)),
    ("mean", lambda x: x.mean()),
    ("var", lambda x: x.var()),
    ("logsumexp", lambda x: x.logsumexp(1)),
    ("sum_to_float", lambda x: x.sum(dtype=genesis.float32 if isinstance(x, genesis.Tensor) else torch.float32)),
    ("mean_dtype", lambda x: x.mean(dtype=genesis.float64 if isinstance(x, genesis.Tensor) else torch.float64)),
]


def _outcomes_match(fn, g, t):
    try:
        expected = fn(t)
    except (RuntimeError, NotImplementedError):
        with pytest.raises((TypeError, RuntimeError, ValueError)):
            fn(g)
        return
    got = fn(g)
    got, expected = (got, expected) if isinstance(got, tuple) else ((got,), (expected,))
    for a, e in zip(got, expected):
        assert TORCH_DTYPE[a.dtype] == e.dtype, f"dtype {a.dtype} != torch's {e.dtype}"
        np.testing.assert_allclose(a.to(genesis.float64).numpy(), e.double().numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32, genesis.int8, genesis.uint8, genesis.bool], ids=str)
@pytest.mark.parametrize("name,fn", INT_REDUCTIONS, ids=[c[0] for c in INT_REDUCTIONS])
def test_reductions_of_integer_and_bool_tensors_match_torch(name, fn, dtype):
    data = np.random.default_rng(3).integers(0, 2 if dtype is genesis.bool else 4, (3, 5))
    _outcomes_match(fn, genesis.tensor(data).to(dtype), torch.from_numpy(data).to(TORCH_DTYPE[dtype]))


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float16, genesis.int64], ids=str)
@pytest.mark.parametrize(
    "fn",
    [lambda x: x.all(), lambda x: x.any(1), lambda x: x.all((0, 1), keepdim=True), lambda x: x.any(-1, keepdim=True)],
    ids=["all", "any_dim", "all_tuple", "any_kept"],
)
def test_all_and_any_of_numbers_match_torch(fn, dtype):
    rng = np.random.default_rng(4)
    data = rng.integers(0, 2, (3, 5)) * rng.uniform(0.5, 2.0, (3, 5))
    data[1] = 1.0
    _outcomes_match(fn, genesis.tensor(data).to(dtype), torch.from_numpy(data).to(TORCH_DTYPE[dtype]))


def test_all_and_any_of_an_empty_tensor_match_torch():
    data = np.zeros((0, 3))
    for fn in [lambda x: x.all(), lambda x: x.any(), lambda x: x.all(0), lambda x: x.any(1)]:
        _outcomes_match(fn, genesis.tensor(data), torch.from_numpy(data))


# ---- fp16/bf16 accumulate in fp32 -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [genesis.float16, genesis.bfloat16], ids=str)
def test_low_precision_sums_accumulate_in_fp32_like_torch(dtype):
    """4096 ones plus small values: an fp16 running sum would stall at 2048, torch's does not."""
    data = np.ones(4096) + np.random.default_rng(6).uniform(0, 0.01, 4096)
    for fn in [lambda x: x.sum(), lambda x: x.mean(), lambda x: x.var(), lambda x: x.reshape(64, 64).sum(0)]:
        check_torch(fn, [data], dtype=dtype, grad=False)


# ---- errors --------------------------------------------------------------------------------------
ERRORS = [
    ("dim_range", lambda: genesis.zeros(3, 5).sum(2), IndexError, r"dim 2 is out of range"),
    ("dim_negative_range", lambda: genesis.zeros(3, 5).mean(-3), IndexError, r"dim -3 is out of range"),
    ("dim_repeated", lambda: genesis.zeros(3, 5).sum((1, -1)), ValueError, r"more than once"),
    ("amax_empty", lambda: genesis.zeros(0, 3).amax(0), ValueError, r"zero-size dimension.*\[0, 3\]"),
    ("max_empty", lambda: genesis.zeros(0, 3).max(), ValueError, r"zero-size dimension"),
    ("argmax_empty", lambda: genesis.zeros(0).argmax(), ValueError, r"empty tensor of shape \[0\]"),
    ("argmax_empty_dim", lambda: genesis.zeros(2, 0).argmax(1), ValueError, r"along dim 1 of size 0"),
    ("argmax_bool", lambda: genesis.zeros(3, dtype=genesis.bool).argmax(), TypeError, r"bool"),
    ("mean_int", lambda: genesis.zeros(3, dtype=genesis.int64).mean(), TypeError, r"floating-point.*int64"),
    ("var_int", lambda: genesis.zeros(3, dtype=genesis.int32).var(), TypeError, r"floating-point.*int32"),
]


@pytest.mark.parametrize("name,fn,kind,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_are_clear(name, fn, kind, message):
    with pytest.raises(kind, match=message):
        fn()
