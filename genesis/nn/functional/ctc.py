"""ctc_loss: the connectionist temporal classification loss, by the forward (alpha) recursion in log space.

The target of length L is extended to 2L + 1 states (blank, l1, blank, l2,
..., blank). Each time step is a log-add of a state's own, its predecessor's
and, where the label differs from the one two states back, that state's
log-probability, plus the emission: a handful of genesis ops per step, so
autograd differentiates the recursion (the beta pass of PyTorch's kernel is
what autograd's reverse sweep computes) and a compiled program holds the
unrolled loop. Samples whose input is shorter than T keep their alphas past
their end. A log-add of nothing but -inf gives -inf with a zero gradient, so
states that cannot be reached add no NaN.

PyTorch's gradient with respect to `log_probs` is not the derivative of the
loss: its kernel assumes the log-probabilities come from a log_softmax and
adds exp(log_probs) at every step inside the input (which that log_softmax's
backward cancels). A ported program compares or clips these gradients, so
genesis gives the same: a term exp(lp) - exp(lp).detach(), zero in value, is
added to each sample's loss.
"""

from __future__ import annotations

from genesis import dispatch, dtypes
from genesis import functional as GF
from genesis.creation import as_tensor
from genesis.errors import ShapeError
from genesis.grad_mode import no_grad
from genesis.nn.functional.loss import _check_reduction

NEG_INF = float("-inf")


def ctc_loss(
    log_probs,
    targets,
    input_lengths,
    target_lengths,
    blank: int = 0,
    reduction: str = "mean",
    zero_infinity: bool = False,
):
    """log_probs (T, N, C) or (T, C); targets (N, S) padded, or all targets concatenated (sum of the lengths,)."""
    _check_reduction(reduction)
    if log_probs.ndim not in (2, 3) or not log_probs.dtype.is_floating_point:
        raise ShapeError(
            f"ctc_loss: log_probs must be a (T, N, C) or (T, C) float tensor, got {list(log_probs.shape)} "
            f"{log_probs.dtype.name}"
        )
    unbatched = log_probs.ndim == 2
    if unbatched:  # the one target (S,) reads as the concatenation of one target, as in PyTorch
        log_probs = GF.unsqueeze(log_probs, 1)
    steps, batch, classes = log_probs.shape
    if not 0 <= blank < classes:
        raise ValueError(f"ctc_loss: blank {blank} must be one of the {classes} classes")
    input_lengths = _lengths(input_lengths, batch, "input_lengths", steps)
    target_lengths = _lengths(target_lengths, batch, "target_lengths", None)
    labels = _padded_targets(targets, target_lengths, batch, classes)
    nll = _negative_log_likelihood(log_probs, labels, input_lengths, target_lengths, blank)
    if zero_infinity:
        nll = GF.where(GF.isinf(nll), 0.0, nll)
    if reduction == "mean":
        return GF.mean(nll / GF.clamp(target_lengths, min=1).to(nll.dtype))
    if reduction == "sum":
        return GF.sum(nll)
    return GF.reshape(nll, ()) if unbatched else nll


def _lengths(lengths, batch, name, most):
    """Lengths as an int64 (N,) tensor, from a tensor or a sequence of ints; checked in eager mode."""
    lengths = as_tensor(lengths)
    if lengths.dtype.category != dtypes.INT:
        raise TypeError(f"ctc_loss: {name} must be integers, got {lengths.dtype.name}")
    lengths = GF.reshape(lengths, (-1,)).to(dtypes.int64)
    if lengths.shape[0] != batch:
        raise ShapeError(f"ctc_loss: {name} must have one length per sample ({batch}), got {lengths.shape[0]}")
    if batch and not dispatch.is_tracing():
        values = lengths.cpu().numpy()  # a host read: the checks branch on the values
        if values.min() < 0 or (most is not None and values.max() > most):
            limit = f" nor exceed {most}" if most is not None else ""
            raise ValueError(f"ctc_loss: {name} must not be negative{limit}, got {values.tolist()}")
    return lengths


