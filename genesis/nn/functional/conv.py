"""conv2d (and conv1d) as the conv2d op (ops/convolution.py) or, grouped, as im2col + matmul;
conv_transpose2d (and 1d) as matmul + col2im; unfold and fold, PyTorch's names for im2col and col2im.

A grouped convolution: `im2col` (ops/windows.py) lays the windows of the input (padded with zeros as
it reads them) out as columns (C, kh*kw, N, Ho, Wo); flattened as (groups, C/groups * kh*kw, N*Ho*Wo), they
meet the weight (groups, O/groups, C/groups * kh*kw) in one product per group,
and the (O, N, Ho, Wo) result is permuted to (N, O, Ho, Wo), a view. Below
BATCH_INSIDE_FROM rows of columns they are (N, C, kh*kw, Ho, Wo), one product
per image, which a first layer's few rows make cheaper than the permute. im2col's
vjp is col2im, and matmul and reshape have theirs, so the gradients for
input, weight and bias come for free and a compiler sees a matmul, not an
opaque convolution.
"""

from __future__ import annotations

from genesis import functional as GF
from genesis.errors import ShapeError
from genesis.functional.windows import col2im, conv_output_size, convolve, im2col, transpose_convolve

# From this many rows of columns (C/groups * kh*kw) on, the columns are (C*kh*kw, N*Ho*Wo) and the
# forward is one product over the batch, as is the weight's gradient, where (N, C*kh*kw, Ho*Wo)
# columns take N products and a sum; but the (O, N, Ho, Wo) result is permuted to (N, O, Ho, Wo),
# which later kernels read as a copy. Measured per step on one core (OpenBLAS, batch 64 or 32): 288
# rows (32 channels, 3x3): weight gradient 24 -> 16 ms, forward and input gradient 2-3 ms slower;
# 576 and 2304 rows: all three faster; 27 rows (an RGB image's first layer): all slower, 2.3 -> 5 ms
# for the forward.
BATCH_INSIDE_FROM = 128


def pair(value, name="argument"):
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value}")
    return int(value[0]), int(value[1])


def _same_padding(kernel, dilation):
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2  # PyTorch puts the odd pixel on the right/bottom


def _batched(x, weight, name):
    """x as (N, C, H, W) and whether it came without its batch dim; both must be 4-D then."""
    unbatched = x.ndim == 3
    if unbatched:
        x = GF.unsqueeze(x, 0)
    if x.ndim != 4 or weight.ndim != 4:
        raise ShapeError(
            f"{name} expects a 3-D or 4-D input and a 4-D weight, got input "
            f"{list(x.shape if not unbatched else x.shape[1:])} and weight {list(weight.shape)}"
        )
    return x, unbatched


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """PyTorch's conv2d: x (N, C, H, W) or (C, H, W), weight (O, C/groups, kh, kw)."""
    x, unbatched = _batched(x, weight, "conv2d")
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    n, c, h, w = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    if groups < 1 or c % groups or out_channels % groups or group_channels * groups != c:
        raise ShapeError(
            f"conv2d: given groups={groups}, weight of size {list(weight.shape)}, expected input"
            f"{list(x.shape)} to have {group_channels * groups} channels, but got {c} channels instead"
            if group_channels * groups != c
            else f"conv2d: {out_channels} output channels or {c} input channels are not divisible by groups={groups}"
        )
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            pads = _same_padding(kh, dilation[0]) + _same_padding(kw, dilation[1])
        else:
            raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    else:
        ph, pw = pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    top, bottom, left, right = pads
    ho = conv_output_size(h, kh, stride[0], top + bottom, dilation[0])
    wo = conv_output_size(w, kw, stride[1], left + right, dilation[1])
    if ho <= 0 or wo <= 0:
        raise ShapeError(
            f"conv2d: the output size ({ho}x{wo}) is too small for input {list(x.shape)}, kernel "
            f"{kh}x{kw}, padding {pads}, stride {stride}, dilation {dilation}"
        )
    if groups == 1:
        out = convolve(x, weight, stride, pads, dilation)
    else:
        out = _grouped(x, weight, groups, stride, pads, dilation, (ho, wo))
    if bias is not None:
        out = out + GF.reshape(bias.to(out.dtype) if out.dtype.is_low_precision else bias, (1, out_channels, 1, 1))
    return GF.squeeze(out, 0) if unbatched else out


