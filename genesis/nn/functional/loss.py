"""Losses, built from log_softmax, gather, where and reductions, matching PyTorch option for option.

cross_entropy with class indices is `nll_loss(log_softmax(x))`; with label
smoothing it mixes in the mean of -log p over the classes, using PyTorch's
exact normalization (the smoothing term of a weighted mean is divided by the
same weight sum as the nll term). With class probabilities as the target it
is `-(target * log_softmax(x)).sum(class dim)`, and the mean divides by the
number of positions, weighted or not, again as PyTorch does.

Ignored targets are replaced by class 0 before the gather (so no index is
out of range) and their loss and weight are zeroed by a mask: no host read,
so the whole loss traces. A mean over zero counted targets is 0/0 = NaN, as
in PyTorch.
"""

from __future__ import annotations

import math

from genesis import dtypes
from genesis import functional as GF
from genesis.errors import IndexOutOfRangeError, ShapeError
from genesis.functional.fused import fused_in_eager
from genesis.nn.functional.activation import log_softmax, logsigmoid
from genesis.nn.functional.basic import pairwise_distance

REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average, reduce, reduction):
    """PyTorch's deprecated size_average/reduce arguments, mapped to `reduction`."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


def _reduce(loss, reduction):
    if reduction == "mean":
        return GF.mean(loss)
    if reduction == "sum":
        return GF.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction!r} is not a valid value for reduction (expected one of {', '.join(REDUCTIONS)})")


def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction (expected one of {', '.join(REDUCTIONS)})")


def _class_weight_shape(ndim):
    return (1, -1) + (1,) * (ndim - 2) if ndim >= 2 else (-1,)


def nll_loss(
    input, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None, reduction: str = "mean"
):
    """-input[n, target[n], ...] * weight[target[n]]: input (N, C, d1...) or (C,), target (N, d1...) or ()."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if target.dtype.category != dtypes.INT:
        raise TypeError(f"nll_loss expects integer class indices as the target, got {target.dtype.name}")
    class_dim = 0 if input.ndim == 1 else 1
    expected = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1 :])
    if tuple(target.shape) != expected:
        raise ShapeError(
            f"nll_loss: target of shape {list(target.shape)} does not fit input of shape "
            f"{list(input.shape)} (expected target shape {list(expected)})"
        )
    classes = input.shape[class_dim]
    if weight is not None and tuple(weight.shape) != (classes,):
        raise ShapeError(
            f"weight tensor should be defined either for all {classes} classes or no classes "
            f"but got weight tensor of shape: {list(weight.shape)}"
        )
    ignored = target == ignore_index
    safe_target = GF.where(ignored, 0, target)  # out-of-range targets (negative ones too) are refused by gather
    try:
        picked = GF.squeeze(GF.gather(input, class_dim, GF.unsqueeze(safe_target, class_dim)), class_dim)
    except IndexOutOfRangeError as error:
        raise IndexOutOfRangeError(
            error.index,
            error.size,
            class_dim,
            f"nll_loss: target {error.index} is out of range for {error.size} classes (ignore_index is {ignore_index})",
        ) from None
    if weight is None:
        target_weight = GF.where(ignored, 0.0, GF.ones((), dtype=input.dtype))
    else:
        target_weight = GF.where(
            ignored, 0.0, GF.reshape(GF.index_select(weight, 0, GF.reshape(safe_target, (-1,))), target.shape)
        )
    loss = -picked * target_weight
    if reduction == "none":
        return loss
    if reduction == "sum":
        return GF.sum(loss)
    return GF.sum(loss) / GF.sum(target_weight)


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index: int = -100,
    reduce=None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    return _cross_entropy(input, target, weight, ignore_index, reduction, float(label_smoothing))


