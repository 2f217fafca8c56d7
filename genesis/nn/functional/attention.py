"""scaled_dot_product_attention and the multi-head attention forward, from matmul + softmax.

Masks follow PyTorch, whose two APIs disagree on what True means:
- `scaled_dot_product_attention`: a bool `attn_mask` is True where a query
  MAY attend; a float mask is added to the scores.
- `multi_head_attention_forward` (nn.MultiheadAttention): a bool `attn_mask`
  or `key_padding_mask` is True where attention is NOT allowed; float masks
  are added. Both become one additive float mask (-inf where forbidden).
A query that may see no key (its every score -inf) gets a zero output and zero
gradients from `scaled_dot_product_attention`, and so from the multi-head
forward without weights, which PyTorch computes with it; the multi-head forward
that returns its weights yields NaN there, as PyTorch's does.
"""

from __future__ import annotations

import math
import warnings

from genesis import dtypes
from genesis import functional as GF
from genesis.creation import arange, zeros
from genesis.errors import ShapeError
from genesis.functional.fused import fused_in_eager
from genesis.nn.functional.activation import softmax
from genesis.nn.functional.basic import dropout, linear


def _causal_mask(scores):
    """The additive causal mask for `scores` (..., L, S): 0 where a key may be seen (its column
    is not after the query's row), -inf after it, as PyTorch adds it.

    It is index arithmetic with the scores' shape (the row index expanded over their leading
    dims), so traced it is elementwise work over the scores' rows that fuses into the softmax's
    kernel: no (L, S) mask is built on the host or stored. Added rather than selected with
    `where`, so the backward passes the gradient through and never reads the mask."""
    length, source_length = scores.shape[-2:]
    rows = GF.expand(GF.reshape(arange(length, device=scores.device), (length, 1)), scores.shape[:-1] + (1,))
    visible = arange(source_length, device=scores.device) <= rows
    return GF.where(visible, zeros((), dtype=scores.dtype), float("-inf"))


def _softmax_blind_rows_zero(scores):
    """softmax over the keys, but 0 in a row whose every score is -inf, as PyTorch's
    `_safe_softmax` gives it. Such a row's scores become 0 before the softmax, so no NaN arises
    there that the backward would carry into every key's gradient."""
    blind = GF.amax(scores, -1, keepdim=True) == float("-inf")
    weights = softmax(GF.where(blind, zeros((), dtype=scores.dtype), scores), -1)
    return GF.where(blind, zeros((), dtype=weights.dtype), weights)


def scaled_dot_product_attention(
    query,
    key,
    value,
    attn_mask=None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale=None,
    enable_gqa: bool = False,
):
    """softmax(q k^T * scale + mask) v over (..., L, E) queries and (..., S, E) keys/values."""
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(
            "scaled_dot_product_attention expects (..., L, E) query and (..., S, E) key/value, got "
            f"{list(query.shape)}, {list(key.shape)}, {list(value.shape)}"
        )
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"scaled_dot_product_attention: query {list(query.shape)}, key {list(key.shape)} and "
            f"value {list(value.shape)} do not fit (q/k embedding dims and k/v lengths must agree)"
        )
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        repeats = query.shape[-3] // key.shape[-3]
        key = _repeat_heads(key, repeats)
        value = _repeat_heads(value, repeats)
    if scale is None:  # with no features (E = 0) every score is 0, and any scale leaves it so
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both")
    return _attention(query, key, value, attn_mask, float(dropout_p), bool(is_causal), float(scale))


