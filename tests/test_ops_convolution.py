"""The convolution ops (ops/convolution.py): conv2d and its two gradients, in C (per group of images,
ops/native/windows.c) and in numpy, against PyTorch, with second derivatives, eager against compiled,
and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import genesis
import genesis.nn.functional as F
from genesis.errors import ShapeError
from genesis.ops import convolution, windows

GEOMETRIES = [
    # N, C, H, W, O, kernel, stride, padding, dilation
    (4, 3, 13, 12, 8, (3, 3), 1, 1, 1),
    (5, 6, 9, 9, 4, (3, 2), (2, 1), (1, 0), 1),  # strided, uneven kernel and padding
    (2, 4, 16, 16, 8, (2, 2), 1, 0, 2),  # dilated
    (16, 8, 4, 4, 16, (3, 3), 1, 1, 1),  # a small image: groups of several images per product
    (3, 5, 7, 7, 6, (1, 1), 1, 0, 1),
    (2, 16, 40, 40, 8, (3, 3), 1, 1, 1),  # a big image: one image an item, in bands of output rows
    (3, 32, 64, 50, 4, (3, 3), (2, 1), (1, 2), 1),  # bands of a strided, unevenly padded one
    # 3x3, stride 1, 16 channels or more: Winograd's F(2x2, 3x3) for y and dx
    (3, 16, 12, 10, 24, (3, 3), 1, 1, 1),
    (5, 20, 9, 11, 16, (3, 3), 1, (2, 0), 1),  # odd output sides, images not a multiple of a group
    (2, 16, 8, 8, 16, (3, 3), 1, 3, 1),  # padding past 2: dx is not a Winograd convolution
]
WINOGRAD = GEOMETRIES[-3:]


def _tolerance(dtype, reduced):
    """A float32 convolution sums `reduced` products, in another order than PyTorch's."""
    eps = np.finfo(dtype).eps
    return dict(rtol=8 * eps * np.sqrt(reduced), atol=8 * eps * np.sqrt(reduced))


def _against_torch(geometry, dtype):
    n, c, h, w, o, kernel, stride, padding, dilation = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c, *kernel)).astype(dtype)
    gx, gw = genesis.tensor(x, requires_grad=True), genesis.tensor(weight, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    y = F.conv2d(gx, gw, stride=stride, padding=padding, dilation=dilation)
    expected = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=padding, dilation=dilation)
    dy = rng.standard_normal(expected.shape).astype(dtype)
    (y * genesis.tensor(dy)).sum().backward()
    (expected * torch.tensor(dy)).sum().backward()
    sums = {
        "y": c * kernel[0] * kernel[1],
        "x": o * kernel[0] * kernel[1],
        "w": n * expected.shape[2] * expected.shape[3],
    }
    for name, got, want in (("y", y, expected), ("x", gx.grad, tx.grad), ("w", gw.grad, tw.grad)):
        want = want.detach().numpy()
        scale = np.abs(want).max()
        np.testing.assert_allclose(got.detach().numpy() / scale, want / scale, **_tolerance(dtype, sums[name]))


@pytest.mark.c_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv2d_in_c_matches_pytorch(geometry, dtype):
    assert convolution._in_c(np.dtype(dtype)) is not None, "the C path is not there"
    _against_torch(geometry, dtype)


@pytest.mark.c_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", WINOGRAD)
def test_winograd_convolutions_are_im2cols_to_rounding(geometry, dtype, monkeypatch):
    """F(2x2, 3x3) (and F(3x3, 2x2) for the weight gradient) adds and subtracts before its products:
    its sums differ from im2col's in the last bits only, and the conditions that pick it hold where
    they should."""
    n, c, h, w, o, kernel, stride, padding, dilation = geometry
    pads = (padding, padding, padding, padding) if isinstance(padding, int) else (padding[0],) * 2 + (padding[1],) * 2
    windows_ = dict(stride=(1, 1), padding=pads, dilation=(1, 1))
    assert convolution._winograd_fits((n, c, h, w), (o, c, 3, 3), (1, 1), pads, (1, 1), dtype)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    y = convolution.conv2d.kernel(x, weight, **windows_)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = convolution.conv2d_input_grad.kernel(dy, weight, size=(h, w), **windows_)
    dw = convolution.conv2d_weight_grad.kernel(x, dy, kernel=(3, 3), **windows_)
    monkeypatch.setattr(convolution, "WINOGRAD_MIN_CHANNELS", 1 << 30)
    y_im2col = convolution.conv2d.kernel(x, weight, **windows_)
    dx_im2col = convolution.conv2d_input_grad.kernel(dy, weight, size=(h, w), **windows_)
    dw_im2col = convolution.conv2d_weight_grad.kernel(x, dy, kernel=(3, 3), **windows_)
    dx_by_winograd = max(pads) <= 2  # else dx's convolution would need negative padding
    cases = (
        (y, y_im2col, c * 9, True),
        (dx, dx_im2col, o * 9, dx_by_winograd),
        (dw, dw_im2col, n * y.shape[2] * y.shape[3], True),
    )
    for got, want, reduced, by_winograd in cases:
        scale = np.abs(want).max()
        np.testing.assert_allclose(got / scale, want / scale, **_tolerance(dtype, reduced))
        assert np.array_equal(got, want) != by_winograd  # which algorithm ran