def _padded_targets(targets, target_lengths, batch, classes):
    """(N, width) labels, each row's labels first; the positions past its length hold 0 (never read)."""
    if targets.dtype.category != dtypes.INT:
        raise TypeError(f"ctc_loss: targets must be integer class indices, got {targets.dtype.name}")
    eager = not dispatch.is_tracing()
    if targets.ndim == 2:
        if targets.shape[0] != batch:
            raise ShapeError(f"ctc_loss: padded targets of shape {list(targets.shape)} need {batch} rows")
        if eager and batch and int(GF.amax(target_lengths).item()) > targets.shape[1]:
            raise ValueError(f"ctc_loss: a target length exceeds the padded targets' width {targets.shape[1]}")
        labels = targets.to(dtypes.int64)
    elif targets.ndim == 1:
        total = targets.shape[0]
        if eager and int(GF.sum(target_lengths).item()) != total:
            raise ValueError(f"ctc_loss: the target lengths do not add up to the {total} concatenated targets")
        # in a trace the width is the total length, which the shape fixes; eagerly the longest target
        width = int(GF.amax(target_lengths).item()) if eager and batch else total
        if total == 0:
            labels = GF.zeros((batch, width), dtype=dtypes.int64, device=targets.device)
        else:
            starts = GF.cumsum(target_lengths, 0) - target_lengths
            positions = GF.clamp(GF.unsqueeze(starts, 1) + GF.arange(width, device=targets.device), 0, total - 1)
            labels = GF.reshape(GF.index_select(targets, 0, GF.reshape(positions, (-1,))), (batch, width))
            labels = labels.to(dtypes.int64)
    else:
        raise ShapeError(f"ctc_loss: targets must be 1-D (concatenated) or 2-D (padded), got {list(targets.shape)}")
    inside = GF.arange(labels.shape[1], device=labels.device) < GF.unsqueeze(target_lengths, 1)
    labels = GF.where(inside, labels, 0)
    if eager and labels.numel():
        low, high = int(GF.amin(labels).item()), int(GF.amax(labels).item())
        if low < 0 or high >= classes:
            raise IndexError(f"ctc_loss: target {low if low < 0 else high} is out of range for {classes} classes")
    return labels


def _negative_log_likelihood(log_probs, labels, input_lengths, target_lengths, blank):
    steps, batch, _ = log_probs.shape
    width = labels.shape[1]
    states = 2 * width + 1
    device = log_probs.device
    blanks = GF.full((batch, width), blank, dtype=dtypes.int64, device=device)
    final_blank = GF.full((batch, 1), blank, dtype=dtypes.int64, device=device)
    extended = GF.cat([GF.reshape(GF.stack([blanks, labels], 2), (batch, 2 * width)), final_blank], 1)
    two_back = GF.cat([GF.full((batch, 2), -1, dtype=dtypes.int64, device=device), extended[:, :-2]], 1)[:, :states]
    may_skip = (extended != blank) & (extended != two_back)  # a label may follow the label two states back
    emissions = GF.gather(log_probs, 2, GF.expand(GF.unsqueeze(extended, 0), (steps, batch, states)))
    first_two = GF.arange(states, device=device) < 2
    # an input of length 0 gives log-probability 0 (probability 1) to the empty target and -inf otherwise
    empty_start = GF.where(GF.arange(states, device=device) == 0, 0.0, GF.full((), NEG_INF, dtype=log_probs.dtype))
    alpha = GF.where(first_two, emissions[0], NEG_INF)
    alpha = GF.where(GF.unsqueeze(input_lengths > 0, 1), alpha, empty_start)
    for t in range(1, steps):
        one_back = _shift_right(alpha, 1)
        skip = GF.where(may_skip, _shift_right(alpha, 2), NEG_INF)
        stepped = _log_add(alpha, one_back, skip) + emissions[t]
        alpha = GF.where(GF.unsqueeze(t < input_lengths, 1), stepped, alpha)
    last_blank = 2 * target_lengths
    end_blank = GF.squeeze(GF.gather(alpha, 1, GF.unsqueeze(last_blank, 1)), 1)
    end_label = GF.squeeze(GF.gather(alpha, 1, GF.unsqueeze(GF.clamp(last_blank - 1, min=0), 1)), 1)
    end_label = GF.where(target_lengths > 0, end_label, NEG_INF)
    nll = -_log_add(end_blank, end_label)
    return nll + _softmax_assumption(log_probs, input_lengths)


def _shift_right(alpha, by):
    """alpha moved `by` states up, -inf coming in (cut to alpha's width when it has fewer states)."""
    states = alpha.shape[1]
    incoming = GF.full((alpha.shape[0], by), NEG_INF, dtype=alpha.dtype, device=alpha.device)
    return GF.cat([incoming, alpha[:, :-by]], 1)[:, :states]


def _log_add(*terms):
    """log(sum(exp(terms))), -inf with no gradient where every term is -inf."""
    stacked = GF.stack(terms, 0)
    with no_grad():
        top = GF.amax(stacked, 0)
        top = GF.where(GF.isfinite(top), top, 0.0)
    total = GF.sum(GF.exp(stacked - top), 0)
    reached = total > 0
    return GF.where(reached, GF.log(GF.where(reached, total, 1.0)) + top, NEG_INF)


def _softmax_assumption(log_probs, input_lengths):
    """Zero, with gradient exp(log_probs) at the steps inside each input: PyTorch's convention (see above)."""
    probs = GF.exp(log_probs)
    inside = GF.unsqueeze(GF.unsqueeze(GF.arange(log_probs.shape[0], device=log_probs.device), 1) < input_lengths, 2)
    return GF.sum(GF.where(inside, probs - probs.detach(), 0.0), (0, 2))


__all__ = ["ctc_loss"]
