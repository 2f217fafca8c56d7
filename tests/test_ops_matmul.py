"""matmul and casts against PyTorch: the two ops mixed precision is made of.

matmul rows cover PyTorch's rank rules (1-d operands are lifted to a row or a
column and the added dim dropped again), batched and broadcast batch dims,
mm/bmm/outer/dot and the `@` operator, each over the four float dtypes,
contiguous and strided, plus a float64 numerical-gradient check. Inner sizes
stay small, so fp16/bf16 results (fp32 accumulation, one rounding) fit the
per-dtype tolerance without a special case.

Casts are checked for every pair of dtypes against torch's conversion
(truncation toward zero, nonzero-is-true, round-to-nearest-even into fp16 and
bf16), then for the gradient that flows back through a float cast in the
input's own dtype, and for what a cast to an integer type does to autograd.
"""

import numpy as np
import pytest
import torch
from optest import FLOAT_DTYPES, TORCH_DTYPE, check_numerical_grad, check_torch

import genesis
from genesis.ops import matmul as matmul_module

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape)


def lib(x):
    return genesis if isinstance(x, genesis.Tensor) else torch


# (id, inputs, fn): one lambda serves genesis and torch
MATMUL = [
    ("vector_vector", [rand(5), rand(5)], lambda a, b: a @ b),
    ("vector_matrix", [rand(5), rand(5, 3)], lambda a, b: a @ b),
    ("matrix_vector", [rand(3, 5), rand(5)], lambda a, b: a.matmul(b)),
    ("matrix_matrix", [rand(3, 5), rand(5, 7)], lambda a, b: a @ b),
    ("batched", [rand(2, 3, 5), rand(2, 5, 4)], lambda a, b: a @ b),
    ("batch_broadcast", [rand(2, 1, 3, 5), rand(4, 5, 3)], lambda a, b: a @ b),
    ("batch_times_matrix", [rand(2, 3, 5), rand(5, 4)], lambda a, b: a @ b),
    ("matrix_times_batch", [rand(3, 5), rand(2, 5, 4)], lambda a, b: a @ b),
    ("batch_times_vector", [rand(2, 3, 5), rand(5)], lambda a, b: a @ b),
    # a stack times one matrix runs as one product over the stack's rows (and its gradient too)
    ("stack_times_matrix", [rand(2, 3, 4, 5), rand(5, 2)], lambda a, b: a @ b),
    ("transposed_stack_times_matrix", [rand(4, 3, 5), rand(5, 2)], lambda a, b: a.transpose(0, 1) @ b),
    ("vector_times_batch", [rand(5), rand(2, 5, 3)], lambda a, b: a @ b),
    ("batch_one_broadcast", [rand(1, 3, 5), rand(3, 5, 2)], lambda a, b: lib(a).matmul(a, b)),
    ("mm", [rand(3, 5), rand(5, 4)], lambda a, b: a.mm(b)),
    ("mm_function", [rand(4, 2), rand(2, 3)], lambda a, b: lib(a).mm(a, b)),
    ("bmm", [rand(2, 3, 5), rand(2, 5, 4)], lambda a, b: a.bmm(b)),
    ("outer", [rand(3), rand(5)], lambda a, b: lib(a).outer(a, b)),
    ("dot", [rand(7), rand(7)], lambda a, b: a.dot(b)),
    ("dot_function", [rand(4), rand(4)], lambda a, b: lib(a).dot(a, b)),
    ("shared_operand", [rand(4, 4)], lambda a: a @ a),
    ("gram", [rand(3, 5)], lambda a: a @ a.T),
    ("chain", [rand(3, 5), rand(5, 4), rand(4, 2)], lambda a, b, c: (a @ b).relu() @ c),
    ("transposed_operands", [rand(5, 3), rand(4, 5)], lambda a, b: a.T @ b.T),
    ("expanded_operand", [rand(1, 5), rand(5, 3)], lambda a, b: a.expand(4, 5) @ b),
    # empty dims
    ("empty_rows", [rand(0, 5), rand(5, 3)], lambda a, b: a @ b),
    ("empty_inner", [rand(3, 0), rand(0, 4)], lambda a, b: a @ b),
    ("empty_batch", [rand(0, 3, 5), rand(5, 2)], lambda a, b: a @ b),
    ("empty_inner_stack", [rand(2, 3, 0), rand(0, 4)], lambda a, b: a @ b),
    ("empty_vectors", [rand(0), rand(0)], lambda a, b: a @ b),
]


