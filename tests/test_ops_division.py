"""Floor division, remainder and fmod against PyTorch, and the error PyTorch raises for integers over zero.

Python's rounding (`//`, `%`, floor_divide, remainder: the remainder takes
the divisor's sign) and C's (fmod, div with rounding_mode="trunc"), on every
integer dtype and the float dtypes, with negative operands on either side,
Python scalars on either side, and the values at the edges: the most negative
integer over -1, integers past float32's 24 bits, inf, nan and signed zeros.

An integer division by zero has no value: eager raises ZeroDivisionError
(PyTorch a RuntimeError that says "ZeroDivisionError"). A compiled kernel
cannot raise from inside its loop, so there it gives numpy's value, 0, and
it must never trap the process (x86's integer division does, with SIGFPE):
the C case runs in a child process, so a trap fails the test instead of
killing the test run.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from optest import GENESIS_DTYPE, TORCH_DTYPE

import genesis

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

INTEGER_DTYPES = [genesis.uint8, genesis.int8, genesis.int16, genesis.int32, genesis.int64]


def lib(x):
    return genesis if isinstance(x, genesis.Tensor) else torch


# every way to divide: each lambda reads the same in genesis and torch
DIVISIONS = {
    "floordiv": lambda a, b: a // b,
    "floor_divide": lambda a, b: lib(a).floor_divide(a, b),
    "div_floor": lambda a, b: a.div(b, rounding_mode="floor"),
    "div_trunc": lambda a, b: lib(a).div(a, b, rounding_mode="trunc"),
    "mod": lambda a, b: a % b,
    "remainder": lambda a, b: lib(a).remainder(a, b),
    "remainder_method": lambda a, b: a.remainder(b),
    "fmod": lambda a, b: lib(a).fmod(a, b),
    "fmod_method": lambda a, b: a.fmod(b),
    "floordiv_scalar": lambda a, b: a // 3,
    "floordiv_negative_scalar": lambda a, b: a // -3,
    "rfloordiv": lambda a, b: -7 // b,
    "mod_scalar": lambda a, b: a % 3,
    "mod_negative_scalar": lambda a, b: a % -3,
    "rmod": lambda a, b: 7 % b,
    "rmod_negative": lambda a, b: -7 % b,
    "fmod_negative_scalar": lambda a, b: lib(a).fmod(a, -3),
    "mod_float_scalar": lambda a, b: a % 2.5,
    "floordiv_float_scalar": lambda a, b: a // -2.5,
}


def _operands(dtype):
    """Every sign combination of dividend and divisor, exact multiples and not, the divisor never 0."""
    if dtype is genesis.uint8:
        a, b = np.array([0, 1, 7, 9, 200, 255, 13, 6]), np.array([1, 3, 7, 2, 9, 16, 255, 4])
    else:
        a = np.array([7, -7, 7, -7, 0, 9, -9, 6, -6, 1, -1, 100])
        b = np.array([2, 2, -2, -2, 3, 3, -3, -3, 3, -4, 4, 7])
    return _both(a, dtype), _both(b, dtype)


def _both(values, dtype):
    values = np.asarray(values)
    return genesis.tensor(values).to(dtype), torch.from_numpy(values).to(TORCH_DTYPE[dtype])


def _assert_same(got, expected):
    assert got.dtype is GENESIS_DTYPE[expected.dtype], f"dtype {got.dtype} != torch's {expected.dtype}"
    if not got.dtype.is_floating_point:
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
        return
    got, expected = got.to(genesis.float64).numpy(), expected.double().numpy()
    np.testing.assert_array_equal(got, expected)
    # -4 % 2 is -0.0 in PyTorch: the sign of a zero is part of the answer (a NaN's sign is not)
    numbers = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(got[numbers]), np.signbit(expected[numbers]))


@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(DIVISIONS))
def test_integer_division_matches_torch(name, dtype):
    (ga, ta), (gb, tb) = _operands(dtype)
    _assert_same(DIVISIONS[name](ga, gb), DIVISIONS[name](ta, tb))


@pytest.mark.parametrize("dtype", [genesis.int32, genesis.int64], ids=str)
def test_integer_division_is_exact_past_the_precision_of_floats(dtype):
    """A quotient through float32 (or float64) would lose the low bits: 2**31 - 1 // 1 is not -2**31."""
    info = np.iinfo(np.int32 if dtype is genesis.int32 else np.int64)
    a = np.array([info.max, info.max - 1, info.min + 1, 2**24 + 1, -(2**24) - 3, info.max // 3 * 3 + 1])
    b = np.array([1, 3, 7, -1, 5, 3])
    (ga, ta), (gb, tb) = _both(a, dtype), _both(b, dtype)
    for name in ("floordiv", "div_trunc", "mod", "fmod"):
        _assert_same(DIVISIONS[name](ga, gb), DIVISIONS[name](ta, tb))


@pytest.mark.parametrize("dtype", [genesis.int8, genesis.int32, genesis.int64], ids=str)
def test_the_most_negative_integer_over_minus_one_wraps_as_in_torch(dtype):
    """-2**31 // -1 overflows: PyTorch (and numpy) wrap it to -2**31; the remainders are 0."""
    smallest = np.iinfo({genesis.int8: np.int8, genesis.int32: np.int32, genesis.int64: np.int64}[dtype]).min
    (ga, ta), (gb, tb) = _both([smallest, smallest, 5], dtype), _both([-1, 1, -1], dtype)
    # torch traps on the truncating division of this pair itself (SIGFPE), so its quotient is written out
    expected_trunc = torch.tensor([smallest, smallest, -5]).to(TORCH_DTYPE[dtype])
    _assert_same(genesis.div(ga, gb, rounding_mode="trunc"), expected_trunc)
    for name in ("floordiv", "mod", "fmod"):
        _assert_same(DIVISIONS[name](ga, gb), DIVISIONS[name](ta, tb))


FLOAT_VALUES = (
    # fractions, exact multiples (zero remainders keep the dividend's sign), and 1 // 0.1 = 9, not 10
    np.array([5.3, -5.3, 5.3, -5.3, -4.0, 4.0, 0.0, -0.0, 1.0, 7.5, -0.25, 1e-30, 3.0, -3.0, np.inf, np.nan, 2.0]),
    np.array([2.0, 2.0, -2.0, -2.0, 2.0, -2.0, 3.0, 3.0, 0.1, 0.5, 0.75, 3.0, np.inf, np.inf, 2.0, 1.0, np.nan]),
)


@pytest.mark.parametrize(
    "dtype", [genesis.float32, genesis.float64, genesis.float16, genesis.bfloat16], ids=lambda d: d.name
)
@pytest.mark.parametrize(
    "name",
    [
        "floordiv",
        "div_floor",
        "div_trunc",
        "mod",
        "remainder",
        "fmod",
        "rmod",
        "rmod_negative",
        "mod_negative_scalar",
        "floordiv_negative_scalar",
    ],
)
def test_float_division_matches_torch_with_signed_zeros_inf_and_nan(name, dtype):
    (ga, ta), (gb, tb) = _both(FLOAT_VALUES[0], dtype), _both(FLOAT_VALUES[1], dtype)
    _assert_same(DIVISIONS[name](ga, gb), DIVISIONS[name](ta, tb))


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=lambda d: d.name)
def test_float_division_by_zero_gives_inf_and_nan_as_torch_does(dtype):
    (ga, ta), (gb, tb) = _both([5.0, -5.0, 0.0, np.inf], dtype), _both([0.0, 0.0, -0.0, 0.0], dtype)
    for name in ("floordiv", "div_trunc", "mod", "fmod"):
        _assert_same(DIVISIONS[name](ga, gb), DIVISIONS[name](ta, tb))


# ---- an integer divisor of zero -------------------------------------------------------------------
ZERO_DIVISIONS = {
    "floordiv": lambda a, b: a // b,
    "floordiv_scalar_zero": lambda a, b: a // 0,
    "rfloordiv": lambda a, b: 5 // b,
    "div_floor": lambda a, b: lib(a).div(a, b, rounding_mode="floor"),
    "div_trunc": lambda a, b: lib(a).div(a, b, rounding_mode="trunc"),
    "mod": lambda a, b: a % b,
    "mod_scalar_zero": lambda a, b: a % 0,
    "mod_0d_zero": lambda a, b: a % b[1],
    "rmod": lambda a, b: 7 % b,
    "fmod": lambda a, b: lib(a).fmod(a, b),
    "inplace_mod": lambda a, b: a.__imod__(b),
}


@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(ZERO_DIVISIONS))
def test_an_integer_division_by_zero_raises_as_in_torch(name, dtype):
    (ga, ta), (gb, tb) = _both([5, 6, 7], dtype), _both([2, 0, 3], dtype)
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        ZERO_DIVISIONS[name](ta, tb)
    with pytest.raises(ZeroDivisionError, match=rf"integer division by zero.*{dtype.name}"):
        ZERO_DIVISIONS[name](ga, gb)