@pytest.mark.c_compiler
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("side", [4, 3, 2])
def test_small_images_run_winograd_from_four_blocks(side, dtype, monkeypatch):
    """4x4 and 3x3 images (four 2x2 blocks of output) run Winograd for the convolution and both
    gradients; 2x2 images (one block) stay with im2col. Each to rounding of PyTorch's."""
    n, c, o = 6, 16, 24
    windows_ = dict(stride=(1, 1), padding=(1, 1, 1, 1), dilation=(1, 1))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, c, side, side)).astype(dtype)
    weight = rng.standard_normal((o, c, 3, 3)).astype(dtype)
    dy = rng.standard_normal((n, o, side, side)).astype(dtype)

    def three():
        return (
            convolution.conv2d.kernel(x, weight, **windows_),
            convolution.conv2d_input_grad.kernel(dy, weight, size=(side, side), **windows_),
            convolution.conv2d_weight_grad.kernel(x, dy, kernel=(3, 3), **windows_),
        )

    found = three()
    monkeypatch.setattr(convolution, "WINOGRAD_MIN_CHANNELS", 1 << 30)
    by_im2col = three()
    tx, tw, tdy = torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(dy)
    expected = (
        torch.nn.functional.conv2d(tx, tw, padding=1),
        torch.nn.grad.conv2d_input(tx.shape, tw, tdy, padding=1),
        torch.nn.grad.conv2d_weight(tx, tw.shape, tdy, padding=1),
    )
    for got, im2col, want, reduced in zip(found, by_im2col, expected, (c * 9, o * 9, n * side * side)):
        assert np.array_equal(got, im2col) == (side == 2)  # which algorithm ran
        scale = np.abs(im2col).max()
        np.testing.assert_allclose(got / scale, want.numpy() / scale, **_tolerance(dtype, reduced))


@pytest.mark.parametrize("geometry", GEOMETRIES[:3])
def test_conv2d_in_numpy_matches_pytorch(geometry, monkeypatch):
    monkeypatch.setattr(windows.C_KERNELS, "enabled", False)
    assert convolution._in_c(np.dtype(np.float32)) is None
    _against_torch(geometry, np.float32)


def test_second_derivatives_match_pytorch():
    """Each gradient op's vjp is made of the three ops: a gradient penalty differentiates through them."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 6, 5))
    weight = rng.standard_normal((4, 2, 3, 3))

    def penalty(conv, x, weight, grad):
        y = conv(x, weight, stride=1, padding=1)
        (gx, gw) = grad((y * y).sum(), (x, weight), create_graph=True)
        return (gx * gx).sum() + (gw * gw * gw).sum()

    gx, gw = (genesis.tensor(v, requires_grad=True) for v in (x, weight))
    ours = penalty(F.conv2d, gx, gw, genesis.autograd.grad)
    ours_grads = genesis.autograd.grad(ours, (gx, gw))
    tx, tw = (torch.tensor(v, requires_grad=True) for v in (x, weight))
    theirs = penalty(torch.nn.functional.conv2d, tx, tw, torch.autograd.grad)
    theirs_grads = torch.autograd.grad(theirs, (tx, tw))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-10)
    for got, want in zip(ours_grads, theirs_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.c_compiler
def test_eager_and_compiled_give_the_same_bits():
    genesis.manual_seed(0)
    conv = genesis.nn.Conv2d(8, 16, 3, padding=1, bias=False)
    x = genesis.randn(16, 8, 6, 6)

    def step(x):
        loss = conv(x).relu().square().mean()
        loss.backward()
        return loss

    results = []
    for fn in (step, genesis.compile(step)):
        conv.zero_grad()
        results.append((fn(x).detach().numpy(), conv.weight.grad.numpy().copy()))
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)


def test_shapes_that_do_not_fit_are_named():
    x, w = genesis.randn(2, 3, 5, 5), genesis.randn(4, 2, 3, 3)
    with pytest.raises(ShapeError, match=r"conv2d: weight \[4, 2, 3, 3\] expects 2 input channels"):
        convolution.conv2d(x, w, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1))
    dy = genesis.randn(2, 4, 4, 4)
    with pytest.raises(ShapeError, match=r"conv2d_input_grad: gradient \[2, 4, 4, 4\] is not conv2d's output"):
        convolution.conv2d_input_grad(
            dy, genesis.randn(4, 3, 3, 3), size=(5, 5), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)
        )
    with pytest.raises(ShapeError, match=r"conv2d: the output size \(0x0\) is too small"):
        convolution.conv2d(
            genesis.randn(1, 3, 2, 2), genesis.randn(4, 3, 3, 3), stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1)
        )