@fused_in_eager  # eagerly, on big logits, one program: log_softmax, the pick and their backward fused
def _cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing):
    class_dim = 0 if input.ndim == 1 else 1
    classes = input.shape[class_dim]
    log_probs = log_softmax(input, class_dim)
    weight_view = None if weight is None else GF.reshape(weight, _class_weight_shape(input.ndim))
    if target.dtype.is_floating_point:  # class probabilities
        if tuple(target.shape) != tuple(input.shape):
            raise ShapeError(
                f"cross_entropy: probability target of shape {list(target.shape)} must match the "
                f"input's shape {list(input.shape)}"
            )
        if label_smoothing > 0:
            target = target * (1.0 - label_smoothing) + label_smoothing / classes
        terms = log_probs * target
        if weight_view is not None:
            terms = terms * weight_view
        loss = -GF.sum(terms, class_dim)
        if reduction == "mean":
            return GF.sum(loss) / float(input.numel() // classes if classes else 0)
        return _reduce(loss, reduction)
    nll = nll_loss(log_probs, target, weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0.0:
        return nll
    ignored = target == ignore_index
    terms = log_probs if weight_view is None else log_probs * weight_view
    smooth = GF.where(ignored, 0.0, -GF.sum(terms, class_dim))
    if reduction == "mean":
        if weight is None:
            denominator = GF.sum(GF.logical_not(ignored)).to(smooth.dtype)
        else:
            safe_target = GF.where(ignored, 0, target)
            picked = GF.reshape(GF.index_select(weight, 0, GF.reshape(safe_target, (-1,))), target.shape)
            denominator = GF.sum(GF.where(ignored, 0.0, picked))
        smooth = GF.sum(smooth) / denominator
    elif reduction == "sum":
        smooth = GF.sum(smooth)
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)


def _check_same_shape(input, target, name):
    if tuple(input.shape) != tuple(target.shape):
        raise ShapeError(
            f"{name}: target of shape {list(target.shape)} does not match input of shape {list(input.shape)}"
        )


def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_same_shape(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_same_shape(input, target, "l1_loss")
    return _reduce(GF.abs(input - target), reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; beta = 0 is the L1 loss."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_same_shape(input, target, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    magnitude = GF.abs(input - target)
    if beta == 0.0:
        return _reduce(magnitude, reduction)
    loss = GF.where(magnitude < beta, magnitude * magnitude * (0.5 / beta), magnitude - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    _check_same_shape(input, target, "huber_loss")
    magnitude = GF.abs(input - target)
    loss = GF.where(magnitude < delta, magnitude * magnitude * 0.5, (magnitude - 0.5 * delta) * delta)
    return _reduce(loss, reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
    """-(t log x + (1 - t) log(1 - x)), each log clamped at -100 as PyTorch does."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_same_shape(input, target, "binary_cross_entropy")
    log_x = GF.clamp(GF.log(input), min=-100.0)
    log_1mx = GF.clamp(GF.log(1.0 - input), min=-100.0)
    loss = -(target * log_x + (1.0 - target) * log_1mx)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input, target, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None
):
    """(1 - t) x - (1 + (pos_weight - 1) t) log sigmoid(x): the stable form, exact at x = 0."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_same_shape(input, target, "binary_cross_entropy_with_logits")
    log_sigmoid = logsigmoid(input)
    if pos_weight is not None:
        loss = (1.0 - target) * input - ((pos_weight - 1.0) * target + 1.0) * log_sigmoid
    else:
        loss = (1.0 - target) * input - log_sigmoid
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
    """target * (log target - input), with 0 where target is 0 (input holds log-probabilities)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    if log_target:
        loss = GF.exp(target) * (target - input)
    else:
        safe = GF.where(target > 0, target, 1.0)
        loss = GF.where(target > 0, target * (GF.log(safe) - input), 0.0)
    if reduction == "batchmean":
        return GF.sum(loss) / float(input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -target * (input1 - input2) + margin)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    return _reduce(GF.relu(-target * (input1 - input2) + margin), reduction)


def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None, reduction="mean"):
    """input where target is 1, max(0, margin - input) where it is -1."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_same_shape(input, target, "hinge_embedding_loss")
    positive = GF.where(target == 1, input, 0.0)
    negative = GF.where(target == -1, GF.relu(margin - input), 0.0)
    return _reduce(positive + negative, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target * input)), averaged over elements."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_same_shape(input, target, "soft_margin_loss")
    return _reduce(-logsigmoid(target * input), reduction)


def cosine_embedding_loss(
    input1, input2, target, margin: float = 0.0, size_average=None, reduce=None, reduction="mean"
):
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    eps = 1e-12  # PyTorch's: inside the product of the squared norms
    dot = GF.sum(input1 * input2, -1)
    cosine = dot / GF.sqrt((GF.sum(input1 * input1, -1) + eps) * (GF.sum(input2 * input2, -1) + eps))
    loss = GF.where(target == 1, 1 - cosine, 0.0) + GF.where(target == -1, GF.relu(cosine - margin), 0.0)
    return _reduce(loss, reduction)


def triplet_margin_loss(
    anchor,
    positive,
    negative,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    size_average=None,
    reduce=None,
    reduction="mean",
):
    """max(d(anchor, positive) - d(anchor, negative) + margin, 0) with pairwise distances."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    close = pairwise_distance(anchor, positive, p, eps)
    far = pairwise_distance(anchor, negative, p, eps)
    if swap:
        far = GF.minimum(far, pairwise_distance(positive, negative, p, eps))
    return _reduce(GF.relu(close - far + margin), reduction)


def poisson_nll_loss(
    input,
    target,
    log_input: bool = True,
    full: bool = False,
    size_average=None,
    eps: float = 1e-8,
    reduce=None,
    reduction="mean",
):
    """exp(input) - target * input (log_input), or input - target * log(input + eps); with `full`,
    Stirling's term target*log(target) - target + log(2 pi target)/2 where target > 1."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    loss = GF.exp(input) - target * input if log_input else input - target * GF.log(input + eps)
    if full:
        safe = GF.where(target > 1, target, 1.0)
        stirling = safe * GF.log(safe) - safe + 0.5 * GF.log(2 * math.pi * safe)
        loss = loss + GF.where(target > 1, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction="mean"):
    """(log(max(var, eps)) + (input - target)^2 / max(var, eps)) / 2, plus log(2 pi)/2 with `full`."""
    _check_reduction(reduction)
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = GF.unsqueeze(var, -1)  # one variance per sample, shared by its last dim
        elif not (tuple(input.shape[:-1]) == tuple(var.shape[:-1]) and var.shape[-1] == 1):
            raise ValueError(f"var of shape {list(var.shape)} does not fit the input's {list(input.shape)}")
    if GF.any(var < 0).item():
        raise ValueError("var has negative entry/entries")
    # the value clamped at eps, the gradient as if unclamped: PyTorch clamps a clone under no_grad
    var = var + (GF.clamp(var, min=eps) - var).detach()
    loss = 0.5 * (GF.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


__all__ = [
    "margin_ranking_loss",
    "hinge_embedding_loss",
    "soft_margin_loss",
    "cosine_embedding_loss",
    "triplet_margin_loss",
    "poisson_nll_loss",
    "gaussian_nll_loss",
    "nll_loss",
    "cross_entropy",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
]
