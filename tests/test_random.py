"""Random numbers: reproducibility, independent generators, and the distributions' promises.

Exact streams are not PyTorch's (genesis draws from numpy's PCG64), so these
tests check what a user relies on: the same seed gives the same numbers;
a `Generator` neither disturbs nor is disturbed by the global stream; saved
state resumes a stream exactly; rand stays in [0, 1) in every float dtype;
randn has the moments of a standard normal; randint covers exactly
[low, high). Sample sizes make a false failure far less likely than 1e-6.
"""

import numpy as np
import pytest

import genesis

FLOATS = [genesis.float32, genesis.float64, genesis.float16, genesis.bfloat16]


def draws(generator=None):
    """One of each random creation function, as plain lists."""
    return [
        genesis.rand(3, 4, generator=generator).tolist(),
        genesis.randn(5, generator=generator).tolist(),
        genesis.randint(-3, 9, (2, 7), generator=generator).tolist(),
        genesis.randperm(11, generator=generator).tolist(),
    ]


def test_manual_seed_repeats_every_random_function():
    genesis.manual_seed(1234)
    first = draws()
    genesis.manual_seed(1234)
    assert draws() == first
    genesis.manual_seed(1235)
    assert draws() != first


def test_consecutive_draws_differ():
    genesis.manual_seed(5)
    assert genesis.rand(8).tolist() != genesis.rand(8).tolist()


def test_generator_is_independent_of_the_global_stream():
    genesis.manual_seed(7)
    expected_global = draws()
    expected_private = draws(genesis.Generator().manual_seed(99))

    genesis.manual_seed(7)
    private = genesis.Generator().manual_seed(99)
    interleaved_private = []
    interleaved_global = []
    for make in (
        lambda g: genesis.rand(3, 4, generator=g),
        lambda g: genesis.randn(5, generator=g),
        lambda g: genesis.randint(-3, 9, (2, 7), generator=g),
        lambda g: genesis.randperm(11, generator=g),
    ):
        interleaved_private.append(make(private).tolist())
        interleaved_global.append(make(None).tolist())
    assert interleaved_private == expected_private
    assert interleaved_global == expected_global


def test_two_generators_with_one_seed_agree_and_manual_seed_returns_the_generator():
    a, b = genesis.Generator(), genesis.Generator()
    assert a.manual_seed(3) is a
    b.manual_seed(3)
    assert draws(a) == draws(b)
    assert a.initial_seed() == 3


def test_like_functions_take_a_generator():
    x = genesis.zeros(4, 3, dtype=genesis.float64)
    a, b = genesis.Generator().manual_seed(8), genesis.Generator().manual_seed(8)
    assert genesis.rand_like(x, generator=a).tolist() == genesis.rand_like(x, generator=b).tolist()
    assert genesis.randn_like(x, generator=a).tolist() == genesis.randn_like(x, generator=b).tolist()


def test_saved_state_resumes_the_stream():
    genesis.manual_seed(11)
    genesis.rand(10)
    state = genesis.get_rng_state()
    expected = draws()
    genesis.rand(100)  # move on, then go back
    genesis.set_rng_state(state)
    assert draws() == expected

    private = genesis.Generator().manual_seed(4)
    saved = private.get_state()
    first = draws(private)
    private.set_state(saved)
    assert draws(private) == first


def test_seed_and_initial_seed():
    chosen = genesis.seed()
    assert genesis.initial_seed() == chosen
    genesis.manual_seed(21)
    assert genesis.initial_seed() == 21


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_rand_is_in_the_half_open_unit_interval(dtype):
    x = genesis.rand(400_000, dtype=dtype)
    assert x.dtype is dtype and x.shape == (400_000,)
    values = x.float().numpy()
    # low-precision draws that rounded up to 1.0 would break [0, 1): with bfloat16's 8 bits
    # about 1 in 500 would, so 400k draws catch it
    assert values.min() >= 0.0 and values.max() < 1.0
    assert abs(values.mean() - 0.5) < 0.01
    assert abs(values.var() - 1 / 12) < 0.005
    # every tenth of the interval is hit about equally often
    counts = np.histogram(values, bins=10, range=(0, 1))[0]
    assert counts.min() > 0.09 * values.size and counts.max() < 0.11 * values.size


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.name)
def test_randn_has_standard_normal_moments(dtype):
    x = genesis.randn(500, 400, dtype=dtype)
    assert x.dtype is dtype and x.shape == (500, 400)
    values = x.double().numpy().reshape(-1)
    mean, std = values.mean(), values.std()
    assert abs(mean) < 0.01
    assert abs(std - 1) < 0.01
    standardized = (values - mean) / std
    assert abs((standardized**3).mean()) < 0.03  # skewness
    assert abs((standardized**4).mean() - 3) < 0.06  # kurtosis
    assert 0.66 < np.mean(np.abs(values) < 1) < 0.70  # ~68.3% within one sigma


@pytest.mark.parametrize(
    "dtype",
    [None, genesis.int32, genesis.int8, genesis.uint8, genesis.float32],
    ids=lambda d: getattr(d, "name", "default"),
)
def test_randint_covers_exactly_low_to_high(dtype):
    low, high = (0, 7) if dtype is genesis.uint8 else (-4, 7)
    x = genesis.randint(low, high, (300, 7), dtype=dtype)
    assert x.dtype is (dtype or genesis.int64) and x.shape == (300, 7)
    assert sorted(set(np.asarray(x.numpy()).reshape(-1).tolist())) == list(range(low, high))


def test_randint_with_high_only_and_its_errors():
    x = genesis.randint(5, (1000,))
    assert x.dtype is genesis.int64 and sorted(set(x.tolist())) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"low \(5\) must be less than high \(5\)"):
        genesis.randint(5, 5, (3,))
    with pytest.raises(TypeError, match="needs a size"):
        genesis.randint(0, 5)


def test_randperm_is_a_permutation():
    assert sorted(genesis.randperm(257).tolist()) == list(range(257))
    assert genesis.randperm(0).shape == (0,)


def test_random_floats_refuse_integer_dtypes_and_can_require_grad():
    with pytest.raises(TypeError, match="floating-point dtype, got int64"):
        genesis.rand(3, dtype=genesis.int64)
    with pytest.raises(TypeError, match="floating-point dtype, got bool"):
        genesis.randn(3, dtype=genesis.bool)
    x = genesis.randn(3, 2, requires_grad=True)
    assert x.requires_grad and x.is_leaf
