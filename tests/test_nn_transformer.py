"""The transformer layers and stacks against torch.nn with torch's own weights, and compiled against eager.

Each comparison builds torch's module from a seed, loads its state_dict into genesis's as it is (the
keys must match), runs both on the same inputs and masks, backpropagates the same random cotangent
and compares the outputs and the gradients of the inputs and of every parameter. Torch's encoder is
built with enable_nested_tensor=False and gradients are on, so torch runs its reference path, the
one genesis computes. The attention cases the layers rely on are in test_nn_attention.py.
"""

import copy
import math

import numpy as np
import pytest
import torch
from transformer_cases import (
    BATCH,
    D_MODEL,
    FEEDFORWARD,
    NHEAD,
    SRC_LEN,
    TGT_LEN,
    assert_near,
    attention_mask,
    compare,
    load_torch_state,
    make,
    padding,
    rand,
    sequence,
)

import genesis
import genesis.nn as nn
import genesis.nn.functional as F

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
