"""The transformer layers and stacks against torch.nn with torch's own weights, and compiled against eager.

Each comparison builds torch's module from a seed, loads its state_dict into genesis's as it is (the
keys must match), runs both on the same inputs and masks, backpropagates the same random cotangent
and compares the outputs and the gradients of the inputs and of every parameter. Torch's encoder is
built with enable_nested_tensor=False and gradients are on, so torch runs its reference path, the
one genesis computes. The multi-head attention cases the layers rely on (float and bool padding
masks, 2-d and 3-d masks, the is_causal hint, dropout) are checked here too.
"""

import copy
import math

import numpy as np
import pytest
import torch

import genesis
import genesis.nn as nn
import genesis.nn.functional as F

# float32 throughout. A layer's output is layer-normalised (values of order 1) after sums of
# d_model-long and dim_feedforward-long products, a few layers deep: each step adds a few ulps
# (2**-24 relative), so 1e-5 relative and absolute leaves a margin for any BLAS's summation order.
# Gradients add up over batch * length positions as well: 1e-5 of their largest magnitude.
RTOL = 1e-5

D_MODEL, NHEAD, FEEDFORWARD = 8, 2, 16
BATCH, SRC_LEN, TGT_LEN = 3, 5, 4


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def values(x):
    if isinstance(x, torch.Tensor):
        return x.detach().double().numpy()
    return x.detach().numpy().astype(np.float64) if isinstance(x, genesis.Tensor) else x


def assert_near(actual, expected, what, scale=None):
    actual, expected = values(actual), values(expected)
    atol = RTOL * (float(np.nanmax(np.abs(expected))) if scale is None else scale)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=what, equal_nan=True)


def load_torch_state(g_module, t_module):
    state = {name: genesis.tensor(value.detach().numpy()) for name, value in t_module.state_dict().items()}
    assert list(g_module.state_dict()) == list(state)
    g_module.load_state_dict(state)


def pair(array, grad=True):
    g, t = genesis.tensor(array), torch.tensor(array)
    if grad and array.dtype != bool:
        g.requires_grad, t.requires_grad = True, True
    return g, t


def compare(g_module, t_module, inputs, masks, *, train=False, call=None):
    """inputs: float arrays (differentiated); masks: name -> array or bool flag (passed as is)."""
    load_torch_state(g_module, t_module)
    g_module.train(train)
    t_module.train(train)
    g_args, t_args = zip(*(pair(a) for a in inputs))
    g_masks, t_masks = {}, {}
    for name, value in masks.items():
        if isinstance(value, np.ndarray):
            g_masks[name], t_masks[name] = pair(value, grad=False)
        else:
            g_masks[name] = t_masks[name] = value
    call = call or (lambda module, args, kwargs: module(*args, **kwargs))
    g_out, t_out = call(g_module, g_args, g_masks), call(t_module, t_args, t_masks)
    assert_near(g_out, t_out, "output")
    cotangent = rand(*t_out.shape, seed=9)
    (g_out * genesis.tensor(cotangent)).sum().backward()
    (t_out * torch.tensor(cotangent)).sum().backward()
    for i, (g, t) in enumerate(zip(g_args, t_args)):
        assert_near(g.grad, t.grad, f"gradient of input {i}")
    t_params = dict(t_module.named_parameters())
    for name, p in g_module.named_parameters():
        assert p.grad is not None, f"{name} has no gradient"
        assert_near(p.grad, t_params[name].grad, f"gradient of {name}")
    return g_out


def sequence(length, batch_first, seed):
    return rand(BATCH, length, D_MODEL, seed=seed) if batch_first else rand(length, BATCH, D_MODEL, seed=seed)


def padding(length, as_float, seed, blind=False):
    """Key padding: the ends of two sequences; with `blind`, all of the middle one, whose queries
    then see no key (PyTorch's attention gives them a zero output, not NaN)."""
    mask = np.zeros((BATCH, length), dtype=bool)
    mask[0, -2:] = True
    mask[2, -1] = True
    mask[1] = blind
    if not as_float:
        return mask
    # a float padding mask adds its values: -inf where padded, finite biases elsewhere
    return np.where(mask, -np.inf, rand(BATCH, length, seed=seed)).astype(np.float32)


