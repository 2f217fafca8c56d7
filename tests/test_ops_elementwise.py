"""Elementwise ops against PyTorch: values, dtypes, gradients, broadcasting, promotion.

One table row per op case: a lambda that reads the same in genesis and torch
(or a separate torch lambda where the APIs differ, as for gelu), run over the
four float dtypes, contiguous and strided, plus a float64 numerical-gradient
check of every differentiable row. Inputs sit away from the points where an
op has no derivative (abs and relu at 0, log and sqrt at or below 0), so the
finite differences and torch's subgradient choices cannot disagree there;
ties get rows of their own where torch defines the split (maximum, minimum).

Type promotion is checked against torch's own answer for every pair of
dtypes, with the second operand as a dimensioned tensor, a 0-d tensor and a
Python scalar, because those three tiers promote differently.
"""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, GENESIS_DTYPE, TORCH_DTYPE, check_numerical_grad, check_torch

import genesis

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def positive(*shape, low=0.3, high=3.0):
    return RNG.uniform(low, high, shape)


def away_from_zero(*shape):
    """Values of either sign with magnitude at least 0.2: abs, relu and sign are smooth there."""
    return RNG.choice([-1.0, 1.0], shape) * RNG.uniform(0.2, 2.0, shape)


def whole(*shape):
    """Small whole numbers: comparisons then see ties, which random floats never give."""
    return RNG.integers(-2, 3, shape).astype(np.float64)


def special_values(*shape):
    values = rand(*shape)
    flat = values.reshape(-1)
    flat[::4] = np.nan
    flat[1::5] = np.inf
    flat[2::7] = -np.inf
    return values


def bools(*shape):
    return RNG.random(shape) < 0.5


def lib(x):
    """The library a tensor belongs to, for functions that are not tensor methods in torch."""
    return genesis if isinstance(x, genesis.Tensor) else torch


def nnf(x):
    return genesis if isinstance(x, genesis.Tensor) else torch.nn.functional


def case(name, inputs, fn, torch_fn=None, *, grad=True):
    """grad=False: the op has no gradient (predicates, comparisons) and is left out of the numerical check."""
    return (name, inputs, fn, torch_fn, grad)


UNARY = [
    case("neg", [rand(3, 5)], lambda x: x.neg()),
    case("neg_operator", [rand(3, 5)], lambda x: -x),
    case("abs", [away_from_zero(3, 5)], lambda x: x.abs()),
    case("abs_builtin", [away_from_zero(4, 3)], lambda x: abs(x)),
    case("exp", [rand(3, 5)], lambda x: x.exp()),
    case("log", [positive(3, 5)], lambda x: x.log()),
    case("log1p", [positive(3, 5, low=-0.7, high=2.0)], lambda x: x.log1p()),
    case("expm1", [rand(3, 5)], lambda x: x.expm1()),
    case("sqrt", [positive(3, 5)], lambda x: x.sqrt()),
    case("rsqrt", [positive(3, 5)], lambda x: x.rsqrt()),
    case("reciprocal", [away_from_zero(3, 5)], lambda x: x.reciprocal()),
    case("sin", [rand(3, 5)], lambda x: x.sin()),
    case("cos", [rand(3, 5)], lambda x: x.cos()),
    case("tanh", [rand(3, 5)], lambda x: x.tanh()),
    case("sigmoid", [rand(3, 5) * 3], lambda x: x.sigmoid()),
    case("relu", [away_from_zero(3, 5)], lambda x: x.relu()),
    case("gelu", [rand(3, 5) * 2], lambda x: nnf(x).gelu(x)),
    case("gelu_tanh", [rand(3, 5) * 2], lambda x: nnf(x).gelu(x, approximate="tanh")),
    case("silu", [rand(3, 5) * 2], lambda x: nnf(x).silu(x)),
    case("erf", [rand(3, 5)], lambda x: x.erf()),
    case("sign", [away_from_zero(3, 5)], lambda x: x.sign()),
    case("floor", [rand(3, 5) * 3], lambda x: x.floor()),
    case("ceil", [rand(3, 5) * 3], lambda x: x.ceil()),
    case("isnan", [special_values(3, 5)], lambda x: x.isnan(), grad=False),
    case("isinf", [special_values(3, 5)], lambda x: x.isinf(), grad=False),
    case("isfinite", [special_values(3, 5)], lambda x: x.isfinite(), grad=False),
    case("logical_not", [whole(3, 5)], lambda x: x.logical_not(), grad=False),
    case("sign_of_zero_and_nan", [np.array([0.0, -0.0, np.nan, 3.0, -2.0])], lambda x: x.sign(), grad=False),
    # 0-d and empty tensors
    case("0d_exp", [rand()], lambda x: x.exp()),
    case("0d_sqrt", [positive()], lambda x: x.sqrt()),
    case("0d_gelu", [rand()], lambda x: nnf(x).gelu(x)),
    case("0d_isnan", [np.array(np.nan)], lambda x: x.isnan(), grad=False),
    case("empty_tanh", [rand(0, 3)], lambda x: x.tanh()),
    case("empty_log", [positive(3, 0)], lambda x: x.log()),
    case("empty_isinf", [rand(0)], lambda x: x.isinf(), grad=False),
]

