"""In-place random fills and bernoulli: their distributions, reproducibility and generators.

Streams are genesis's own (numpy's PCG64), not PyTorch's, so the checks are
the distributions' moments and supports, with sample sizes that keep a false
failure far below 1e-6 (bounds of at least 6 standard errors), and that a seed
or a generator repeats the values.
"""

import math

import numpy as np
import pytest

import genesis

N = 200_000
FLOATS = [genesis.float32, genesis.float64, genesis.float16, genesis.bfloat16]


def _moments(t):
    values = t.double().numpy()
    return values.mean(), values.std()


def _close(value, expected, standard_error):
    assert abs(value - expected) < 6 * standard_error, (value, expected)


@pytest.mark.parametrize("dtype", FLOATS)
def test_normal_(dtype):
    t = genesis.empty(N, dtype=dtype)
    assert t.normal_(2.0, 3.0) is t and t.dtype is dtype
    mean, std = _moments(t)
    _close(mean, 2.0, 3.0 / math.sqrt(N))
    _close(std, 3.0, 3.0 / math.sqrt(2 * N) + 0.02)  # fp16/bf16 rounding adds a little spread


@pytest.mark.parametrize("dtype", FLOATS)
def test_uniform_(dtype):
    t = genesis.empty(N, dtype=dtype).uniform_(-2.0, 6.0)
    values = t.double().numpy()
    assert values.min() >= -2.0 and values.max() <= 6.0
    _close(values.mean(), 2.0, 8.0 / math.sqrt(12 * N))
    keyword = genesis.empty(1000).uniform_(**{"from": 5.0, "to": 7.0}).numpy()
    assert keyword.min() >= 5.0 and keyword.max() < 7.0


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64, genesis.int64, genesis.bool])
def test_bernoulli_(dtype):
    t = genesis.empty(N, dtype=dtype).bernoulli_(0.3)
    values = t.double().numpy()
    assert set(np.unique(values)) <= {0.0, 1.0}
    _close(values.mean(), 0.3, math.sqrt(0.3 * 0.7 / N))
    p = genesis.tensor([0.0, 1.0, 0.5]).expand(N // 3, 3)
    rows = genesis.empty(N // 3, 3).bernoulli_(p).numpy()
    assert rows[:, 0].max() == 0 and rows[:, 1].min() == 1
    _close(rows[:, 2].mean(), 0.5, math.sqrt(0.25 / (N // 3)))


def test_bernoulli_function():
    p = genesis.full((N,), 0.8, dtype=genesis.float64)
    out = genesis.bernoulli(p)
    assert out.dtype is genesis.float64 and out.shape == (N,)
    _close(out.numpy().mean(), 0.8, math.sqrt(0.16 / N))
    assert p.bernoulli(p=0.1).numpy().mean() < 0.2


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
def test_exponential_(dtype):
    t = genesis.empty(N, dtype=dtype).exponential_(2.0)
    mean, std = _moments(t)
    assert t.numpy().min() >= 0
    _close(mean, 0.5, 0.5 / math.sqrt(N))
    _close(std, 0.5, 0.5 * math.sqrt(8 / N))  # the sample std's error for an exponential
    with pytest.raises(ValueError, match="lambd"):
        t.exponential_(0.0)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.int64, genesis.int32, genesis.uint8])
def test_random_(dtype):
    counts = np.bincount(genesis.empty(N, dtype=dtype).random_(3, 8).numpy().astype(np.int64), minlength=8)
    assert counts[:3].sum() == 0 and counts[3:].min() > 0
    for c in counts[3:]:
        _close(c / N, 0.2, math.sqrt(0.16 / N))
    upper = genesis.empty(N, dtype=dtype).random_(4).numpy()
    assert set(np.unique(upper)) == {0, 1, 2, 3}
    whole = genesis.empty(N, dtype=dtype).random_().double().numpy()
    top = {genesis.float32: 2**24, genesis.int64: 2**63 - 1, genesis.int32: 2**31 - 1, genesis.uint8: 255}[dtype]
    assert whole.min() >= 0 and whole.max() <= top and whole.max() > top / 2
    with pytest.raises(ValueError, match="from"):
        genesis.empty(2, dtype=dtype).random_(5, 5)


def test_random_bool():
    values = genesis.empty(N, dtype=genesis.bool).random_().numpy()
    _close(values.mean(), 0.5, math.sqrt(0.25 / N))


FILLS = {
    "normal_": lambda t, g: t.normal_(generator=g),
    "uniform_": lambda t, g: t.uniform_(generator=g),
    "bernoulli_": lambda t, g: t.bernoulli_(0.5, generator=g),
    "exponential_": lambda t, g: t.exponential_(generator=g),
    "random_": lambda t, g: t.random_(0, 100, generator=g),
}


@pytest.mark.parametrize("name", sorted(FILLS))
def test_fills_repeat_with_a_seed_or_a_generator(name):
    fill = FILLS[name]
    genesis.manual_seed(7)
    first = fill(genesis.empty(50), None).tolist()
    genesis.manual_seed(7)
    assert fill(genesis.empty(50), None).tolist() == first
    assert fill(genesis.empty(50), None).tolist() != first
    a = fill(genesis.empty(50), genesis.Generator().manual_seed(3)).tolist()
    genesis.manual_seed(7)
    b = fill(genesis.empty(50), genesis.Generator().manual_seed(3)).tolist()
    assert a == b
    assert fill(genesis.empty(50), None).tolist() == first  # the generator left the global stream alone


def test_fills_refuse_a_leaf_that_requires_grad_and_give_the_history_they_replace_a_zero_gradient():
    leaf = genesis.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        leaf.normal_()
    with genesis.no_grad():
        leaf.uniform_()
    source = genesis.ones(3, requires_grad=True)
    made = source * 2
    made.normal_()
    # as PyTorch's NormalBackward0: the result still requires grad, and nothing reaches the old history
    assert made.requires_grad and made.grad_fn is not None
    (made * 3).sum().backward()
    assert source.grad.tolist() == [0.0, 0.0, 0.0]


def test_compiled_fill_draws_afresh_each_call():
    def step(x):
        return x.clone().normal_() * 2

    compiled = genesis.compile(step, fullgraph=True)
    x = genesis.zeros(1000)
    first, second = compiled(x).numpy(), compiled(x).numpy()
    assert not np.array_equal(first, second)
    _close(first.mean(), 0.0, 2 / math.sqrt(1000))
