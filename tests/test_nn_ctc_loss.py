"""ctc_loss against PyTorch: values and gradients (for log-probabilities and for the logits behind them),
padded and concatenated targets, empty targets, short inputs, another blank, zero_infinity, compiled."""

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


STEPS, BATCH, CLASSES = 12, 4, 6
# a repeated label (needs a blank between), an empty target, a target as long as it can be, a short input
TARGET_LENGTHS = np.array([4, 0, 6, 2])
INPUT_LENGTHS = np.array([12, 7, 12, 5])
PADDED = np.array([[1, 2, 2, 5, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [3, 3, 3, 1, 4, 5, 0], [5, 1, 0, 0, 0, 0, 0]])


def concatenated(padded, lengths):
    return np.concatenate([row[:n] for row, n in zip(padded, lengths)])


def logits(seed=0, steps=STEPS, batch=BATCH):
    return np.random.default_rng(seed).standard_normal((steps, batch, CLASSES)) * 2


def log_probs(seed=0):
    return torch.log_softmax(torch.tensor(logits(seed)), 2).numpy()


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_ctc_loss_of_log_softmax_is_pytorchs(dtype, reduction, layout):
    targets = PADDED if layout == "padded" else concatenated(PADDED, TARGET_LENGTHS)

    def fn(x, targets, input_lengths, target_lengths):
        lib = lib_of(x)
        return lib.ctc_loss(lib.log_softmax(x, 2), targets, input_lengths, target_lengths, reduction=reduction)

    check_torch(
        fn,
        [logits(), targets, INPUT_LENGTHS, TARGET_LENGTHS],
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [genesis.float32, genesis.float64])
def test_ctc_loss_gradient_for_log_probs_follows_pytorchs_convention(dtype):
    """PyTorch's gradient for log_probs adds exp(log_probs) inside each input (it assumes a log_softmax
    before it); genesis gives the same numbers, and nothing past an input's end."""
    check_torch(
        lambda lp, t, il, tl: lib_of(lp).ctc_loss(lp, t, il, tl, reduction="sum"),
        [log_probs(1), PADDED, INPUT_LENGTHS, TARGET_LENGTHS],
        dtype=dtype,
    )


def test_ctc_loss_with_another_blank_lengths_as_lists_and_unbatched():
    padded = np.where(PADDED == 2, 0, PADDED)  # class 0 is a label now, 2 the blank
    check_torch(
        lambda x, t: lib_of(x).ctc_loss(
            lib_of(x).log_softmax(x, 2), t, INPUT_LENGTHS.tolist(), TARGET_LENGTHS.tolist(), blank=2
        ),
        [logits(2), padded],
        dtype=genesis.float64,
    )
    check_torch(
        lambda x, t: lib_of(x).ctc_loss(lib_of(x).log_softmax(x, 1), t, [10], [4], reduction="none"),
        [logits(3)[:, 0], PADDED[0, :4]],
        dtype=genesis.float64,
    )


def test_ctc_loss_zero_infinity_drops_impossible_alignments():
    """Sample 0 cannot emit 1, 1 in two steps (it needs a blank between): its loss is infinite."""
    targets, input_lengths, target_lengths = np.array([[1, 1], [2, 3]]), np.array([2, 4]), np.array([2, 2])
    x = logits(4, steps=4, batch=2)
    lp = F.log_softmax(genesis.tensor(x), 2)
    plain = F.ctc_loss(
        lp, genesis.tensor(targets), genesis.tensor(input_lengths), genesis.tensor(target_lengths), reduction="none"
    )
    assert np.isinf(plain.numpy()[0]) and np.isfinite(plain.numpy()[1])
    for reduction in ("none", "mean", "sum"):
        check_torch(
            lambda x, t, il, tl: lib_of(x).ctc_loss(
                lib_of(x).log_softmax(x, 2), t, il, tl, reduction=reduction, zero_infinity=True
            ),
            [x, targets, input_lengths, target_lengths],
            dtype=genesis.float64,
        )


def test_ctc_loss_empty_input_and_empty_targets():
    """An input of length 0 emits the empty target with probability 1; empty targets are concatenated as nothing."""
    x = logits(5, steps=3, batch=2)
    check_torch(
        lambda x, t, il, tl: lib_of(x).ctc_loss(lib_of(x).log_softmax(x, 2), t, il, tl, reduction="none"),
        [x, np.zeros(0, dtype=np.int64), np.array([0, 3]), np.array([0, 0])],
        dtype=genesis.float64,
    )


def test_ctc_loss_module():
    lp = log_probs(6)
    ours = nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    theirs = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    args = [PADDED, INPUT_LENGTHS, TARGET_LENGTHS]
    np.testing.assert_allclose(
        ours(genesis.tensor(lp), *[genesis.tensor(a) for a in args]).numpy(),
        theirs(torch.tensor(lp), *[torch.tensor(a) for a in args]).numpy(),
        rtol=1e-12,
    )


def test_ctc_loss_refuses_bad_arguments_by_name():
    lp, targets = genesis.tensor(log_probs()), genesis.tensor(PADDED)
    lengths, target_lengths = genesis.tensor(INPUT_LENGTHS), genesis.tensor(TARGET_LENGTHS)
    with pytest.raises(ShapeError, match="input_lengths"):
        F.ctc_loss(lp, targets, genesis.tensor([12, 12]), target_lengths)
    with pytest.raises(ValueError, match="input_lengths"):
        F.ctc_loss(lp, targets, genesis.tensor([13, 1, 1, 1]), target_lengths)
    with pytest.raises(ValueError, match="width"):
        F.ctc_loss(lp, targets, lengths, genesis.tensor([8, 0, 0, 0]))
    with pytest.raises(ValueError, match="add up"):
        F.ctc_loss(lp, genesis.tensor([1, 2]), lengths, target_lengths)
    with pytest.raises(IndexError, match="target 6"):
        F.ctc_loss(lp, genesis.tensor(np.where(PADDED == 5, 6, PADDED)), lengths, target_lengths)
    with pytest.raises(ValueError, match="blank"):
        F.ctc_loss(lp, targets, lengths, target_lengths, blank=6)
    with pytest.raises(ShapeError, match="log_probs"):
        F.ctc_loss(genesis.zeros(3), targets, lengths, target_lengths)


@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_ctc_loss_compiled_matches_eager(layout):
    targets = PADDED if layout == "padded" else concatenated(PADDED, TARGET_LENGTHS)
    check_compiled(
        lambda x, t, il, tl: F.ctc_loss(F.log_softmax(x, 2), t, il, tl, reduction="none"),
        [logits(7), targets, INPUT_LENGTHS, TARGET_LENGTHS],
    )
