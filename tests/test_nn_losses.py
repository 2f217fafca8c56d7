"""Every loss against torch.nn.functional, option by option: values and gradients (input, and weights).

`check_torch` (optest) runs one lambda on genesis and torch tensors, compares
the values and then the gradients of every float input, so a class weight or
pos_weight passed as an input is checked too. The module forms are checked
against the functions once each.
"""

import numpy as np
import pytest
import torch
from optest import assert_close, check_torch

import genesis
import genesis.nn as nn
import genesis.nn.functional as F

DTYPES = [genesis.float32, genesis.float64]
REDUCTIONS = ["mean", "sum", "none"]


def lib_of(t):
    return torch.nn.functional if isinstance(t, torch.Tensor) else F


def const(like, array):
    """A constant (no gradient) of `like`'s library and dtype: torch's nll_loss refuses a weight that needs grad."""
    if array is None:
        return None
    if isinstance(like, torch.Tensor):
        return torch.tensor(array, dtype=like.dtype)
    return genesis.tensor(array, dtype=like.dtype)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def targets(shape, classes, seed=1, ignored=()):
    t = np.random.default_rng(seed).integers(0, classes, shape)
    for position in ignored:
        t.reshape(-1)[position] = -100 if position % 2 == 0 else 2
    return t.astype(np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, target_shape", [((6, 5), (6,)), ((3, 5, 2, 4), (3, 2, 4)), ((5,), ())])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices(dtype, reduction, shape, target_shape, smoothing, weighted):
    x = randn(*shape) * 2
    t = targets(target_shape, 5, ignored=(0, 3) if target_shape else ())
    weight = np.random.default_rng(5).random(5) + 0.5 if weighted else None

    def fn(x, t):
        return lib_of(x).cross_entropy(x, t, weight=const(x, weight), reduction=reduction, label_smoothing=smoothing)

    check_torch(fn, [x, t], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_cross_entropy_ignore_index(dtype, reduction, ignore_index):
    t = np.array([1, 0, -100, 3, 1, 2], dtype=np.int64)
    if ignore_index != -100:
        t[2] = 0
    weight = np.random.default_rng(5).random(4) + 0.5
    check_torch(
        lambda x, t: lib_of(x).cross_entropy(
            x, t, weight=const(x, weight), ignore_index=ignore_index, reduction=reduction, label_smoothing=0.1
        ),
        [randn(6, 4), t],
        dtype=dtype,
    )


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_cross_entropy_all_ignored_is_nan_like_torch():
    t = np.full(3, -100, dtype=np.int64)
    check_torch(lambda x, t: lib_of(x).cross_entropy(x, t), [randn(3, 4), t], grad=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (2, 5, 3, 2), (5,)])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_probabilities(dtype, reduction, shape, smoothing, weighted):
    class_dim = 0 if len(shape) == 1 else 1
    probs = np.random.default_rng(2).random(shape)
    probs = probs / probs.sum(axis=class_dim, keepdims=True)
    weight = np.random.default_rng(5).random(5) + 0.5 if weighted else None

    def fn(x, p):
        return lib_of(x).cross_entropy(x, p, weight=const(x, weight), reduction=reduction, label_smoothing=smoothing)

    check_torch(fn, [randn(*shape), probs], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(dtype, reduction, weighted):
    t = targets((4, 3), 5, ignored=(0, 5))
    weight = np.random.default_rng(5).random(5) + 0.5 if weighted else None
    check_torch(
        lambda x, t: lib_of(x).nll_loss(x, t, weight=const(x, weight), reduction=reduction),
        [randn(4, 5, 3), t],
        dtype=dtype,
    )


def test_classification_errors():
    x = genesis.randn(4, 3)
    with pytest.raises(ValueError, match="target of shape"):
        F.cross_entropy(x, genesis.tensor([0, 1]))
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(x, genesis.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.cross_entropy(x, genesis.tensor([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(TypeError, match="integer class indices"):
        F.nll_loss(x, genesis.randn(4))
    with pytest.raises(ValueError, match="weight tensor should be defined"):
        F.cross_entropy(x, genesis.tensor([0, 1, 2, 0]), weight=genesis.ones(4))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mse_loss", {}),
        ("l1_loss", {}),
        ("smooth_l1_loss", {}),
        ("smooth_l1_loss", {"beta": 0.5}),
        ("smooth_l1_loss", {"beta": 0.0}),
        ("huber_loss", {"delta": 0.7}),
    ],
)
def test_regression_losses(dtype, reduction, name, kwargs):
    check_torch(
        lambda x, y: getattr(lib_of(x), name)(x, y, reduction=reduction, **kwargs),
        [randn(3, 7, 2), randn(3, 7, 2, seed=1)],
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(dtype, reduction, weighted):
    rng = np.random.default_rng(3)
    probs, target = rng.random((5, 4)) * 0.98 + 0.01, rng.random((5, 4))
    weight = rng.random(4) + 0.5 if weighted else None
    check_torch(
        lambda x, t: lib_of(x).binary_cross_entropy(x, t, weight=const(x, weight), reduction=reduction),
        [probs, target],
        dtype=dtype,
    )


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_binary_cross_entropy_clamps_log_at_minus_100():
    x, t = np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    check_torch(lambda x, t: lib_of(x).binary_cross_entropy(x, t, reduction="none"), [x, t], grad=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted, pos_weighted", [(False, False), (True, False), (False, True), (True, True)])
def test_binary_cross_entropy_with_logits(dtype, reduction, weighted, pos_weighted):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((6, 3)) * 10
    logits[0, 0] = 0.0  # the kink of |x|: the gradient must still be sigmoid(0) - t
    weight = rng.random(3) + 0.5 if weighted else None
    pos_weight = rng.random(3) * 3 if pos_weighted else None
    check_torch(
        lambda x, t: lib_of(x).binary_cross_entropy_with_logits(
            x, t, weight=const(x, weight), pos_weight=const(x, pos_weight), reduction=reduction
        ),
        [logits, rng.random((6, 3))],
        dtype=dtype,
    )


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    rng = np.random.default_rng(6)
    log_p = np.log(rng.dirichlet(np.ones(5), 4))
    q = rng.dirichlet(np.ones(5), 4)
    q[0, 1] = 0.0
    target = np.log(q + 1e-3) if log_target else q
    # the target is a constant: torch's gradient for a zero target probability is NaN (log 0)
    check_torch(
        lambda x: lib_of(x).kl_div(x, const(x, target), reduction=reduction, log_target=log_target),
        [log_p],
        dtype=genesis.float64,
    )


def test_loss_modules_match_functions():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    weight = genesis.tensor([0.5, 1.0, 2.0])
    cases = [
        (
            nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1, ignore_index=2),
            torch.nn.CrossEntropyLoss(weight=torch.tensor([0.5, 1.0, 2.0]), label_smoothing=0.1, ignore_index=2),
            t,
        ),
        (nn.NLLLoss(reduction="sum"), torch.nn.NLLLoss(reduction="sum"), t),
        (nn.MSELoss(), torch.nn.MSELoss(), rng.standard_normal((4, 3))),
        (nn.L1Loss(reduction="sum"), torch.nn.L1Loss(reduction="sum"), rng.standard_normal((4, 3))),
        (nn.SmoothL1Loss(beta=0.3), torch.nn.SmoothL1Loss(beta=0.3), rng.standard_normal((4, 3))),
        (
            nn.BCEWithLogitsLoss(pos_weight=genesis.tensor([1.0, 2.0, 3.0])),
            torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, 2.0, 3.0])),
            rng.random((4, 3)),
        ),
        (nn.BCELoss(), torch.nn.BCELoss(), rng.random((4, 3))),
        (nn.MSELoss(size_average=False), torch.nn.MSELoss(reduction="sum"), rng.standard_normal((4, 3))),
    ]
    for g_loss, t_loss, target in cases:
        source = 1 / (1 + np.exp(-x)) if isinstance(g_loss, nn.BCELoss) else x
        g_target = genesis.tensor(target) if target.dtype.kind == "i" else genesis.tensor(target, dtype=genesis.float32)
        t_target = torch.tensor(target) if target.dtype.kind == "i" else torch.tensor(target, dtype=torch.float32)
        expected = t_loss(torch.tensor(source, dtype=torch.float32), t_target)
        actual = g_loss(genesis.tensor(source, dtype=genesis.float32), g_target)
        assert_close(actual, expected, genesis.float32, type(g_loss).__name__)
    assert list(nn.CrossEntropyLoss(weight=weight).state_dict()) == ["weight"]
