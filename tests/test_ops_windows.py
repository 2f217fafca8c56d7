"""The sliding-window ops (ops/windows.py) under convolution and pooling: against PyTorch, against
numerical gradients, and compiled against eager.

test_nn_functional.py checks conv2d, max_pool2d and avg_pool2d values and gradients against
PyTorch; here: max-pooling's positions (`return_indices`) with ties, NaNs, padding, dilation and
ceil_mode, integer and low-precision inputs, im2col and col2im as each other's adjoint, and a
convolution-pooling network compiled against eager.
"""

import numpy as np
import pytest
import torch
from optest import check_numerical_grad, check_torch

import genesis
import genesis.nn.functional as F
from genesis.errors import ShapeError
from genesis.functional.windows import im2col
from genesis.ops import OPS

POOLS = [  # (the input's width, max_pool2d's options)
    (8, dict(kernel_size=2)),
    (8, dict(kernel_size=3, stride=1, padding=1)),
    (8, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), ceil_mode=True)),
    (8, dict(kernel_size=2, stride=2, dilation=2)),
    (8, dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2), ceil_mode=True)),
    # 3 wide: a window's next row is nearer in the plane than its last column
    (3, dict(kernel_size=(2, 3), stride=1, padding=(0, 1), dilation=(1, 2))),
]


def lib_of(t):
    return torch.nn.functional if isinstance(t, torch.Tensor) else F


@pytest.mark.parametrize("width, options", POOLS, ids=range(len(POOLS)))
def test_max_pool2d_positions_and_gradients_are_pytorchs(width, options):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, width))
    x[0, 0, :4, :3] = 1.5  # ties: the first maximum in window order wins
    x[1, 2, 2, 2] = x[1, 2, 5, 1] = np.nan  # a NaN wins over numbers, the last one over the first
    values, positions = F.max_pool2d(genesis.tensor(x), **options, return_indices=True)
    expected_values, expected_positions = torch.nn.functional.max_pool2d(
        torch.from_numpy(x), **options, return_indices=True
    )
    np.testing.assert_array_equal(positions.numpy(), expected_positions.numpy())
    np.testing.assert_array_equal(values.numpy(), expected_values.numpy())
    finite = np.nan_to_num(x, nan=0.0)
    check_torch(lambda t: lib_of(t).max_pool2d(t, **options), [finite], dtype=genesis.float64)
    check_torch(lambda t: lib_of(t).max_pool2d(t[0], **options), [finite], dtype=genesis.float32)  # (C, H, W)


