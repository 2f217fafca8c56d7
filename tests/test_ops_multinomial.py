"""multinomial: the draws follow the weights (chi-square bounds tight enough to fail for a wrong
sampler), exact properties (no repeats without replacement, weight 0 never drawn while others are
left), reproducibility through genesis's generators, and compiled draws equal eager's."""

import numpy as np
import pytest

import genesis

WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0, 0.0])  # unnormalised, as PyTorch allows
P = WEIGHTS / WEIGHTS.sum()
# chi-square with 3 degrees of freedom exceeds 27 with probability 6e-6: a right sampler passes every
# seed in practice, while a sampler off by 1% in one category over 10^5 draws already scores ~40
CHI2_LIMIT = 27.0


def chi_square(observed_counts, probabilities, draws):
    expected = probabilities * draws
    keep = expected > 0
    return float((((observed_counts - expected) ** 2)[keep] / expected[keep]).sum())


def counts(values, categories=5):
    return np.bincount(np.asarray(values).reshape(-1), minlength=categories)


def test_draws_with_replacement_follow_the_weights():
    draws = 200_000
    out = genesis.multinomial(genesis.tensor(WEIGHTS), draws, replacement=True)
    assert out.dtype is genesis.int64 and out.shape == (draws,)
    observed = counts(out.numpy())
    assert observed[4] == 0  # weight 0: never drawn
    assert chi_square(observed, P, draws) < CHI2_LIMIT


def test_each_row_draws_from_its_own_weights():
    weights = np.stack([WEIGHTS, WEIGHTS[::-1], [0.0, 0.0, 5.0, 0.0, 0.0]])
    out = genesis.tensor(weights, dtype=genesis.float32).multinomial(50_000, replacement=True).numpy()
    assert out.shape == (3, 50_000)
    assert chi_square(counts(out[0]), P, 50_000) < CHI2_LIMIT
    assert chi_square(counts(out[1]), P[::-1], 50_000) < CHI2_LIMIT
    assert np.all(out[2] == 2)


def test_draws_without_replacement_follow_the_remaining_weights():
    rows = 60_000
    out = genesis.multinomial(genesis.tensor(np.tile(WEIGHTS, (rows, 1))), 3).numpy()
    assert all(len(set(row)) == 3 for row in out[:2000])  # no repeats
    assert np.all(np.sort(out, axis=1)[:, :-1] != np.sort(out, axis=1)[:, 1:])
    assert not np.any(out == 4)  # weight 0 waits until every other category is drawn
    # the first draw follows the weights; the second follows them renormalised after the first
    second = np.array([sum(P[i] * P[j] / (1 - P[i]) for i in range(5) if i != j) for j in range(5)])
    assert chi_square(counts(out[:, 0]), P, rows) < CHI2_LIMIT
    assert chi_square(counts(out[:, 1]), second, rows) < CHI2_LIMIT


def test_every_category_without_replacement_puts_weight_zero_last():
    out = genesis.multinomial(genesis.tensor(np.tile(WEIGHTS, (100, 1))), 5).numpy()
    assert np.all(np.sort(out, axis=1) == np.arange(5)) and np.all(out[:, -1] == 4)


def test_manual_seed_and_generators_repeat_the_draws():
    weights = genesis.tensor(WEIGHTS)
    genesis.manual_seed(7)
    first = genesis.multinomial(weights, 20, replacement=True).numpy()
    genesis.manual_seed(7)
    np.testing.assert_array_equal(genesis.multinomial(weights, 20, replacement=True).numpy(), first)
    a = genesis.multinomial(weights, 4, generator=genesis.Generator().manual_seed(3)).numpy()
    genesis.rand(10)  # the default generator moves on; a generator of its own does not
    b = genesis.multinomial(weights, 4, generator=genesis.Generator().manual_seed(3)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first, genesis.multinomial(weights, 20, replacement=True).numpy())


@pytest.mark.parametrize(
    "weights, num_samples, replacement, error, message",
    [
        ([1.0, -1.0], 1, False, RuntimeError, "element < 0"),
        ([1.0, float("nan")], 1, True, RuntimeError, "inf, nan"),
        ([0.0, 0.0], 1, True, RuntimeError, "sum of probabilities <= 0"),
        ([1, 2], 1, False, TypeError, "floating point, got int64"),
        ([[[1.0]]], 1, False, genesis.errors.ShapeError, "1-d or 2-d"),
        ([1.0, 2.0], 0, True, ValueError, "num_samples must be positive"),
        ([1.0, 2.0], 3, False, ValueError, "3 samples without replacement from 2 categories"),
    ],
)
def test_bad_weights_are_named(weights, num_samples, replacement, error, message):
    with pytest.raises(error, match=message):
        genesis.multinomial(genesis.tensor(weights), num_samples, replacement)


@pytest.mark.parametrize("backend", ["numpy", "c", "eager"])
def test_compiled_draws_equal_eager_and_change_per_call(backend):
    weights = genesis.tensor(np.tile(WEIGHTS, (4, 1)), dtype=genesis.float32)
    fn = lambda w: genesis.multinomial(w * 2, 3) + genesis.multinomial(w, 6, replacement=True).sum(-1, keepdim=True)
    compiled = genesis.compile(fn, backend=backend, fullgraph=True)
    genesis.manual_seed(5)
    expected = fn(weights).numpy()
    genesis.manual_seed(5)
    np.testing.assert_array_equal(compiled(weights).numpy(), expected)
    draws = [compiled(weights).numpy() for _ in range(3)]
    assert not (np.array_equal(draws[0], draws[1]) and np.array_equal(draws[1], draws[2]))
    assert compiled.stats["compiles"] == 1
