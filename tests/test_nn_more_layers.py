"""Layers a CNN port meets beyond convolution and pooling: instance and 3-d batch norm, channel
dropout, pixel shuffle. Against PyTorch: values, gradients, running statistics, module defaults."""

import numpy as np
import pytest
import torch
from optest import check_torch

import genesis
import genesis.nn.functional as F
from genesis.errors import ShapeError


def lib_of(t):
    return torch.nn.functional if isinstance(t, torch.Tensor) else F


@pytest.mark.parametrize("factor, shape", [(2, (2, 8, 3, 5)), (3, (9, 2, 4)), (2, (2, 3, 4, 4, 2))])
def test_pixel_shuffle_and_unshuffle_are_pytorchs(factor, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    check_torch(lambda t: lib_of(t).pixel_shuffle(t, factor), [x], dtype=genesis.float64)
    shuffled = torch.nn.functional.pixel_shuffle(torch.from_numpy(x), factor).numpy()
    check_torch(lambda t: lib_of(t).pixel_unshuffle(t, factor), [shuffled], dtype=genesis.float64)
    layer = genesis.nn.PixelUnshuffle(factor)(genesis.nn.PixelShuffle(factor)(genesis.tensor(x)))
    np.testing.assert_array_equal(layer.numpy(), x)
    with pytest.raises(ShapeError, match="pixel_shuffle"):
        F.pixel_shuffle(genesis.zeros(2, 5, 3, 3), 2)


@pytest.mark.parametrize(
    "name, shape", [("dropout1d", (4, 6, 5)), ("dropout2d", (4, 6, 3, 5)), ("dropout3d", (6, 2, 3, 5))]
)
def test_channel_dropout_zeroes_whole_channels_and_scales_the_rest(name, shape):
    genesis.manual_seed(0)
    x = genesis.ones(*shape)
    out = getattr(F, name)(x, p=0.5).numpy()
    batched = len(shape) == {"dropout1d": 3, "dropout2d": 4, "dropout3d": 5}[name]
    channels = out.reshape(shape[0] * shape[1] if batched else shape[0], -1)  # one row per channel
    assert set(np.unique(channels)) <= {0.0, 2.0}
    assert all(len(set(row)) == 1 for row in channels)  # a channel is kept or dropped whole
    assert 0 < (channels[:, 0] == 0).sum() < len(channels)
    np.testing.assert_array_equal(getattr(F, name)(x, p=0.5, training=False).numpy(), x.numpy())
    layer = getattr(genesis.nn, name.replace("dropout", "Dropout"))(0.5)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    with pytest.raises(ShapeError, match=name):
        getattr(F, name)(genesis.ones(*([2] * (len(shape) + 2))))


def test_channel_dropout_gradients_follow_the_mask():
    genesis.manual_seed(1)
    x = genesis.tensor(np.random.default_rng(1).standard_normal((3, 4, 5)), requires_grad=True)
    out = F.dropout2d(x, p=0.3)
    out.sum().backward()
    np.testing.assert_allclose(
        x.grad.numpy(), out.detach().numpy() / np.where(x.detach().numpy() == 0, 1, x.detach().numpy())
    )


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    "options", [dict(), dict(affine=True, track_running_stats=True, momentum=0.2)], ids=["plain", "stats"]
)
def test_instance_norm_layers_are_pytorchs(dims, options):
    rng = np.random.default_rng(2)
    shape = (3, 4) + (5, 3, 2)[:dims]
    name = f"InstanceNorm{dims}d"
    genesis.manual_seed(0)
    layer, reference = getattr(genesis.nn, name)(4, **options), getattr(torch.nn, name)(4, **options)
    if options:
        with torch.no_grad():
            reference.weight.copy_(torch.from_numpy(rng.standard_normal(4)))
            reference.bias.copy_(torch.from_numpy(rng.standard_normal(4)))
        layer.load_state_dict({k: genesis.tensor(v.numpy()) for k, v in reference.state_dict().items()})
    for step in range(2):
        x = rng.standard_normal(shape).astype(np.float32) * 3 + 1
        got, expected = layer(genesis.tensor(x)), reference(torch.from_numpy(x))
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-5, atol=1e-5)
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(layer.state_dict()[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    layer.eval(), reference.eval()
    x = rng.standard_normal(shape[1:]).astype(np.float32)  # unbatched
    np.testing.assert_allclose(
        layer(genesis.tensor(x)).detach().numpy(), reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5
    )


def test_instance_norm_gradients_are_pytorchs():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal(3), rng.standard_normal(3)
    check_torch(
        lambda x, w, b: lib_of(x).instance_norm(x, weight=w, bias=b, eps=1e-3), [x, w, b], dtype=genesis.float64
    )


def test_batch_norm_3d_is_pytorchs():
    rng = np.random.default_rng(4)
    layer, reference = genesis.nn.BatchNorm3d(3), torch.nn.BatchNorm3d(3)
    x = rng.standard_normal((2, 3, 4, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(
        layer(genesis.tensor(x)).detach().numpy(), reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(layer.running_var.numpy(), reference.running_var.numpy(), rtol=1e-5)
    with pytest.raises(ShapeError, match="expected 5D input"):
        layer(genesis.zeros(2, 3, 4))


INTERPOLATIONS = [
    ((2, 3, 5, 4), dict(scale_factor=2, mode="nearest")),
    ((2, 3, 5, 4), dict(size=(7, 3), mode="nearest")),
    ((2, 3, 5, 4), dict(size=(7, 9), mode="nearest-exact")),
    ((2, 3, 6), dict(scale_factor=1.5, mode="nearest")),
    ((2, 3, 5, 4), dict(scale_factor=2, mode="bilinear")),
    ((2, 3, 5, 4), dict(size=(7, 3), mode="bilinear", align_corners=True)),
    ((2, 3, 5, 4), dict(scale_factor=1.7, mode="bilinear")),
    ((2, 3, 5, 4), dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True)),
    ((2, 3, 6), dict(scale_factor=2.5, mode="linear")),
    ((2, 3, 4, 3, 5), dict(size=(5, 6, 2), mode="trilinear")),
    ((2, 3, 4, 3, 5), dict(scale_factor=(2, 1, 0.5), mode="nearest")),
]


@pytest.mark.parametrize("shape, options", INTERPOLATIONS, ids=range(len(INTERPOLATIONS)))
def test_interpolate_is_pytorchs(shape, options):
    x = np.random.default_rng(5).standard_normal(shape)
    check_torch(lambda t: lib_of(t).interpolate(t, **options), [x], dtype=genesis.float64)
    check_torch(lambda t: lib_of(t).interpolate(t, **options), [x], dtype=genesis.float32)


def test_upsampling_layers_are_pytorchs():
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 5)).astype(np.float32)
    for name, options in (
        ("Upsample", dict(scale_factor=2, mode="bilinear")),
        ("UpsamplingNearest2d", dict(size=(6, 7))),
        ("UpsamplingBilinear2d", dict(scale_factor=3)),
    ):
        got = getattr(genesis.nn, name)(**options)(genesis.tensor(x)).numpy()
        np.testing.assert_allclose(
            got, getattr(torch.nn, name)(**options)(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6
        )


def test_interpolate_errors_name_the_problem():
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(genesis.zeros(1, 1, 4, 4))
    with pytest.raises(ShapeError, match="'bilinear' expects a 4-D input"):
        F.interpolate(genesis.zeros(1, 1, 4), scale_factor=2, mode="bilinear")
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.interpolate(genesis.zeros(1, 1, 4, 4), scale_factor=2, mode="bicubic")


@pytest.mark.parametrize("output_size", [(3, 2), (7, 5), 1, (2, 5), 4])
def test_adaptive_max_pool2d_values_positions_and_gradients_are_pytorchs(output_size):
    x = np.random.default_rng(7).standard_normal((2, 3, 7, 5))
    values, positions = F.adaptive_max_pool2d(genesis.tensor(x), output_size, return_indices=True)
    expected, expected_positions = torch.nn.functional.adaptive_max_pool2d(
        torch.from_numpy(x), output_size, return_indices=True
    )
    np.testing.assert_array_equal(positions.numpy(), expected_positions.numpy())
    np.testing.assert_array_equal(values.numpy(), expected.numpy())
    check_torch(lambda t: lib_of(t).adaptive_max_pool2d(t, output_size), [x], dtype=genesis.float64)
    check_torch(lambda t: lib_of(t).adaptive_max_pool2d(t[0], output_size), [x], dtype=genesis.float32)


def test_one_dimensional_adaptive_poolings_and_their_layers_are_pytorchs():
    x = np.random.default_rng(8).standard_normal((2, 3, 11))
    check_torch(lambda t: lib_of(t).adaptive_avg_pool1d(t, 4), [x], dtype=genesis.float64)
    check_torch(lambda t: lib_of(t).adaptive_max_pool1d(t, 4), [x], dtype=genesis.float64)
    for name in ("AdaptiveAvgPool1d", "AdaptiveMaxPool1d"):
        np.testing.assert_allclose(
            getattr(genesis.nn, name)(3)(genesis.tensor(x)).numpy(),
            getattr(torch.nn, name)(3)(torch.from_numpy(x)).numpy(),
            rtol=1e-12,
        )
    values, positions = genesis.nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(genesis.tensor(x[None]))
    expected, expected_positions = torch.nn.AdaptiveMaxPool2d((2, 3), return_indices=True)(torch.from_numpy(x[None]))
    np.testing.assert_array_equal(positions.numpy(), expected_positions.numpy())


ACTIVATIONS = [
    ("selu", dict()),
    ("celu", dict(alpha=0.7)),
    ("softsign", dict()),
    ("tanhshrink", dict()),
    ("threshold", dict(threshold=0.5, value=-2.0)),
    ("hardsigmoid", dict()),
    ("hardswish", dict()),
]
# the kinks themselves (PyTorch's gradient there is a convention), and values around them
POINTS = np.array([-20, -4, -3, -2.5, -1, -0.0, 0.0, 0.5, 0.7, 2.9, 3, 3.5, 20])


@pytest.mark.parametrize("name, options", ACTIVATIONS, ids=[n for n, _ in ACTIVATIONS])
@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64], ids=lambda d: d.name)
def test_more_activations_are_pytorchs(name, options, dtype):
    x = np.concatenate([POINTS, np.random.default_rng(9).standard_normal(20) * 4])
    # PyTorch's float64 backward of celu and hardsigmoid uses float32 coefficients (1/6 as
    # 0.16666667163): genesis's exact float64 gradients sit 1e-7 away
    loose = dtype is genesis.float64 and name in ("celu", "hardsigmoid")
    tolerance = dict(grad_rtol=3e-7, grad_atol=1e-9) if loose else {}
    check_torch(lambda t: getattr(lib_of(t), name)(t, **options), [x], dtype=dtype, **tolerance)
    layer_name = {"selu": "SELU", "celu": "CELU", "hardsigmoid": "Hardsigmoid", "hardswish": "Hardswish"}.get(
        name, name.capitalize()
    )
    layer_args = (0.5, -2.0) if name == "threshold" else ()
    layer_options = {k: v for k, v in options.items() if name != "threshold"}
    got = getattr(genesis.nn, layer_name)(*layer_args, **layer_options)(genesis.tensor(x)).numpy()
    expected = getattr(torch.nn, layer_name)(*layer_args, **layer_options)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_prelu_is_pytorchs_with_one_slope_or_one_per_channel():
    rng = np.random.default_rng(10)
    x = np.concatenate([rng.standard_normal((2, 3, 4)), np.zeros((2, 3, 1))], axis=-1)
    for slopes in (np.array([0.25]), np.array([0.1, -0.3, 0.5])):
        check_torch(lambda t, w: lib_of(t).prelu(t, w), [x, slopes], dtype=genesis.float64)
    layer, reference = genesis.nn.PReLU(3, init=0.1), torch.nn.PReLU(3, init=0.1)
    assert list(layer.state_dict()) == list(reference.state_dict())
    np.testing.assert_allclose(
        layer(genesis.tensor(x.astype(np.float32))).detach().numpy(),
        reference(torch.from_numpy(x.astype(np.float32))).detach().numpy(),
        rtol=1e-6,
    )
    with pytest.raises(ShapeError, match="prelu: a weight of 3 values"):
        F.prelu(genesis.zeros(2, 4, 5), genesis.zeros(3))


PADS = [
    ("reflect", (1, 2, 2, 1)),
    ("replicate", (3, 1, 0, 2)),
    ("circular", (1, 2, 2, 3)),
    ("constant", (1, 1, 2, 0)),
    ("reflect", (2, 3)),
    ("replicate", (1, 2, 0, 1, 2, 0)),
]


@pytest.mark.parametrize("mode, widths", PADS, ids=[f"{m}-{len(w) // 2}" for m, w in PADS])
def test_padding_modes_are_pytorchs(mode, widths):
    x = np.random.default_rng(11).standard_normal((2, 3, 5, 4))
    if len(widths) == 6:
        x = x[:, :, :, None, :].repeat(3, axis=3)  # (N, C, D, H, W)
    if len(widths) == 2:
        x = x[0]  # PyTorch pads the last dim of 2-D or 3-D inputs only
    check_torch(lambda t: lib_of(t).pad(t, widths, mode=mode), [x], dtype=genesis.float64)


def test_padding_layers_are_pytorchs():
    x = np.random.default_rng(12).standard_normal((2, 3, 5, 4)).astype(np.float32)
    layers = [
        ("ZeroPad2d", (2,)),
        ("ConstantPad2d", ((1, 2, 0, 1), 3.5)),
        ("ReflectionPad2d", (2,)),
        ("ReplicationPad2d", ((1, 0, 2, 3),)),
        ("CircularPad2d", (1,)),
        ("ConstantPad1d", (2, -1.0)),
        ("ReflectionPad1d", ((1, 3),)),
    ]
    for name, args in layers:
        inputs = x[0] if name.endswith("1d") else x  # PyTorch pads one dim of 2-D or 3-D inputs
        got = getattr(genesis.nn, name)(*args)(genesis.tensor(inputs)).numpy()
        np.testing.assert_array_equal(
            got, getattr(torch.nn, name)(*args)(torch.from_numpy(inputs)).numpy(), err_msg=name
        )


def test_padding_errors_name_the_problem():
    with pytest.raises(ValueError, match="reflect padding of \\(4, 0\\) needs at most 3 along dim 3"):
        F.pad(genesis.zeros(1, 1, 5, 4), (4, 0), mode="reflect")
    with pytest.raises(ValueError, match="doesn't take in value"):
        F.pad(genesis.zeros(1, 1, 5, 4), (1, 1), mode="replicate", value=2.0)
    with pytest.raises(NotImplementedError, match="mode 'wrap'"):
        F.pad(genesis.zeros(1, 1, 5, 4), (1, 1), mode="wrap")


def test_distances_are_pytorchs():
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 3))
    b[0, 0] = 0.0  # a zero vector: the norms' clamping decides
    check_torch(lambda x, y: lib_of(x).cosine_similarity(x, y, dim=1), [a, b], dtype=genesis.float64)
    for p in (2.0, 1.0, 3.0, float("inf")):
        check_torch(lambda x, y: lib_of(x).pairwise_distance(x, y, p=p), [a, b], dtype=genesis.float64)
    got = genesis.nn.PairwiseDistance(keepdim=True)(genesis.tensor(a), genesis.tensor(b)).numpy()
    np.testing.assert_allclose(
        got, torch.nn.PairwiseDistance(keepdim=True)(torch.from_numpy(a), torch.from_numpy(b)).numpy(), rtol=1e-12
    )
    got = genesis.nn.CosineSimilarity(dim=-1)(genesis.tensor(a), genesis.tensor(b)).numpy()
    np.testing.assert_allclose(
        got, torch.nn.CosineSimilarity(dim=-1)(torch.from_numpy(a), torch.from_numpy(b)).numpy(), rtol=1e-12
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_margin_and_likelihood_losses_are_pytorchs(reduction):
    rng = np.random.default_rng(14)
    x1, x2, x3 = (rng.standard_normal((6, 4)) for _ in range(3))
    signs = np.where(rng.standard_normal((6, 4)) > 0, 1.0, -1.0)
    counts = rng.poisson(2.0, (6, 4)).astype(np.float64)
    var = np.abs(x2) + 1e-7
    var[0, 0] = 1e-9  # below eps: clamped
    f64 = dict(dtype=genesis.float64)
    r = dict(reduction=reduction)
    # (the loss, its inputs, the positions of the targets, which take no gradient)
    cases = [
        (lambda a, b, t: lib_of(a).margin_ranking_loss(a, b, t, margin=0.3, **r), [x1, x2, signs], (2,)),
        (lambda a, t: lib_of(a).hinge_embedding_loss(a, t, margin=0.5, **r), [x1, signs], (1,)),
        (lambda a, t: lib_of(a).soft_margin_loss(a, t, **r), [x1, signs], (1,)),
        (lambda a, b, t: lib_of(a).cosine_embedding_loss(a, b, t, margin=0.1, **r), [x1, x2, signs[:, 0]], (2,)),
        (lambda a, b, c: lib_of(a).triplet_margin_loss(a, b, c, **r), [x1, x2, x3], ()),
        (lambda a, b, c: lib_of(a).triplet_margin_loss(a, b, c, p=1.0, swap=True, margin=2.0, **r), [x1, x2, x3], ()),
        (lambda a, t: lib_of(a).poisson_nll_loss(a, t, **r), [x1, counts], (1,)),
        (
            lambda a, t: lib_of(a).poisson_nll_loss(a, t, log_input=False, full=True, **r),
            [np.abs(x1) + 0.1, counts],
            (1,),
        ),
        (lambda a, t, v: lib_of(a).gaussian_nll_loss(a, t, v, full=True, **r), [x1, x3, var], ()),
        (lambda a, t, v: lib_of(a).gaussian_nll_loss(a, t, v, **r), [x1, x3, var[:, 0]], ()),
    ]
    for loss, inputs, targets in cases:
        check_torch(loss, inputs, int_inputs=targets, **f64)


def test_the_loss_layers_are_pytorchs():
    rng = np.random.default_rng(15)
    x1, x2, x3 = (rng.standard_normal((5, 3)) for _ in range(3))
    signs = np.where(rng.standard_normal(5) > 0, 1.0, -1.0)
    cases = [
        ("MarginRankingLoss", dict(margin=0.2), (x1[:, 0], x2[:, 0], signs)),
        ("HingeEmbeddingLoss", dict(margin=0.7), (x1, np.where(x2 > 0, 1.0, -1.0))),
        ("CosineEmbeddingLoss", dict(margin=0.1), (x1, x2, signs)),
        ("SoftMarginLoss", dict(), (x1, np.where(x2 > 0, 1.0, -1.0))),
        ("TripletMarginLoss", dict(margin=0.5, swap=True), (x1, x2, x3)),
        ("PoissonNLLLoss", dict(full=True), (x1, np.abs(x2) * 3)),
        ("GaussianNLLLoss", dict(full=True), (x1, x2, np.abs(x3) + 0.1)),
    ]
    for name, options, args in cases:
        got = getattr(genesis.nn, name)(**options)(*map(genesis.tensor, args)).numpy()
        expected = getattr(torch.nn, name)(**options)(*map(torch.from_numpy, args)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="var has negative"):
        F.gaussian_nll_loss(genesis.tensor(x1), genesis.tensor(x2), genesis.tensor(-np.abs(x3)))


def test_bilinear_channel_shuffle_and_local_response_norm_are_pytorchs():
    rng = np.random.default_rng(16)
    x1, x2, w, b = (
        rng.standard_normal((2, 3, 4)),
        rng.standard_normal((2, 3, 5)),
        rng.standard_normal((6, 4, 5)),
        rng.standard_normal(6),
    )
    check_torch(lambda a, c, w, b: lib_of(a).bilinear(a, c, w, b), [x1, x2, w, b], dtype=genesis.float64)
    genesis.manual_seed(0)
    layer = genesis.nn.Bilinear(4, 5, 6).double()
    reference = torch.nn.Bilinear(4, 5, 6).double()
    assert list(layer.state_dict()) == list(reference.state_dict())
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in layer.state_dict().items()})
    got = layer(genesis.tensor(x1), genesis.tensor(x2)).detach().numpy()
    np.testing.assert_allclose(got, reference(torch.from_numpy(x1), torch.from_numpy(x2)).detach().numpy(), rtol=1e-12)
    assert np.abs(layer.weight.detach().numpy()).max() <= 0.5  # U(-1/sqrt(4), 1/sqrt(4))
    x = rng.standard_normal((2, 6, 3, 2))
    check_torch(lambda t: lib_of(t).channel_shuffle(t, 3), [x], dtype=genesis.float64, grad=False)
    np.testing.assert_array_equal(
        genesis.nn.ChannelShuffle(2)(genesis.tensor(x)).numpy(), torch.nn.ChannelShuffle(2)(torch.from_numpy(x)).numpy()
    )
    for shape, size in (((2, 7, 5), 3), ((2, 6, 3, 4), 5), ((1, 4, 3, 2, 2), 2)):
        y = rng.standard_normal(shape)
        check_torch(
            lambda t: lib_of(t).local_response_norm(t, size, alpha=0.3, beta=0.6, k=1.5), [y], dtype=genesis.float64
        )
    np.testing.assert_allclose(
        genesis.nn.LocalResponseNorm(3)(genesis.tensor(x)).numpy(),
        torch.nn.LocalResponseNorm(3)(torch.from_numpy(x)).numpy(),
        rtol=1e-12,
    )


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize(
    "dims, options",
    [(2, dict(padding=1)), (2, dict(padding=(2, 1), stride=2)), (2, dict(padding="same", dilation=2)), (1, {})],
)
def test_convolution_padding_modes_are_pytorchs(mode, dims, options):
    torch.manual_seed(0)
    name = f"Conv{dims}d"
    options = {"padding": 2, **options} if dims == 1 else options
    reference = getattr(torch.nn, name)(3, 4, 3, padding_mode=mode, **options).double()
    layer = getattr(genesis.nn, name)(3, 4, 3, padding_mode=mode, **options).double()
    layer.load_state_dict({k: genesis.tensor(v.detach().numpy()) for k, v in reference.state_dict().items()})
    assert repr(layer) == repr(reference)
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 6)[: dims + 2])
    expected_input = torch.tensor(x, requires_grad=True)
    expected = reference(expected_input)
    expected.backward(torch.ones_like(expected))
    got_input = genesis.tensor(x, requires_grad=True)
    got = layer(got_input)
    got.backward(genesis.ones_like(got))
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_input.grad.numpy(), expected_input.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), reference.weight.grad.numpy(), rtol=1e-12, atol=1e-11)


def test_convolution_padding_mode_errors_are_pytorchs():
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        genesis.nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        genesis.nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