BINARY = [
    case("add", [rand(3, 5), rand(3, 5)], lambda x, y: x.add(y)),
    case("add_broadcast", [rand(3, 1, 5), rand(4, 5)], lambda x, y: x + y),
    case("add_alpha", [rand(3, 5), rand(5)], lambda x, y: lib(x).add(x, y, alpha=-2.5)),
    case("sub", [rand(3, 5), rand(3, 1)], lambda x, y: x.sub(y)),
    case("sub_alpha", [rand(3, 5), rand(3, 5)], lambda x, y: x.sub(y, alpha=3)),
    case("mul_broadcast", [rand(2, 1, 5), rand(3, 1)], lambda x, y: x * y),
    case("div_broadcast", [rand(3, 5), away_from_zero(5)], lambda x, y: x / y),
    case("div_method", [rand(1, 5), away_from_zero(4, 1)], lambda x, y: x.div(y)),
    case("pow_tensor", [positive(3, 5), rand(3, 5)], lambda x, y: x.pow(y)),
    case("pow_broadcast", [positive(3, 1), rand(4)], lambda x, y: x**y),
    case("pow_scalar_2", [rand(3, 5)], lambda x: x**2),
    case("pow_scalar_3", [rand(3, 5)], lambda x: x.pow(3)),
    case("pow_scalar_half", [positive(3, 5)], lambda x: x**0.5),
    case("pow_scalar_negative", [positive(3, 5)], lambda x: x**-1.5),
    case("pow_scalar_0", [rand(3, 5)], lambda x: x**0),
    case("pow_scalar_base", [rand(3, 5)], lambda x: 2**x),
    case("pow_float_base", [rand(3, 5)], lambda x: 0.7**x),
    case("pow_function_scalar_base", [rand(4)], lambda x: lib(x).pow(1.5, x)),
    case("maximum", [rand(3, 5), rand(5)], lambda x, y: x.maximum(y)),
    case("minimum", [rand(3, 1), rand(3, 5)], lambda x, y: lib(x).minimum(x, y)),
    case("maximum_ties", [whole(3, 5), whole(3, 5)], lambda x, y: x.maximum(y)),
    case("minimum_ties", [whole(3, 5), whole(5)], lambda x, y: x.minimum(y)),
    case("max_of_two_tensors", [rand(3, 5), rand(3, 5)], lambda x, y: lib(x).max(x, y)),
    case("min_of_two_tensors", [rand(3, 5), rand(1, 5)], lambda x, y: x.min(y)),
    case("eq", [whole(3, 5), whole(5)], lambda x, y: x.eq(y), grad=False),
    case("ne", [whole(3, 5), whole(3, 1)], lambda x, y: x.ne(y), grad=False),
    case("lt", [whole(3, 5), whole(3, 5)], lambda x, y: x.lt(y), grad=False),
    case("le", [whole(3, 5), whole(3, 5)], lambda x, y: x.le(y), grad=False),
    case("gt", [whole(3, 5), whole(5)], lambda x, y: x.gt(y), grad=False),
    case("ge", [whole(3, 5), whole(5)], lambda x, y: x.ge(y), grad=False),
    case("logical_and", [whole(3, 5), whole(5)], lambda x, y: x.logical_and(y), grad=False),
    case("logical_or", [whole(3, 5), whole(3, 1)], lambda x, y: x.logical_or(y), grad=False),
    case("where", [bools(3, 5), rand(3, 5), rand(3, 5)], lambda c, x, y: lib(x).where(c, x, y)),
    case("where_broadcast", [bools(3, 1), rand(5), rand(2, 1, 1)], lambda c, x, y: lib(x).where(c, x, y)),
    case("where_scalar_other", [bools(3, 5), rand(3, 5)], lambda c, x: lib(x).where(c, x, 0.5)),
    case("where_scalar_value", [bools(3, 5), rand(5)], lambda c, y: lib(y).where(c, -1.0, y)),
    case("where_method", [bools(3, 5), rand(3, 5), rand(3, 5)], lambda c, x, y: x.where(c, y)),
    case("clamp_min", [away_from_zero(3, 5)], lambda x: x.clamp(min=0.1)),
    case("clamp_max", [away_from_zero(3, 5)], lambda x: x.clamp(max=-0.1)),
    case("clamp_both", [rand(4, 5) * 2], lambda x: x.clamp(-0.55, 0.65)),
    case("clamp_int_bounds", [rand(4, 5) * 2], lambda x: x.clamp(-1, 1)),
    case("clamp_min_above_max", [rand(4, 5) * 2], lambda x: x.clamp(0.5, -0.5)),
    case("clip", [rand(4, 5) * 2], lambda x: x.clip(-0.55, 0.65)),
    case("clamp_tensor_bounds", [rand(3, 5) * 2, rand(5) - 1, rand(3, 1) + 1], lambda x, low, high: x.clamp(low, high)),
    case("clamp_tensor_min", [rand(3, 5), rand(3, 5)], lambda x, low: x.clamp(min=low)),
    case("clamp_tensor_max", [rand(3, 5), rand(5)], lambda x, high: x.clamp(max=high)),
    # Python operators, reflected forms included
    case("scalar_add", [rand(3, 5)], lambda x: x + 2),
    case("scalar_radd", [rand(3, 5)], lambda x: 2.5 + x),
    case("scalar_rsub", [rand(3, 5)], lambda x: 2 - x),
    case("scalar_sub", [rand(3, 5)], lambda x: x - 0.25),
    case("scalar_rmul", [rand(3, 5)], lambda x: 3 * x),
    case("scalar_div", [rand(3, 5)], lambda x: x / 4),
    case("scalar_rdiv", [away_from_zero(3, 5)], lambda x: 2 / x),
    case("scalar_lt", [whole(3, 5)], lambda x: x < 0.5, grad=False),
    case("scalar_reflected_gt", [whole(3, 5)], lambda x: 0.5 < x, grad=False),
    case("scalar_eq", [whole(3, 5)], lambda x: x == 1, grad=False),
    case("scalar_ne", [whole(3, 5)], lambda x: x != 1, grad=False),
    case("scalar_le_ge", [whole(3, 5)], lambda x: (x <= 1) & (x >= -1), grad=False),
    case("operator_or", [whole(3, 5), whole(5)], lambda x, y: (x > 0) | (y > 0), grad=False),
    case("operator_invert", [whole(3, 5)], lambda x: ~(x > 0), grad=False),
    case("floordiv", [rand(3, 5) * 4, away_from_zero(5)], lambda x, y: x // y, grad=False),
    case("remainder", [rand(3, 5) * 4, away_from_zero(5)], lambda x, y: x % y),
    case("remainder_scalar", [rand(3, 5) * 4], lambda x: x % -0.7),
    case("fmod", [rand(3, 5) * 4, away_from_zero(3, 1)], lambda x, y: lib(x).fmod(x, y)),
    case("expression", [rand(3, 5), rand(5)], lambda x, y: (x * y - y / 3) ** 2 + 1 - x),
    # 0-d and empty tensors
    case("0d_with_matrix", [rand(), rand(3, 5)], lambda x, y: x * y + x),
    case("0d_with_0d", [rand(), positive()], lambda x, y: x / y),
    case("0d_pow", [positive(), rand()], lambda x, y: x**y),
    case("empty_broadcast", [rand(0, 1), rand(1, 5)], lambda x, y: x * y),
    case("empty_with_0d", [rand(3, 0), rand()], lambda x, y: x - y),
    case("empty_where", [bools(0, 5), rand(0, 5), rand(5)], lambda c, x, y: lib(x).where(c, x, y)),
    case("empty_compare", [rand(2, 0), rand(1)], lambda x, y: x > y, grad=False),
]

CASES = UNARY + BINARY


def _can_be_strided(inputs):
    """The strided variant swaps the last two dims' strides: it needs them both larger than 1."""
    matrices = [np.shape(a)[-2:] for a in inputs if np.ndim(a) >= 2 and np.asarray(a).dtype.kind == "f"]
    return bool(matrices) and all(min(m) > 1 for m in matrices)


LAYOUTS = [(False, c) for c in CASES] + [(True, c) for c in CASES if _can_be_strided(c[1])]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("non_contiguous,case", LAYOUTS, ids=[("strided-" if s else "") + c[0] for s, c in LAYOUTS])
def test_elementwise_op_matches_torch(case, non_contiguous, dtype):
    name, inputs, fn, torch_fn, grad = case
    check_torch(fn, inputs, dtype=dtype, torch_fn=torch_fn, grad=grad, non_contiguous=non_contiguous)


DIFFERENTIABLE = [c for c in CASES if c[4]]


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=[c[0] for c in DIFFERENTIABLE])
def test_elementwise_op_numerical_gradient(case):
    name, inputs, fn, torch_fn, grad = case
    check_numerical_grad(fn, inputs)


