"""genesis.nn.functional against torch.nn.functional: softmax family, sdpa, conv/pool options, norms, misc.

Values and gradients go through `check_torch`; float64 pins the math
exactly, float32 the tolerances users see. Composite-specific properties
(stable softmax on huge logits, NaN rows when fully masked, fp16 rounding
once, autocast results) are checked directly.
"""

import numpy as np
import pytest
import torch
from optest import assert_close, check_numerical_grad, check_torch, to_numpy

import genesis
import genesis.nn.functional as F

DTYPES = [genesis.float32, genesis.float64]


def lib_of(t):
    return torch.nn.functional if isinstance(t, torch.Tensor) else F


def tensor_lib(t):
    return torch if isinstance(t, torch.Tensor) else genesis


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- softmax family ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family(dtype, name, dim):
    check_torch(lambda x: getattr(lib_of(x), name)(x, dim), [randn(3, 4, 5) * 4], dtype=dtype)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_softmax_is_stable_and_masked_rows_are_nan():
    x = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 2.0, 3.0], [-np.inf, -np.inf, -np.inf]])
    check_torch(lambda x: lib_of(x).softmax(x, -1), [x], dtype=genesis.float64, grad=False)
    check_torch(lambda x: lib_of(x).log_softmax(x, -1), [x[:2]], dtype=genesis.float64)


def test_softmax_numerical_gradient_and_dtype_argument():
    check_numerical_grad(lambda x: F.log_softmax(x, 1), [randn(2, 5)])
    check_torch(lambda x: lib_of(x).softmax(x, 1, dtype=tensor_lib(x).float64), [randn(2, 3)], grad=False)


def test_low_precision_softmax_rounds_once():
    """fp16 in, fp16 out, computed in fp32 like PyTorch's kernel: equal to torch bit for bit or one ulp."""
    x = randn(4, 33) * 3
    for dtype in (genesis.float16, genesis.bfloat16):
        check_torch(lambda x: lib_of(x).softmax(x, -1), [x], dtype=dtype)
        check_torch(lambda x: lib_of(x).layer_norm(x, (33,)), [x], dtype=dtype, grad=False)


def test_autocast_keeps_fp32_composites_in_fp32():
    x = genesis.randn(3, 8)
    weight = genesis.randn(4, 8)
    with genesis.amp.autocast(dtype=genesis.float16):
        logits = F.linear(x, weight, genesis.randn(4))
        probs = F.softmax(logits, -1)
        normed = F.layer_norm(logits, (4,))
    assert logits.dtype is genesis.float16
    assert probs.dtype is genesis.float32 and normed.dtype is genesis.float32


# ---- activations -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("relu", {}),
        ("gelu", {}),
        ("gelu", {"approximate": "tanh"}),
        ("silu", {}),
        ("leaky_relu", {"negative_slope": 0.1}),
        ("elu", {"alpha": 1.5}),
        ("softplus", {"beta": 0.5, "threshold": 4}),
        ("logsigmoid", {}),
        ("hardtanh", {"min_val": -0.5, "max_val": 2.0}),
        ("hardtanh", {"min_val": 0.0, "max_val": 2.0}),
        ("relu6", {}),
        ("glu", {"dim": 1}),
        ("sigmoid", {}),
        ("tanh", {}),
        ("mish", {}),
    ],
)
def test_activation_functions(dtype, name, kwargs):
    x = randn(3, 6) * 5
    x[0, 0] = 0.0
    check_torch(lambda x: getattr(lib_of(x), name)(x, **kwargs), [x], dtype=dtype)


# ---- scaled dot-product attention ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", ["none", "bool", "float", "causal", "bool_broadcast"])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_sdpa(dtype, mask, scale):
    rng = np.random.default_rng(0)
    q, k, v = randn(2, 3, 5, 4, seed=1), randn(2, 3, 7, 4, seed=2), randn(2, 3, 7, 6, seed=3)
    bool_mask = rng.random((2, 3, 5, 7)) < 0.7
    bool_mask[..., 0] = True
    float_mask = rng.standard_normal((5, 7))

    def fn(q, k, v):
        lib = tensor_lib(q)
        kwargs = {"scale": scale}
        if mask == "bool":
            kwargs["attn_mask"] = lib.tensor(bool_mask)
        elif mask == "bool_broadcast":
            kwargs["attn_mask"] = lib.tensor(bool_mask[0, 0])
        elif mask == "float":
            kwargs["attn_mask"] = lib.tensor(float_mask, dtype=q.dtype)
        elif mask == "causal":
            kwargs["is_causal"] = True
        return lib_of(q).scaled_dot_product_attention(q, k, v, **kwargs)

    check_torch(fn, [q, k, v], dtype=dtype)


def test_sdpa_causal_square_and_3d():
    q = randn(4, 6, 8)
    check_torch(lambda q: lib_of(q).scaled_dot_product_attention(q, q, q, is_causal=True), [q], dtype=genesis.float64)


