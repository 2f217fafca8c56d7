"""Conv1d, Conv2d: weights (out, in/groups, *kernel); ConvTranspose1d, ConvTranspose2d: weights
(in, out/groups, *kernel); initialised as PyTorch does."""

from __future__ import annotations

from genesis.creation import empty
from genesis.nn import functional as F
from genesis.nn import init
from genesis.nn.modules.module import Module
from genesis.nn.parameter import Parameter


def _tuple(value, n):
    return (value,) * n if isinstance(value, int) else tuple(value)


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    _dims = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        super().__init__()
        n = self._dims
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, but got padding_mode={padding_mode!r}")
        if padding_mode != "zeros" and self._transposed:
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in _tuple(stride, n)):
                raise ValueError("padding='same' is not supported for strided convolutions")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _tuple(kernel_size, n), _tuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        self.dilation, self.groups, self.padding_mode = _tuple(dilation, n), groups, padding_mode
        channels = (in_channels, out_channels // groups) if self._transposed else (out_channels, in_channels // groups)
        self.weight = Parameter(empty(channels + self.kernel_size, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def _padded(self, x):
        """x padded by `padding_mode` (reflect, replicate, circular), and the padding left for the
        convolution: none then, as in PyTorch, which pads first and convolves without padding."""
        if self.padding_mode == "zeros":
            return x, self.padding
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            sides = [(total // 2, total - total // 2) for total in totals]
        else:
            sides = [(p, p) for p in (self.padding if self.padding != "valid" else (0,) * self._dims)]
        widths = [w for pair in reversed(sides) for w in pair]  # F.pad's order: the last dim first
        return F.pad(x, widths, mode=self.padding_mode), (0,) * self._dims

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if isinstance(self.padding, str) or self.padding != (0,) * self._dims:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self._dims:
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class Conv1d(_ConvNd):
    """Over (N, C, L) or (C, L) inputs."""

    _dims = 1

    def forward(self, x):
        x, padding = self._padded(x)
        padding = padding if isinstance(padding, str) else padding[0]
        return F.conv1d(x, self.weight, self.bias, self.stride[0], padding, self.dilation[0], self.groups)


class Conv2d(_ConvNd):
    """Over (N, C, H, W) or (C, H, W) inputs."""

    _dims = 2

    def forward(self, x):
        x, padding = self._padded(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
    ):
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__} takes no padding string, got {padding!r}")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        )
        self.output_padding = _tuple(output_padding, self._dims)

    def _output_padding(self, x, output_size) -> tuple:
        """The output padding that gives `output_size` (PyTorch's forward argument), or the layer's."""
        if output_size is None:
            return self.output_padding
        n = self._dims
        wanted = tuple(output_size)[-n:]
        spatial = tuple(x.shape[-n:])
        smallest = tuple(
            (size - 1) * s - 2 * p + d * (k - 1) + 1
            for size, s, p, d, k in zip(spatial, self.stride, self.padding, self.dilation, self.kernel_size)
        )
        extra = tuple(want - low for want, low in zip(wanted, smallest))
        if any(e < 0 or e >= max(s, d) for e, s, d in zip(extra, self.stride, self.dilation)):
            raise ValueError(
                f"requested an output size of {list(wanted)}, but valid sizes range from {list(smallest)} to "
                f"{[low + max(s, d) - 1 for low, s, d in zip(smallest, self.stride, self.dilation)]} "
                f"(for an input of {list(spatial)})"
            )
        return extra

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.output_padding != (0,) * self._dims:
            text += f", output_padding={self.output_padding}"
        return text


class ConvTranspose1d(_ConvTransposeNd):
    """Over (N, C, L) or (C, L) inputs."""

    _dims = 1

    def forward(self, x, output_size=None):
        (extra,) = self._output_padding(x, output_size)
        return F.conv_transpose1d(
            x, self.weight, self.bias, self.stride[0], self.padding[0], extra, self.groups, self.dilation[0]
        )


class ConvTranspose2d(_ConvTransposeNd):
    """Over (N, C, H, W) or (C, H, W) inputs."""

    _dims = 2

    def forward(self, x, output_size=None):
        extra = self._output_padding(x, output_size)
        return F.conv_transpose2d(
            x, self.weight, self.bias, self.stride, self.padding, extra, self.groups, self.dilation
        )


__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]