# ---- gradients at the points torch defines by convention ---------------------------------
def test_gradients_at_non_differentiable_points_follow_torch():
    """abs'(0) = 0, relu'(0) = 0, clamp passes the gradient at its bounds, sqrt'(0) = inf."""
    values = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    for fn in [
        lambda x: x.abs(),
        lambda x: x.relu(),
        lambda x: x.clamp(0.5, 1.0),
        lambda x: x.sign(),
        lambda x: x.clamp(min=0.0),
        lambda x: x.clamp(max=1.0),
        lambda x: x.floor(),
    ]:
        check_torch(fn, [values], dtype=genesis.float64)
    check_torch(lambda x: x.sqrt(), [np.array([0.0, 4.0])], dtype=genesis.float64)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=lambda d: d.name)
def test_gelu_gradient_read_off_its_output_is_torchs_at_zero_subnormals_and_the_tails(dtype):
    """gelu's backward takes Phi(x) as gelu(x) / x: at 0, for subnormal x (halving rounds them) and
    far in the tails it must still be PyTorch's, and so must the second derivative, which the
    division would lose to cancellation near 0 if it were differentiated."""
    values = np.array([0.0, -0.0, 1e-40, -1e-40, 1e-20, -1e-3, 0.3, -2.5, 3.0, -6.0, 9.0])
    x = genesis.tensor(values, dtype=dtype, requires_grad=True)
    (grad,) = genesis.autograd.grad(genesis.gelu(x).sum(), [x], create_graph=True)
    (second,) = genesis.autograd.grad((grad * grad).sum(), [x])
    t = torch.tensor(values, dtype=TORCH_DTYPE[dtype], requires_grad=True)
    (t_grad,) = torch.autograd.grad(torch.nn.functional.gelu(t).sum(), [t], create_graph=True)
    (t_second,) = torch.autograd.grad((t_grad * t_grad).sum(), [t])
    eps = np.finfo(np.float32 if dtype is genesis.float32 else np.float64).eps
    # a few ulps of 1: the derivative near x = -2.5 and -6 is a difference of terms near 1e-2 and 1e-8
    np.testing.assert_allclose(grad.detach().numpy(), t_grad.detach().numpy(), rtol=4 * eps, atol=4 * eps)
    np.testing.assert_allclose(second.numpy(), t_second.numpy(), rtol=8 * eps, atol=8 * eps)


