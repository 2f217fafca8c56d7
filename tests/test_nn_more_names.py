"""nn names ported programs use: rrelu and gumbel_softmax by their statistics; the multi-class and
multi-label losses and embedding_bag against PyTorch (values and gradients); each traceable one compiled
against eager."""

import numpy as np
import pytest
import torch
from optest import check_compiled, check_torch

import genesis
import genesis.nn.functional as F
from genesis import nn
from genesis.errors import ShapeError


def lib_of(t):
    return torch.nn.functional if isinstance(t, torch.Tensor) else F


# rrelu and gumbel_softmax


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
def test_rrelu_in_eval_is_leaky_relu_with_the_mean_slope(dtype):
    x = np.random.default_rng(0).standard_normal((4, 7))
    x[0, :2] = 0.0  # the slope's side, for the gradient
    check_torch(lambda t: lib_of(t).rrelu(t, 0.1, 0.3), [x], dtype=dtype)
    check_torch(lambda t: lib_of(t).rrelu(t), [x], dtype=dtype)
    module = nn.RReLU(0.2, 0.4).eval()
    expected = torch.nn.RReLU(0.2, 0.4).eval()(torch.tensor(x)).numpy()
    np.testing.assert_allclose(module(genesis.tensor(x, dtype=dtype)).numpy(), expected, rtol=1e-6)


def test_rrelu_in_training_draws_slopes_in_range_and_differentiates_by_them():
    x = genesis.tensor(-np.abs(np.random.default_rng(1).standard_normal(20000)) - 0.1, requires_grad=True)
    genesis.manual_seed(5)
    out = F.rrelu(x, 0.1, 0.4, training=True)
    out.sum().backward()
    slopes = out.detach().numpy() / x.detach().numpy()
    assert slopes.min() >= 0.1 and slopes.max() <= 0.4
    assert abs(slopes.mean() - 0.25) < 0.005 and abs(slopes.var() - 0.3**2 / 12) < 0.001  # uniform's moments
    np.testing.assert_allclose(x.grad.numpy(), slopes, rtol=1e-12)
    genesis.manual_seed(5)
    np.testing.assert_array_equal(F.rrelu(x, 0.1, 0.4, training=True).detach().numpy(), out.detach().numpy())
    positive = genesis.tensor([0.5, 1.5, 3.0])
    np.testing.assert_array_equal(nn.RReLU()(positive).numpy(), positive.numpy())  # a module trains by default
    zero = genesis.tensor([0.0], requires_grad=True)
    F.rrelu(zero, 0.2, 0.2, training=True).sum().backward()
    np.testing.assert_allclose(zero.grad.numpy(), [0.2])
    with pytest.raises(ValueError, match="lower"):
        F.rrelu(x, 0.5, 0.1)


def test_rrelu_inplace_writes_into_its_input():
    x = genesis.tensor([-2.0, 1.0])
    assert F.rrelu(x, 0.25, 0.25, training=True, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), [-0.5, 1.0])


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_gumbel_softmax_samples_the_softmax_distribution(dim):
    """Each of 8000 rows (or columns, for dim 0) draws one class: its frequencies are the probabilities."""
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    along_rows = dim != 0
    samples = np.tile(logits, (8000, 1)) if along_rows else np.tile(logits[:, None], (1, 8000))
    x = genesis.tensor(samples)
    genesis.manual_seed(0)
    hard = F.gumbel_softmax(x, tau=0.5, hard=True, dim=dim).numpy()
    assert set(np.unique(hard)) == {0.0, 1.0} and np.all(hard.sum(axis=dim) == 1)
    frequencies = hard.mean(axis=0 if along_rows else 1)
    np.testing.assert_allclose(frequencies, [0.1, 0.2, 0.3, 0.4], atol=0.02)  # 4 sigma over 8000 draws
    soft = F.gumbel_softmax(x, tau=2.0, dim=dim).numpy()
    np.testing.assert_allclose(soft.sum(axis=dim), 1.0, rtol=1e-12)


