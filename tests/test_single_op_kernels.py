"""Eager ops run as C kernels for big float arrays (compiler/single_op.py): a fused group of size one.

The thresholds are lowered so that small arrays take the path; each case checks the result against a
float64 reference within the bound of float32 rounding, and that the C program (or, where it must
not, numpy's kernel) ran.
"""

import re

import numpy as np
import pytest

import genesis
from genesis.compiler import single_op
from genesis.compiler.codegen.c_dialect import FLAT_SUM_BLOCK, FLAT_SUM_LANES
from genesis.ops.op import OPS

pytestmark = pytest.mark.c_compiler
SHAPE = (37, 41, 29)
UNIT = 2.0**-24  # float32's unit roundoff


TRANSCENDENTAL = ("exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "sigmoid")
ARITHMETIC = ("add", "sub", "mul", "div", "sqrt", "rsqrt", "reciprocal")
IN_C_OPS = (
    ("sum", "prod", "amax", "amin", "erf", "gelu", "gelu_backward", "relu", "relu_backward")
    + TRANSCENDENTAL
    + ARITHMETIC
)


def test_the_ops_with_slow_numpy_kernels_take_the_c_path():
    assert {name for name, op in OPS.items() if op.generated_eager_from is not None} == set(IN_C_OPS)


@pytest.fixture
def small_threshold(monkeypatch):
    ops = [OPS[name] for name in IN_C_OPS]
    kept = [op.generated_eager_from for op in ops]
    for op in ops:
        object.__setattr__(op, "generated_eager_from", 1024)  # a frozen record, changed for the test only
    monkeypatch.setattr(single_op, "_programs", type(single_op._programs)())
    yield single_op._programs
    for op, threshold in zip(ops, kept):
        object.__setattr__(op, "generated_eager_from", threshold)


def _c_programs(programs) -> int:
    return sum(run is not single_op._NONE for run in programs.values())


def _data(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _sum_bound(x, dims, dtype):
    """A float32 sum adds at most FLAT_SUM_BLOCK / FLAT_SUM_LANES values per lane in float, then in double."""
    u = UNIT if dtype == np.float32 else 2.0**-53
    return (FLAT_SUM_BLOCK / FLAT_SUM_LANES + 8) * u * np.abs(x.astype(np.float64)).sum(axis=dims) + 1e-30


# a middle dim alone: the C backend refuses such a group, and numpy's kernel runs
IN_C = {None: True, (0,): True, (2,): True, (0, 2): True, (1,): False}


@pytest.mark.parametrize("dims", list(IN_C), ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_a_big_sum_runs_in_c_and_stays_within_float_rounding(small_threshold, dims, dtype):
    x = _data(SHAPE, dtype)
    got = genesis.tensor(x).sum(dims).numpy() if dims is not None else genesis.tensor(x).sum().numpy()
    exact = x.astype(np.float64).sum(axis=dims)
    assert got.dtype == dtype and got.shape == exact.shape
    assert np.all(np.abs(got - exact) <= _sum_bound(x, dims, dtype))
    assert _c_programs(small_threshold) == IN_C[dims] and len(small_threshold) == 1


@pytest.mark.parametrize("name", ["amax", "amin"])
@pytest.mark.parametrize("dims", [None, (1,), (0, 2)], ids=str)
def test_a_big_max_or_min_is_numpys_exactly(small_threshold, name, dims):
    x = _data(SHAPE)
    t = genesis.tensor(x)
    got = getattr(t, name)(dims, keepdim=True) if dims is not None else getattr(t, name)()
    expected = getattr(np, name)(x, axis=dims, keepdims=dims is not None)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert _c_programs(small_threshold) == IN_C[dims]


def test_a_big_product_matches_numpy(small_threshold):
    x = (1 + 0.01 * _data(SHAPE)).astype(np.float32)
    got = genesis.tensor(x).prod().item()
    np.testing.assert_allclose(got, np.prod(x.astype(np.float64)), rtol=x.size * UNIT)
    assert _c_programs(small_threshold) == 1


def test_nan_and_inf_come_through_as_in_numpy(small_threshold):
    x = _data(5000)
    x[1234] = np.nan
    assert np.isnan(genesis.tensor(x).amax().item()) and np.isnan(genesis.tensor(x).amin().item())
    x[1234] = np.inf
    assert genesis.tensor(x).sum().item() == np.inf and genesis.tensor(x).amax().item() == np.inf


def test_mean_and_the_gradient_of_a_big_sum(small_threshold):
    x = _data(5000)
    t = genesis.tensor(x, requires_grad=True)
    mean = t.mean()
    assert abs(mean.item() - x.astype(np.float64).mean()) <= _sum_bound(x, None, np.float32) / x.size + UNIT
    t.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.ones_like(x))


def test_small_strided_or_integer_inputs_keep_numpys_kernel(small_threshold):
    x = _data((64, 64))
    np.testing.assert_array_equal(genesis.tensor(x[:8]).sum(0).numpy(), x[:8].sum(0))  # 512 elements: small
    big = genesis.tensor(_data((128, 64)))
    np.testing.assert_allclose(big.T.sum(1).numpy(), big.numpy().T.sum(1), rtol=1e-5)  # a strided view
    ints = np.arange(5000)
    assert genesis.tensor(ints).sum().item() == ints.sum()
    assert _c_programs(small_threshold) == 0


def test_without_a_c_compiler_numpys_kernel_runs(small_threshold, monkeypatch):
    monkeypatch.setattr(single_op.native, "compiler_available", lambda: False)
    x = _data(5000)
    assert genesis.tensor(x).amax().item() == x.max()
    assert _c_programs(small_threshold) == 0 and len(small_threshold) == 1


def test_one_program_per_shape_and_the_oldest_dropped(small_threshold, monkeypatch):
    monkeypatch.setattr(single_op, "_KEPT", 2)
    for size in (2000, 3000, 2000, 4000):
        x = _data(size)
        assert genesis.tensor(x).amax().item() == x.max()
    assert [key[2] for key in small_threshold] == [((2000,),), ((4000,),)]


def test_a_compiled_flat_sum_adds_float_blocks_then_doubles(tmp_path):
    x = _data(3 * FLAT_SUM_BLOCK + 17)
    got = genesis.compile(lambda t: (t * 2).sum(), backend="c", dump_dir=tmp_path)(genesis.tensor(x)).item()
    assert abs(got - 2 * x.astype(np.float64).sum()) <= 2 * _sum_bound(x, None, np.float32)
    (folder,) = tmp_path.iterdir()
    source = (folder / "kernels.c").read_text()
    assert re.search(rf"float b_v\d+\[{FLAT_SUM_LANES}\]", source) and f"block += {FLAT_SUM_BLOCK}" in source, source
    assert str(x.size) not in source  # a flat kernel's C names no size: every size shares one library


def _flat_sum_in_lanes(x) -> float:
    """A flat float32 sum as the C kernel adds it (one chunk): per block, lane l the elements l,
    l + LANES, ... in float, the lanes pairwise, the blocks' sums in double."""
    total = 0.0
    for start in range(0, x.size, FLAT_SUM_BLOCK):
        block = np.zeros(FLAT_SUM_BLOCK, np.float32)  # + 0.0 leaves a lane's sum as it is
        block[: x.size - start] = x[start : start + FLAT_SUM_BLOCK]
        lanes = np.add.reduce(block.reshape(-1, FLAT_SUM_LANES), axis=0)  # down each column, in order
        width = FLAT_SUM_LANES // 2
        while width:
            lanes[:width] += lanes[width : 2 * width]
            width //= 2
        total += float(lanes[0])
    return total


def test_a_flat_sum_adds_in_the_kernels_lanes_on_every_machine():
    """The lanes are the kernel's, not the vector unit's: the same bits whatever the machine's width."""
    x = _data(5 * FLAT_SUM_BLOCK + 37, seed=4)
    got = genesis.compile(lambda t: t.sum(), backend="c")(genesis.tensor(x)).numpy()
    assert got == np.float32(_flat_sum_in_lanes(x))


@pytest.mark.parametrize("name", TRANSCENDENTAL)
def test_big_transcendentals_run_in_c_within_a_few_ulps(small_threshold, name):
    x = np.abs(_data(5000, seed=5)) + 0.25  # inside every function's domain
    got = getattr(genesis.tensor(x), name)().numpy()
    reference = (lambda v: 1 / (1 + np.exp(-v))) if name == "sigmoid" else getattr(np, name)
    exact = reference(x.astype(np.float64))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=8 * UNIT, atol=0)
    assert [key[0] for key in small_threshold] == [name] and _c_programs(small_threshold) == 1


@pytest.mark.parametrize("name", ARITHMETIC)
def test_big_arithmetic_in_c_is_numpys_bit_for_bit(small_threshold, name):
    a, b = np.abs(_data(SHAPE, seed=6)) + 0.5, _data(SHAPE[1:], seed=7)  # b broadcast over the rows
    binary = name in ("add", "sub", "mul", "div")
    got = getattr(genesis.tensor(a), name)(genesis.tensor(b)) if binary else getattr(genesis.tensor(a), name)()
    numpy_kernel = OPS[name].kernel
    np.testing.assert_array_equal(got.numpy(), numpy_kernel(a, b) if binary else numpy_kernel(a))
    assert _c_programs(small_threshold) == 1


def test_gelu_and_its_gradient_in_c_match_torch(small_threshold):
    torch = pytest.importorskip("torch")
    x = 3 * _data(5000, seed=1)
    g = _data(5000, seed=2)
    t = genesis.tensor(x, requires_grad=True)
    y = genesis.nn.functional.gelu(t)
    y.backward(genesis.tensor(g))
    reference = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.gelu(reference)
    expected.backward(torch.tensor(g, dtype=torch.float64))
    # erff and expf are within a few ulps; the derivative sums two such terms
    np.testing.assert_allclose(y.detach().numpy(), expected.detach().numpy(), rtol=16 * UNIT, atol=16 * UNIT)
    np.testing.assert_allclose(t.grad.numpy(), reference.grad.numpy(), rtol=64 * UNIT, atol=64 * UNIT)
    assert {key[0] for key in small_threshold} == {"gelu", "gelu_backward"}
    assert _c_programs(small_threshold) == 2


def test_erf_in_c_matches_the_float64_erf_and_small_arrays_keep_scipys(small_threshold):
    from scipy import special

    x = 2 * _data(3000, seed=3)
    got = genesis.tensor(x).erf().numpy()
    np.testing.assert_allclose(got, special.erf(x.astype(np.float64)), rtol=8 * UNIT, atol=8 * UNIT)
    small = x[:100]
    np.testing.assert_array_equal(genesis.tensor(small).erf().numpy(), special.erf(small))
    assert _c_programs(small_threshold) == 1 and len(small_threshold) == 1


def test_a_bfloat16_input_runs_in_float32_and_is_rounded_once(small_threshold):
    x = genesis.tensor(_data(5000, seed=8), dtype=genesis.bfloat16)
    got = x.exp()
    assert got.dtype is genesis.bfloat16
    exact = np.exp(x.numpy().astype(np.float64))
    np.testing.assert_allclose(got.numpy().astype(np.float64), exact, rtol=2.0**-8, atol=0)  # half a bf16 ulp
    assert _c_programs(small_threshold) == 1


def test_relu_and_its_gradient_in_c_are_numpys_and_torchs(small_threshold):
    torch = pytest.importorskip("torch")
    x, g = _data(SHAPE, seed=8), _data(SHAPE, seed=9)
    x[0, 0, :4] = [0.0, -0.0, np.nan, 1.0]  # -0.0 becomes +0.0 and NaN stays, as numpy's maximum gives
    g[0, 0, :4] = np.nan  # a NaN gradient where the output is 0 gives 0, as PyTorch's
    t = genesis.tensor(x, requires_grad=True)
    out = genesis.nn.functional.relu(t)
    out.backward(genesis.tensor(g))
    np.testing.assert_array_equal(out.detach().numpy().view(np.uint32), OPS["relu"].kernel(x).view(np.uint32))
    reference = torch.tensor(x, requires_grad=True)
    torch.nn.functional.relu(reference).backward(torch.tensor(g))
    np.testing.assert_array_equal(t.grad.numpy(), reference.grad.numpy())
    assert [key[0] for key in small_threshold] == ["relu", "relu_backward"] and _c_programs(small_threshold) == 2


def test_exp_in_c_at_the_ends_of_the_float_range(small_threshold):
    # masked attention scores: exp of -inf and of values far below -104 is 0 (computed as exp(0) and
    # replaced, so no lane's multiply underflows), the denormals above -104 are as numpy's, past 104
    # exp overflows, and NaN stays NaN
    edges = [-np.inf, -1e30, -1e4, -200.0, -104.5, -104.0, -103.5, -100.0, -90.0, -87.5, 88.5, 104.5, np.inf, np.nan]
    x = np.resize(np.array(edges, np.float32), 2048)
    got = genesis.tensor(x).exp().numpy()
    with np.errstate(over="ignore", under="ignore"):
        exact = np.exp(x.astype(np.float64)).astype(np.float32)  # rounded once: 0 below about -103.97
    np.testing.assert_allclose(got, exact, rtol=2 * UNIT, atol=2.0**-149 * 16, equal_nan=True)
    assert (got[x < -104] == 0).all() and (got[x > 89] == np.inf).all()
    assert _c_programs(small_threshold) == 1