def test_gelu_backward_broadcasts_its_operands_like_any_elementwise_op():
    """gelu_backward(g, x, gelu(x)) with g larger than x: the same as with x expanded first."""
    apply, op = genesis.dispatch.apply, genesis.ops.OPS["gelu_backward"]
    g = genesis.tensor(np.random.default_rng(0).standard_normal((3, 4)), dtype=genesis.float32)
    x = genesis.tensor([0.0, -1.0, 0.5, 2.0])
    out = genesis.gelu(x)
    got = apply(op, g, x, out)
    np.testing.assert_array_equal(got.numpy(), apply(op, g, x.expand(3, 4), out.expand(3, 4)).numpy())
    assert got.shape == (3, 4)


def test_pow_gradients_at_zero_follow_torch():
    """0 ** 0 = 1 with gradient 0 for the base; 0 ** y has gradient 0 for the exponent when y >= 0."""
    base = np.array([0.0, 0.0, 0.0, 2.0, 1.5])
    exponent = np.array([0.0, 1.0, 2.5, 0.0, -1.0])
    check_torch(lambda x, y: x**y, [base, exponent], dtype=genesis.float64)
    check_torch(lambda x: x**0, [base], dtype=genesis.float64)
    check_torch(lambda x: x**2, [base], dtype=genesis.float64)
    check_torch(lambda x: 0.0**x, [exponent.clip(0)], dtype=genesis.float64)