def _can_be_strided(inputs):
    """The strided variant swaps the last two dims' strides: it needs them both larger than 1
    (and no empty dim: an empty array counts as contiguous whatever its strides)."""
    matrices = [np.shape(a) for a in inputs if np.ndim(a) >= 2]
    return bool(matrices) and all(min(m[-2:]) > 1 and min(m) > 0 for m in matrices)


LAYOUTS = [(False, c) for c in MATMUL] + [(True, c) for c in MATMUL if _can_be_strided(c[1])]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("non_contiguous,case", LAYOUTS, ids=[("strided-" if s else "") + c[0] for s, c in LAYOUTS])
def test_matmul_matches_torch(case, non_contiguous, dtype):
    name, inputs, fn = case
    check_torch(fn, inputs, dtype=dtype, non_contiguous=non_contiguous)


@pytest.mark.parametrize("name,inputs,fn", MATMUL, ids=[c[0] for c in MATMUL])
def test_matmul_numerical_gradient(name, inputs, fn):
    check_numerical_grad(fn, inputs)


@pytest.mark.parametrize("dtype", [genesis.int64, genesis.int32], ids=str)
def test_integer_matmul_matches_torch(dtype):
    rng = np.random.default_rng(1)
    a, b = rng.integers(-5, 6, (2, 3, 4)), rng.integers(-5, 6, (4, 5))
    got = genesis.tensor(a).to(dtype) @ genesis.tensor(b).to(dtype)
    expected = torch.from_numpy(a).to(TORCH_DTYPE[dtype]) @ torch.from_numpy(b).to(TORCH_DTYPE[dtype])
    assert TORCH_DTYPE[got.dtype] == expected.dtype
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_low_precision_matmul_accumulates_in_fp32():
    """A long inner dim of ones: a running fp16 sum would stall at 2048; one rounding of 3000 does not."""
    for dtype in [genesis.float16, genesis.bfloat16]:
        ones = genesis.ones(2, 3000, dtype=dtype)
        out = ones @ ones.T
        assert out.dtype is dtype
        expected = torch.ones(2, 3000, dtype=TORCH_DTYPE[dtype]) @ torch.ones(3000, 2, dtype=TORCH_DTYPE[dtype])
        np.testing.assert_array_equal(out.to(genesis.float64).numpy(), expected.double().numpy())


MATMUL_ERRORS = [
    (
        "inner",
        lambda: genesis.zeros(3, 5) @ genesis.zeros(4, 2),
        ValueError,
        r"\[3, 5\] and \[4, 2\].*5 columns.*4 rows",
    ),
    ("vector_inner", lambda: genesis.zeros(3) @ genesis.zeros(4), ValueError, r"\[3\] and \[4\]"),
    ("batch", lambda: genesis.zeros(2, 3, 5) @ genesis.zeros(3, 5, 2), ValueError, r"batch dimensions.*\[2, 3, 5\]"),
    ("0d", lambda: genesis.tensor(2.0) @ genesis.zeros(3), ValueError, r"at least 1 dimension"),
    (
        "dtypes",
        lambda: genesis.zeros(2, 3) @ genesis.zeros(3, 2, dtype=genesis.float64),
        TypeError,
        r"same dtype.*float32 and float64",
    ),
    (
        "bool",
        lambda: genesis.zeros(2, 2, dtype=genesis.bool) @ genesis.zeros(2, 2, dtype=genesis.bool),
        TypeError,
        r"bool",
    ),
    ("mm_rank", lambda: genesis.zeros(2, 3, 4).mm(genesis.zeros(4, 2)), ValueError, r"mm expects 2-D.*\[2, 3, 4\]"),
    ("bmm_rank", lambda: genesis.zeros(3, 4).bmm(genesis.zeros(4, 2)), ValueError, r"bmm expects 3-D.*\[3, 4\]"),
]


