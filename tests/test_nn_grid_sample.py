"""affine_grid and grid_sample (2-D) against PyTorch: values and the gradients for the input, the grid and
theta, in every mode, padding mode and corner alignment, with grid points on the border, outside the image
and far outside; compiled against eager."""

import numpy as np
import pytest
import torch
from optest import check_compiled, check_torch

import genesis
import genesis.nn.functional as F
from genesis.errors import ShapeError


def lib_of(t):
    return torch.nn.functional if isinstance(t, torch.Tensor) else F


SPECIAL_POINTS = [[1.0, 1.0], [-1.0, -1.0], [1.0, -0.3], [3.3, -2.6], [-9.7, 0.2], [0.0, 0.0], [2.0, 2.0]]


def image_and_grid(seed=0, shape=(2, 3, 5, 7), points=(4, 6)):
    """Random points in and around the image, and corners, edges, points beyond and far outside."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal(shape)
    grid = rng.uniform(-1.7, 1.7, (shape[0],) + points + (2,))
    grid.reshape(-1, 2)[: len(SPECIAL_POINTS)] = SPECIAL_POINTS
    return image, grid


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_grid_sample_is_pytorchs(dtype, padding_mode, align_corners):
    def fn(image, grid):
        return lib_of(image).grid_sample(image, grid, "bilinear", padding_mode, align_corners)

    check_torch(fn, list(image_and_grid()), dtype=dtype)
    check_torch(fn, list(image_and_grid(1, shape=(1, 2, 1, 4), points=(2, 4))), dtype=dtype)  # one row


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_nearest_grid_sample_is_pytorchs(dtype, padding_mode, align_corners):
    """The grid takes a gradient of zeros, as in PyTorch (also when only the grid requires grad); points
    half-way between pixels round to the even one, as nearbyint."""
    image, grid = image_and_grid(2)
    width = image.shape[3]
    pixels = np.array([0.5, 1.5, 2.5])
    half_way = pixels / (width - 1) * 2 - 1 if align_corners else (pixels * 2 + 1) / width - 1
    grid[1, 1, :3, 0] = half_way
    grid[1, 1, :3, 1] = 0.0
    check_torch(
        lambda image: lib_of(image).grid_sample(image, _same_kind(image, grid), "nearest", padding_mode, align_corners),
        [image],
        dtype=dtype,
    )
    for int_inputs in ((), (0,)):
        check_torch(
            lambda image, grid: lib_of(image).grid_sample(image, grid, "nearest", padding_mode, align_corners),
            [image, grid],
            dtype=dtype,
            int_inputs=int_inputs,
        )
    leaf = genesis.tensor(grid, dtype=dtype, requires_grad=True)
    F.grid_sample(genesis.tensor(image, dtype=dtype), leaf, "nearest", padding_mode, align_corners).sum().backward()
    assert leaf.grad.shape == grid.shape and leaf.grad.dtype is dtype and not np.any(leaf.grad.numpy())


def _same_kind(like, values):
    """values as a tensor of like's library and dtype."""
    if isinstance(like, torch.Tensor):
        return torch.tensor(values, dtype=like.dtype)
    return genesis.tensor(values, dtype=like.dtype)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (2, 1, 1, 3), (2, 2, 6, 1)])
@pytest.mark.filterwarnings("ignore:Since version 1.3.0")  # torch's note on sizes of one, which it computes
def test_affine_grid_is_pytorchs(dtype, align_corners, size):
    theta = np.random.default_rng(3).standard_normal((2, 2, 3))
    check_torch(lambda t: lib_of(t).affine_grid(t, size, align_corners), [theta], dtype=dtype)


def test_affine_grid_then_grid_sample_rotates_an_image():
    """A spatial transformer: gradients reach theta through the grid."""
    angle = 0.3
    theta = np.array([[[np.cos(angle), -np.sin(angle), 0.1], [np.sin(angle), np.cos(angle), -0.2]]] * 2)
    image = np.random.default_rng(4).standard_normal((2, 3, 6, 6))

    def fn(image, theta):
        lib = lib_of(image)
        return lib.grid_sample(image, lib.affine_grid(theta, (2, 3, 5, 4), False), align_corners=False)

    check_torch(fn, [image, theta], dtype=genesis.float64)
    identity = genesis.tensor(np.array([[[1.0, 0, 0], [0, 1.0, 0]]] * 2))
    same = F.grid_sample(genesis.tensor(image), F.affine_grid(identity, (2, 3, 6, 6), True), align_corners=True)
    np.testing.assert_allclose(same.numpy(), image, atol=1e-12)


def test_grid_sample_reads_nan_and_infinite_points_as_pytorch():
    """Outside for zeros padding (and never an undefined integer position); clipped for border padding.
    Values only against torch: torch 2.13's backward over such points reads out of bounds and crashes."""
    grid = np.array([[[[np.nan, 0.0], [np.inf, 0.0], [-np.inf, 0.3], [0.1, 0.2]]]])
    image = np.random.default_rng(7).standard_normal((1, 2, 3, 3))
    for mode, padding_mode in [("nearest", "zeros"), ("bilinear", "border"), ("nearest", "border")]:
        check_torch(
            lambda image: lib_of(image).grid_sample(image, _same_kind(image, grid), mode, padding_mode, False),
            [image],
            dtype=genesis.float64,
            grad=False,
        )
        source, points = genesis.tensor(image, requires_grad=True), genesis.tensor(grid, requires_grad=True)
        F.grid_sample(source, points, mode, padding_mode, False).sum().backward()
        assert np.all(np.isfinite(source.grad.numpy()))
        if mode == "nearest":  # zeros, not the NaN an arithmetic link to a NaN point would give
            np.testing.assert_array_equal(points.grad.numpy(), np.zeros(grid.shape))


def test_grid_sample_refuses_bad_arguments_by_name():
    image, grid = genesis.zeros(1, 2, 3, 3), genesis.zeros(1, 2, 2, 2)
    with pytest.raises(ShapeError, match="grid_sample"):
        F.grid_sample(image, genesis.zeros(1, 2, 2, 3))
    with pytest.raises(ShapeError, match="grid_sample"):
        F.grid_sample(image, genesis.zeros(2, 2, 2, 2))
    with pytest.raises(TypeError, match="same floating-point dtype"):
        F.grid_sample(image, grid.double())
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.grid_sample(image, grid, mode="bicubic")
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(image, grid, padding_mode="circular")
    with pytest.raises(ShapeError, match="theta"):
        F.affine_grid(genesis.zeros(1, 3, 3), (1, 2, 3, 3))
    with pytest.raises(NotImplementedError, match="2-D"):
        F.affine_grid(genesis.zeros(1, 3, 4), (1, 2, 3, 3, 3))


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflection"])
def test_grid_sample_compiled_matches_eager(mode, padding_mode):
    image, grid = image_and_grid(5)
    check_compiled(lambda image, grid: F.grid_sample(image, grid, mode, padding_mode, False), [image, grid])
    theta = np.random.default_rng(6).standard_normal((2, 2, 3))
    check_compiled(lambda t: F.affine_grid(t, (2, 3, 4, 5), True), [theta])