def attention_mask(kind, length, source_length, seed):
    """The attn_mask kinds PyTorch takes: float (L, S) and (N*H, L, S), bool (True = hidden), causal."""
    if kind == "float":
        return rand(length, source_length, seed=seed)
    if kind == "float3d":
        return rand(BATCH * NHEAD, length, source_length, seed=seed)
    if kind == "bool":
        hidden = np.random.default_rng(seed).random((length, source_length)) < 0.3
        hidden[:, 0] = False  # every query keeps a key
        return hidden
    assert kind == "causal"
    return nn.Transformer.generate_square_subsequent_mask(length).numpy()


MASK_KINDS = [
    "none",
    "float",
    "float3d",
    "bool",
    "padding",
    "float_padding",
    "bool_and_padding",
    "blind_padding",
    "causal",
]


def encoder_masks(kind, length, seed=5):
    masks = {}
    if kind in ("float", "float3d", "bool", "causal"):
        masks["src_mask"] = attention_mask(kind, length, length, seed)
    if kind == "bool_and_padding":
        masks["src_mask"] = attention_mask("bool", length, length, seed)
    if kind in ("padding", "bool_and_padding"):
        masks["src_key_padding_mask"] = padding(length, False, seed)
    if kind == "float_padding":
        masks["src_key_padding_mask"] = padding(length, True, seed)
    if kind == "blind_padding":
        masks["src_key_padding_mask"] = padding(length, False, seed, blind=True)
    if kind == "causal":
        masks["is_causal"] = True
    return masks


def layer_kwargs(batch_first, norm_first, **extra):
    return dict(
        d_model=D_MODEL,
        nhead=NHEAD,
        dim_feedforward=FEEDFORWARD,
        dropout=0.0,
        batch_first=batch_first,
        norm_first=norm_first,
        **extra,
    )


def make(cls_name, *args, seed=0, **kwargs):
    torch.manual_seed(seed)
    return getattr(nn, cls_name)(*args, **kwargs), getattr(torch.nn, cls_name)(*args, **kwargs)


# ---- the layers ---------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer_matches_torch(batch_first, norm_first, mask_kind):
    g_layer, t_layer = make("TransformerEncoderLayer", **layer_kwargs(batch_first, norm_first))
    src = sequence(SRC_LEN, batch_first, seed=1)
    compare(g_layer, t_layer, [src], encoder_masks(mask_kind, SRC_LEN))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("activation", ["relu", "gelu", "callable"])
def test_encoder_layer_activations_bias_and_modes(activation, train):
    g_act = torch_act = activation
    if activation == "callable":  # each library's own function: any callable is used as is
        g_act, torch_act = F.silu, torch.nn.functional.silu
    kwargs = dict(layer_kwargs(True, False), layer_norm_eps=1e-3, bias=False)
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(**kwargs, activation=torch_act)
    g_layer = nn.TransformerEncoderLayer(**kwargs, activation=g_act)
    compare(g_layer, t_layer, [sequence(SRC_LEN, True, seed=1)], {}, train=train)


def decoder_masks(kind, seed=6):
    masks = {}
    if kind in ("float", "float3d", "bool", "causal"):
        masks["tgt_mask"] = attention_mask(kind, TGT_LEN, TGT_LEN, seed)
        masks["memory_mask"] = attention_mask("bool" if kind == "causal" else kind, TGT_LEN, SRC_LEN, seed + 1)
    if kind == "bool_and_padding":
        masks["tgt_mask"] = attention_mask("bool", TGT_LEN, TGT_LEN, seed)
    if kind in ("padding", "bool_and_padding"):
        masks["tgt_key_padding_mask"] = padding(TGT_LEN, False, seed)
        masks["memory_key_padding_mask"] = padding(SRC_LEN, False, seed + 1)
    if kind == "float_padding":
        masks["tgt_key_padding_mask"] = padding(TGT_LEN, True, seed)
        masks["memory_key_padding_mask"] = padding(SRC_LEN, True, seed + 1)
    if kind == "blind_padding":
        masks["tgt_key_padding_mask"] = padding(TGT_LEN, False, seed)
        masks["memory_key_padding_mask"] = padding(SRC_LEN, False, seed + 1, blind=True)
    if kind == "causal":
        masks["tgt_is_causal"] = True
    return masks


@pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer_matches_torch(batch_first, norm_first, mask_kind):
    g_layer, t_layer = make("TransformerDecoderLayer", **layer_kwargs(batch_first, norm_first))
    tgt, memory = sequence(TGT_LEN, batch_first, seed=2), sequence(SRC_LEN, batch_first, seed=3)
    compare(g_layer, t_layer, [tgt, memory], decoder_masks(mask_kind))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_decoder_layer_in_train_mode_with_gelu(train):
    g_layer, t_layer = make("TransformerDecoderLayer", **layer_kwargs(False, True, activation="gelu"))
    tgt, memory = sequence(TGT_LEN, False, seed=2), sequence(SRC_LEN, False, seed=3)
    compare(g_layer, t_layer, [tgt, memory], decoder_masks("padding"), train=train)


# ---- the stacks and the whole model ---------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")
@pytest.mark.parametrize("mask_kind", ["none", "float", "bool_and_padding", "float_padding", "causal"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_stack_matches_torch(batch_first, norm_first, mask_kind):
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(**layer_kwargs(batch_first, norm_first))
    t_stack = torch.nn.TransformerEncoder(t_layer, 2, norm=torch.nn.LayerNorm(D_MODEL), enable_nested_tensor=False)
    g_layer = nn.TransformerEncoderLayer(**layer_kwargs(batch_first, norm_first))
    g_stack = nn.TransformerEncoder(g_layer, 2, norm=nn.LayerNorm(D_MODEL), enable_nested_tensor=False)
    masks = encoder_masks(mask_kind, SRC_LEN)
    if "src_mask" in masks:  # the stack names it `mask`
        masks["mask"] = masks.pop("src_mask")
    compare(g_stack, t_stack, [sequence(SRC_LEN, batch_first, seed=1)], masks)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
def test_encoder_stack_matches_torchs_fast_path_where_it_is_defined():
    # torch's inference fast path packs padded batches into nested tensors and returns zeros at
    # padded positions; the other positions are the reference path's numbers
    torch.manual_seed(0)
    t_layer = torch.nn.TransformerEncoderLayer(**layer_kwargs(True, False))
    t_stack = torch.nn.TransformerEncoder(t_layer, 2).eval()
    g_stack = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer_kwargs(True, False)), 2).eval()
    load_torch_state(g_stack, t_stack)
    src, mask = sequence(SRC_LEN, True, seed=1), padding(SRC_LEN, False, 0)
    with torch.no_grad():
        expected = t_stack(torch.tensor(src), src_key_padding_mask=torch.tensor(mask)).numpy()
    got = g_stack(genesis.tensor(src), src_key_padding_mask=genesis.tensor(mask)).detach().numpy()
    assert not np.any(expected[mask])  # the fast path ran
    assert_near(got[~mask], expected[~mask], "output at the sequences' positions")


@pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")
@pytest.mark.parametrize("mask_kind", ["none", "float3d", "bool_and_padding", "causal"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_stack_matches_torch(batch_first, norm_first, mask_kind):
    torch.manual_seed(0)
    t_stack = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(**layer_kwargs(batch_first, norm_first)), 2)
    g_stack = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer_kwargs(batch_first, norm_first)), 2)
    tgt, memory = sequence(TGT_LEN, batch_first, seed=2), sequence(SRC_LEN, batch_first, seed=3)
    compare(g_stack, t_stack, [tgt, memory], decoder_masks(mask_kind))


def transformer_masks(kind):
    if kind == "none":
        return {}
    if kind == "causal":
        return dict(
            tgt_mask=attention_mask("causal", TGT_LEN, TGT_LEN, 0),
            tgt_is_causal=True,
            src_key_padding_mask=padding(SRC_LEN, False, 1),
            memory_key_padding_mask=padding(SRC_LEN, False, 1),
        )
    return dict(
        src_mask=attention_mask("float", SRC_LEN, SRC_LEN, 2),
        tgt_mask=attention_mask("bool", TGT_LEN, TGT_LEN, 3),
        memory_mask=attention_mask("float3d", TGT_LEN, SRC_LEN, 4),
        src_key_padding_mask=padding(SRC_LEN, True, 5),
        tgt_key_padding_mask=padding(TGT_LEN, False, 6),
        memory_key_padding_mask=padding(SRC_LEN, True, 7),
    )


@pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("mask_kind", ["none", "causal", "mixed"])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_matches_torch(batch_first, norm_first, mask_kind, train):
    kwargs = dict(layer_kwargs(batch_first, norm_first), num_encoder_layers=2, num_decoder_layers=2)
    g_model, t_model = make("Transformer", **kwargs)
    src, tgt = sequence(SRC_LEN, batch_first, seed=1), sequence(TGT_LEN, batch_first, seed=2)
    compare(g_model, t_model, [src, tgt], transformer_masks(mask_kind), train=train)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")
def test_transformer_unbatched_input():
    g_model, t_model = make("Transformer", **layer_kwargs(False, False), num_encoder_layers=1, num_decoder_layers=1)
    masks = dict(tgt_mask=attention_mask("causal", TGT_LEN, TGT_LEN, 0))
    compare(g_model, t_model, [rand(SRC_LEN, D_MODEL, seed=1), rand(TGT_LEN, D_MODEL, seed=2)], masks)


# ---- construction ---------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning")
def test_defaults_and_state_dict_layout_are_torchs():
    g_model, t_model = nn.Transformer(), torch.nn.Transformer()
    assert list(g_model.state_dict()) == list(t_model.state_dict())
    for name, value in t_model.state_dict().items():
        assert tuple(g_model.state_dict()[name].shape) == tuple(value.shape), name
    layer = g_model.encoder.layers[0]
    assert layer.linear1.out_features == 2048 and layer.dropout.p == 0.1 and layer.norm1.eps == 1e-5
    assert layer.activation is F.relu and not layer.norm_first and not layer.self_attn.batch_first
    assert len(g_model.encoder.layers) == 6 and len(g_model.decoder.layers) == 6
    assert (g_model.d_model, g_model.nhead, g_model.batch_first) == (512, 8, False)
    # matrices Xavier-uniform (bound sqrt(6 / (fan_in + fan_out))), as torch's _reset_parameters leaves them
    weight = layer.linear1.weight.detach().numpy()
    bound = math.sqrt(6 / (512 + 2048))
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound


def test_stacks_deep_copy_their_layer():
    layer = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FEEDFORWARD)
    stack = nn.TransformerEncoder(layer, 3)
    weights = [stack.layers[i].linear1.weight for i in range(3)] + [layer.linear1.weight]
    assert len({id(w) for w in weights}) == 4  # each layer its own parameters, none the template's
    np.testing.assert_array_equal(
        stack.layers[2].linear1.weight.detach().numpy(), layer.linear1.weight.detach().numpy()
    )
    assert stack.num_layers == 3 and stack.norm is None and stack.enable_nested_tensor and stack.mask_check
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(D_MODEL, NHEAD, FEEDFORWARD), 2, nn.LayerNorm(D_MODEL))
    assert list(decoder.state_dict()) == list(
        torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(D_MODEL, NHEAD, FEEDFORWARD), 2).state_dict()
    ) + ["norm.weight", "norm.bias"]


def test_dtype_reaches_every_parameter():
    model = nn.Transformer(D_MODEL, NHEAD, 1, 1, FEEDFORWARD, dtype=genesis.float64)
    assert {p.dtype for p in model.parameters()} == {genesis.float64}
    src, tgt = (
        genesis.randn(SRC_LEN, 2, D_MODEL, dtype=genesis.float64),
        genesis.randn(TGT_LEN, 2, D_MODEL, dtype=genesis.float64),
    )
    assert model(src, tgt).dtype is genesis.float64


def test_custom_encoder_and_decoder_are_used_as_given():
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(D_MODEL, NHEAD, FEEDFORWARD), 1)
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(D_MODEL, NHEAD, FEEDFORWARD), 1)
    model = nn.Transformer(D_MODEL, NHEAD, custom_encoder=encoder, custom_decoder=decoder)
    assert model.encoder is encoder and model.decoder is decoder


@pytest.mark.parametrize("size", [1, 4])
def test_generate_square_subsequent_mask_is_torchs(size):
    got = nn.Transformer.generate_square_subsequent_mask(size)
    assert got.dtype is genesis.float32
    np.testing.assert_array_equal(got.numpy(), torch.nn.Transformer.generate_square_subsequent_mask(size).numpy())
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=genesis.float64).dtype is genesis.float64


