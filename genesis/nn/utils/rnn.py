"""Packed and padded batches of sequences (PyTorch's `torch.nn.utils.rnn`).

A `PackedSequence` holds a batch of sequences of different lengths without padding: sorted by
length, longest first, then laid out time step after time step, so `data` holds step 0 of every
sequence, then step 1 of those still running, and so on; `batch_sizes[t]` counts the sequences
still running at step t. The recurrent layers step through it by slicing the batch (see
`nn/modules/rnn.py`), so padded positions are never computed.

Packing and padding are each one gather (`index_select`) at row positions computed on the host
from the lengths, so they differentiate exactly and trace as a single op. Lengths and batch sizes
are host data, as in PyTorch (CPU int64 tensors): a traced call reads them as guarded constants
(`dispatch.host_constant`), so the program is specialised on them; lengths that reach a compiled
function as a tensor argument have no values at trace time, and the graph breaks there.

Sorting by length is stable (sequences of equal length keep their order), which is what PyTorch's
sort gives for batches of up to 16 sequences; for larger batches with ties PyTorch's order among
equal lengths may differ, the padded results do not.
"""

from __future__ import annotations

from collections import namedtuple
from itertools import accumulate

from genesis import dispatch, dtypes
from genesis import functional as F
from genesis.creation import full, tensor
from genesis.errors import ShapeError
from genesis.tensor import Tensor


def host_ints(values, what: str) -> list[int]:
    """`values` (a list of ints, or a 1-D integer tensor) as Python ints: host data that decides
    sizes. While tracing, a concrete tensor's values are a guarded constant of the program."""
    if not isinstance(values, Tensor):
        return [int(v) for v in values]
    if getattr(values._data, "is_symbolic", False):
        dispatch.untraceable(
            f"{what} given to a compiled function as a tensor: they decide sizes, so they are read on the "
            "host (give the lengths as a list of ints and pack inside the compiled function to specialise on them)"
        )
    if values.ndim != 1:
        raise ShapeError(f"{what} must be a 1-D tensor, got shape {list(values.shape)}")
    return list(dispatch.host_constant(lambda: tuple(values.tolist()), what, key=(what, id(values))))


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    """The permutation that undoes `permutation` (its argsort)."""
    if permutation is None:
        return None
    return F.argsort(permutation)