def test_clamp_with_tensor_bounds_routes_gradients_like_torch_at_ties_and_crossed_bounds():
    """x on a bound, min == max, min > max and NaN: torch's clamp_backward_min_max, case by case."""
    x = np.array([0.0, 1.0, -1.0, 2.0, 0.5, np.nan, 3.0, -3.0, 0.5])
    low = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.5])
    high = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.5])
    for dtype in [genesis.float64, genesis.float32]:
        check_torch(lambda x, lo, hi: x.clamp(lo, hi), [x, low, high], dtype=dtype)
        check_torch(lambda x, lo: x.clamp(min=lo), [x, low], dtype=dtype)
        check_torch(lambda x, hi: x.clamp(max=hi), [x, high], dtype=dtype)
    # one bound a number and the other a tensor: torch refuses the mix, and so does genesis
    with pytest.raises(TypeError):
        torch.from_numpy(x).clamp(0.5, torch.from_numpy(high))
    with pytest.raises(TypeError, match="both be tensors or both be numbers"):
        genesis.tensor(x).clamp(0.5, genesis.tensor(high))


def test_clamp_with_tensor_bounds_promotes_like_torch():
    for bound_dtype, x_dtype in [
        (genesis.float64, genesis.float32),
        (genesis.float32, genesis.int64),
        (genesis.int64, genesis.float16),
    ]:
        x, tx = _pair(x_dtype, (2, 3), -3, 4)
        low, tlow = _pair(bound_dtype, (3,), -2, 0, seed=1)
        _same_outcome(lambda a, b: a.clamp(min=b), (x, low), (tx, tlow))
        _same_outcome(lambda a, b: a.clamp(b, b + 2), (x, low), (tx, tlow))


def test_values_at_the_edges_of_the_domain_match_torch():
    """log(0) = -inf, log(-1) = nan, 1/0 = inf, exp overflows to inf, 0/0 = nan: answers, not errors."""
    x = np.array([0.0, -1.0, 1e4, -1e4, np.inf, -np.inf, np.nan])
    for dtype in FLOAT_DTYPES:
        for fn in [
            lambda t: t.log(),
            lambda t: t.reciprocal(),
            lambda t: t.exp(),
            lambda t: t.sqrt(),
            lambda t: t / t,
            lambda t: t.sigmoid(),
            lambda t: t.tanh(),
            lambda t: t.relu(),
            lambda t: t.isfinite(),
            lambda t: t.clamp(-1, 1),
            lambda t: t.log1p(),
            lambda t: t.rsqrt(),
        ]:
            check_torch(fn, [x], dtype=dtype, grad=False)


# ---- integer and bool tensors --------------------------------------------------------------
def _same_outcome(fn, g_args, t_args):
    """Both libraries raise, or both give the same dtype and values."""
    try:
        expected = fn(*t_args)
    except (RuntimeError, NotImplementedError):
        with pytest.raises((TypeError, RuntimeError, ValueError)):
            fn(*g_args)
        return
    got = fn(*g_args)
    assert TORCH_DTYPE[got.dtype] == expected.dtype, f"dtype {got.dtype} != torch's {expected.dtype}"
    np.testing.assert_allclose(got.to(genesis.float64).numpy(), expected.double().numpy(), rtol=1e-2)


def _pair(dtype, shape, low=1, high=3, seed=0):
    """The same small whole numbers as a genesis and a torch tensor of `dtype`."""
    values = np.array(np.random.default_rng(seed).integers(low, high, shape))
    return genesis.tensor(values).to(dtype), torch.from_numpy(values).to(TORCH_DTYPE[dtype])