def test_bad_arguments_say_what_is_wrong():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(D_MODEL, NHEAD, activation="tanh")
    model = nn.Transformer(D_MODEL, NHEAD, 1, 1, FEEDFORWARD)
    with pytest.raises(ValueError, match="batch number of src and tgt must be equal"):
        model(genesis.randn(SRC_LEN, 2, D_MODEL), genesis.randn(TGT_LEN, 3, D_MODEL))
    with pytest.raises(ValueError, match=r"feature number of src and tgt must be equal to d_model \(8\)"):
        model(genesis.randn(SRC_LEN, 2, D_MODEL), genesis.randn(TGT_LEN, 2, 6))
    layer = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FEEDFORWARD)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        layer(genesis.randn(SRC_LEN, 2, D_MODEL), is_causal=True)
    with pytest.raises(TypeError, match="key_padding_mask must be a bool or floating-point tensor, got int64"):
        layer(genesis.randn(SRC_LEN, 2, D_MODEL), src_key_padding_mask=genesis.zeros((2, SRC_LEN), dtype=genesis.int64))


# ---- multi-head attention, as the layers call it ----------------------------------------------------
MHA_MASKS = {
    "float_padding": lambda: dict(key_padding_mask=padding(SRC_LEN, True, 1)),
    "float_2d": lambda: dict(attn_mask=attention_mask("float", TGT_LEN, SRC_LEN, 2)),
    "bool_3d": lambda: dict(attn_mask=np.broadcast_to(attention_mask("bool", TGT_LEN, SRC_LEN, 3), (6, 4, 5)).copy()),
    "float_2d_and_bool_padding": lambda: dict(
        attn_mask=attention_mask("float", TGT_LEN, SRC_LEN, 2), key_padding_mask=padding(SRC_LEN, False, 1)
    ),
    "causal_hint": lambda: dict(attn_mask=attention_mask("causal", TGT_LEN, TGT_LEN, 0), is_causal=True),
    "causal_hint_and_padding": lambda: dict(
        attn_mask=attention_mask("causal", TGT_LEN, TGT_LEN, 0),
        is_causal=True,
        key_padding_mask=padding(TGT_LEN, False, 1),
    ),
}


@pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning")
@pytest.mark.parametrize("need_weights, average", [(False, True), (True, True), (True, False)])
@pytest.mark.parametrize("masks", list(MHA_MASKS))
def test_multihead_attention_masks_and_weights(masks, need_weights, average):
    g_mha, t_mha = make("MultiheadAttention", D_MODEL, NHEAD, batch_first=True)
    source = TGT_LEN if masks.startswith("causal") else SRC_LEN
    query, key = rand(BATCH, TGT_LEN, D_MODEL, seed=1), rand(BATCH, source, D_MODEL, seed=2)
    weights = {}

    def call(module, args, kwargs):
        q, k = args
        out, weights[module is g_mha] = module(
            q, k, k, need_weights=need_weights, average_attn_weights=average, **kwargs
        )
        return out

    compare(g_mha, t_mha, [query, key], MHA_MASKS[masks](), call=call)
    if need_weights:
        assert_near(weights[True], weights[False], "attention weights")
    else:
        assert weights[True] is None


def test_multihead_attention_warns_on_mismatched_mask_types():
    mha = nn.MultiheadAttention(D_MODEL, NHEAD)
    x = genesis.randn(TGT_LEN, BATCH, D_MODEL)
    float_mask = genesis.tensor(attention_mask("float", TGT_LEN, TGT_LEN, 0))
    bool_padding = genesis.tensor(padding(TGT_LEN, False, 0))
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        mha(x, x, x, attn_mask=float_mask, key_padding_mask=bool_padding)