def _grouped(x, weight, groups, stride, pads, dilation, out_size):
    """A grouped convolution as im2col and one product per group (depthwise: groups = channels)."""
    n = x.shape[0]
    out_channels, group_channels, kh, kw = weight.shape
    ho, wo = out_size
    kernel = GF.reshape(weight, (groups, out_channels // groups, group_channels * kh * kw))
    if group_channels * kh * kw >= BATCH_INSIDE_FROM:
        columns = im2col(x, (kh, kw), stride, dilation, batch_inside=True, padding=pads)
        columns = GF.reshape(columns, (groups, group_channels * kh * kw, n * ho * wo))
        out = GF.permute(GF.reshape(GF.matmul(kernel, columns), (out_channels, n, ho, wo)), (1, 0, 2, 3))
    else:
        columns = im2col(x, (kh, kw), stride, dilation, padding=pads)
        columns = GF.reshape(columns, (n, groups, group_channels * kh * kw, ho * wo))
        out = GF.reshape(GF.matmul(kernel, columns), (n, out_channels, ho, wo))
    return out


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """conv2d over a height of one: x (N, C, L) or (C, L), weight (O, C/groups, k)."""
    unbatched = x.ndim == 2
    if unbatched:
        x = GF.unsqueeze(x, 0)
    if isinstance(padding, str):
        padding2 = padding
    else:
        padding2 = (0, padding if isinstance(padding, int) else tuple(padding)[0])
    out = conv2d(
        GF.unsqueeze(x, 2),
        GF.unsqueeze(weight, 2),
        bias,
        (1, pair(stride)[0]),
        padding2,
        (1, pair(dilation)[0]),
        groups,
    )
    out = GF.squeeze(out, 2)
    return GF.squeeze(out, 0) if unbatched else out


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """PyTorch's conv_transpose2d, conv2d's adjoint: x (N, C_in, H, W) or (C_in, H, W), weight
    (C_in, C_out/groups, kh, kw). With one group it is the conv2d_input_grad op. Grouped: each input
    position's channels times the weight give a column of C_out*kh*kw values; col2im sums the
    columns into the output, whose first `padding` and last `padding - output_padding` rows and
    columns are then cut away."""
    x, unbatched = _batched(x, weight, "conv_transpose2d")
    n, c, h, w = x.shape
    in_channels, group_out, kh, kw = weight.shape
    if groups < 1 or in_channels != c or c % groups:
        raise ShapeError(
            f"conv_transpose2d: weight of size {list(weight.shape)} with groups={groups} expects an input "
            f"with {in_channels} channels (divisible by groups), got {list(x.shape)}"
        )
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    padding, output_padding = pair(padding, "padding"), pair(output_padding, "output_padding")
    for extra, s_, d in zip(output_padding, stride, dilation):
        if extra >= max(s_, d):
            raise ValueError(
                f"conv_transpose2d: output padding must be smaller than either stride or dilation, got "
                f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
            )
    # the image whose conv2d windows (this stride and dilation, no padding) are exactly the input's positions
    full = tuple((size - 1) * s_ + d * (k - 1) + 1 for size, s_, d, k in zip((h, w), stride, dilation, (kh, kw)))
    out = tuple(f - 2 * p + e for f, p, e in zip(full, padding, output_padding))
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(f"conv_transpose2d: the output size {out} is too small for input {list(x.shape)}")
    out_channels = group_out * groups
    if groups == 1 and all(extra < s_ for extra, s_ in zip(output_padding, stride)):
        # conv2d's input gradient for an `out`-sized input: x stands for the gradient of its output
        pads = (padding[0], padding[0], padding[1], padding[1])
        out_image = transpose_convolve(x, weight, out, stride, pads, dilation)
    else:
        out_image = _grouped_transpose(x, weight, groups, stride, padding, output_padding, dilation, full, out)
    if bias is not None:
        out_image = out_image + GF.reshape(bias.to(out_image.dtype), (1, out_channels, 1, 1))
    return GF.squeeze(out_image, 0) if unbatched else out_image


def _grouped_transpose(x, weight, groups, stride, padding, output_padding, dilation, full, out):
    """conv_transpose2d as matmul, col2im and a crop: grouped, or an output padding past the stride."""
    n, c, h, w = x.shape
    _, group_out, kh, kw = weight.shape
    out_channels = group_out * groups
    kernel = GF.transpose(GF.reshape(weight, (groups, c // groups, group_out * kh * kw)), -2, -1)
    columns = GF.matmul(kernel, GF.reshape(x, (n, groups, c // groups, h * w)))  # (N, groups, C_out/g*kk, H*W)
    image = col2im(GF.reshape(columns, (n, out_channels, kh * kw, h, w)), full, (kh, kw), stride, dilation)
    if any(output_padding):
        image = GF.pad(image, (0, output_padding[1], 0, output_padding[0]))
    return image[:, :, padding[0] : padding[0] + out[0], padding[1] : padding[1] + out[1]]


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    """conv_transpose2d over a height of one: x (N, C_in, L) or (C_in, L), weight (C_in, C_out/groups, k)."""
    unbatched = x.ndim == 2
    if unbatched:
        x = GF.unsqueeze(x, 0)
    out = conv_transpose2d(
        GF.unsqueeze(x, 2),
        GF.unsqueeze(weight, 2),
        bias,
        (1, pair(stride)[0]),
        (0, pair(padding)[0]),
        (0, pair(output_padding)[0]),
        groups,
        (1, pair(dilation)[0]),
    )
    out = GF.squeeze(out, 2)
    return GF.squeeze(out, 0) if unbatched else out


def _unfold_geometry(size, kernel_size, dilation, padding, stride, name):
    kernel, dilation = pair(kernel_size, "kernel_size"), pair(dilation, "dilation")
    padding, stride = pair(padding, "padding"), pair(stride, "stride")
    out = tuple(conv_output_size(n, k, s, 2 * p, d) for n, k, s, p, d in zip(size, kernel, stride, padding, dilation))
    if out[0] <= 0 or out[1] <= 0:
        raise ShapeError(
            f"{name}: a {kernel[0]}x{kernel[1]} kernel with dilation {dilation}, padding {padding} and stride "
            f"{stride} has no position in a {size[0]}x{size[1]} input"
        )
    return kernel, dilation, padding, stride, out


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's unfold: x (N, C, H, W) or (C, H, W) to its sliding windows as columns (N, C*kh*kw, L)."""
    unbatched = x.ndim == 3
    if x.ndim not in (3, 4):
        raise ShapeError(f"unfold expects a 3-D or 4-D input, got {list(x.shape)}")
    batched = GF.unsqueeze(x, 0) if unbatched else x
    n, c = batched.shape[:2]
    kernel, dilation, padding, stride, out = _unfold_geometry(
        batched.shape[2:], kernel_size, dilation, padding, stride, "unfold"
    )
    pads = (padding[0], padding[0], padding[1], padding[1])
    columns = im2col(batched, kernel, stride, dilation, padding=pads)
    columns = GF.reshape(columns, (n, c * kernel[0] * kernel[1], out[0] * out[1]))
    return GF.squeeze(columns, 0) if unbatched else columns


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's fold, unfold's adjoint: columns (N, C*kh*kw, L) or (C*kh*kw, L) summed into (N, C, H, W)."""
    unbatched = x.ndim == 2
    if x.ndim not in (2, 3):
        raise ShapeError(f"fold expects a 2-D or 3-D input, got {list(x.shape)}")
    batched = GF.unsqueeze(x, 0) if unbatched else x
    size = pair(output_size, "output_size")
    kernel, dilation, padding, stride, out = _unfold_geometry(size, kernel_size, dilation, padding, stride, "fold")
    n, rows, length = batched.shape
    if rows % (kernel[0] * kernel[1]) or length != out[0] * out[1]:
        raise ShapeError(
            f"fold: input of shape {list(x.shape)} does not hold the {kernel[0]}x{kernel[1]} windows of a "
            f"{size[0]}x{size[1]} output ({out[0] * out[1]} positions, channels times {kernel[0] * kernel[1]} rows)"
        )
    c = rows // (kernel[0] * kernel[1])
    columns = GF.reshape(batched, (n, c, kernel[0] * kernel[1], *out))
    image = col2im(columns, size, kernel, stride, dilation, padding=(padding[0], padding[0], padding[1], padding[1]))
    return GF.squeeze(image, 0) if unbatched else image


__all__ = ["conv2d", "conv1d", "conv_transpose2d", "conv_transpose1d", "unfold", "fold"]