INT_OPS = [
    ("neg", lambda x, y: -x),
    ("abs", lambda x, y: x.abs()),
    ("add", lambda x, y: x + y),
    ("sub", lambda x, y: x - y),
    ("mul", lambda x, y: x * y),
    ("div", lambda x, y: x / (y * y + 1)),
    ("floor", lambda x, y: x.floor()),
    ("floordiv", lambda x, y: x // 3),
    ("floordiv_tensor", lambda x, y: x // (y * y + 1)),
    ("remainder", lambda x, y: x % (y * y + 1)),
    ("fmod", lambda x, y: lib(x).fmod(x, -3)),
    ("maximum", lambda x, y: x.maximum(y)),
    ("minimum", lambda x, y: x.minimum(y)),
    ("pow", lambda x, y: x**2),
    ("eq", lambda x, y: x == y),
    ("lt", lambda x, y: x < y),
    ("clamp", lambda x, y: x.clamp(0, 3)),
    ("sign", lambda x, y: x.sign()),
    ("exp", lambda x, y: x.exp()),
    ("sqrt", lambda x, y: x.abs().sqrt()),
    ("sigmoid", lambda x, y: x.sigmoid()),
    ("relu", lambda x, y: x.relu()),
    ("logical_and", lambda x, y: x.logical_and(y)),
    ("scalar_float", lambda x, y: x * 2.5),
    ("scalar_int", lambda x, y: x + 2),
    ("isnan", lambda x, y: x.isnan()),
    ("where", lambda x, y: x.where(x > y, y)),
]


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32, genesis.int8, genesis.uint8], ids=str)
@pytest.mark.parametrize("name,fn", INT_OPS, ids=[c[0] for c in INT_OPS])
def test_elementwise_on_integer_tensors_matches_torch(name, fn, dtype):
    low = 0 if dtype is genesis.uint8 else -5
    x, y = _pair(dtype, (3, 5), low, 6), _pair(dtype, (5,), low, 6, seed=1)
    _same_outcome(fn, (x[0], y[0]), (x[1], y[1]))


BOOL_OPS = [
    ("and", lambda x, y: x & y),
    ("or", lambda x, y: x | y),
    ("not", lambda x, y: ~x),
    ("eq", lambda x, y: x == y),
    ("add", lambda x, y: x + y),
    ("mul", lambda x, y: x * y),
    ("add_int", lambda x, y: x + 1),
    ("mul_float", lambda x, y: x * 1.5),
    ("maximum", lambda x, y: x.maximum(y)),
    ("where", lambda x, y: lib(x).where(x, 1.0, 0.0)),
    ("logical_not", lambda x, y: x.logical_not()),
    ("exp", lambda x, y: x.exp()),
    ("div", lambda x, y: x / 2),
    ("sign", lambda x, y: x.sign()),
    ("pow", lambda x, y: x**2),
    ("clamp_int", lambda x, y: x.clamp(min=0)),
    # refused by torch, so by genesis too
    ("neg", lambda x, y: -x),
    ("sub", lambda x, y: x - y),
    ("sub_python_bool", lambda x, y: x - True),
    ("abs", lambda x, y: x.abs()),
    ("relu", lambda x, y: x.relu()),
    ("floor", lambda x, y: x.floor()),
    ("ceil", lambda x, y: x.ceil()),
    ("clamp_bool", lambda x, y: x.clamp(max=True)),
]


@pytest.mark.parametrize("name,fn", BOOL_OPS, ids=[c[0] for c in BOOL_OPS])
def test_elementwise_on_bool_tensors_matches_torch(name, fn):
    rng = np.random.default_rng(2)
    x_np, y_np = rng.random((3, 5)) < 0.5, rng.random(5) < 0.5
    _same_outcome(fn, (genesis.tensor(x_np), genesis.tensor(y_np)), (torch.from_numpy(x_np), torch.from_numpy(y_np)))