def test_gumbel_softmax_hard_is_straight_through_and_reproducible():
    logits = genesis.tensor(np.random.default_rng(2).standard_normal((6, 5)), requires_grad=True)
    weights = genesis.tensor(np.random.default_rng(3).standard_normal((6, 5)))
    genesis.manual_seed(7)
    hard = F.gumbel_softmax(logits, tau=0.7, hard=True)
    (hard * weights).sum().backward()
    hard_grad = logits.grad.numpy().copy()
    logits.grad = None
    genesis.manual_seed(7)
    soft = F.gumbel_softmax(logits, tau=0.7)
    (soft * weights).sum().backward()
    np.testing.assert_allclose(hard_grad, logits.grad.numpy(), rtol=1e-12)  # the soft sample's gradient
    np.testing.assert_array_equal(hard.detach().numpy().argmax(1), soft.detach().numpy().argmax(1))
    genesis.manual_seed(8)
    assert not np.array_equal(F.gumbel_softmax(logits, tau=0.7).detach().numpy(), soft.detach().numpy())


def test_rrelu_and_gumbel_softmax_trace_and_draw_afresh_per_call():
    x = genesis.tensor(np.random.default_rng(4).standard_normal((3, 50)))
    for fn in (lambda t: F.rrelu(t, training=True), lambda t: F.gumbel_softmax(t)):
        compiled = genesis.compile(fn, fullgraph=True)
        genesis.manual_seed(3)
        first, second = compiled(x).numpy(), compiled(x).numpy()
        assert not np.array_equal(first, second)
        genesis.manual_seed(3)
        np.testing.assert_array_equal(compiled(x).numpy(), first)
    check_compiled(lambda t: F.rrelu(t, 0.1, 0.2), [np.random.default_rng(5).standard_normal((4, 6))])


