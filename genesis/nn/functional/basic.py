"""linear, embedding, dropout, normalize (and one_hot, pad re-exported): thin compositions of genesis ops."""

from __future__ import annotations

from genesis import dtypes
from genesis import functional as GF
from genesis.creation import rand, zeros_like
from genesis.errors import IndexOutOfRangeError, ShapeError
from genesis.functional.indexing import one_hot  # noqa: F401  (re-exported as F.one_hot)
from genesis.functional.inplace import assign_inplace
from genesis.functional.shape import pad  # noqa: F401  (re-exported as F.pad)


def linear(x, weight, bias=None):
    """x @ weight.T + bias; weight is (out_features, in_features), as in PyTorch."""
    if x.ndim == 0 or x.shape[-1] != weight.shape[-1]:
        raise ShapeError(
            f"linear: input of shape {list(x.shape)} does not match weight of shape "
            f"{list(weight.shape)} (expected the input's last dim to be {weight.shape[-1]})"
        )
    out = GF.matmul(x, GF.transpose(weight, -1, -2) if weight.ndim == 2 else weight)
    if bias is None:
        return out
    if bias.dtype is not out.dtype and out.dtype.is_low_precision:
        # under autocast the matmul ran in fp16/bf16; PyTorch's linear adds the bias in that dtype too
        bias = bias.to(out.dtype)
    return out + bias


