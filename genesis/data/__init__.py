"""Datasets, samplers and the DataLoader, with PyTorch's API (`torch.utils.data`).

- `dataset`: Dataset, IterableDataset, TensorDataset, Subset, ConcatDataset, random_split.
- `sampler`: SequentialSampler, RandomSampler, SubsetRandomSampler, BatchSampler, DistributedSampler.
- `collate`: default_collate and default_convert.
- `dataloader`: DataLoader.

All randomness comes from `genesis.randperm` / `genesis.randint` with a
`genesis.Generator`, so a seed fixes every shuffle and split.
"""

from genesis.data.collate import default_collate, default_convert
from genesis.data.dataloader import DataLoader
from genesis.data.dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from genesis.data.sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
)

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "DistributedSampler",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "default_collate",
    "default_convert",
    "random_split",
]