@pytest.mark.parametrize("name,fn,kind,message", MATMUL_ERRORS, ids=[e[0] for e in MATMUL_ERRORS])
def test_matmul_errors_are_clear(name, fn, kind, message):
    with pytest.raises(kind, match=message):
        fn()


# ---- casts ---------------------------------------------------------------------------------
ALL_DTYPES = [
    genesis.bool,
    genesis.uint8,
    genesis.int8,
    genesis.int16,
    genesis.int32,
    genesis.int64,
    genesis.float16,
    genesis.bfloat16,
    genesis.float32,
    genesis.float64,
]
INTEGER_DTYPES = [genesis.uint8, genesis.int8, genesis.int16, genesis.int32, genesis.int64]
# values every dtype can hold, plus fractions (truncated toward zero) and values that fp16 and bf16
# must round (1/3, 1 + 2**-9, 300.7)
CAST_VALUES = np.array([0.0, 1.0, 2.0, 100.0, 0.4, 1.75, 1 / 3, 1 + 2**-9, 127.9, 3.0, 0.6, 1.0])
# and negative ones, ones near the integer types' bounds, and ones past fp16's range
SIGNED_VALUES = np.array(
    [
        -1.5,
        -0.5,
        -0.9,
        -100.0,
        300.7,
        -2.0,
        65.0,
        255.9,
        -128.9,
        32767.5,
        -32768.75,
        70000.5,
        -(2.0**31) - 0.5,
        2.0**40 + 0.5,
        -0.0,
    ]
)


def _pair(values, dtype):
    return genesis.tensor(values).to(dtype), torch.from_numpy(values).to(TORCH_DTYPE[dtype])


def _defined(values, dtype):
    """Where converting float64 `values` to `dtype` has a defined result: everywhere for floats and bool;
    for an integer type, where it holds the value's integral part. C leaves the rest undefined (numpy
    and PyTorch give different answers there, and either may change with the CPU), so no test looks."""
    if dtype.is_floating_point or dtype is genesis.bool:
        return np.ones(values.shape, dtype=bool)
    info = torch.iinfo(TORCH_DTYPE[dtype])
    whole = np.trunc(values)  # the bounds are -2**k and 2**k - 1: -2**k and 2**k are exact floats
    return np.isfinite(values) & (whole >= float(info.min)) & (whole < float(info.max + 1))


def _held(values, dtype):
    """float64 `values` as a tensor of `dtype` holds them (rounded into fp16/bf16), back in float64."""
    return torch.from_numpy(values).to(TORCH_DTYPE[dtype]).double().numpy()