def test_max_pool2d_differentiates_twice_as_pytorch():
    """The gradient is linear in the output's gradient: its own vjp reads that at the maxima."""
    rng = np.random.default_rng(3)
    x, dy, w = (rng.standard_normal(shape) for shape in ((2, 3, 7, 6), (2, 3, 4, 3), (2, 3, 7, 6)))
    got = []
    for lib, make in ((torch, torch.from_numpy), (genesis, genesis.tensor)):
        xs, dys = make(x).requires_grad_(), make(dy).requires_grad_()
        y = lib_of(xs).max_pool2d(xs, 3, stride=2, padding=1)
        (dx,) = (torch.autograd.grad if lib is torch else genesis.autograd.grad)(y, xs, dys, create_graph=True)
        (dx * make(w)).sum().backward()
        got.append((dx.detach().numpy(), dys.grad.numpy()))
    for ours, theirs in zip(got[1], got[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["int64", "int32", "float16", "bfloat16"])
def test_max_pool2d_keeps_integer_and_low_precision_values_as_they_are(dtype):
    rng = np.random.default_rng(1)
    values = rng.integers(-50, 50, (2, 2, 7, 6))
    x = genesis.tensor(values).to(getattr(genesis, dtype))
    expected, expected_positions = torch.nn.functional.max_pool2d(
        torch.from_numpy(values).to(getattr(torch, dtype)), 3, stride=2, padding=1, return_indices=True
    )
    got, positions = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    assert got.dtype is x.dtype
    np.testing.assert_array_equal(got.to(genesis.float64).numpy(), expected.double().numpy())
    np.testing.assert_array_equal(positions.numpy(), expected_positions.numpy())


@pytest.mark.parametrize("batch_inside", [False, True])
def test_im2col_and_col2im_are_each_others_adjoint(batch_inside):
    rng = np.random.default_rng(2)
    x = genesis.tensor(rng.standard_normal((2, 3, 7, 9)))
    columns = im2col(x, (3, 2), (2, 1), (1, 2), batch_inside=batch_inside)
    assert tuple(columns.shape) == ((3, 6, 2, 3, 7) if batch_inside else (2, 3, 6, 3, 7))
    windows = torch.nn.functional.unfold(torch.from_numpy(x.numpy()), (3, 2), dilation=(1, 2), stride=(2, 1))
    windows = windows.reshape(2, 3, 6, 3, 7).numpy()
    np.testing.assert_array_equal(columns.numpy(), windows.transpose(1, 2, 0, 3, 4) if batch_inside else windows)
    y = genesis.tensor(rng.standard_normal(tuple(columns.shape)))
    attrs = dict(size=(7, 9), kernel=(3, 2), stride=(2, 1), dilation=(1, 2), batch_inside=batch_inside)
    back = OPS["col2im"](y, **attrs)
    # <im2col(x), y> == <x, col2im(y)>: col2im is im2col's transpose
    np.testing.assert_allclose((columns * y).sum().item(), (x * back).sum().item(), rtol=1e-12)
    check_numerical_grad(lambda t: im2col(t, (3, 2), (2, 1), (1, 2), batch_inside=batch_inside), [x.numpy()])
    check_numerical_grad(lambda t: OPS["col2im"](t, **attrs), [y.numpy()])


def test_convolution_second_derivatives_are_pytorchs():
    # the input gradient of a convolution goes through col2im; differentiating it again, through im2col
    rng = np.random.default_rng(3)
    x, w, seed = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((1, 2, 5, 5))
    results = []
    for lib, tensor in ((genesis, genesis.tensor), (torch, torch.tensor)):
        xt, wt = tensor(x, requires_grad=True), tensor(w, requires_grad=True)
        y = lib.nn.functional.conv2d(xt, wt, stride=2, padding=1)
        (g,) = lib.autograd.grad((y * y).sum(), [xt], create_graph=True)
        (g * tensor(seed)).sum().backward()
        results.append([xt.grad.detach().numpy(), wt.grad.detach().numpy()])
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_window_shape_errors_name_the_shapes():
    with pytest.raises(ShapeError, match=r"4-D \(N, C, H, W\).*\[3, 4\]"):
        im2col(genesis.zeros(3, 4), (2, 2))
    with pytest.raises(ShapeError, match="does not fit"):
        im2col(genesis.zeros(1, 1, 2, 2), (3, 3))


def assert_a_compiled_step_equals_eager(make_model, loss_of, backend):
    """One backward step of a fresh model (the same seed each time), compiled and eagerly: the
    losses and every parameter's gradient agree."""
    x = genesis.tensor(np.random.default_rng(4).standard_normal((4, 3, 12, 12)).astype(np.float32))
    results = []
    for compiled in (False, True):
        genesis.manual_seed(0)
        model = make_model()

        def step():
            model.zero_grad()
            loss = loss_of(model(x), x)
            loss.backward()
            return loss

        run = genesis.compile(step, backend=backend) if compiled else step
        loss = run()
        results.append([loss.item()] + [p.grad.numpy() for p in model.parameters()])
    for got, expected in zip(results[1], results[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_a_convolution_and_pooling_network_compiles_to_eager_values(backend):
    def make_model():
        return genesis.nn.Sequential(
            genesis.nn.Conv2d(3, 4, 3, padding=1),
            genesis.nn.ReLU(),
            genesis.nn.MaxPool2d(3, stride=2, padding=1),
            genesis.nn.Conv2d(4, 4, 3, stride=2, dilation=2, padding=2),
            genesis.nn.AvgPool2d(2, ceil_mode=True),
        )

    assert_a_compiled_step_equals_eager(make_model, lambda y, x: y.square().mean(), backend)


UNFOLDS = [
    dict(kernel_size=2),
    dict(kernel_size=(3, 2), dilation=(1, 2), padding=1, stride=(2, 1)),
]


@pytest.mark.parametrize("options", UNFOLDS, ids=range(len(UNFOLDS)))
def test_unfold_and_fold_are_pytorchs(options):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 6))
    check_torch(lambda t: lib_of(t).unfold(t, **options), [x], dtype=genesis.float64)
    check_torch(lambda t: lib_of(t).unfold(t[0], **options), [x], dtype=genesis.float32)  # (C, H, W)
    columns = torch.nn.functional.unfold(torch.from_numpy(x), **options).numpy()
    check_torch(lambda t: lib_of(t).fold(t, (7, 6), **options), [columns], dtype=genesis.float64)
    check_torch(lambda t: lib_of(t).fold(t[0], (7, 6), **options), [columns], dtype=genesis.float32)
    module = genesis.nn.Fold((7, 6), **options)
    np.testing.assert_array_equal(
        module(genesis.nn.Unfold(**options)(genesis.tensor(x))).numpy(),
        torch.nn.Fold((7, 6), **options)(torch.nn.Unfold(**options)(torch.from_numpy(x))).numpy(),
    )


def test_fold_names_columns_that_do_not_fit():
    with pytest.raises(ShapeError, match=r"fold: input of shape \[2, 10, 30\]"):
        F.fold(genesis.zeros(2, 10, 30), (7, 6), 2)


@pytest.mark.parametrize(
    "options",
    [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), dict(kernel_size=2, dilation=3)],
    ids=range(3),
)
def test_one_dimensional_poolings_are_pytorchs(options):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 11))
    values, positions = F.max_pool1d(genesis.tensor(x), **options, return_indices=True)
    expected, expected_positions = torch.nn.functional.max_pool1d(torch.from_numpy(x), **options, return_indices=True)
    np.testing.assert_array_equal(positions.numpy(), expected_positions.numpy())
    np.testing.assert_array_equal(values.numpy(), expected.numpy())
    check_torch(lambda t: lib_of(t).max_pool1d(t, **options), [x], dtype=genesis.float64)
    check_torch(lambda t: lib_of(t).max_pool1d(t[0], **options), [x], dtype=genesis.float32)  # (C, L)
    if "dilation" not in options:
        check_torch(lambda t: lib_of(t).avg_pool1d(t, **options), [x], dtype=genesis.float64)
        layers = (genesis.nn.AvgPool1d(**options), torch.nn.AvgPool1d(**options))
        np.testing.assert_allclose(
            layers[0](genesis.tensor(x)).numpy(), layers[1](torch.from_numpy(x)).numpy(), rtol=1e-12
        )
    layers = (genesis.nn.MaxPool1d(**options), torch.nn.MaxPool1d(**options))
    np.testing.assert_array_equal(layers[0](genesis.tensor(x)).numpy(), layers[1](torch.from_numpy(x)).numpy())


