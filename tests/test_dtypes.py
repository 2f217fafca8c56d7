"""Dtypes and type promotion, checked exhaustively against PyTorch.

Promotion is where silent divergence from PyTorch hides (a Python float that
widens an fp16 tensor to fp32 doubles its memory; an int tensor divided by an
int must become the default float), so every ordered pair of dtypes is run
through real ops in every tier PyTorch distinguishes: dimensioned tensors,
0-d tensors and Python scalars. The expected dtype is never written down
here: torch computes it, and genesis must agree on both dtype and values.
Where torch refuses a combination (bool subtraction), genesis must refuse it
too, with its own error.
"""

import itertools

import ml_dtypes
import numpy as np
import pytest
import torch
from optest import TORCH_DTYPE, assert_close, to_numpy

import genesis
from genesis.ops.dtype_rules import promoted

# int16 is not in the list but genesis has it, so it is promoted like the others
DTYPES = [
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
PAIRS = list(itertools.product(DTYPES, DTYPES))
SCALARS = [True, 3, -2, 2.5]


def pair_id(pair):
    return f"{pair[0].name}-{pair[1].name}"


def values(shape, dtype, offset=0):
    """Small non-negative integers (exact in every dtype, no wrap-around in uint8), never zero
    for divisors; bool gets a True/False mix."""
    count = int(np.prod(shape))
    raw = (np.arange(count).reshape(shape) * 7 + offset) % 4 + 1
    if dtype is genesis.bool:
        return raw % 2 == 0
    return raw


def both(array, dtype):
    g = genesis.tensor(array, dtype=dtype)
    t = torch.tensor(array).to(TORCH_DTYPE[dtype])
    return g, t


BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": lambda a, b: a.maximum(b),
    "lt": lambda a, b: a < b,
    "eq": lambda a, b: a == b,
}


def run_both(op, g_args, t_args):
    """Run `op` in torch and genesis; both must fail, or both succeed with the same dtype and values."""
    try:
        expected = op(*t_args)
    except (RuntimeError, TypeError, NotImplementedError):
        with pytest.raises((TypeError, RuntimeError, ValueError)) as info:
            op(*g_args)
        assert "genesis" in type(info.value).__module__ or type(info.value).__module__ == "builtins"
        assert "bool" in str(info.value), f"the error should name the refused dtype: {info.value}"
        return
    actual = op(*g_args)
    assert TORCH_DTYPE[actual.dtype] == expected.dtype, f"genesis {actual.dtype}, torch {expected.dtype}"
    assert_close(actual, expected, actual.dtype, "values")


# ---- the promotion table --------------------------------------------------
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_promote_types_matches_torch(pair):
    a, b = pair
    assert TORCH_DTYPE[genesis.promote_types(a, b)] == torch.promote_types(TORCH_DTYPE[a], TORCH_DTYPE[b])


# ---- every pair through real ops, in each tier ----------------------------
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@pytest.mark.parametrize("tiers", ["dim-dim", "dim-0d", "0d-dim", "0d-0d"])
def test_binary_ops_promote_like_torch(pair, tiers):
    a_dtype, b_dtype = pair
    a_shape = (2, 3) if tiers.startswith("dim") else ()
    b_shape = (3,) if tiers.endswith("-dim") else ()
    ga, ta = both(values(a_shape, a_dtype), a_dtype)
    gb, tb = both(values(b_shape, b_dtype, offset=1), b_dtype)
    for op in BINARY_OPS.values():
        run_both(op, (ga, gb), (ta, tb))
    # the three-tier rule itself, as torch.result_type reports it
    dimensioned = [x.dtype for x in (ga, gb) if x.ndim]
    zero_dim = [x.dtype for x in (ga, gb) if not x.ndim]
    assert TORCH_DTYPE[genesis.dtypes.result_type(dimensioned, zero_dim, [])] == torch.result_type(ta, tb)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("scalar", SCALARS, ids=repr)
@pytest.mark.parametrize("zero_dim", [False, True], ids=["dim", "0d"])
def test_python_scalars_do_not_widen_a_tensor_of_their_category(dtype, scalar, zero_dim):
    shape = () if zero_dim else (4, 3)
    g, t = both(values(shape, dtype), dtype)
    for name, op in BINARY_OPS.items():
        if name == "maximum":
            continue  # torch.maximum takes no Python scalar
        run_both(op, (g, scalar), (t, scalar))
        run_both(op, (scalar, g), (scalar, t))
    tiers = genesis.dtypes.result_type([] if zero_dim else [dtype], [dtype] if zero_dim else [], [scalar])
    assert TORCH_DTYPE[tiers] == torch.result_type(t, scalar)
    # dispatch's shortcut for a tensor and a Python number gives the three tiers' answer, either side
    assert promoted((g, scalar)) is tiers and promoted((scalar, g)) is tiers


