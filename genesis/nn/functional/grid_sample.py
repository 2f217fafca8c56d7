"""affine_grid and grid_sample (2-D): sampling an image at the points of a grid of normalised coordinates.

A grid point (x, y) in [-1, 1] becomes a pixel position by PyTorch's rules
(the corner pixels' centres or their outer edges, by `align_corners`), is
clipped or reflected into the image for the border and reflection padding
modes, and reads its value by gathers from the flattened image: the four
neighbours weighted bilinearly, or the nearest pixel (ties to even, as
PyTorch's nearbyint). A neighbour outside the image reads 0. Everything is
ops on tensors, so the gradient reaches the input (the gathers' scatters) and
the grid (through the bilinear weights and the clipping and reflection), and
a compiled program traces it. As in PyTorch, clipping passes no gradient at
the image's border itself, and nearest sampling gives the grid a gradient of
zeros.
"""

from __future__ import annotations

from genesis import dtypes
from genesis import functional as GF
from genesis.creation import linspace
from genesis.errors import ShapeError

MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")


def affine_grid(theta, size, align_corners: bool | None = None):
    """The (N, H, W, 2) grid that the affine maps theta (N, 2, 3) make of the output pixels of `size` (N, C, H, W)."""
    align_corners = bool(align_corners)
    if len(size) != 4:
        raise NotImplementedError(f"affine_grid: only 2-D sizes (N, C, H, W) are supported, got {list(size)}")
    batch, _, height, width = (int(n) for n in size)
    if not theta.dtype.is_floating_point or tuple(theta.shape) != (batch, 2, 3):
        raise ShapeError(
            f"affine_grid: theta must be a floating-point (N, 2, 3) = ({batch}, 2, 3) tensor for size {list(size)}, "
            f"got {list(theta.shape)} {theta.dtype.name}"
        )
    xs = GF.reshape(_normalised_centres(width, align_corners, theta.dtype), (1, width, 1))
    ys = GF.reshape(_normalised_centres(height, align_corners, theta.dtype), (height, 1, 1))
    base = GF.cat(
        [
            GF.expand(xs, (height, width, 1)),
            GF.expand(ys, (height, width, 1)),
            GF.ones((height, width, 1), dtype=theta.dtype),
        ],
        2,
    )
    points = GF.matmul(GF.reshape(base, (1, height * width, 3)), GF.transpose(theta, 1, 2))
    return GF.reshape(points, (batch, height, width, 2))


def _normalised_centres(size, align_corners, dtype):
    """Where the pixels' centres lie in [-1, 1]: the end ones at -1 and 1, or half a pixel inside."""
    if size <= 1:
        return GF.zeros((size,), dtype=dtype)
    centres = linspace(-1.0, 1.0, size, dtype=dtype)
    return centres if align_corners else centres * ((size - 1) / size)