TRANSPOSED = [  # (weight's second dim, groups, options)
    (4, 1, dict()),
    (4, 1, dict(stride=2, padding=1, output_padding=1)),
    (2, 3, dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
    (4, 1, dict(stride=1, dilation=2, output_padding=1)),  # output padding below the dilation
]


@pytest.mark.parametrize("group_out, groups, options", TRANSPOSED, ids=range(len(TRANSPOSED)))
@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=lambda d: d.name)
def test_conv_transpose2d_is_pytorchs(group_out, groups, options, dtype):
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((2, 6, 5, 4)), rng.standard_normal((6, group_out, 3, 2))
    b = rng.standard_normal(group_out * groups)
    check_torch(lambda x, w, b: lib_of(x).conv_transpose2d(x, w, b, groups=groups, **options), [x, w, b], dtype=dtype)
    check_torch(lambda x, w: lib_of(x).conv_transpose2d(x[0], w, groups=groups, **options), [x, w], dtype=dtype)


def test_conv_transpose1d_and_the_layers_are_pytorchs():
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((2, 4, 9)), rng.standard_normal((4, 3, 3)), rng.standard_normal(3)
    options = dict(stride=2, padding=1, output_padding=1, dilation=1)
    check_torch(lambda x, w, b: lib_of(x).conv_transpose1d(x, w, b, **options), [x, w, b], dtype=genesis.float64)
    for layer_name, shape in (("ConvTranspose1d", (2, 4, 9)), ("ConvTranspose2d", (2, 4, 6, 5))):
        genesis.manual_seed(0)
        layer = getattr(genesis.nn, layer_name)(4, 6, 3, stride=2, padding=1, groups=2).double()
        reference = getattr(torch.nn, layer_name)(4, 6, 3, stride=2, padding=1, groups=2).double()
        assert tuple(layer.weight.shape) == tuple(reference.weight.shape)
        reference.load_state_dict(
            {k: torch.from_numpy(v.detach().numpy()).double() for k, v in layer.state_dict().items()}
        )
        inputs = rng.standard_normal(shape)
        wanted = tuple(2 * n for n in shape[2:])  # one more than the smallest output: output_padding 1
        got = layer(genesis.tensor(inputs, dtype=genesis.float64), output_size=wanted)
        expected = reference(torch.from_numpy(inputs), output_size=wanted)
        assert tuple(got.shape) == tuple(expected.shape)
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
        with pytest.raises(ValueError, match="valid sizes range"):
            layer(genesis.tensor(inputs, dtype=genesis.float64), output_size=tuple(4 * n for n in shape[2:]))