# multi-class and multi-label losses


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("p, margin", [(1, 1.0), (2, 0.4)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multi_margin_loss_is_pytorchs(dtype, p, margin, weighted, reduction):
    rng = np.random.default_rng(6)
    x, target = rng.standard_normal((7, 5)), rng.integers(0, 5, 7)
    weight = rng.uniform(0.1, 2.0, 5)

    def fn(x, target, weight):  # torch's multi_margin_loss takes no gradient for its weight
        return lib_of(x).multi_margin_loss(
            x, target, p=p, margin=margin, weight=weight.detach() if weighted else None, reduction=reduction
        )

    check_torch(fn, [x, target, weight], dtype=dtype)
    check_torch(lambda x, t: lib_of(x).multi_margin_loss(x, t, p=p), [x[0], target[:1]], dtype=dtype)  # unbatched
    module = nn.MultiMarginLoss(p, margin, genesis.tensor(weight) if weighted else None, reduction=reduction)
    reference = torch.nn.MultiMarginLoss(p, margin, torch.tensor(weight) if weighted else None, reduction=reduction)
    np.testing.assert_allclose(
        module(genesis.tensor(x), genesis.tensor(target)).numpy(),
        reference(torch.tensor(x), torch.tensor(target)).numpy(),
        rtol=1e-12,
    )


MULTILABEL_TARGETS = np.array([[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [-1, 1, 2, 0, 0], [4, 4, -1, 0, 0], [2, -1, 3, 3, 3]])


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multilabel_margin_loss_is_pytorchs(dtype, reduction):
    """Targets end at the first -1; a repeated class counts twice, a class after the -1 not at all."""
    x = np.random.default_rng(7).standard_normal((5, 5))
    fn = lambda x, t: lib_of(x).multilabel_margin_loss(x, t, reduction=reduction)  # noqa: E731
    check_torch(fn, [x, MULTILABEL_TARGETS], dtype=dtype)
    check_torch(fn, [x[0], MULTILABEL_TARGETS[0]], dtype=dtype)
    np.testing.assert_allclose(
        nn.MultiLabelMarginLoss(reduction=reduction)(genesis.tensor(x), genesis.tensor(MULTILABEL_TARGETS)).numpy(),
        torch.nn.MultiLabelMarginLoss(reduction=reduction)(torch.tensor(x), torch.tensor(MULTILABEL_TARGETS)).numpy(),
        rtol=1e-12,
    )


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multilabel_soft_margin_loss_is_pytorchs(dtype, weighted, reduction):
    rng = np.random.default_rng(8)
    x, target, weight = rng.standard_normal((6, 4)) * 3, (rng.random((6, 4)) > 0.5) * 1.0, rng.random(4)

    def fn(x, target, weight):
        return lib_of(x).multilabel_soft_margin_loss(
            x, target, weight=weight if weighted else None, reduction=reduction
        )

    check_torch(fn, [x, target, weight], dtype=dtype)
    module = nn.MultiLabelSoftMarginLoss(genesis.tensor(weight) if weighted else None, reduction=reduction)
    reference = torch.nn.MultiLabelSoftMarginLoss(torch.tensor(weight) if weighted else None, reduction=reduction)
    np.testing.assert_allclose(
        module(genesis.tensor(x), genesis.tensor(target)).numpy(),
        reference(torch.tensor(x), torch.tensor(target)).numpy(),
        rtol=1e-12,
    )


def test_margin_losses_refuse_bad_targets_by_name():
    x = genesis.zeros(3, 4)
    with pytest.raises(IndexError, match="multi_margin_loss: target 4"):
        F.multi_margin_loss(x, genesis.tensor([0, 4, 1]))
    with pytest.raises(ShapeError, match="multi_margin_loss"):
        F.multi_margin_loss(x, genesis.tensor([0, 1]))
    with pytest.raises(ValueError, match="p == 1"):
        F.multi_margin_loss(x, genesis.tensor([0, 1, 2]), p=3)
    with pytest.raises(TypeError, match="integer"):
        F.multi_margin_loss(x, genesis.zeros(3))
    with pytest.raises(IndexError, match="multilabel_margin_loss: target -2"):
        F.multilabel_margin_loss(x, genesis.tensor([[0, -2, 1, 1]] * 3))
    with pytest.raises(ShapeError, match="multilabel_margin_loss"):
        F.multilabel_margin_loss(x, genesis.tensor([[0, 1]] * 3))
    with pytest.raises(ShapeError, match="multilabel_soft_margin_loss"):
        F.multilabel_soft_margin_loss(x, genesis.zeros(3, 3))


def test_margin_losses_compiled_match_eager():
    rng = np.random.default_rng(9)
    x, target = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    check_compiled(lambda x, t, w: F.multi_margin_loss(x, t, p=2, weight=w), [x, target, rng.random(5)])
    check_compiled(lambda x, t: F.multilabel_margin_loss(x, t, reduction="none"), [x[:5], MULTILABEL_TARGETS])
    check_compiled(lambda x, t: F.multilabel_soft_margin_loss(x, t), [x, (rng.random((6, 5)) > 0.5) * 1.0])


# embedding_bag


def bag_inputs(seed=10):
    """Bags of 4, 0, 3, 0, 3 and 0 indices: repeated rows, empty bags in the middle and at the end."""
    rng = np.random.default_rng(seed)
    indices = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0])
    offsets = np.array([0, 4, 4, 7, 7, 10])
    return rng.standard_normal((10, 3)), indices, offsets, rng.standard_normal(10)


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 4, 0])
@pytest.mark.parametrize("include_last_offset", [False, True])
def test_embedding_bag_with_offsets_is_pytorchs(dtype, mode, padding_idx, include_last_offset):
    weight, indices, offsets, _ = bag_inputs()
    if include_last_offset:
        offsets = np.append(offsets, 10)

    def fn(w, i, o):
        return lib_of(w).embedding_bag(
            i, w, o, mode=mode, padding_idx=padding_idx, include_last_offset=include_last_offset
        )

    check_torch(fn, [weight, indices, offsets], dtype=dtype)