def test_float16_tensor_with_python_float_stays_float16():
    x = genesis.tensor([1.0, 2.0], dtype=genesis.float16)
    assert (x * 2.5).dtype is genesis.float16
    assert (x + genesis.tensor(1.0, dtype=genesis.float64)).dtype is genesis.float16  # 0-d of same category
    assert (genesis.tensor([1, 2], dtype=genesis.int32) + 2.5).dtype is genesis.float32


def test_int_with_float_gives_the_default_float_even_when_it_changes():
    x = genesis.tensor([1, 2, 3])
    try:
        genesis.set_default_dtype(genesis.float64)
        assert (x * 0.5).dtype is genesis.float64
        assert (x / 2).dtype is genesis.float64
        assert genesis.tensor([1.5]).dtype is genesis.float64
    finally:
        genesis.set_default_dtype(genesis.float32)
    assert (x / 2).dtype is genesis.float32


def test_set_default_dtype_refuses_integers():
    with pytest.raises(TypeError, match="floating-point"):
        genesis.set_default_dtype(genesis.int32)


# ---- dtypes themselves ----------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_each_dtype_round_trips_through_numpy_and_torch(dtype):
    array = values((3, 5), dtype)
    g, t = both(array, dtype)
    assert g.dtype is dtype
    # numpy has no bfloat16 of its own: genesis stores ml_dtypes' real one
    expected_numpy = np.dtype(ml_dtypes.bfloat16) if dtype is genesis.bfloat16 else t.numpy().dtype
    assert g.numpy().dtype == expected_numpy
    np.testing.assert_array_equal(to_numpy(g), to_numpy(t))
    assert g.tolist() == t.tolist()
    back = genesis.from_numpy(g.numpy())
    assert back.dtype is dtype


def test_default_dtypes_of_python_data_match_torch():
    for data in [[1, 2], [1.0, 2], [True, False], [[1], [2.5]], 3, 2.5, True, [True, 2]]:
        assert TORCH_DTYPE[genesis.tensor(data).dtype] == torch.tensor(data).dtype, data


def test_bfloat16_is_real_bfloat16_and_rounds_like_torch():
    # values between bfloat16 neighbours, halfway cases (round to even), and past float16's range
    data = [1.00390625, 1.01171875, 3.14159265, -2.71828, 1e-3, 70000.0, 3.0e38, 1 / 3]
    g = genesis.tensor(data, dtype=genesis.bfloat16)
    t = torch.tensor(data, dtype=torch.bfloat16)
    assert g.numpy().dtype == np.dtype(ml_dtypes.bfloat16)
    assert g.tolist() == t.tolist()
    assert g.numpy().view(np.uint16).tolist() == t.view(torch.int16).numpy().view(np.uint16).tolist()
    assert genesis.tensor(data, dtype=genesis.float32).to(genesis.bfloat16).tolist() == t.tolist()


def test_float16_overflow_and_rounding_match_torch():
    data = [65504.0, 65520.0, 1e5, -1e5, 1e-8, 0.1]
    assert genesis.tensor(data, dtype=genesis.float16).tolist() == torch.tensor(data, dtype=torch.float16).tolist()


@pytest.mark.parametrize("target", DTYPES, ids=lambda d: d.name)
def test_casts_match_torch(target):
    # truncation toward zero for float -> int, nonzero -> True for bool; values stay in every range
    data = np.array([[-1.75, 0.0, 0.5, 2.5], [3.99, -0.25, 100.0, 7.0]])
    if not target.is_signed:
        data = np.abs(data)
    g = genesis.tensor(data, dtype=genesis.float32).to(target)
    t = torch.tensor(data, dtype=torch.float32).to(TORCH_DTYPE[target])
    assert g.dtype is target
    assert g.tolist() == t.tolist()


def test_dtype_names_and_aliases():
    assert genesis.float is genesis.float32 and genesis.half is genesis.float16
    assert genesis.double is genesis.float64 and genesis.long is genesis.int64
    assert genesis.dtypes.as_dtype("bfloat16") is genesis.bfloat16
    assert genesis.dtypes.as_dtype(torch.int8) is genesis.int8
    assert genesis.tensor([1.0]).to("half").dtype is genesis.float16
    assert genesis.tensor([1.0]).double().dtype is genesis.float64
    assert genesis.tensor([1.0]).long().dtype is genesis.int64
    assert repr(genesis.bfloat16) == "genesis.bfloat16"
    with pytest.raises(TypeError, match="unknown dtype 'complex64'.*float32"):
        genesis.tensor([1.0], dtype="complex64")
