"""`DataLoader`: batches from a dataset, in order or shuffled, with torch's arguments and checks.

A map-style dataset is read through a batch sampler (built from `batch_size`,
`shuffle`, `drop_last` and `generator` unless one is given) and each list of
samples goes through `collate_fn`; an `IterableDataset` is batched as it
streams. Loading runs in the calling process: `num_workers` must be 0
(worker processes are not implemented, and saying so beats ignoring it).
PyTorch's other options are taken in its order; `pin_memory` is accepted and
changes nothing (a batch is host memory, which a copy to a device reads as it
is), and the worker options are refused as PyTorch refuses them without workers.

A `TensorDataset` with the default collate takes a fast path: one gather
per tensor with the batch's index tensor instead of one indexing op per
sample and a stack. Both give the same batch, values and dtype alike.
"""

from __future__ import annotations

from genesis.creation import tensor as make_tensor
from genesis.data.collate import default_collate, default_convert
from genesis.data.dataset import IterableDataset, TensorDataset
from genesis.data.sampler import BatchSampler, RandomSampler, SequentialSampler, _check_count


class DataLoader:
    def __init__(
        self,
        dataset,
        batch_size=1,
        shuffle=None,
        sampler=None,
        batch_sampler=None,
        num_workers=0,
        collate_fn=None,
        pin_memory=False,
        drop_last=False,
        timeout=0,
        worker_init_fn=None,
        multiprocessing_context=None,
        generator=None,
        *,
        prefetch_factor=None,
        persistent_workers=False,
        pin_memory_device="",
    ):
        if num_workers != 0:
            raise ValueError(
                f"DataLoader: num_workers={num_workers} is not supported; genesis loads data "
                f"in the calling process (num_workers=0)"
            )
        # the worker options mean nothing without workers; PyTorch refuses these two there too
        if prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing")
        if persistent_workers:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout}")
        # batches are host memory already, which a copy to a device reads directly: nothing to pin
        self.pin_memory = bool(pin_memory)
        self.timeout = timeout
        self.dataset = dataset
        self.generator = generator
        self.num_workers = 0
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable:
            if shuffle:
                raise ValueError(
                    "DataLoader with an IterableDataset: shuffle must not be set; the dataset decides its own order"
                )
            if sampler is not None or batch_sampler is not None:
                raise ValueError("DataLoader with an IterableDataset: sampler and batch_sampler must not be set")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle are mutually exclusive")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler is mutually exclusive with batch_size, shuffle, sampler and drop_last"
                )
            batch_size, drop_last = None, False
        elif batch_size is None:
            if drop_last:
                raise ValueError("DataLoader: batch_size=None (no batching) is mutually exclusive with drop_last")
        else:
            _check_count(batch_size, "DataLoader: batch_size")
        if not self._iterable and sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if not self._iterable and batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        if collate_fn is None:
            collate_fn = default_collate if self._auto_batching else default_convert
        self.collate_fn = collate_fn

    @property
    def _auto_batching(self) -> bool:
        return self.batch_sampler is not None or (self._iterable and self.batch_size is not None)

    def __iter__(self):
        if self._iterable:
            return self._iterate_stream()
        if self.batch_sampler is None:  # batching off: one sample at a time
            return (self.collate_fn(self.dataset[index]) for index in self.sampler)
        return (self._fetch(indices) for indices in self.batch_sampler)

    def _fetch(self, indices):
        indices = list(indices)
        if (
            self.collate_fn is default_collate
            and type(self.dataset) is TensorDataset
            and indices
            and all(type(i) is int for i in indices)
        ):
            index = make_tensor(indices)
            return [t[index] for t in self.dataset.tensors]  # default_collate makes a list of a tuple
        getitems = getattr(self.dataset, "__getitems__", None)  # a dataset that fetches a batch at once
        samples = getitems(indices) if getitems is not None else [self.dataset[i] for i in indices]
        return self.collate_fn(samples)

    def _iterate_stream(self):
        if self.batch_size is None:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self):
        if self._iterable:
            length = len(self.dataset)  # a TypeError when the stream has no length, as in torch
            if self.batch_size is None:
                return length
            return length // self.batch_size if self.drop_last else -(-length // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)
