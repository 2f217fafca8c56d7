"""nn.init and each layer's default initialisation, tested statistically (genesis has its own RNG).

Bounds are exact; means and standard deviations are checked on tensors large
enough that the tolerances sit several standard errors wide. The fan and
gain helpers are compared with torch's exactly.
"""

import math

import numpy as np
import pytest
import torch
from optest import to_numpy

import genesis
import genesis.nn as nn
from genesis.nn import init


def uniform_stats(values, low, high):
    assert values.min() >= low and values.max() <= high
    assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low)
    assert abs(values.mean() - (low + high) / 2) < 0.02 * (high - low)
    assert abs(values.std() - (high - low) / math.sqrt(12)) < 0.02 * (high - low)


def normal_stats(values, mean, std):
    assert abs(values.mean() - mean) < 0.02 * std + 1e-12
    assert abs(values.std() - std) < 0.02 * std


@pytest.mark.parametrize("shape", [(4, 3), (8, 3, 5, 2), (6, 2, 7)])
def test_fans_and_gains_match_torch(shape):
    assert init._calculate_fan_in_and_fan_out(genesis.empty(shape)) == torch.nn.init._calculate_fan_in_and_fan_out(
        torch.empty(shape)
    )
    for nonlinearity, param in [
        ("linear", None),
        ("conv2d", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("selu", None),
    ]:
        assert init.calculate_gain(nonlinearity, param) == pytest.approx(
            torch.nn.init.calculate_gain(nonlinearity, param)
        )
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(genesis.empty(3))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")


def test_basic_fills_on_leaves_that_require_grad():
    p = nn.Parameter(genesis.empty(200, 300))
    assert init.uniform_(p, -2.0, 3.0) is p
    uniform_stats(to_numpy(p), -2.0, 3.0)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    init.normal_(p, 1.5, 0.5)
    normal_stats(to_numpy(p), 1.5, 0.5)
    init.constant_(p, 0.25)
    assert np.all(to_numpy(p) == 0.25)
    init.zeros_(p)
    assert not np.any(to_numpy(p))
    init.ones_(p)
    assert np.all(to_numpy(p) == 1)
    init.eye_(p)
    np.testing.assert_array_equal(to_numpy(p), np.eye(200, 300))
    assert p.requires_grad and p.grad_fn is None


def test_trunc_normal_and_generator():
    t = init.trunc_normal_(genesis.empty(100_000, dtype=genesis.float64), mean=0.5, std=2.0, a=-1.0, b=3.0)
    values = to_numpy(t)
    assert values.min() >= -1.0 and values.max() <= 3.0
    # mean of a normal(0.5, 2) truncated to [-1, 3]
    alpha, beta = (-1.0 - 0.5) / 2.0, (3.0 - 0.5) / 2.0
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: (1 + math.erf(z / math.sqrt(2))) / 2  # noqa: E731
    expected_mean = 0.5 + 2.0 * (pdf(alpha) - pdf(beta)) / (cdf(beta) - cdf(alpha))
    assert abs(values.mean() - expected_mean) < 0.02
    a = init.uniform_(genesis.empty(5), generator=genesis.Generator().manual_seed(3))
    b = init.uniform_(genesis.empty(5), generator=genesis.Generator().manual_seed(3))
    np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize("shape", [(300, 400), (64, 32, 3, 3)])
def test_xavier_and_kaiming(shape):
    t = genesis.empty(shape)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(t)
    bound = 1.7 * math.sqrt(3.0 * 2.0 / (fan_in + fan_out))
    uniform_stats(to_numpy(init.xavier_uniform_(t, gain=1.7)), -bound, bound)
    normal_stats(to_numpy(init.xavier_normal_(t, gain=0.5)), 0.0, 0.5 * math.sqrt(2.0 / (fan_in + fan_out)))
    gain = math.sqrt(2.0 / (1 + 0.3**2))
    bound = gain * math.sqrt(3.0 / fan_out)
    uniform_stats(to_numpy(init.kaiming_uniform_(t, a=0.3, mode="fan_out")), -bound, bound)
    normal_stats(to_numpy(init.kaiming_normal_(t, nonlinearity="relu")), 0.0, math.sqrt(2.0 / fan_in))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_normal_(t, mode="fan_avg")


def test_default_layer_initialisation():
    linear = nn.Linear(500, 400)
    bound = 1 / math.sqrt(500)  # kaiming_uniform_(a=sqrt(5)) gives exactly this bound
    uniform_stats(to_numpy(linear.weight), -bound, bound)
    assert np.abs(to_numpy(linear.bias)).max() <= bound and np.abs(to_numpy(linear.bias)).max() > 0.9 * bound
    conv = nn.Conv2d(16, 64, (3, 5), groups=2)
    fan_in = 8 * 15
    uniform_stats(to_numpy(conv.weight), -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
    assert np.abs(to_numpy(conv.bias)).max() <= 1 / math.sqrt(fan_in)
    emb = nn.Embedding(1000, 64)
    normal_stats(to_numpy(emb.weight), 0.0, 1.0)
    for norm in (nn.LayerNorm(7), nn.BatchNorm1d(7), nn.RMSNorm(7), nn.GroupNorm(7, 7)):
        assert np.all(to_numpy(norm.weight) == 1)
        if getattr(norm, "bias", None) is not None:
            assert not np.any(to_numpy(norm.bias))
    mha = nn.MultiheadAttention(64, 4)
    bound = math.sqrt(6.0 / (64 + 3 * 64))  # xavier over the packed (3E, E) matrix, as PyTorch
    uniform_stats(to_numpy(mha.in_proj_weight), -bound, bound)
    assert not np.any(to_numpy(mha.in_proj_bias)) and not np.any(to_numpy(mha.out_proj.bias))
    uniform_stats(to_numpy(mha.out_proj.weight), -1 / 8, 1 / 8)
    for layer in (linear, conv, emb, mha):
        assert all(p.requires_grad and p.is_leaf for p in layer.parameters())


def test_layers_honour_dtype_and_seed():
    layer = nn.Linear(3, 4, dtype=genesis.float64)
    assert layer.weight.dtype is genesis.float64 and layer.bias.dtype is genesis.float64
    genesis.manual_seed(11)
    a = to_numpy(nn.Linear(3, 4).weight)
    genesis.manual_seed(11)
    b = to_numpy(nn.Linear(3, 4).weight)
    np.testing.assert_array_equal(a, b)