class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A packed batch: `data` (total steps, *), `batch_sizes` (CPU int64, one per time step),
    `sorted_indices` (the batch's order by length, or None if it was sorted) and its inverse."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        if batch_sizes is None:  # PackedSequence((data, batch_sizes)), as PyTorch takes it
            data, batch_sizes = data
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs) -> PackedSequence:
        """`data.to(...)`; the indices follow data to its device, batch_sizes stay on the host."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        follow = lambda indices: None if indices is None else indices.to(device=data.device)  # noqa: E731
        return type(self)(data, self.batch_sizes, follow(self.sorted_indices), follow(self.unsorted_indices))

    def cpu(self) -> PackedSequence:
        return self.to(device="cpu")

    def double(self) -> PackedSequence:
        return self.to(dtype=dtypes.float64)

    def float(self) -> PackedSequence:
        return self.to(dtype=dtypes.float32)

    def half(self) -> PackedSequence:
        return self.to(dtype=dtypes.float16)

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def _index(positions, device) -> Tensor:
    return tensor(positions, dtype=dtypes.int64, device=device)


def _check_lengths(lengths: list[int], batch: int, steps: int, enforce_sorted: bool, shape) -> None:
    if len(lengths) != batch:
        raise RuntimeError(
            f"Expected `len(lengths)` to be equal to batch_size, but got {len(lengths)} (batch_size={batch})"
        )
    if batch == 0:
        raise ShapeError(f"pack_padded_sequence: the input (shape {list(shape)}) holds no sequence")
    if min(lengths) <= 0:
        raise RuntimeError(
            "Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0"
        )
    if max(lengths) > steps:
        raise ShapeError(
            f"pack_padded_sequence: a sequence of length {max(lengths)} is longer than the input's {steps} "
            f"time steps (input shape {list(shape)})"
        )
    if enforce_sorted and any(a < b for a, b in zip(lengths, lengths[1:])):
        raise RuntimeError(
            "`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
            "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement "
            "if you do not need ONNX exportability."
        )


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False, enforce_sorted: bool = True):
    """Pack a padded batch (T, B, *) (or (B, T, *) with `batch_first`) of sequences of `lengths`."""
    if input.ndim < 2:
        raise ShapeError(f"pack_padded_sequence expects an input of at least 2 dims, got shape {list(input.shape)}")
    lengths = host_ints(lengths, "the lengths of a packed batch")
    batch, steps = (input.shape[0], input.shape[1]) if batch_first else (input.shape[1], input.shape[0])
    _check_lengths(lengths, batch, steps, enforce_sorted, input.shape)
    order = list(range(batch)) if enforce_sorted else sorted(range(batch), key=lambda b: -lengths[b])
    longest = lengths[order[0]]
    batch_sizes = [sum(1 for length in lengths if length > t) for t in range(longest)]
    # the input's rows, flattened: step t of sequence b is row t * B + b (b * T + t with batch_first)
    row = (lambda t, b: b * steps + t) if batch_first else (lambda t, b: t * batch + b)
    positions = [row(t, b) for t, running in enumerate(batch_sizes) for b in order[:running]]
    rows = F.reshape(input, (batch * steps, *input.shape[2:]))
    data = F.index_select(rows, 0, _index(positions, input.device))
    sorted_indices = None if enforce_sorted else _index(order, input.device)
    return PackedSequence(data, tensor(batch_sizes, dtype=dtypes.int64), sorted_indices, None)


def pad_packed_sequence(
    sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0, total_length: int | None = None
):
    """The padded batch (T, B, *) (or (B, T, *)) of a PackedSequence, in its original order, and
    the sequences' lengths (a CPU int64 tensor)."""
    data, _, _, unsorted_indices = sequence
    batch_sizes = host_ints(sequence.batch_sizes, "a PackedSequence's batch_sizes")
    steps, batch = len(batch_sizes), batch_sizes[0]
    if total_length is not None:
        if total_length < steps:
            raise ValueError(
                "Expected total_length to be at least the length of the longest sequence in input, but got "
                f"total_length={total_length} and max sequence length being {steps}"
            )
        steps = total_length
    offsets = list(accumulate([0, *batch_sizes]))
    padding_row = offsets[-1]  # one row of padding_value appended to data
    running = batch_sizes + [0] * (steps - len(batch_sizes))

    def source(t, b):
        return offsets[t] + b if b < running[t] else padding_row

    order = (
        ((t, b) for b in range(batch) for t in range(steps))
        if batch_first
        else ((t, b) for t in range(steps) for b in range(batch))
    )
    positions = [source(t, b) for t, b in order]
    padding = full((1, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    rows = F.index_select(F.cat([data, padding], 0), 0, _index(positions, data.device))
    padded = F.reshape(rows, (batch, steps, *data.shape[1:]) if batch_first else (steps, batch, *data.shape[1:]))
    lengths = tensor(
        [sum(1 for running_now in batch_sizes if running_now > b) for b in range(batch)], dtype=dtypes.int64
    )
    if unsorted_indices is not None:
        padded = F.index_select(padded, 0 if batch_first else 1, unsorted_indices)
        lengths = F.index_select(lengths, 0, unsorted_indices)
    return padded, lengths


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"):
    """Stack sequences (L_i, *) into one batch (T, B, *) (or (B, T, *)), padding each to the longest
    with `padding_value` on its `padding_side`."""
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    sequences = list(F.unbind(sequences, 0) if isinstance(sequences, Tensor) else sequences)
    if not sequences:
        raise RuntimeError("received an empty list of sequences")
    trailing = {tuple(s.shape[1:]) for s in sequences}
    if any(s.ndim == 0 for s in sequences) or len(trailing) > 1:
        raise ShapeError(
            "pad_sequence: every sequence must have at least 1 dim and the same sizes after the first, "
            f"got shapes {[list(s.shape) for s in sequences]}"
        )
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for sequence in sequences:
        missing = longest - sequence.shape[0]
        widths = (0, 0) * (sequence.ndim - 1) + ((missing, 0) if padding_side == "left" else (0, missing))
        padded.append(F.pad(sequence, widths, value=padding_value) if missing else sequence)
    return F.stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list[Tensor]:
    """The sequences of a padded batch, each cut to its length (views of the batch)."""
    lengths = host_ints(lengths, "the lengths of a padded batch")
    batch = padded_sequences.shape[0 if batch_first else 1]
    if len(lengths) != batch:
        raise ShapeError(f"unpad_sequence: {len(lengths)} lengths for a batch of {batch} sequences")
    by_sequence = padded_sequences if batch_first else F.transpose(padded_sequences, 0, 1)
    return [by_sequence[b, :length] for b, length in enumerate(lengths)]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (L_i, *); with `enforce_sorted` they must come longest first."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
    """The sequences of a PackedSequence, in their original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


__all__ = [
    "PackedSequence",
    "invert_permutation",
    "pack_padded_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpad_sequence",
    "pack_sequence",
    "unpack_sequence",
]
