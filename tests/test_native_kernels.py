"""The ops' hand-written C kernels (ops/native/*.c) against their numpy kernels and PyTorch.

An op runs its C kernel where the library can be built and its numpy kernel elsewhere (no C
compiler, another dtype), so both must give the same bits: each case runs the op's kernel both
ways on the same arrays, over the layouts and geometries the C code branches on (strides,
padding, dilation, ceil_mode, both column layouts, an inner dim of one and of more), with NaNs,
infinities and ties, in float32 and float64, split over several threads' chunks.
"""

import numpy as np
import pytest
import torch

import genesis
import genesis.nn.functional as F
from genesis.ops import OPS, movement, windows
from genesis.runtime import native

pytestmark = pytest.mark.c_compiler


def both_ways(kernels, stem, dtype, run):
    """`run()` with the C kernel and with the numpy kernel; the C one must be there."""
    assert kernels.kernel(stem, dtype) is not None, "the C kernels did not build"
    with_c = run()
    kernels.enabled = False
    try:
        with_numpy = run()
    finally:
        kernels.enabled = True
    return with_c, with_numpy


def assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


def awkward_values(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, max(1, flat.size // 50))] = np.nan
    flat[rng.integers(0, flat.size, max(1, flat.size // 50))] = -np.inf
    flat[rng.integers(0, flat.size, max(1, flat.size // 50))] = 1.25  # ties
    return x


POOLS = [
    dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), ceil_mode=False),
    dict(kernel=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1), ceil_mode=True),
    dict(kernel=(3, 2), stride=(1, 3), padding=(1, 1), dilation=(2, 1), ceil_mode=True),
    dict(kernel=(2, 3), stride=(1, 1), padding=(0, 1), dilation=(1, 2), ceil_mode=False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", POOLS, ids=range(len(POOLS)))
def test_max_pool_positions_in_c_are_numpys_and_pytorchs(options, dtype):
    x = awkward_values((3, 5, 11, 9), dtype, seed=0)
    x[0, 0] = -np.inf  # windows of -inf only, some over the padding: their first position inside
    kernel = OPS["max_pool2d_indices"].kernel
    with_c, with_numpy = both_ways(windows.C_KERNELS, "g_max_pool2d_positions", dtype, lambda: kernel(x, **options))
    assert_same_bits(with_c, with_numpy)
    _, expected = torch.nn.functional.max_pool2d(
        torch.from_numpy(x),
        options["kernel"],
        options["stride"],
        options["padding"],
        options["dilation"],
        options["ceil_mode"],
        return_indices=True,
    )
    np.testing.assert_array_equal(with_c, expected.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", POOLS, ids=range(len(POOLS)))
def test_max_pool_values_and_gradient_in_c_are_numpys_and_pytorchs(options, dtype):
    """The values are those at the positions; the gradient adds dy at the positions, found again
    from x, in window order (as a scatter at the positions would), overlapping windows included."""
    x = awkward_values((3, 5, 11, 9), dtype, seed=1)
    x[0, 0] = -np.inf
    values_kernel, backward_kernel = OPS["max_pool2d"].kernel, OPS["max_pool2d_backward"].kernel
    with_c, with_numpy = both_ways(windows.C_KERNELS, "g_max_pool2d", dtype, lambda: values_kernel(x, **options))
    assert_same_bits(with_c, with_numpy)
    positions = OPS["max_pool2d_indices"].kernel(x, **options)
    planes = x.reshape(15, -1)
    at_positions = np.take_along_axis(planes, positions.reshape(15, -1), 1)
    np.testing.assert_array_equal(with_c, at_positions.reshape(with_c.shape))
    dy = np.random.default_rng(2).standard_normal(with_c.shape).astype(dtype)
    dx_c, dx_numpy = both_ways(
        windows.C_KERNELS, "g_max_pool2d_backward", dtype, lambda: backward_kernel(dy, x, **options)
    )
    assert_same_bits(dx_c, dx_numpy)
    scattered = OPS["gather_backward"].kernel(dy.reshape(15, -1), positions.reshape(15, -1), dim=1, size=(15, 99))
    assert_same_bits(dx_c, scattered.reshape(x.shape))
    x_t = torch.from_numpy(x).requires_grad_()
    window = (options["kernel"], options["stride"], options["padding"], options["dilation"], options["ceil_mode"])
    torch.nn.functional.max_pool2d(x_t, *window).backward(torch.from_numpy(dy))
    np.testing.assert_allclose(dx_c, x_t.grad.numpy(), rtol=0, atol=8 * np.finfo(dtype).eps * np.abs(dy).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_inside", [False, True])
@pytest.mark.parametrize(
    "kernel, stride, dilation, padding",
    [
        ((3, 3), (1, 1), (1, 1), (0, 0, 0, 0)),
        ((2, 3), (2, 3), (1, 1), (0, 0, 0, 0)),
        ((3, 2), (2, 1), (2, 3), (0, 0, 0, 0)),
        ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),  # a 3x3 convolution's "same" padding
        ((2, 3), (2, 3), (1, 1), (0, 1, 2, 1)),  # uneven, with windows that start in the padding
        ((3, 2), (2, 1), (2, 3), (4, 3, 5, 0)),  # padding wider than the kernel's reach: empty rows
    ],
)
def test_im2col_and_col2im_in_c_are_numpys(kernel, stride, dilation, padding, batch_inside, dtype):
    x = awkward_values((4, 3, 13, 12), dtype, seed=1)
    attrs = dict(kernel=kernel, stride=stride, dilation=dilation, batch_inside=batch_inside, padding=padding)
    columns, expected_columns = both_ways(
        windows.C_KERNELS, "g_im2col", dtype, lambda: OPS["im2col"].kernel(x, **attrs)
    )
    assert_same_bits(columns, expected_columns)
    # col2im sums overlapping windows: the same order of additions gives the same bits
    values = np.random.default_rng(2).standard_normal(columns.shape).astype(dtype)
    image, expected_image = both_ways(
        windows.C_KERNELS, "g_col2im", dtype, lambda: OPS["col2im"].kernel(values, size=x.shape[2:], **attrs)
    )
    assert_same_bits(image, expected_image)
    # the padding reads as zeros and its gradient is dropped: the windows of an explicitly padded input
    top, bottom, left, right = padding
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    unpadded = dict(attrs, padding=(0, 0, 0, 0))
    assert_same_bits(columns, OPS["im2col"].kernel(padded, **unpadded))
    full = OPS["col2im"].kernel(values, size=padded.shape[2:], **unpadded)
    assert_same_bits(image, np.ascontiguousarray(full[:, :, top : top + x.shape[2], left : left + x.shape[3]]))


def test_im2col_in_c_reads_a_strided_input():
    x = np.random.default_rng(3).standard_normal((2, 6, 9, 8)).astype(np.float32)[:, ::2, :, 1:]
    attrs = dict(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), batch_inside=False)
    columns, expected = both_ways(windows.C_KERNELS, "g_im2col", np.float32, lambda: OPS["im2col"].kernel(x, **attrs))
    assert_same_bits(columns, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, index_shape, dim", [((6, 40), (6, 25), 1), ((5, 7, 4), (5, 9, 4), 1), ((8, 3), (4, 3), 0)]
)
def test_gather_and_scatter_add_in_c_are_numpys(shape, index_shape, dim, dtype):
    rng = np.random.default_rng(4)
    a = awkward_values(shape, dtype, seed=5)
    index = rng.integers(0, shape[dim], index_shape)  # repeated positions: scatter_add sums them in order
    src = rng.standard_normal(index_shape).astype(dtype)
    gathered, expected = both_ways(
        movement.C_KERNELS, "g_gather", dtype, lambda: OPS["gather"].kernel(a, index, dim=dim)
    )
    assert_same_bits(gathered, expected)
    added, expected = both_ways(
        movement.C_KERNELS, "g_scatter_add", dtype, lambda: OPS["scatter_add"].kernel(a, index, src, dim=dim)
    )
    assert_same_bits(added, expected)
    reference = torch.from_numpy(a).scatter_add(dim, torch.from_numpy(index), torch.from_numpy(src))
    np.testing.assert_allclose(added, reference.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("bad", [40, -1])
@pytest.mark.parametrize("inner", [1, 3])
def test_gather_and_scatter_add_in_c_name_a_position_out_of_range(bad, inner, monkeypatch):
    """The C kernels check positions as they go; the op then names the bad one as numpy's path does,
    from any of the chunks, and scatter_add's input stays as it was."""
    monkeypatch.setattr(native, "GRAIN", 64)  # several chunks: the bad position is in a late one
    a = genesis.tensor(np.arange(6 * 40 * inner, dtype=np.float32).reshape(6, 40, inner))
    positions = np.random.default_rng(0).integers(0, 40, (6, 25, inner))
    positions[5, 20, inner - 1] = bad
    index = genesis.tensor(positions)
    assert movement.C_KERNELS.kernel("g_gather", np.float32) is not None
    with pytest.raises(IndexError, match=rf"index {bad} is out of range for dim 1 with size 40"):
        a.gather(1, index)
    before = a.numpy().copy()
    with pytest.raises(IndexError, match=rf"index {bad} is out of range for dim 1 with size 40"):
        a.scatter_add(1, index, genesis.ones(6, 25, inner))
    np.testing.assert_array_equal(a.numpy(), before)


def test_c_kernels_split_over_threads_give_one_threads_bits(monkeypatch):
    """Big enough for several chunks on the thread pool: the chunks write disjoint rows."""
    x = awkward_values((16, 32, 64, 64), np.float32, seed=6)
    options = POOLS[1]
    kernel = OPS["max_pool2d_indices"].kernel
    assert len(native.row_chunks(16 * 32, 32 * 32 * 9)) > 1 or native.THREADS == 1
    values, backward = OPS["max_pool2d"].kernel, OPS["max_pool2d_backward"].kernel
    dy = awkward_values(values(x, **options).shape, np.float32, seed=7)
    split = kernel(x, **options), values(x, **options), backward(dy, x, **options)
    monkeypatch.setattr(native, "GRAIN", 1 << 40)  # one chunk
    assert len(native.row_chunks(16 * 32, 32 * 32 * 9)) == 1
    for got, expected in zip(split, (kernel(x, **options), values(x, **options), backward(dy, x, **options))):
        assert_same_bits(got, expected)


def test_a_cnn_step_is_the_same_with_and_without_the_c_kernels():
    """A convolution-pooling network's loss and gradients, eager and compiled, either way: eager and
    compiled give the same bits; C and numpy differ only in how the convolution's products sum (per
    group of images in C, over the whole batch in numpy)."""
    rng = np.random.default_rng(7)
    x = genesis.tensor(rng.standard_normal((4, 3, 12, 12)).astype(np.float32))

    def grads():
        genesis.manual_seed(0)
        conv = genesis.nn.Conv2d(3, 4, 3, padding=1)
        out = {}

        def step(x):
            loss = F.max_pool2d(F.relu(conv(x)), 2, ceil_mode=True).square().mean()
            loss.backward()
            return loss

        for name, fn in (("eager", step), ("compiled", genesis.compile(step))):
            conv.zero_grad()
            out[name] = (fn(x).detach().numpy(), conv.weight.grad.numpy().copy())
        return out

    with_c = grads()
    windows.C_KERNELS.enabled = movement.C_KERNELS.enabled = False
    try:
        with_numpy = grads()
    finally:
        windows.C_KERNELS.enabled = movement.C_KERNELS.enabled = True
    for got, expected in zip(with_c["eager"], with_c["compiled"]):
        np.testing.assert_array_equal(got, expected)
    for name in with_c:
        for got, expected in zip(with_c[name], with_numpy[name]):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, index_shape, dim", [((6, 40), (6, 25), 1), ((5, 7, 4), (5, 9, 4), 1), ((8, 3), (4, 3), 0)]
)
def test_gathers_gradient_is_scatter_add_into_zeros(shape, index_shape, dim, dtype):
    """gather_backward fills one buffer with zeros and adds into it: scatter_add(zeros, ...)'s bits."""
    rng = np.random.default_rng(8)
    index = rng.integers(0, shape[dim], index_shape)
    g = rng.standard_normal(index_shape).astype(dtype)
    expected = OPS["scatter_add"].kernel(np.zeros(shape, dtype), index, g, dim=dim)
    for kernels_on in (True, False):
        movement.C_KERNELS.enabled = kernels_on
        try:
            got = OPS["gather_backward"].kernel(g, index, dim=dim, size=shape)
        finally:
            movement.C_KERNELS.enabled = True
        assert_same_bits(got, expected)


def test_gathers_gradient_differentiates_again_like_pytorchs():
    rng = np.random.default_rng(9)
    x, w, v = rng.standard_normal((4, 6)), rng.standard_normal((4, 3)), rng.standard_normal((4, 6))
    index = rng.integers(0, 6, (4, 3))
    results = []
    for lib, grad in ((genesis, genesis.autograd.grad), (torch, torch.autograd.grad)):
        tx, tw = lib.tensor(x, requires_grad=True), lib.tensor(w, requires_grad=True)
        (gx,) = grad((tx.gather(1, lib.tensor(index)) * tw).sum(), (tx,), create_graph=True)
        (gw,) = grad((gx * lib.tensor(v)).sum(), (tw,))
        results.append((gx.detach().numpy(), gw.numpy()))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