def grid_sample(input, grid, mode: str = "bilinear", padding_mode: str = "zeros", align_corners: bool | None = None):
    """input (N, C, H, W) read at grid (N, Ho, Wo, 2) of (x, y) points: (N, C, Ho, Wo)."""
    align_corners = bool(align_corners)
    if mode not in MODES:
        raise NotImplementedError(f"grid_sample: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"grid_sample: padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    if input.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != input.shape[0]:
        raise ShapeError(
            f"grid_sample: expected a 4-D input (N, C, H, W) and a grid (N, Ho, Wo, 2) with the same N, got "
            f"input {list(input.shape)} and grid {list(grid.shape)}"
        )
    if input.dtype is not grid.dtype or not input.dtype.is_floating_point:
        raise TypeError(
            f"grid_sample: input and grid must have the same floating-point dtype, got {input.dtype.name} "
            f"and {grid.dtype.name}"
        )
    batch, channels, height, width = input.shape
    out_height, out_width = grid.shape[1:3]
    points = out_height * out_width
    flat_grid = GF.reshape(grid, (batch, points, 2))
    x = _source_positions(flat_grid[..., 0], width, padding_mode, align_corners)
    y = _source_positions(flat_grid[..., 1], height, padding_mode, align_corners)
    image = GF.reshape(input, (batch, channels, height * width))
    if mode == "nearest":
        out = _with_zero_gradient_for(flat_grid, _read(image, _nearest(x), _nearest(y), height, width))
    else:
        left, top = GF.floor(x).detach(), GF.floor(y).detach()
        right_weight, bottom_weight = x - left, y - top
        left_weight, top_weight = 1.0 - right_weight, 1.0 - bottom_weight
        out = (
            _read(image, left, top, height, width) * GF.unsqueeze(left_weight * top_weight, 1)
            + _read(image, left + 1, top, height, width) * GF.unsqueeze(right_weight * top_weight, 1)
            + _read(image, left, top + 1, height, width) * GF.unsqueeze(left_weight * bottom_weight, 1)
            + _read(image, left + 1, top + 1, height, width) * GF.unsqueeze(right_weight * bottom_weight, 1)
        )
    return GF.reshape(out, (batch, channels, out_height, out_width))


def _source_positions(coordinate, size, padding_mode, align_corners):
    """Pixel positions (0 .. size-1 at the centres) of normalised coordinates, kept inside for border and
    reflection padding."""
    if align_corners:
        position = (coordinate + 1) * ((size - 1) / 2)
    else:
        position = ((coordinate + 1) * size - 1) / 2
    if padding_mode == "reflection":
        position = _reflect(position, 0.0, size - 1.0) if align_corners else _reflect(position, -0.5, size - 0.5)
    if padding_mode != "zeros":
        position = _clip(position, size)
    return position


def _clip(position, size):
    """clamp to [0, size - 1]; the gradient is 0 at and beyond the ends, as PyTorch counts them outside, and
    NaN goes to 0, as in PyTorch's kernel (a comparison with NaN is false)."""
    above_low = GF.where(position > 0, position, 0.0)
    return GF.where(above_low < size - 1, above_low, float(size - 1))


def _reflect(position, low, high):
    """Mirror position at low and high, as often as needed, back into [low, high]."""
    span = high - low
    if span <= 0:
        return GF.zeros_like(position)
    distance = GF.abs(position - low)
    extra = distance - GF.floor(distance / (2 * span)).detach() * (2 * span)
    return GF.where(extra <= span, extra, 2 * span - extra) + low


def _nearest(position):
    """The nearest pixel, ties to even as PyTorch's nearest mode (`round`); it takes no gradient."""
    return GF.round(position).detach()


def _with_zero_gradient_for(grid, out):
    """`out` as it is, made to depend on `grid` with a zero gradient: PyTorch's nearest mode gives the
    grid a gradient of zeros (not none), and a result that requires grad when only the grid does. A
    `where` on a false condition passes no value of the grid (a NaN or infinite point included)."""
    if not grid.requires_grad:
        return out
    never = GF.zeros((), dtype=dtypes.bool_)
    return GF.where(never, GF.unsqueeze(grid[..., 0], 1), out)


def _read(image, column, row, height, width):
    """image (N, C, H*W) at integer-valued positions (N, P); 0 where a position is outside."""
    inside = (column >= 0) & (column <= width - 1) & (row >= 0) & (row <= height - 1)  # false for NaN too
    # pixel 0 stands in before the cast: a point far outside, infinite or NaN has no defined integer
    column = GF.where(inside, column, 0.0).to(dtypes.int64)
    row = GF.where(inside, row, 0.0).to(dtypes.int64)
    index = GF.unsqueeze(row * width + column, 1)
    values = GF.gather(image, 2, GF.expand(index, (image.shape[0], image.shape[1], index.shape[2])))
    return GF.where(GF.unsqueeze(inside, 1), values, 0.0)


__all__ = ["affine_grid", "grid_sample"]