@pytest.mark.parametrize("source", ALL_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("target", ALL_DTYPES, ids=lambda d: d.name)
def test_cast_between_every_pair_of_dtypes_matches_torch(source, target):
    values = np.concatenate([CAST_VALUES, SIGNED_VALUES])
    values = values[_defined(values, source)]  # making the source is a cast too
    values = values[_defined(_held(values, source), target)]
    values = np.stack([values, values[::-1]], axis=1)
    g, t = _pair(values, source)
    np.testing.assert_array_equal(g.to(genesis.float64).numpy(), t.double().numpy())  # the source agrees
    for layout in (lambda x: x, lambda x: x.T):  # contiguous and strided
        got, expected = layout(g).to(target), layout(t).to(TORCH_DTYPE[target])
        assert got.dtype is target and got.shape == tuple(expected.shape)
        np.testing.assert_array_equal(got.to(genesis.float64).numpy(), expected.double().numpy())


def _near_the_bounds(dtype):
    """Values around 0 and around the integer type's bounds, on both sides of each: some undefined."""
    info = torch.iinfo(TORCH_DTYPE[dtype])
    low, high = float(info.min), float(info.max)
    return np.array(
        [
            low - 1.0,
            low - 0.75,
            low - 0.5,
            low,
            low + 0.5,
            low + 1.25,
            -2.5,
            -1.75,
            -0.9,
            -0.5,
            -0.0,
            0.0,
            0.25,
            0.9,
            1.5,
            2.5,
            99.99,
            high - 1.25,
            high - 0.5,
            high,
            high + 0.5,
            high + 0.75,
            high + 1.0,
        ]
    )


@pytest.mark.parametrize("backend", ["eager", "c"])
@pytest.mark.parametrize("source", FLOAT_DTYPES, ids=lambda d: d.name)
def test_float_to_integer_casts_truncate_toward_zero_up_to_the_bounds(source, backend):
    """Every value whose integral part the integer type holds converts to that integral part: the
    bounds themselves, fractions just inside them (int8: -128.75 is -128, 127.5 is 127), and the
    fractions around zero, which truncation takes to 0 from both sides (-0.9 is 0, in uint8 too)."""
    inputs, expected = [], []
    for target in INTEGER_DTYPES:
        held = _held(_near_the_bounds(target), source)  # what a tensor of `source` holds: fp16 rounds
        held = held[_defined(held, target)]
        assert held.size >= 11, held  # the eleven around zero, always (int32's bounds are past fp16's range)
        inputs.append(genesis.tensor(held).to(source))
        expected.append(np.trunc(held))
        # PyTorch agrees on every one of them
        np.testing.assert_array_equal(
            torch.from_numpy(held).to(TORCH_DTYPE[source]).to(TORCH_DTYPE[target]).double().numpy(), np.trunc(held)
        )

    def cast(*tensors):  # the product makes each cast a statement of a fused kernel
        return tuple((x * 1).to(target) for x, target in zip(tensors, INTEGER_DTYPES))

    results = cast(*inputs) if backend == "eager" else genesis.compile(cast, backend=backend)(*inputs)
    for got, want, target in zip(results, expected, INTEGER_DTYPES):
        assert got.dtype is target
        np.testing.assert_array_equal(got.to(genesis.float64).numpy(), want, err_msg=target.name)


def test_cast_of_nan_and_infinity_to_bool_and_between_floats_matches_torch():
    values = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 70000.0, 1e-8])
    for source in FLOAT_DTYPES:
        for target in FLOAT_DTYPES + [genesis.bool]:
            g, t = _pair(values, source)
            got, expected = g.to(target), t.to(TORCH_DTYPE[target])
            np.testing.assert_array_equal(got.to(genesis.float64).numpy(), expected.double().numpy())


CAST_METHODS = [
    ("float", lambda x: x.float()),
    ("double", lambda x: x.double()),
    ("half", lambda x: x.half()),
    ("bfloat16", lambda x: x.bfloat16()),
    ("long", lambda x: x.long()),
    ("int", lambda x: x.int()),
    ("bool", lambda x: x.bool()),
    ("to_name", lambda x: x.to("float16") if isinstance(x, genesis.Tensor) else x.to(torch.float16)),
    ("to_keyword", lambda x: x.to(dtype=genesis.float64 if isinstance(x, genesis.Tensor) else torch.float64)),
    ("type", lambda x: x.type(genesis.int16 if isinstance(x, genesis.Tensor) else torch.int16)),
]


@pytest.mark.parametrize("source", [genesis.float32, genesis.float16, genesis.int64, genesis.bool], ids=str)
@pytest.mark.parametrize("name,fn", CAST_METHODS, ids=[c[0] for c in CAST_METHODS])
def test_cast_methods_match_torch(name, fn, source):
    g, t = _pair(CAST_VALUES, source)
    got, expected = fn(g), fn(t)
    assert TORCH_DTYPE[got.dtype] == expected.dtype
    np.testing.assert_array_equal(got.to(genesis.float64).numpy(), expected.double().numpy())


