"""`default_collate`: turning a list of samples into one batch, with torch's rules.

The structure of the first sample decides, and the function recurses:

- tensors are stacked along a new first dimension;
- numpy arrays and numpy scalars become tensors of their own dtype, then stack;
- Python floats become a float64 tensor, ints an int64 tensor, bools a bool
  tensor. float64 is what torch's default_collate gives, and matching it
  means a pipeline moved from torch gets the same batches (cast with
  `.float()` where float32 is wanted);
- strings and bytes are returned as given (a list, or a tuple when they come
  from inside tuples or lists of the samples, exactly as in torch);
- dicts collate per key; namedtuples per field (and stay namedtuples);
  lists and tuples per position and come back as lists, as in torch.

`default_convert` (used when batching is off) turns numpy data into tensors
and leaves the structure alone.
"""

from __future__ import annotations

import collections.abc
import copy

import numpy as np

from genesis import dtypes
from genesis.creation import from_numpy, tensor
from genesis.functional import stack
from genesis.tensor import Tensor

_ERROR = "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"


def _is_string_array(array: np.ndarray) -> bool:
    return array.dtype.char in "SaUO"


def _numpy_to_tensor(value) -> Tensor:
    return from_numpy(np.array(value))  # a copy: the batch must not alias the dataset's arrays


def _is_namedtuple(value) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def default_collate(batch):
    """Collate a list of samples into a batch (see the module docstring for the rules)."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)):
        raise TypeError(f"default_collate expects a list of samples, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("default_collate: cannot collate an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return stack(batch, 0)
    if isinstance(elem, np.ndarray):
        if _is_string_array(elem):
            raise TypeError(_ERROR.format(elem.dtype))
        return stack([_numpy_to_tensor(b) for b in batch], 0)
    if isinstance(elem, (np.bool_, np.number)):
        return _numpy_to_tensor(batch)
    if isinstance(elem, float):
        return tensor(batch, dtype=dtypes.float64)
    if isinstance(elem, int):  # bool is an int: all-bool batches give a bool tensor, as in torch
        return tensor(batch)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        return _collate_mapping(elem, batch)
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(samples) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            raise RuntimeError(
                "default_collate: each element in list of batch should be of equal size, got "
                f"sizes {[len(sample) for sample in batch]}"
            )
        return [default_collate(samples) for samples in zip(*batch)]
    raise TypeError(_ERROR.format(type(elem)))


def _collate_mapping(elem, batch):
    for position, sample in enumerate(batch):
        if sample.keys() != elem.keys():
            raise KeyError(
                f"default_collate: sample {position} has keys {sorted(map(str, sample.keys()))}, "
                f"the first has {sorted(map(str, elem.keys()))}"
            )
    collated = {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, collections.abc.MutableMapping):
        result = copy.copy(elem)  # keeps the mapping's type (OrderedDict, defaultdict, ...)
        result.update(collated)
        return result
    try:
        return type(elem)(collated)
    except TypeError:  # a mapping type that cannot be built from a dict
        return collated


def default_convert(data):
    """numpy arrays and scalars inside `data` become tensors; everything else is kept as it is."""
    if isinstance(data, np.ndarray):
        return data if _is_string_array(data) else from_numpy(data)
    if isinstance(data, (np.bool_, np.number)):
        return from_numpy(np.array(data))
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(value) for key, value in data.items()}
        try:
            return type(data)(converted)
        except TypeError:
            return converted
    if _is_namedtuple(data):
        return type(data)(*(default_convert(item) for item in data))
    if isinstance(data, tuple):
        return [default_convert(item) for item in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            return type(data)([default_convert(item) for item in data])
        except TypeError:
            return [default_convert(item) for item in data]
    return data