def test_sdpa_gqa_and_dropout():
    q, k = randn(1, 4, 3, 2), randn(1, 2, 5, 2, seed=1)
    check_torch(
        lambda q, k: lib_of(q).scaled_dot_product_attention(q, k, k, enable_gqa=True), [q, k], dtype=genesis.float64
    )
    out = F.scaled_dot_product_attention(
        genesis.ones(1, 50, 4), genesis.ones(1, 50, 4), genesis.ones(1, 50, 4), dropout_p=0.5
    )
    values = to_numpy(out)  # each output averages ~half of the values 1/(1-p)=2 with weight 1/50
    assert 0.6 < values.mean() < 1.4 and values.std() > 0


def test_sdpa_shape_errors():
    with pytest.raises(ValueError, match="do not fit"):
        F.scaled_dot_product_attention(genesis.randn(2, 3, 4), genesis.randn(2, 3, 5), genesis.randn(2, 3, 5))


# ---- convolution and pooling as functions ------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(stride=2, padding=1),
        dict(padding="same", dilation=(2, 1)),
        dict(groups=3, stride=(1, 2)),
        dict(padding=(0, 2), dilation=2),
    ],
)
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
def test_conv2d_function(dtype, kwargs):
    groups = kwargs.get("groups", 1)
    check_torch(
        lambda x, w, b: lib_of(x).conv2d(x, w, b, **kwargs),
        [randn(2, 3, 8, 7), randn(6, 3 // groups, 3, 2, seed=1), randn(6, seed=2)],
        dtype=dtype,
    )


def test_conv2d_numerical_gradient():
    check_numerical_grad(lambda x, w: F.conv2d(x, w, stride=2, padding=1), [randn(1, 2, 5, 4), randn(3, 2, 3, 3)])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_functions(dtype):
    x = randn(2, 3, 9, 7)
    check_torch(lambda x: lib_of(x).max_pool2d(x, (3, 2), stride=(2, 2), padding=1, ceil_mode=True), [x], dtype=dtype)
    check_torch(
        lambda x: lib_of(x).avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        [x],
        dtype=dtype,
    )
    check_torch(lambda x: lib_of(x).adaptive_avg_pool2d(x, (4, 3)), [x], dtype=dtype)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = np.zeros((1, 1, 4, 4))
    check_torch(lambda x: lib_of(x).max_pool2d(x, 2, stride=1), [x], dtype=genesis.float64)


# ---- norms, linear, embedding, dropout, misc -----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_functions(dtype):
    x, w, b = randn(3, 4, 5) * 2 + 1, randn(5, seed=1), randn(5, seed=2)
    check_torch(lambda x, w, b: lib_of(x).layer_norm(x, (5,), w, b, eps=1e-3), [x, w, b], dtype=dtype)
    check_torch(lambda x, w: lib_of(x).rms_norm(x, (4, 5), w.reshape(1, 5).expand(4, 5)), [x, w], dtype=dtype)
    check_torch(lambda x, w, b: lib_of(x).group_norm(x, 2, w[:4], b[:4]), [randn(2, 4, 3), w, b], dtype=dtype)
    check_torch(lambda x: lib_of(x).normalize(x, p=3.0, dim=-1), [x], dtype=dtype)


def test_batch_norm_function_updates_running_stats():
    x = randn(6, 3, 4)
    g_mean, g_var = genesis.zeros(3), genesis.ones(3)
    t_mean, t_var = torch.zeros(3), torch.ones(3)
    out = F.batch_norm(genesis.tensor(x, dtype=genesis.float32), g_mean, g_var, training=True, momentum=0.2)
    expected = torch.nn.functional.batch_norm(
        torch.tensor(x, dtype=torch.float32), t_mean, t_var, training=True, momentum=0.2
    )
    assert_close(out, expected, genesis.float32, "output")
    assert_close(g_mean, t_mean, genesis.float32, "running_mean")
    assert_close(g_var, t_var, genesis.float32, "running_var")


def test_norm_shape_errors():
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(genesis.randn(3, 4), (5,))
    with pytest.raises(ValueError, match="does not match"):
        F.linear(genesis.randn(3, 4), genesis.randn(2, 5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_and_embedding_functions(dtype):
    check_torch(
        lambda x, w, b: lib_of(x).linear(x, w, b), [randn(2, 3, 4), randn(5, 4, seed=1), randn(5, seed=2)], dtype=dtype
    )
    idx = np.array([[3, 0], [1, 3]])
    check_torch(lambda i, w: lib_of(w).embedding(i, w, padding_idx=3), [idx, randn(4, 2)], dtype=dtype)


def test_one_hot_and_pad():
    labels = np.array([[0, 2], [1, 3]])
    check_torch(lambda t: lib_of(t).one_hot(t, 5), [labels], grad=False)
    check_torch(lambda x: lib_of(x).pad(x, (1, 2, 0, 1), value=0.5), [randn(2, 3, 4)], dtype=genesis.float64)


def test_dropout_function():
    x = genesis.ones(1000)
    assert F.dropout(x, 0.4, training=False) is x
    y = to_numpy(F.dropout(x, 0.4))
    assert set(np.unique(y).round(5)) <= {0.0, round(1 / 0.6, 5)}
    assert abs((y == 0).mean() - 0.4) < 0.06
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, -0.1)