FLOAT_CASTS = [
    ("float", lambda x: x.float() * 3),
    ("double", lambda x: x.double() * 3),
    ("half", lambda x: x.half() * 3),
    ("bfloat16", lambda x: x.bfloat16() * 3),
    ("round_trip", lambda x: (x.double() * x.double()).to(x.dtype)),
    ("mixed_after_cast", lambda x: x.half().float() * x),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("name,fn", FLOAT_CASTS, ids=[c[0] for c in FLOAT_CASTS])
def test_gradient_flows_through_float_casts_in_the_input_dtype(name, fn, dtype):
    """check_torch also asserts each input's gradient has the input's own dtype."""
    check_torch(fn, [rand(3, 4)], dtype=dtype)


def test_cast_to_an_integer_type_ends_the_gradient():
    x = genesis.tensor([1.5, -2.5, 3.0], requires_grad=True)
    as_int = x.long()
    assert as_int.dtype is genesis.int64 and not as_int.requires_grad and as_int.grad_fn is None
    assert not x.bool().requires_grad
    (x * as_int.float()).sum().backward()
    assert x.grad.tolist() == [1.0, -2.0, 3.0]  # the int path adds nothing: truncation has no gradient


def test_cast_to_the_same_dtype_returns_the_tensor_itself_unless_copy_is_asked():
    x = genesis.ones(3)
    assert x.to(genesis.float32) is x and x.float() is x
    copied = x.to(genesis.float32, copy=True)
    assert copied is not x
    copied.add_(1)
    assert x.tolist() == [1.0, 1.0, 1.0]


def test_cast_to_an_unknown_dtype_is_a_clear_error():
    with pytest.raises(TypeError, match=r"unknown dtype 'complex64'"):
        genesis.ones(2).to(dtype="complex64")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("given_out", [False, True])
def test_a_stack_of_small_products_on_threads_is_each_matrixs_own_blas_product(monkeypatch, dtype, given_out):
    from genesis.ops import matmul as matmul_module

    monkeypatch.setattr(matmul_module, "THREADS", 3)  # 3 parts of a stack of 7: uneven parts
    # attention's shapes: queries times keys transposed, the keys read through a permute (not contiguous)
    queries = RNG.standard_normal((7, 4, 64, 32)).astype(dtype)
    keys = RNG.standard_normal((64, 7, 4, 32)).astype(dtype).transpose(1, 2, 3, 0)
    assert matmul_module._shares_the_stack(queries, keys, None)
    out = np.full((7, 4, 64, 64), np.nan, dtype) if given_out else None
    got = matmul_module.matmul_kernel(queries, keys, out=out)
    expected = np.stack([np.stack([q @ k for q, k in zip(qs, ks)]) for qs, ks in zip(queries, keys)])
    assert got.dtype == dtype and got.shape == expected.shape and (out is None or got is out)
    np.testing.assert_array_equal(got, expected)


def test_a_stack_too_small_to_share_or_broadcast_stays_one_numpy_call():
    from genesis.ops import matmul as matmul_module

    small = RNG.standard_normal((2, 8, 8)).astype(np.float32)
    assert not matmul_module._shares_the_stack(small, small, None)
    stack = RNG.standard_normal((64, 64, 64)).astype(np.float32)
    assert not matmul_module._shares_the_stack(stack, stack[:1], None)  # broadcast batch dims
    assert not matmul_module._shares_the_stack(stack, stack.astype(np.float64), None)


@pytest.mark.parametrize("input_shape", [(16, 12), (3, 5, 12)], ids=["rows", "stack"])
def test_a_linear_layers_weight_gradient_is_torchs_and_made_in_its_layout(input_shape):
    # the product reads weight.T; its gradient is made in that layout, so the weight's is row-major
    x, weight, g = rand(*input_shape), rand(7, 12), rand(*input_shape[:-1], 7)
    w = genesis.tensor(weight, requires_grad=True)
    (genesis.tensor(x) @ w.T).backward(genesis.tensor(g))
    reference = torch.tensor(weight, requires_grad=True)
    (torch.tensor(x) @ reference.T).backward(torch.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), reference.grad.numpy(), rtol=1e-12, atol=1e-12)
    # the rule's gradient for weight.T is held as weight.T is: its transpose, the weight's, is row-major
    x_t, g_t = genesis.tensor(x), genesis.tensor(g)
    grad = matmul_module._grad_b(g_t, None, x_t, w.detach().T)
    assert grad.shape == (12, 7) and grad.numpy().T.flags.c_contiguous
    np.testing.assert_allclose(grad.numpy().T, reference.grad.numpy(), rtol=1e-12, atol=1e-12)
