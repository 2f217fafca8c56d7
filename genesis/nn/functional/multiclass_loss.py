"""Multi-class and multi-label losses: multi_margin_loss, multilabel_margin_loss,
multilabel_soft_margin_loss.

Each is a gather of the target classes' scores and a masked hinge or
log-sigmoid over all classes, so they trace. Targets are checked on the host
only in eager mode (a compiled graph cannot read values).
"""

from __future__ import annotations

from genesis import dispatch, dtypes
from genesis import functional as GF
from genesis.errors import ShapeError
from genesis.nn.functional.activation import logsigmoid
from genesis.nn.functional.loss import _check_reduction, _reduce, legacy_reduction


def _batched(input, target, name):
    """input (N, C) or (C,) as (N, C), and the flag to drop the batch dim again."""
    if input.ndim not in (1, 2) or input.shape[-1] == 0:
        raise ShapeError(f"{name}: expected a non-empty 1-D or 2-D input, got shape {list(input.shape)}")
    if target.dtype.category != dtypes.INT:
        raise TypeError(f"{name} expects integer class indices as the target, got {target.dtype.name}")
    unbatched = input.ndim == 1
    return (GF.unsqueeze(input, 0) if unbatched else input), unbatched


def _check_classes(target, classes, name, allow_minus_one=False):
    if dispatch.is_tracing() or target.numel() == 0:
        return
    low, high = int(GF.amin(target).item()), int(GF.amax(target).item())
    if high >= classes or low < (-1 if allow_minus_one else 0):
        bad = high if high >= classes else low
        raise IndexError(f"{name}: target {bad} is out of range for {classes} classes")


def multi_margin_loss(
    input, target, p: int = 1, margin: float = 1.0, weight=None, size_average=None, reduce=None, reduction="mean"
):
    """sum over i != y of weight[y] * max(0, margin - x[y] + x[i])^p / C, per sample."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if p not in (1, 2):
        raise ValueError(f"multi_margin_loss: only p == 1 and p == 2 are supported, got {p}")
    x, unbatched = _batched(input, target, "multi_margin_loss")
    samples, classes = x.shape
    if tuple(target.shape) not in ((samples,), () if unbatched else (samples,)):
        raise ShapeError(
            f"multi_margin_loss: target of shape {list(target.shape)} does not fit input of shape {list(input.shape)}"
        )
    if weight is not None and tuple(weight.shape) != (classes,):
        raise ShapeError(f"multi_margin_loss: weight must have {classes} values, got shape {list(weight.shape)}")
    _check_classes(target, classes, "multi_margin_loss")
    target = GF.reshape(target, (samples, 1))
    hinge = GF.relu(margin - GF.gather(x, 1, target) + x)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * GF.reshape(GF.index_select(weight, 0, GF.reshape(target, (-1,))), (samples, 1))
    hinge = GF.where(GF.arange(classes) == target, 0.0, hinge)  # the target class itself is not a margin
    loss = GF.sum(hinge, 1) / classes
    return _reduce(GF.reshape(loss, ()) if unbatched else loss, reduction)


def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """sum over target classes j and non-target classes i of max(0, 1 - (x[j] - x[i])) / C, per sample.

    `target` has the input's shape and lists a sample's classes first, ended by the first -1."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    x, unbatched = _batched(input, target, "multilabel_margin_loss")
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(
            f"multilabel_margin_loss: target of shape {list(target.shape)} must match the input's {list(input.shape)}"
        )
    classes = x.shape[1]
    _check_classes(target, classes, "multilabel_margin_loss", allow_minus_one=True)
    target = GF.reshape(target, x.shape)
    listed = GF.cumsum((target < 0).to(dtypes.int64), 1) == 0  # slots before the first -1
    safe = GF.where(listed, target, 0)
    slot_is_class = GF.unsqueeze(safe, 2) == GF.arange(classes)  # (N, slots, C)
    is_target = GF.any(slot_is_class & GF.unsqueeze(listed, 2), 1)  # (N, C)
    target_scores = GF.unsqueeze(GF.gather(x, 1, safe), 2)  # (N, slots, 1)
    hinge = GF.relu(1.0 - target_scores + GF.unsqueeze(x, 1))
    counted = GF.unsqueeze(listed, 2) & GF.logical_not(GF.unsqueeze(is_target, 1))
    loss = GF.sum(GF.where(counted, hinge, 0.0), (1, 2)) / classes
    return _reduce(GF.reshape(loss, ()) if unbatched else loss, reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """-(t log sigmoid(x) + (1 - t) log sigmoid(-x)), weighted, averaged over the classes (last dim)."""
    reduction = legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(
            f"multilabel_soft_margin_loss: target of shape {list(target.shape)} must match the input's "
            f"{list(input.shape)}"
        )
    loss = -(target * logsigmoid(input) + (1.0 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    loss = GF.sum(loss, -1) / input.shape[-1]
    return _reduce(loss, reduction)


__all__ = ["multi_margin_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss"]