def test_a_float_result_of_integer_operands_is_not_an_integer_division():
    # an int tensor over a float scalar divides floats: 5 // 0.0 is inf, in torch as here
    (ga, ta), (gb, _) = _both([5, -5, 0], genesis.int64), _both([0, 0, 0], genesis.int64)
    _assert_same(ga // 0.0, ta // 0.0)
    _assert_same(ga % 0.0, ta % 0.0)
    _assert_same(ga / gb, ta / torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("name", ["floordiv", "mod", "fmod"])
def test_bool_operands_are_refused_as_in_torch(name):
    g, t = _both([True, False], genesis.bool)
    with pytest.raises(NotImplementedError):
        DIVISIONS[name](t, t)
    with pytest.raises(TypeError, match="bool"):
        DIVISIONS[name](g, g)
    # a bool tensor over an int divides integers
    _assert_same(DIVISIONS[name](g, genesis.tensor([2, 3])), DIVISIONS[name](t, torch.tensor([2, 3])))


def test_in_place_forms_write_into_the_tensor():
    for method, torch_method in [
        ("__imod__", "__imod__"),
        ("__ifloordiv__", "__ifloordiv__"),
        ("remainder_", "remainder_"),
        ("fmod_", "fmod_"),
    ]:
        (ga, ta), (gb, tb) = _operands(genesis.int32)
        before = ga
        result = getattr(ga, method)(gb)
        assert result is before
        _assert_same(ga, getattr(ta, torch_method)(tb))


# ---- gradients ----------------------------------------------------------------------------------
def test_remainder_and_fmod_gradients_match_torch():
    """d(a % b)/da = 1, d(a % b)/db = -floor(a / b); for fmod -trunc(a / b); floor division has none."""
    a = np.array([5.3, -2.7, 7.1, -8.2, 0.4])
    b = np.array([2.0, 1.5, -2.2, -3.0, 0.3])
    for fn in [lambda x, y: x % y, lambda x, y: lib(x).fmod(x, y), lambda x, y: x % -1.3]:
        gx, gy = genesis.tensor(a, requires_grad=True), genesis.tensor(b, requires_grad=True)
        tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        fn(gx, gy).sum().backward()
        fn(tx, ty).sum().backward()
        for g, t in ((gx, tx), (gy, ty)):
            if t.grad is None:
                assert g.grad is None
            else:
                np.testing.assert_array_equal(g.grad.numpy(), t.grad.numpy())
    gy = genesis.tensor(b, requires_grad=True)
    (7.5 % gy).sum().backward()  # PyTorch has no derivative of a Python number % a tensor
    np.testing.assert_array_equal(gy.grad.numpy(), -np.floor(7.5 / b))
    gx = genesis.tensor(a, requires_grad=True)
    (gx // 2).sum().backward()
    assert not gx.grad.numpy().any()


# ---- compiled -------------------------------------------------------------------------------------
def _integer_program(a, b):
    return a // b, a % b, genesis.fmod(a, b), genesis.div(a, b, rounding_mode="trunc"), (a + 1) // 3, 7 % b


@pytest.mark.parametrize("backend", ["numpy", "c", "triton"])
@pytest.mark.parametrize("dtype", [genesis.int8, genesis.int32, genesis.int64, genesis.uint8], ids=str)
def test_compiled_integer_division_equals_eager(backend, dtype):
    (ga, _), (gb, _) = _operands(dtype)
    if dtype is not genesis.uint8:  # the overflowing pair too
        smallest = int(np.iinfo(ga.numpy().dtype).min)
        ga = genesis.cat([ga, genesis.tensor([smallest]).to(dtype)])
        gb = genesis.cat([gb, genesis.tensor([-1]).to(dtype)])
    compiled = genesis.compile(_integer_program, backend=backend)
    for got, expected in zip(compiled(ga, gb), _integer_program(ga, gb)):
        assert got.dtype is expected.dtype
        np.testing.assert_array_equal(got.numpy(), expected.numpy())


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float16], ids=lambda d: d.name)
@pytest.mark.parametrize("backend", ["numpy", "c", "triton"])
def test_compiled_float_division_equals_eager_bit_for_bit(backend, dtype):
    a, b = genesis.tensor(FLOAT_VALUES[0]).to(dtype), genesis.tensor(FLOAT_VALUES[1]).to(dtype)
    program = lambda a, b: (a // b, a % b, genesis.fmod(a, b), -7 % b, a // 0.0)  # noqa: E731
    for got, expected in zip(genesis.compile(program, backend=backend)(a, b), program(a, b)):
        assert got.numpy().tobytes() == expected.numpy().tobytes()


@pytest.mark.parametrize("backend", ["c", "numpy", "triton", "eager"])
@pytest.mark.parametrize("dtype", [genesis.int32, genesis.int64], ids=str)
def test_a_compiled_integer_division_by_zero_is_refused_as_in_eager(dtype, backend):
    """A fused loop cannot raise: the traced division reads its divisor through a check, which the
    compiled program runs before the kernel, so the error is eager's."""
    a, b = genesis.tensor([7, -7, 5], dtype=dtype), genesis.tensor([2, 0, 1], dtype=dtype)
    for name, program in (
        ("floor_divide", lambda a, b: a // b + 1),
        ("remainder", lambda a, b: a % b),
        ("fmod", lambda a, b: genesis.fmod(a, b)),
        ("floor_divide", lambda a, b: 9 // b),
        ("floor_divide", lambda a, b: a // 0),
    ):
        for run in (program, genesis.compile(program, backend=backend)):
            with pytest.raises(ZeroDivisionError, match=f"{name}: integer division by zero"):
                run(a, b)


# in a child process for the C backend: x86's integer division traps (SIGFPE) on the most negative
# value // -1, which would kill the test run rather than fail this test; it wraps in int32, as in numpy
OVERFLOW_PROGRAM = """
import genesis

def overflow(dtype, backend):
    a, b = genesis.tensor([-2 ** 31, 5, -7], dtype=dtype), genesis.tensor([-1, 2, 2], dtype=dtype)
    program = genesis.compile(lambda a, b: (a // b, a % b, genesis.fmod(a, b)), backend=backend)
    return [r.numpy().tolist() for r in program(a, b)]
"""
OVERFLOW_RESULTS = {
    dtype: [[quotient, 2, -4], [0, 1, 1], [0, 1, -1]] for dtype, quotient in (("int32", -(2**31)), ("int64", 2**31))
}


@pytest.mark.parametrize("backend", ["numpy", "triton"])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_the_overflowing_integer_quotient_wraps_as_in_numpy(dtype, backend):
    namespace = {}
    exec(OVERFLOW_PROGRAM, namespace)
    assert namespace["overflow"](getattr(genesis, dtype), backend) == OVERFLOW_RESULTS[dtype]


@pytest.mark.c_compiler
def test_a_c_kernel_never_traps_on_the_overflowing_integer_quotient():
    script = OVERFLOW_PROGRAM + "print([overflow(genesis.int32, 'c'), overflow(genesis.int64, 'c')])"
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.returncode == 0, f"the compiled division killed its process ({child.returncode}): {child.stderr}"
    assert child.stdout.strip() == str([OVERFLOW_RESULTS["int32"], OVERFLOW_RESULTS["int64"]])