# ---- type promotion: the result dtype is torch's, tier by tier ---------------------------------
PROMOTION_DTYPES = [
    genesis.bool,
    genesis.uint8,
    genesis.int8,
    genesis.int32,
    genesis.int64,
    genesis.float16,
    genesis.bfloat16,
    genesis.float32,
    genesis.float64,
]
PROMOTION_OPS = [
    ("add", lambda a, b: a + b),
    ("mul", lambda a, b: a.mul(b)),
    ("sub", lambda a, b: b - a),
    ("div", lambda a, b: a / b),
    ("floordiv", lambda a, b: a // b),
    ("remainder", lambda a, b: b % a),
    ("maximum", lambda a, b: lib(a).maximum(a, b)),
    ("eq", lambda a, b: a == b),
    ("where", lambda a, b: lib(a).where(a > 0, a, b)),
]


@pytest.mark.parametrize("a", PROMOTION_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("b", PROMOTION_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("tier", ["dimensioned", "0d"])
def test_type_promotion_between_tensors_matches_torch(a, b, tier):
    b_shape = (3,) if tier == "dimensioned" else ()
    (ga, ta), (gb, tb) = _pair(a, (2, 3)), _pair(b, b_shape, seed=1)
    for name, fn in PROMOTION_OPS:
        _same_outcome(fn, (ga, gb), (ta, tb))


@pytest.mark.parametrize("a", PROMOTION_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("scalar", [True, 2, 2.5], ids=["bool", "int", "float"])
@pytest.mark.parametrize("zero_dim", [False, True], ids=["dimensioned", "0d"])
def test_type_promotion_with_python_scalars_matches_torch(a, scalar, zero_dim):
    shape = () if zero_dim else (2, 3)
    for fn in [
        lambda x: x + scalar,
        lambda x: scalar * x,
        lambda x: x / scalar,
        lambda x: x**2,
        lambda x: x > scalar,
        lambda x: lib(x).where(x > 1, x, scalar),
        lambda x: x.clamp(max=scalar),
    ]:
        g, t = _pair(a, shape)
        _same_outcome(fn, (g,), (t,))


def test_default_dtype_decides_what_an_integer_becomes_under_true_division():
    genesis.set_default_dtype(genesis.float64)
    try:
        assert (genesis.tensor([1, 2]) / 2).dtype is genesis.float64
        assert genesis.tensor([1, 2]).exp().dtype is genesis.float64
        assert (genesis.tensor([1, 2]) * 0.5).dtype is genesis.float64
    finally:
        genesis.set_default_dtype(genesis.float32)
    assert (genesis.tensor([1, 2]) / 2).dtype is genesis.float32


def test_gradient_flows_to_each_input_in_its_own_dtype_after_promotion():
    x = genesis.tensor([[1.0, 2.0]], dtype=genesis.float16, requires_grad=True)
    y = genesis.tensor([3.0, 4.0], dtype=genesis.float64, requires_grad=True)
    out = x * y
    assert out.dtype is genesis.float64
    out.sum().backward()
    assert x.grad.dtype is genesis.float16 and x.grad.tolist() == [[3.0, 4.0]]
    assert y.grad.dtype is genesis.float64 and y.grad.tolist() == [1.0, 2.0]


# ---- errors ---------------------------------------------------------------------------------
ERRORS = [
    ("broadcast", lambda: genesis.zeros(3, 5) + genesis.zeros(4, 5), r"\[3, 5\] and \[4, 5\].*dimension -2"),
    ("broadcast_inner", lambda: genesis.zeros(2, 3) * genesis.zeros(2), r"\[2, 3\] and \[2\]"),
    ("where_condition", lambda: genesis.where(genesis.ones(3), genesis.ones(3), 0.0), r"bool tensor"),
    ("clamp_nothing", lambda: genesis.zeros(3).clamp(), r"at least one of min and max"),
    ("gelu_mode", lambda: genesis.gelu(genesis.zeros(3), approximate="fast"), r"'none' or 'tanh'"),
    ("rounding_mode", lambda: genesis.div(genesis.ones(3), 2, rounding_mode="up"), r"rounding_mode"),
]


@pytest.mark.parametrize("name,fn,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_are_clear(name, fn, message):
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        fn()


BITWISE = {
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "not": lambda a, b: ~a,
    "and_scalar": lambda a, b: a & 5,
    "or_reflected": lambda a, b: 9 | a,
}


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int16", "int32", "int64"])
@pytest.mark.parametrize("name", sorted(BITWISE))
def test_bitwise_ops_match_torch(name, dtype):
    rng = np.random.default_rng(0)
    low = 0 if dtype in ("bool", "uint8") else -50
    values = rng.integers(low, 2 if dtype == "bool" else 100, (2, 2, 7, 5))
    a, b = (v.astype(dtype) for v in values)
    got = BITWISE[name](genesis.tensor(a), genesis.tensor(b))
    expected = BITWISE[name](torch.from_numpy(a), torch.from_numpy(b))
    assert got.dtype is GENESIS_DTYPE[expected.dtype]
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
