"""Attention as the transformer layers call it, against torch: multi-head attention's masks (float and
bool padding, 2-d and 3-d masks, the is_causal hint, mismatched types), its weights and dropout;
scaled_dot_product_attention's queries that see no key; and the causal mask, which a compiled
program builds from indices inside the softmax's kernel.
"""

import math

import numpy as np
import pytest
import torch
from transformer_cases import (
    BATCH,
    D_MODEL,
    NHEAD,
    SRC_LEN,
    TGT_LEN,
    assert_near,
    attention_mask,
    compare,
    load_torch_state,
    make,
    padding,
    pair,
    rand,
    values,
)

import genesis
import genesis.nn as nn
import genesis.nn.functional as F

# ---- multi-head attention, as the layers call it ----------------------------------------------------
MHA_MASKS = {
    "float_padding": lambda: dict(key_padding_mask=padding(SRC_LEN, True, 1)),
    "float_2d": lambda: dict(attn_mask=attention_mask("float", TGT_LEN, SRC_LEN, 2)),
    "bool_3d": lambda: dict(
        attn_mask=np.stack([attention_mask("bool", TGT_LEN, SRC_LEN, s) for s in range(BATCH * NHEAD)])
    ),
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