@fused_in_eager
def _attention(query, key, value, attn_mask, dropout_p, is_causal, scale):
    scores = GF.matmul(query, GF.transpose(key, -2, -1)) * scale
    if is_causal:
        scores = scores + _causal_mask(scores)
    if attn_mask is not None:
        if attn_mask.dtype is dtypes.bool_:
            scores = GF.where(attn_mask, scores, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = _softmax_blind_rows_zero(scores)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return GF.matmul(weights.to(value.dtype) if weights.dtype is not value.dtype else weights, value)


def _repeat_heads(x, repeats):
    """(..., Hkv, S, E) -> (..., Hkv*repeats, S, E), each head repeated in place (repeat_interleave)."""
    shape = x.shape
    expanded = GF.expand(GF.unsqueeze(x, -3), shape[:-2] + (repeats,) + shape[-2:])
    return GF.reshape(expanded, shape[:-3] + (shape[-3] * repeats,) + shape[-2:])


def _additive_mask(mask, dtype, name):
    """A bool mask (True = forbidden) as 0/-inf; a float mask as is."""
    if mask is None:
        return None
    if mask.dtype is dtypes.bool_:
        return GF.masked_fill(zeros(mask.shape, dtype=dtype, device=mask.device), mask, float("-inf"))
    if not mask.dtype.is_floating_point:
        raise TypeError(f"{name} must be a bool or floating-point tensor, got {mask.dtype.name}")
    return mask


def multi_head_attention_forward(
    query,
    key,
    value,
    num_heads: int,
    in_proj_weight,
    in_proj_bias,
    out_proj_weight,
    out_proj_bias,
    *,
    training: bool = True,
    dropout_p: float = 0.0,
    key_padding_mask=None,
    need_weights: bool = True,
    attn_mask=None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
    q_proj_weight=None,
    k_proj_weight=None,
    v_proj_weight=None,
):
    """PyTorch's multi_head_attention_forward on (L, N, E) / (S, N, E) inputs (or unbatched (L, E))."""
    return attention_forward(
        query,
        key,
        value,
        num_heads,
        (in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias),
        (q_proj_weight, k_proj_weight, v_proj_weight),
        batch_first=False,
        training=training,
        dropout_p=dropout_p,
        key_padding_mask=key_padding_mask,
        need_weights=need_weights,
        attn_mask=attn_mask,
        average_attn_weights=average_attn_weights,
        is_causal=is_causal,
    )


def attention_forward(
    query,
    key,
    value,
    num_heads: int,
    projections,
    separate_projections=(None, None, None),
    *,
    batch_first: bool,
    training: bool,
    dropout_p: float,
    key_padding_mask,
    need_weights: bool,
    attn_mask,
    average_attn_weights: bool,
    is_causal: bool,
):
    """multi_head_attention_forward on inputs in either layout: (L, N, E), or with `batch_first`
    (N, L, E) as MultiheadAttention(batch_first=True) takes them. Taking that layout as it is
    saves transposing the inputs and the output, each a copy forward and backward."""
    in_proj_weight, in_proj_bias, out_proj_weight, out_proj_bias = projections
    batch_dim, sequence_dim = (0, 1) if batch_first else (1, 0)
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = (GF.unsqueeze(t, batch_dim) for t in (query, key, value))
        if key_padding_mask is not None:
            key_padding_mask = GF.unsqueeze(key_padding_mask, 0)
    if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
        layout = "(N, L, E)" if batch_first else "(L, N, E)"
        raise ShapeError(
            f"multi-head attention expects 3-D {layout} inputs, got query {list(query.shape)}, "
            f"key {list(key.shape)}, value {list(value.shape)}"
        )
    length, batch, embed_dim = query.shape[sequence_dim], query.shape[batch_dim], query.shape[2]
    source_length = key.shape[sequence_dim]
    if embed_dim % num_heads:
        raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    head_dim = embed_dim // num_heads
    if is_causal and attn_mask is None:
        raise RuntimeError(
            "Need attn_mask if specifying the is_causal hint. You may use the Transformer "
            "module method `generate_square_subsequent_mask` to create this mask."
        )

    if in_proj_weight is not None:
        w_q, w_k, w_v = GF.chunk(in_proj_weight, 3, 0)
    else:
        w_q, w_k, w_v = separate_projections
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = GF.chunk(in_proj_bias, 3, 0)
    q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)

    def heads(t, n):  # (n, N, E) or (N, n, E) -> (N, H, n, head_dim)
        if batch_first:
            return GF.permute(GF.reshape(t, (batch, n, num_heads, head_dim)), (0, 2, 1, 3))
        return GF.permute(GF.reshape(t, (n, batch, num_heads, head_dim)), (1, 2, 0, 3))

    q, k, v = heads(q, length), heads(k, source_length), heads(v, source_length)

    if key_padding_mask is not None and attn_mask is not None and key_padding_mask.dtype is not attn_mask.dtype:
        warnings.warn(
            "Support for mismatched key_padding_mask and attn_mask is deprecated. Use same type for both instead.",
            stacklevel=3,
        )
    # PyTorch's rule: where nothing else needs the mask (no padding to merge, no weights to
    # return), the is_causal hint replaces attn_mask by the causal mask built from indices
    causal = is_causal and key_padding_mask is None and not need_weights
    mask = None if causal else _additive_mask(attn_mask, q.dtype, "attn_mask")
    if mask is not None:
        if mask.ndim == 2:
            if tuple(mask.shape) != (length, source_length):
                raise ShapeError(
                    f"The shape of the 2D attn_mask is {list(mask.shape)}, but should be {[length, source_length]}."
                )
        elif mask.ndim == 3:
            if tuple(mask.shape) != (batch * num_heads, length, source_length):
                raise ShapeError(
                    f"The shape of the 3D attn_mask is {list(mask.shape)}, but should be "
                    f"{[batch * num_heads, length, source_length]}."
                )
            mask = GF.reshape(mask, (batch, num_heads, length, source_length))
        else:
            raise ShapeError(f"attn_mask's dimension {mask.ndim} is not supported")
    padding = _additive_mask(key_padding_mask, q.dtype, "key_padding_mask")
    if padding is not None:
        if tuple(padding.shape) != (batch, source_length):
            raise ShapeError(f"key_padding_mask of shape {list(padding.shape)} should be {[batch, source_length]}")
        padding = GF.reshape(padding, (batch, 1, 1, source_length))
        mask = padding if mask is None else mask + padding

    scores = GF.matmul(q * (1.0 / math.sqrt(head_dim)), GF.transpose(k, -2, -1))
    if mask is not None:
        scores = scores + mask
    elif causal:
        scores = scores + _causal_mask(scores)
    # PyTorch computes the forward without weights by scaled_dot_product_attention, with weights by softmax
    weights = softmax(scores, -1) if need_weights else _softmax_blind_rows_zero(scores)
    if dropout_p > 0.0 and training:
        weights = dropout(weights, dropout_p, training=True)
    attended = GF.matmul(weights, v)  # (N, H, L, head_dim)
    if batch_first:
        attended = GF.reshape(GF.permute(attended, (0, 2, 1, 3)), (batch, length, embed_dim))
    else:
        attended = GF.reshape(GF.permute(attended, (2, 0, 1, 3)), (length, batch, embed_dim))
    out = linear(attended, out_proj_weight, out_proj_bias)
    if unbatched:
        out = GF.squeeze(out, batch_dim)
    if not need_weights:
        return out, None
    if average_attn_weights:
        weights = GF.mean(weights, 1)
    if unbatched:
        weights = GF.squeeze(weights, 0)
    return out, weights


__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]