@genesis.no_grad()
def test_multihead_attention_dropout_drops_weights_at_rate_p_and_rescales_the_rest():
    p, batch, length = 0.3, 16, 12
    mha = nn.MultiheadAttention(D_MODEL, NHEAD, dropout=p, batch_first=True)
    x = genesis.randn(batch, length, D_MODEL)
    mha.eval()
    kept = mha(x, x, x, average_attn_weights=False)[1].numpy()
    mha.train()
    out, dropped = mha(x, x, x, average_attn_weights=False)
    dropped = dropped.numpy()
    zeroed = dropped == 0
    n = zeroed.size
    # each weight is dropped independently with probability p: the count is within 5 sigma of p * n
    assert abs(zeroed.sum() - p * n) < 5 * math.sqrt(n * p * (1 - p))
    np.testing.assert_allclose(dropped[~zeroed], kept[~zeroed] / (1 - p), rtol=1e-6)
    # the output is the dropped weights' average of the values, projected
    w_v, b_v = mha.in_proj_weight.numpy()[2 * D_MODEL :], mha.in_proj_bias.numpy()[2 * D_MODEL :]
    values = (x.numpy() @ w_v.T + b_v).reshape(batch, length, NHEAD, -1).transpose(0, 2, 1, 3)
    attended = (dropped @ values).transpose(0, 2, 1, 3).reshape(batch, length, D_MODEL)
    expected = attended @ mha.out_proj.weight.numpy().T + mha.out_proj.bias.numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_query_that_sees_no_key_gets_zeros_as_in_torch(kind):
    q, k, v = rand(2, 2, 4, 3, seed=1), rand(2, 2, 5, 3, seed=2), rand(2, 2, 5, 3, seed=3)
    visible = np.random.default_rng(4).random((4, 5)) < 0.7
    visible[:, 0], visible[2] = True, False  # query 2 sees nothing
    mask = visible if kind == "bool" else np.where(visible, rand(4, 5, seed=5), -np.inf).astype(np.float32)
    g_args, t_args = zip(*(pair(a) for a in (q, k, v)))
    g_mask, t_mask = pair(mask, grad=False)
    g_out = F.scaled_dot_product_attention(*g_args, attn_mask=g_mask)
    t_out = torch.nn.functional.scaled_dot_product_attention(*t_args, attn_mask=t_mask)
    assert not np.any(values(g_out)[:, :, 2])
    assert_near(g_out, t_out, "output")
    cotangent = rand(*t_out.shape, seed=6)
    (g_out * genesis.tensor(cotangent)).sum().backward()
    (t_out * torch.tensor(cotangent)).sum().backward()
    for name, g, t in zip("qkv", g_args, t_args):
        assert_near(g.grad, t.grad, f"gradient of {name}")


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_over_a_fully_padded_sequence_is_torchs(need_weights):
    # without weights PyTorch attends through scaled_dot_product_attention (zeros for a query that
    # sees no key), with weights through softmax (NaN): genesis gives each the same
    g_mha, t_mha = make("MultiheadAttention", D_MODEL, NHEAD)
    load_torch_state(g_mha, t_mha)
    x, mask = rand(SRC_LEN, BATCH, D_MODEL, seed=1), padding(SRC_LEN, False, 0, blind=True)
    g_out = g_mha(*[genesis.tensor(x)] * 3, key_padding_mask=genesis.tensor(mask), need_weights=need_weights)[0]
    with torch.no_grad():
        t_out = t_mha(*[torch.tensor(x)] * 3, key_padding_mask=torch.tensor(mask), need_weights=need_weights)[0]
    assert np.isnan(values(t_out)[:, 1]).all() == need_weights
    assert_near(g_out, t_out, "output")


# ---- causal attention: index arithmetic, fused ----------------------------------------------------
@pytest.mark.parametrize("length, source_length", [(6, 6), (4, 7), (7, 4)])
def test_sdpa_is_causal_matches_torch(length, source_length):
    q, k, v = rand(2, 3, length, 4, seed=1), rand(2, 3, source_length, 4, seed=2), rand(2, 3, source_length, 4, seed=3)
    g_args, t_args = zip(*(pair(a) for a in (q, k, v)))
    g_out = F.scaled_dot_product_attention(*g_args, is_causal=True)
    t_out = torch.nn.functional.scaled_dot_product_attention(*t_args, is_causal=True)
    assert_near(g_out, t_out, "output")
    cotangent = rand(*t_out.shape, seed=4)
    (g_out * genesis.tensor(cotangent)).sum().backward()
    (t_out * torch.tensor(cotangent)).sum().backward()
    for name, g, t in zip("qkv", g_args, t_args):
        assert_near(g.grad, t.grad, f"gradient of {name}")


def causal_attention_step(q, k, v):
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    (out * out).sum().backward()
    return out, q.grad, k.grad, v.grad