def test_embedding_bag_last_offset_short_of_the_end_keeps_the_rest_in_the_last_bag():
    weight, indices, _, _ = bag_inputs()
    for mode in ("sum", "mean", "max"):
        check_torch(
            lambda w, i, o: lib_of(w).embedding_bag(i, w, o, mode=mode, include_last_offset=True),
            [weight, indices, np.array([0, 3, 7])],
            dtype=genesis.float64,
        )


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
def test_embedding_bag_per_sample_weights_and_2d_input(dtype):
    weight, indices, offsets, per_sample = bag_inputs(11)
    check_torch(
        lambda w, i, o, s: lib_of(w).embedding_bag(i, w, o, mode="sum", per_sample_weights=s, padding_idx=2),
        [weight, indices, offsets, per_sample],
        dtype=dtype,
    )
    fixed = indices.reshape(5, 2)
    for mode in ("sum", "mean", "max"):
        check_torch(lambda w, i: lib_of(w).embedding_bag(i, w, mode=mode), [weight, fixed], dtype=dtype)
    check_torch(
        lambda w, i, s: lib_of(w).embedding_bag(i, w, mode="sum", per_sample_weights=s),
        [weight, fixed, per_sample.reshape(5, 2)],
        dtype=dtype,
    )
    # bags of no index are empty bags (torch refuses the shape: its offsets step by the length 0)
    empty = F.embedding_bag(genesis.zeros(3, 0, dtype=genesis.int64), genesis.tensor(weight, dtype=dtype), mode="max")
    np.testing.assert_array_equal(empty.numpy(), np.zeros((3, 3)))


def test_embedding_bag_max_takes_the_first_of_equal_rows_and_empty_input_gives_zeros():
    weight = np.array([[1.0, 5.0], [1.0, 2.0], [3.0, 5.0]])
    check_torch(
        lambda w, i, o: lib_of(w).embedding_bag(i, w, o, mode="max"),
        [weight, np.array([0, 1, 2, 1, 0, 0]), np.array([0, 3])],
        dtype=genesis.float64,
    )
    for mode in ("sum", "mean", "max"):
        check_torch(
            lambda w, i, o: lib_of(w).embedding_bag(i, w, o, mode=mode),
            [weight, np.zeros(0, dtype=np.int64), np.array([0, 0, 0])],
            dtype=genesis.float64,
        )


def test_embedding_bag_module_and_from_pretrained():
    weight, indices, offsets, _ = bag_inputs(12)
    bag = nn.EmbeddingBag.from_pretrained(genesis.tensor(weight), mode="max", padding_idx=5)
    reference = torch.nn.EmbeddingBag.from_pretrained(torch.tensor(weight), mode="max", padding_idx=5)
    assert not bag.weight.requires_grad and list(bag.state_dict()) == list(reference.state_dict()) == ["weight"]
    np.testing.assert_allclose(
        bag(genesis.tensor(indices), genesis.tensor(offsets)).numpy(),
        reference(torch.tensor(indices), torch.tensor(offsets)).numpy(),
    )
    assert nn.EmbeddingBag.from_pretrained(genesis.tensor(weight), freeze=False).weight.requires_grad
    genesis.manual_seed(0)
    fresh = nn.EmbeddingBag(8, 3, padding_idx=-1)
    assert fresh.padding_idx == 7 and fresh.mode == "mean" and np.all(fresh.weight.detach().numpy()[7] == 0)
    assert fresh(genesis.tensor([[1, 7], [7, 7]])).shape == (2, 3)


def test_embedding_bag_refuses_bad_arguments_by_name():
    weight = genesis.zeros(5, 2)
    with pytest.raises(ValueError, match="offsets"):
        F.embedding_bag(genesis.tensor([1, 2]), weight, genesis.tensor([1]))
    with pytest.raises(ValueError, match="offsets"):
        F.embedding_bag(genesis.tensor([1, 2]), weight)
    with pytest.raises(ValueError, match="offsets has to be None"):
        F.embedding_bag(genesis.tensor([[1, 2]]), weight, genesis.tensor([0]))
    with pytest.raises(NotImplementedError, match="per_sample_weights"):
        F.embedding_bag(genesis.tensor([[1, 2]]), weight, mode="mean", per_sample_weights=genesis.ones(1, 2))
    with pytest.raises(ShapeError, match="per_sample_weights"):
        F.embedding_bag(genesis.tensor([[1, 2]]), weight, mode="sum", per_sample_weights=genesis.ones(2))
    with pytest.raises(ValueError, match="mode"):
        F.embedding_bag(genesis.tensor([[1, 2]]), weight, mode="median")
    with pytest.raises(IndexError, match="embedding"):
        F.embedding_bag(genesis.tensor([[1, 5]]), weight)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_compiled_matches_eager(mode):
    weight, indices, offsets, _ = bag_inputs(13)
    check_compiled(lambda w, i, o: F.embedding_bag(i, w, o, mode=mode, padding_idx=3), [weight, indices, offsets])