def embedding(indices, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """Rows of `weight` picked by integer `indices`; the padding row takes no gradient."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    if indices.dtype.category != dtypes.INT:
        raise TypeError(f"embedding expects integer indices, got {indices.dtype.name}")
    if weight.ndim != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {list(weight.shape)}")
    try:  # index_select refuses -1 as PyTorch's embedding does, where x[-1] would read the last row
        rows = GF.index_select(weight, 0, GF.reshape(indices, (-1,)))
    except IndexOutOfRangeError as error:
        raise IndexOutOfRangeError(
            error.index,
            error.size,
            0,
            f"embedding: index {error.index} is out of range for an embedding of {error.size} rows",
        ) from None
    rows = GF.reshape(rows, tuple(indices.shape) + (weight.shape[1],))
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += weight.shape[0]
        is_padding = GF.unsqueeze(indices == padding_idx, -1)
        rows = GF.where(is_padding, rows.detach(), rows)  # same values, no gradient into the padding row
    return rows


def dropout(x, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability p and scale the rest by 1/(1-p); the identity in eval mode.

    The mask comes from genesis's default generator (`genesis.manual_seed`).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        out = x * zeros_like(x)
    else:
        keep = rand(x.shape) < (1.0 - p)
        out = x * (keep.to(x.dtype) * (1.0 / (1.0 - p)))
    if inplace:
        return assign_inplace(x, out)
    return out


def _channel_dropout(x, p, training, inplace, name, dims):
    """Zero whole channels: a mask of shape (N, C, 1, ...) over inputs of `dims` dims (or one fewer:
    unbatched), scaled by 1/(1-p) as dropout's."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if x.ndim not in (dims - 1, dims):
        raise ShapeError(f"{name} expects a {dims - 1}-D or {dims}-D input, got shape {list(x.shape)}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        out = x * zeros_like(x)
    else:
        channels = 2 if x.ndim == dims else 1  # (N, C) or, unbatched, (C,) lead the shape
        keep = rand(tuple(x.shape[:channels]) + (1,) * (x.ndim - channels)) < (1.0 - p)
        out = x * (keep.to(x.dtype) * (1.0 / (1.0 - p)))
    if inplace:
        return assign_inplace(x, out)
    return out


def dropout1d(x, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability p."""
    return _channel_dropout(x, p, training, inplace, "dropout1d", 3)


def dropout2d(x, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, H, W) or (C, H, W) inputs with probability p."""
    return _channel_dropout(x, p, training, inplace, "dropout2d", 4)


def dropout3d(x, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs with probability p."""
    return _channel_dropout(x, p, training, inplace, "dropout3d", 5)


def pixel_shuffle(x, upscale_factor: int):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r): each group of r*r channels becomes an r x r block."""
    r = int(upscale_factor)
    if x.ndim < 3 or x.shape[-3] % (r * r):
        raise ShapeError(
            f"pixel_shuffle expects an input of shape (*, C*{r * r}, H, W) with C*{r * r} channels, got {list(x.shape)}"
        )
    *lead, c, h, w = x.shape
    out = GF.reshape(x, (*lead, c // (r * r), r, r, h, w))
    k = len(lead)
    out = GF.permute(out, (*range(k), k, k + 3, k + 1, k + 4, k + 2))
    return GF.reshape(out, (*lead, c // (r * r), h * r, w * r))


def pixel_unshuffle(x, downscale_factor: int):
    """pixel_shuffle's inverse: (*, C, H*r, W*r) -> (*, C*r*r, H, W)."""
    r = int(downscale_factor)
    if x.ndim < 3 or x.shape[-2] % r or x.shape[-1] % r:
        raise ShapeError(f"pixel_unshuffle expects an input whose height and width divide by {r}, got {list(x.shape)}")
    *lead, c, h, w = x.shape
    out = GF.reshape(x, (*lead, c, h // r, r, w // r, r))
    k = len(lead)
    out = GF.permute(out, (*range(k), k, k + 2, k + 4, k + 1, k + 3))
    return GF.reshape(out, (*lead, c * r * r, h // r, w // r))


def bilinear(x1, x2, weight, bias=None):
    """y_o = x1^T W_o x2 + b_o: x1 (*, in1), x2 (*, in2), weight (out, in1, in2)."""
    out_features, in1, in2 = weight.shape
    if x1.shape[-1] != in1 or x2.shape[-1] != in2 or tuple(x1.shape[:-1]) != tuple(x2.shape[:-1]):
        raise ShapeError(
            f"bilinear: inputs of shapes {list(x1.shape)} and {list(x2.shape)} do not fit a weight of shape "
            f"{list(weight.shape)}"
        )
    # x1 against every W_o at once: (*, in1) @ (in1, out * in2), then each row of in2 against x2
    left = GF.matmul(x1, GF.reshape(GF.permute(weight, (1, 0, 2)), (in1, out_features * in2)))
    left = GF.reshape(left, (*x1.shape[:-1], out_features, in2))
    out = GF.sum(left * GF.unsqueeze(x2, -2), -1)
    return out if bias is None else out + bias


def channel_shuffle(x, groups: int):
    """(N, C, *) with C = groups * k: the channels read as (groups, k) are written as (k, groups)."""
    if x.ndim < 3 or x.shape[1] % groups:
        raise ShapeError(f"channel_shuffle: {groups} groups do not split the channels of shape {list(x.shape)}")
    n, c, *rest = x.shape
    out = GF.transpose(GF.reshape(x, (n, groups, c // groups, *rest)), 1, 2)
    return GF.reshape(out, x.shape)


def local_response_norm(x, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
    """x / (k + alpha * mean of x^2 over `size` neighbouring channels)^beta, as PyTorch computes it
    (the window is zero-padded by size // 2 before and (size - 1) // 2 after each channel)."""
    if x.ndim < 3:
        raise ShapeError(f"local_response_norm expects an input of 3 or more dims, got shape {list(x.shape)}")
    square = x * x
    widths = [0, 0] * (x.ndim - 2) + [size // 2, (size - 1) // 2]
    padded = GF.pad(square, tuple(widths))
    channels = x.shape[1]
    window = padded[:, 0:channels]
    for offset in range(1, size):
        window = window + padded[:, offset : offset + channels]
    return x / (window * (alpha / size) + k) ** beta


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """x1 . x2 / (max(|x1|, eps) * max(|x2|, eps)) along `dim` (PyTorch's clamping of each norm)."""
    dot = GF.sum(x1 * x2, dim)
    n1 = GF.clamp(GF.sqrt(GF.sum(x1 * x1, dim)), min=eps)
    n2 = GF.clamp(GF.sqrt(GF.sum(x2 * x2, dim)), min=eps)
    return dot / (n1 * n2)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """The p-norm of x1 - x2 + eps over the last dim."""
    difference = x1 - x2 + eps
    if p == 2:
        return GF.sqrt(GF.sum(difference * difference, -1, keepdim=keepdim))
    if p == 1:
        return GF.sum(GF.abs(difference), -1, keepdim=keepdim)
    if p == float("inf"):
        return GF.amax(GF.abs(difference), -1, keepdim=keepdim)
    return GF.sum(GF.abs(difference) ** p, -1, keepdim=keepdim) ** (1.0 / p)


def normalize(x, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """x / max(||x||_p along dim, eps)."""
    norm = (
        GF.sum(GF.abs(x) ** p, dim, keepdim=True) ** (1.0 / p) if p != 2 else GF.sqrt(GF.sum(x * x, dim, keepdim=True))
    )
    return x / GF.clamp(norm, min=eps)


__all__ = [
    "linear",
    "embedding",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "pixel_shuffle",
    "pixel_unshuffle",
    "one_hot",
    "pad",
    "normalize",
    "cosine_similarity",
    "pairwise_distance",
    "bilinear",
    "channel_shuffle",
    "local_response_norm",
]
