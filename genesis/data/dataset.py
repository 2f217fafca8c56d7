"""Datasets: indexable collections of samples, and ways to cut and join them.

As in PyTorch, a map-style `Dataset` has `__getitem__(index)` and `__len__`;
an `IterableDataset` is a stream with only `__iter__`. `TensorDataset` pairs
up tensors along their first dimension; `Subset` and `random_split` pick
indices out of another dataset; `ConcatDataset` (what `a + b` gives) joins
datasets end to end.

`random_split` follows torch's rules to the letter (fractions are floored,
the remainder handed out one at a time from the first split on), so split
sizes agree with torch's; the permutation comes from `genesis.randperm`
with the given `genesis.Generator`, so the same seed gives the same split.
"""

from __future__ import annotations

import bisect
import math
import numbers
import warnings

from genesis.creation import randperm
from genesis.tensor import Tensor


class Dataset:
    """A map-style dataset: subclasses define `__getitem__` and usually `__len__`."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define `__iter__`; there is no indexing and no shuffling."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __add__(self, other):
        raise TypeError("IterableDatasets cannot be concatenated with +; chain their iterators instead")


class TensorDataset(Dataset):
    """Sample `i` is `(t[i] for t in tensors)`; every tensor must have the same first dimension."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for position, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {position} is a {type(t).__name__}, not a genesis Tensor")
            if t.ndim == 0:
                raise ValueError(
                    f"TensorDataset: argument {position} is a 0-d tensor; samples are taken along the first dimension"
                )
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(
                f"TensorDataset: tensors must agree in their first dimension, got shapes "
                f"{[list(t.shape) for t in tensors]}"
            )
        self.tensors = tuple(tensors)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices.tolist() if isinstance(indices, Tensor) else list(indices)

    def __getitem__(self, index):
        if isinstance(index, (list, tuple)):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets end to end: index `i` falls into the first dataset whose cumulative size exceeds it."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset needs at least one dataset")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if index < 0:
            if -index > len(self):
                raise IndexError(f"index {index} is out of range for a dataset of length {len(self)}")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        if which == len(self.datasets):
            raise IndexError(f"index {index} is out of range for a dataset of length {len(self)}")
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def split_lengths(total: int, lengths) -> list[int]:
    """Integer lengths from ints (which must sum to `total`) or fractions (which must sum to 1), as torch does."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split needs at least one length")
    all_ints = all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in lengths)
    if not all_ints and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"random_split: fraction at index {i} is {fraction}, not between 0 and 1")
        counts = [int(math.floor(total * fraction)) for fraction in lengths]
        for i in range(total - sum(counts)):  # the remainder, one at a time, round-robin
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(
                    f"random_split: length of split at index {i} is 0; this split will be empty", stacklevel=3
                )
        return counts
    if not all_ints or any(n < 0 for n in lengths):
        raise ValueError(
            f"random_split: lengths must be non-negative ints summing to {total} or fractions "
            f"summing to 1, got {lengths}"
        )
    if sum(lengths) != total:
        raise ValueError(
            f"random_split: the lengths {lengths} sum to {sum(lengths)}, but the dataset has {total} samples"
        )
    return [int(n) for n in lengths]


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Split `dataset` into non-overlapping random `Subset`s of the given lengths (ints or fractions)."""
    counts = split_lengths(len(dataset), lengths)
    order = randperm(sum(counts), generator=generator).tolist()
    subsets, start = [], 0
    for count in counts:
        subsets.append(Subset(dataset, order[start : start + count]))
        start += count
    return subsets