def test_conv_transpose_errors_name_the_problem():
    with pytest.raises(ShapeError, match=r"expects an input with 6 channels"):
        F.conv_transpose2d(genesis.zeros(1, 4, 5, 5), genesis.zeros(6, 2, 3, 3))
    with pytest.raises(ValueError, match="output padding must be smaller"):
        F.conv_transpose2d(genesis.zeros(1, 6, 5, 5), genesis.zeros(6, 2, 3, 3), stride=2, output_padding=2)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_an_encoder_decoder_with_transposed_convolutions_compiles_to_eager_values(backend):
    def make_model():
        return genesis.nn.Sequential(
            genesis.nn.Conv2d(3, 8, 3, stride=2, padding=1),
            genesis.nn.ReLU(),
            genesis.nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1),
        )

    assert_a_compiled_step_equals_eager(make_model, lambda y, x: (y - x).square().mean(), backend)


@pytest.mark.parametrize(
    "channels, groups, options",
    [
        (16, 1, dict(padding=1)),  # 144 rows of columns: one product over the batch
        (32, 2, dict(stride=2, dilation=(1, 2), padding=(1, 2))),  # 144 per group
        (3, 1, dict(padding=1)),  # 27 rows: one product per image
    ],
)
def test_conv2d_either_columns_layout_is_pytorchs(channels, groups, options):
    from genesis.nn.functional.conv import BATCH_INSIDE_FROM

    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, channels, 9, 8))
    w = rng.standard_normal((8, channels // groups, 3, 3)) * 0.1
    assert ((channels // groups) * 9 >= BATCH_INSIDE_FROM) == (channels > 3)
    check_torch(lambda a, b: lib_of(a).conv2d(a, b, groups=groups, **options), [x, w], dtype=genesis.float64)
