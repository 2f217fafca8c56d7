"""Each genesis.nn layer against torch.nn with the same weights: outputs, input and parameter gradients.

`compare_module` copies the genesis module's state_dict into the torch
module (so the two start from identical numbers), runs both on the same
inputs, backpropagates the same random cotangent, and compares the outputs,
the gradients of the inputs and the gradient of every parameter by name.
float32 and float64 are both checked with the tight tolerances of optest.
"""

import numpy as np
import pytest
import torch
from optest import TORCH_DTYPE, assert_close, make_pair, to_numpy

import genesis
import genesis.nn as nn

DTYPES = [genesis.float32, genesis.float64]


def copy_into_torch(g_module, t_module):
    state = {
        k: torch.from_numpy(np.array(to_numpy(v))).to(t_module.state_dict()[k].dtype)
        for k, v in g_module.state_dict().items()
    }
    t_module.load_state_dict(state)


def compare_module(
    g_module, t_module, inputs, dtype, *, int_inputs=(), grad=True, rtol=None, atol=None, call=None, outputs=None
):
    """inputs: numpy arrays. Returns the genesis and torch outputs."""
    g_module.to(dtype)
    t_module.to(TORCH_DTYPE[dtype])
    copy_into_torch(g_module, t_module)
    g_args, t_args = [], []
    for i, array in enumerate(inputs):
        if i in int_inputs:
            g_args.append(genesis.tensor(array))
            t_args.append(torch.from_numpy(array))
        else:
            g, t = make_pair(array, dtype, grad)
            g_args.append(g)
            t_args.append(t)
    call = call or (lambda module, *args: module(*args))
    g_out, t_out = call(g_module, *g_args), call(t_module, *t_args)
    pick = outputs or (lambda out: out if isinstance(out, tuple) else (out,))
    g_outs, t_outs = pick(g_out), pick(t_out)
    for k, (go, to) in enumerate(zip(g_outs, t_outs)):
        assert TORCH_DTYPE[go.dtype] == to.dtype, f"output {k}: dtype {go.dtype} != torch's {to.dtype}"
        assert_close(go, to, dtype, f"output {k}", rtol, atol)
    if not grad:
        return g_out, t_out
    rng = np.random.default_rng(7)
    g_total = t_total = 0
    for go, to in zip(g_outs, t_outs):
        if not to.requires_grad:
            continue
        seed = rng.standard_normal(go.shape)
        g_total = g_total + (go * make_pair(seed, go.dtype, False)[0]).sum()
        t_total = t_total + (to * torch.tensor(seed).to(to.dtype)).sum()
    g_total.backward()
    t_total.backward()
    for i, (ga, ta) in enumerate(zip(g_args, t_args)):
        if isinstance(ta, torch.Tensor) and ta.requires_grad:
            assert ga.grad is not None, f"input {i} has no gradient"
            assert_close(ga.grad, ta.grad, dtype, f"gradient of input {i}", rtol, atol)
    t_params = dict(t_module.named_parameters())
    for name, gp in g_module.named_parameters():
        tp = t_params[name]
        if tp.grad is None:
            assert gp.grad is None or not np.any(to_numpy(gp.grad)), f"{name}: genesis has a gradient, torch none"
            continue
        assert gp.grad is not None, f"parameter {name} has no gradient"
        assert gp.grad.dtype is dtype
        assert_close(gp.grad, tp.grad, dtype, f"gradient of {name}", rtol, atol)
    return g_out, t_out


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- Linear, Embedding, Flatten, Identity ---------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 5), (5,)])
def test_linear(dtype, bias, shape):
    compare_module(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), [randn(*shape)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding(dtype, padding_idx):
    indices = np.array([[0, 2, 6], [6, 2, 1]], dtype=np.int64)
    g_out, _ = compare_module(
        nn.Embedding(7, 4, padding_idx=padding_idx),
        torch.nn.Embedding(7, 4, padding_idx=padding_idx),
        [indices],
        dtype,
        int_inputs=(0,),
    )


def test_embedding_padding_row_starts_at_zero_and_bad_index_is_clear():
    emb = nn.Embedding(5, 3, padding_idx=1)
    assert not np.any(to_numpy(emb.weight)[1])
    # PyTorch refuses a negative index here (x[i] would count it from the end): -1 must not read row 4
    for bad in (5, -1):
        with pytest.raises(IndexError, match=rf"index {bad} is out of range for an embedding of 5 rows"):
            emb(genesis.tensor([[0, 2], [bad, 1]]))
        with pytest.raises(IndexError):
            torch.nn.Embedding(5, 3)(torch.tensor([[0, 2], [bad, 1]]))


def test_flatten_identity():
    for start, end in [(1, -1), (0, 1), (2, 3)]:
        compare_module(nn.Flatten(start, end), torch.nn.Flatten(start, end), [randn(2, 3, 4, 5)], genesis.float32)
    compare_module(nn.Identity(3, foo=1), torch.nn.Identity(3, foo=1), [randn(3, 2)], genesis.float32)


# ---- normalization ---------------------------------------------------------------------------
def _perturb(module, seed=3, scale=1.0):
    """Random parameters (biases and affine weights too), so the test does not only see ones and zeros."""
    rng = np.random.default_rng(seed)
    with genesis.no_grad():
        for p in module.parameters():
            p.copy_(genesis.tensor(rng.standard_normal(p.shape) * scale, dtype=p.dtype))
    return module


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine, bias", [(True, True), (True, False), (False, False)])
def test_layer_norm(dtype, affine, bias):
    compare_module(
        _perturb(nn.LayerNorm((3, 5), eps=1e-4, elementwise_affine=affine, bias=bias)),
        torch.nn.LayerNorm((3, 5), eps=1e-4, elementwise_affine=affine, bias=bias),
        [randn(2, 4, 3, 5) * 3 + 1],
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_rms_norm(dtype, eps):
    compare_module(_perturb(nn.RMSNorm(6, eps=eps)), torch.nn.RMSNorm(6, eps=eps), [randn(3, 2, 6)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm(dtype):
    compare_module(_perturb(nn.GroupNorm(2, 6)), torch.nn.GroupNorm(2, 6), [randn(3, 6, 2, 3)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 3)])
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batch_norm_1d_training_then_eval(dtype, shape, momentum):
    g_bn, t_bn = _perturb(nn.BatchNorm1d(4, momentum=momentum)), torch.nn.BatchNorm1d(4, momentum=momentum)
    for step in range(3):
        compare_module(g_bn, t_bn, [randn(*shape, seed=step) * 2 + 1], dtype)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert_close(getattr(g_bn, name), getattr(t_bn, name), dtype, name)
    assert g_bn.num_batches_tracked.dtype is genesis.int64
    g_bn.eval()
    t_bn.eval()
    compare_module(g_bn, t_bn, [randn(*shape, seed=9)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_2d_and_untracked(dtype):
    compare_module(_perturb(nn.BatchNorm2d(3)), torch.nn.BatchNorm2d(3), [randn(2, 3, 4, 5)], dtype)
    g_bn = nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    t_bn = torch.nn.BatchNorm1d(3, affine=False, track_running_stats=False).eval()
    compare_module(g_bn, t_bn, [randn(4, 3)], dtype)  # no running stats: batch statistics even in eval
    assert g_bn.running_mean is None and "running_mean" not in g_bn.state_dict()


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(genesis.randn(1, 3))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(genesis.randn(2, 3, 4, 5))


# ---- dropout -------------------------------------------------------------------------------
def test_dropout_train_and_eval():
    drop = nn.Dropout(0.3)
    x = genesis.ones(200, 300, requires_grad=True)
    y = drop(x)
    kept = to_numpy(y) != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(to_numpy(y)[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(to_numpy(x.grad), np.where(kept, 1 / 0.7, 0.0), rtol=1e-6)
    drop.eval()
    assert drop(x) is x
    genesis.manual_seed(5)
    a = to_numpy(nn.Dropout(0.5)(genesis.ones(50)))
    genesis.manual_seed(5)
    b = to_numpy(nn.Dropout(0.5)(genesis.ones(50)))
    np.testing.assert_array_equal(a, b)  # genesis's RNG decides the mask
    assert not np.any(to_numpy(nn.Dropout(1.0)(genesis.ones(4))))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


# ---- convolution and pooling ------------------------------------------------------------------
CONV_CASES = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=2, out_channels=5, kernel_size=(2, 3), stride=(2, 1), padding=(1, 2)),
    dict(in_channels=4, out_channels=6, kernel_size=3, padding="same", dilation=2, groups=2),
    dict(in_channels=3, out_channels=3, kernel_size=(3, 2), stride=2, padding="valid", groups=3, bias=False),
    dict(in_channels=2, out_channels=4, kernel_size=4, padding="same"),  # even kernel: the odd pixel goes right
    dict(in_channels=1, out_channels=2, kernel_size=1, stride=3),
]


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d(dtype, case):
    kwargs = CONV_CASES[case]
    x = randn(2, kwargs["in_channels"], 7, 6)
    compare_module(nn.Conv2d(**kwargs), torch.nn.Conv2d(**kwargs), [x], dtype)


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
def test_conv2d_unbatched_and_conv1d():
    compare_module(
        nn.Conv2d(2, 3, 3, padding=1), torch.nn.Conv2d(2, 3, 3, padding=1), [randn(2, 5, 4)], genesis.float64
    )
    compare_module(
        nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
        torch.nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
        [randn(3, 4, 9)],
        genesis.float64,
    )
    compare_module(
        nn.Conv1d(2, 3, 4, padding="same", dilation=2),
        torch.nn.Conv1d(2, 3, 4, padding="same", dilation=2),
        [randn(2, 2, 7)],
        genesis.float32,
    )


def test_conv2d_errors():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="expected input.*3 channels, but got 4"):
        conv(genesis.randn(1, 4, 5, 5))
    with pytest.raises(ValueError, match="too small"):
        conv(genesis.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)


POOL_CASES = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True),
    dict(kernel_size=2, stride=2, ceil_mode=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_max_pool2d(dtype, case):
    kwargs = POOL_CASES[case]
    compare_module(nn.MaxPool2d(**kwargs), torch.nn.MaxPool2d(**kwargs), [randn(2, 3, 7, 5)], dtype)


def test_max_pool2d_dilation_indices_and_unbatched():
    kwargs = dict(kernel_size=3, stride=2, padding=1, dilation=2, return_indices=True)
    g_out, t_out = compare_module(
        nn.MaxPool2d(**kwargs),
        torch.nn.MaxPool2d(**kwargs),
        [randn(2, 2, 9, 8)],
        genesis.float64,
        outputs=lambda out: out[:1],
    )
    np.testing.assert_array_equal(to_numpy(g_out[1]), t_out[1].numpy())
    assert g_out[1].dtype is genesis.int64
    compare_module(
        nn.MaxPool2d(2, ceil_mode=True), torch.nn.MaxPool2d(2, ceil_mode=True), [randn(3, 5, 5)], genesis.float32
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d(dtype, case, count_include_pad):
    kwargs = dict(POOL_CASES[case], count_include_pad=count_include_pad)
    compare_module(nn.AvgPool2d(**kwargs), torch.nn.AvgPool2d(**kwargs), [randn(2, 3, 7, 5)], dtype)


def test_avg_pool2d_divisor_override_and_adaptive():
    kwargs = dict(kernel_size=3, stride=2, padding=1, divisor_override=5)
    compare_module(nn.AvgPool2d(**kwargs), torch.nn.AvgPool2d(**kwargs), [randn(2, 3, 7, 5)], genesis.float32)
    for size in [(2, 3), 1, (3, 2), (None, 2)]:
        compare_module(
            nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), [randn(2, 3, 7, 6)], genesis.float64
        )


def test_pool_padding_too_large():
    with pytest.raises(ValueError, match="at most half"):
        nn.MaxPool2d(2, padding=2)(genesis.randn(1, 1, 6, 6))


# ---- activations ---------------------------------------------------------------------------
ACTIVATIONS = [
    ("ReLU", ()),
    ("GELU", ()),
    ("GELU", ("tanh",)),
    ("SiLU", ()),
    ("Sigmoid", ()),
    ("Tanh", ()),
    ("LeakyReLU", ()),
    ("LeakyReLU", (0.2,)),
    ("Softmax", (1,)),
    ("LogSoftmax", (-1,)),
    ("Softmax", (0,)),
    ("ELU", (0.7,)),
    ("ReLU6", ()),
    ("Softplus", (2.0, 3.0)),
    ("Mish", ()),
    ("Softmin", (1,)),
    ("Hardtanh", (-2.0, 3.0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, args", ACTIVATIONS)
def test_activation(dtype, name, args):
    x = randn(4, 5, 3) * 3
    compare_module(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), [x], dtype)


def test_inplace_activation_writes_into_input():
    x = genesis.randn(3, 4)
    y = nn.ReLU(inplace=True)(x)
    assert y is x and float(x.min()) >= 0
    assert repr(nn.ReLU(inplace=True)) == repr(torch.nn.ReLU(inplace=True))
    assert repr(nn.Hardtanh(-2.0, 3.0, inplace=True)) == repr(torch.nn.Hardtanh(-2.0, 3.0, inplace=True))


INPLACE_ACTIVATIONS = [
    ("LeakyReLU", (0.2,)),
    ("ELU", ()),
    ("SELU", ()),
    ("CELU", (0.7,)),
    ("Hardtanh", ()),
    ("ReLU6", ()),
    ("Threshold", (0.1, 2.0)),
    ("Hardsigmoid", ()),
    ("Hardswish", ()),
    ("Mish", ()),
    ("SiLU", ()),
]


@pytest.mark.parametrize("name, args", INPLACE_ACTIVATIONS)
def test_inplace_activation_after_a_layer_has_torchs_gradients(name, args):
    # the activation writes over the linear layer's output, which its own composite read (DCGAN's
    # LeakyReLU(0.2, inplace=True) after a convolution): backward must use the values before the write
    x = randn(6, 5) * 3
    g_linear, t_linear = nn.Linear(5, 4), torch.nn.Linear(5, 4)
    copy_into_torch(g_linear, t_linear)
    g_model = nn.Sequential(g_linear, getattr(nn, name)(*args, inplace=True))
    t_model = torch.nn.Sequential(t_linear, getattr(torch.nn, name)(*args, inplace=True))
    gx, tx = make_pair(x, genesis.float32, True)
    g_out, t_out = g_model(gx), t_model(tx)
    (g_out * g_out).sum().backward()
    (t_out * t_out).sum().backward()
    assert_close(g_out, t_out, genesis.float32, "output")
    assert_close(gx.grad, tx.grad, genesis.float32, "input grad")
    assert_close(g_linear.weight.grad, t_linear.weight.grad, genesis.float32, "weight grad")


# ---- multi-head attention ------------------------------------------------------------------
MHA_CASES = [
    dict(ctor=dict(embed_dim=8, num_heads=2), call=dict()),
    dict(ctor=dict(embed_dim=8, num_heads=4, batch_first=True), call=dict(average_attn_weights=False)),
    dict(ctor=dict(embed_dim=6, num_heads=3, bias=False), call=dict(need_weights=False)),
    dict(ctor=dict(embed_dim=8, num_heads=2, kdim=5, vdim=3), call=dict()),
    dict(ctor=dict(embed_dim=8, num_heads=2, kdim=5, vdim=3, batch_first=True), call=dict()),
]


def _masks(case, batch, length, source_length, num_heads):
    rng = np.random.default_rng(4)
    bool_attn = rng.random((length, source_length)) < 0.3
    bool_attn[:, 0] = False  # every query keeps at least one key
    padding = np.zeros((batch, source_length), dtype=bool)
    padding[0, -2:] = True
    float_attn = rng.standard_normal((batch * num_heads, length, source_length))
    return [(None, None), (bool_attn, None), (None, padding), (bool_attn, padding), (float_attn, padding)][case]


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(MHA_CASES)))
@pytest.mark.parametrize("mask_case", range(5))
def test_multihead_attention(dtype, case, mask_case):
    spec = MHA_CASES[case]
    ctor, call = spec["ctor"], spec["call"]
    g_mha, t_mha = _perturb(nn.MultiheadAttention(**ctor), scale=0.5), torch.nn.MultiheadAttention(**ctor)
    batch, length, source_length, embed = 2, 4, 5, ctor["embed_dim"]
    kdim, vdim = ctor.get("kdim", embed), ctor.get("vdim", embed)
    first = (lambda n, e: (batch, n, e)) if ctor.get("batch_first") else (lambda n, e: (n, batch, e))
    inputs = [
        randn(*first(length, embed), seed=1),
        randn(*first(source_length, kdim), seed=2),
        randn(*first(source_length, vdim), seed=3),
    ]
    attn_mask, padding = _masks(mask_case, batch, length, source_length, ctor["num_heads"])

    def run(module, q, k, v):
        lib = genesis if isinstance(module, nn.Module) else torch
        to_tensor = (
            (lambda a: genesis.tensor(a, dtype=dtype if a.dtype != bool else None))
            if lib is genesis
            else (lambda a: torch.tensor(a, dtype=TORCH_DTYPE[dtype] if a.dtype != bool else None))
        )
        masks = {}
        if attn_mask is not None:
            masks["attn_mask"] = to_tensor(attn_mask)
        if padding is not None:
            masks["key_padding_mask"] = to_tensor(padding)
        return module(q, k, v, **masks, **call)

    outputs = (lambda out: out) if call.get("need_weights", True) else (lambda out: out[:1])
    # float32: gradients sum products of values up to ~10, so allow fp32 accumulation noise in absolute terms
    atol = 5e-5 if dtype is genesis.float32 else None
    g_out, t_out = compare_module(g_mha, t_mha, inputs, dtype, call=run, outputs=outputs, atol=atol)
    assert list(dict(g_mha.state_dict())) == list(t_mha.state_dict())
    if not call.get("need_weights", True):
        assert g_out[1] is None


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_self_attention_unbatched(batch_first):
    g_mha = nn.MultiheadAttention(6, 2, batch_first=batch_first)
    t_mha = torch.nn.MultiheadAttention(6, 2, batch_first=batch_first)
    x = randn(5, 6)
    compare_module(g_mha, t_mha, [x], genesis.float64, call=lambda m, q: m(q, q, q))
