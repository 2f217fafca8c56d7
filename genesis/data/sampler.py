"""Samplers: which dataset indices a DataLoader visits, in which order and in which batches.

`RandomSampler` draws a fresh `genesis.randperm` from its generator each time
it is iterated, so one epoch's order differs from the next while the whole
sequence of epochs repeats exactly for the same seed. Without a generator it
draws from genesis's default generator, so `genesis.manual_seed` makes
shuffling reproducible too.
"""

from __future__ import annotations

import numbers

from genesis.creation import randint, randperm


class Sampler:
    """Iterates over dataset indices (or, for a batch sampler, lists of them)."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


def _check_count(value, what) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


class SequentialSampler(Sampler):
    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation each epoch; with `replacement=True`, `num_samples` independent draws."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        self._num_samples = num_samples
        self.generator = generator
        if num_samples is not None:
            _check_count(num_samples, "RandomSampler: num_samples")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        if self.replacement:
            if n == 0:
                return iter(())
            return iter(randint(0, n, (self.num_samples,), generator=self.generator).tolist())
        # without replacement, more samples than the dataset holds means whole permutations back to back
        indices = []
        while len(indices) < self.num_samples:
            indices.extend(randperm(n, generator=self.generator).tolist())
            if n == 0:
                break
        return iter(indices[: self.num_samples])

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a random order each epoch."""

    def __init__(self, indices, generator=None):
        self.indices = list(indices)
        self.generator = generator

    def __iter__(self):
        order = randperm(len(self.indices), generator=self.generator).tolist()
        return iter([self.indices[i] for i in order])

    def __len__(self):
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of `batch_size`; `drop_last` drops a short final batch."""

    def __init__(self, sampler, batch_size, drop_last):
        self.sampler = sampler
        self.batch_size = _check_count(batch_size, "batch_size")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last must be a bool, got {drop_last!r}")
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return -(-len(self.sampler) // self.batch_size)