@pytest.mark.parametrize("backend", ["c", "numpy", "triton"])
def test_compiled_causal_attention_builds_no_mask_and_fuses_it_into_the_softmax(backend):
    length = 16
    q, k, v = (genesis.tensor(rand(2, 3, length, 8, seed=s), requires_grad=True) for s in (1, 2, 3))
    eager = causal_attention_step(q, k, v)
    q.grad = k.grad = v.grad = None
    compiled = genesis.compile(causal_attention_step, backend=backend)
    got = compiled(q, k, v)
    for name, a, b in zip(["out", "q.grad", "k.grad", "v.grad"], got, eager):
        assert_near(a, b, name)
    (graph,) = compiled.graphs
    # no (L, S) mask enters the program: its only inputs besides q, k, v are index rows of length L or S
    others = [node for node in graph.nodes() if node.op == "input" and node.shape != (2, 3, length, 8)]
    assert others and all(math.prod(node.shape) <= length for node in others)
    # the comparison that decides causality runs in the softmax's kernel and nothing outside it reads it
    (compare_node,) = [node for node in graph.op_nodes() if node.op == "le"]
    (softmax_group,) = [g for g in graph.groups if compare_node.name in g.members]
    assert {graph[name].op for name in softmax_group.members} >= {"le", "amax", "exp", "sum", "div"}
    # the comparison, and the 0/-inf mask made from it
    mask_nodes = {compare_node.name, *graph.users(compare_node.name)}
    readers = {user for name in mask_nodes for user in graph.users(name)}
    assert readers <= set(softmax_group.members)


# ---- compiled training ---------------------------------------------------------------------------
class Seq2Seq(nn.Module):
    """A tiny nn.Transformer and a linear head over a vocabulary of 5. Its decoder is causal by
    the hint (with the mask PyTorch asks for beside it), or takes the masks it is given."""

    def __init__(self, norm_first):
        super().__init__()
        self.model = nn.Transformer(
            D_MODEL, NHEAD, 1, 1, FEEDFORWARD, dropout=0.0, batch_first=True, norm_first=norm_first
        )
        self.head = nn.Linear(D_MODEL, 5)
        self.causal = nn.Transformer.generate_square_subsequent_mask(TGT_LEN)

    def forward(self, src, tgt, tgt_mask=None, padding=None):
        if tgt_mask is None:
            hidden = self.model(src, tgt, tgt_mask=self.causal, tgt_is_causal=True)
        else:
            hidden = self.model(
                src, tgt, tgt_mask=tgt_mask, src_key_padding_mask=padding, memory_key_padding_mask=padding
            )
        return self.head(hidden).reshape(-1, 5)


@pytest.mark.parametrize("masks", ["causal", "given"])
def test_compiled_training_step_matches_eager(masks):
    norm_first = masks == "given"

    def setup():
        genesis.manual_seed(0)
        model = Seq2Seq(norm_first)
        return model, genesis.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def step(model, optimizer, src, tgt, labels, *masks):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(src, tgt, *masks), labels)
        loss.backward()
        optimizer.step()
        return loss

    (eager_model, eager_opt), (fused_model, fused_opt) = setup(), setup()
    compiled = genesis.compile(lambda *args: step(fused_model, fused_opt, *args))
    extra = ()
    if masks == "given":
        extra = (
            genesis.tensor(attention_mask("float", TGT_LEN, TGT_LEN, 1)),
            genesis.tensor(padding(SRC_LEN, False, 2)),
        )
    rng = np.random.default_rng(0)
    for i in range(5):
        src = genesis.tensor(rand(BATCH, SRC_LEN, D_MODEL, seed=i))
        tgt = genesis.tensor(rand(BATCH, TGT_LEN, D_MODEL, seed=i + 10))
        labels = genesis.tensor(rng.integers(0, 5, BATCH * TGT_LEN))
        expected = step(eager_model, eager_opt, src, tgt, labels, *extra).item()
        assert compiled(src, tgt, labels, *extra).item() == pytest.approx(expected, rel=1e-5)
    assert compiled.stats["fallbacks"] == [] and compiled.stats["compiles"] == 1
    for (name, a), b in zip(eager_model.named_parameters(), fused_model.parameters()):
        # five steps of SGD with momentum 0.9 from parameters of order 1: their float32 rounding
        # differences stay within a few ulps of 1 times the steps taken
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
        scale = float(np.abs(a.grad.numpy()).max())
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-5 * scale, err_msg=name)


def test_deep_copied_layer_trains_independently():
    layer = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FEEDFORWARD, dropout=0.0)
    stack = nn.TransformerEncoder(copy.deepcopy(layer), 2)
    stack(genesis.randn(SRC_LEN, 2, D_MODEL)).sum().backward()
    assert layer.linear1.weight.grad is None and stack.layers[0].linear1.weight.grad is not None
