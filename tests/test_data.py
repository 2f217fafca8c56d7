"""genesis.data against torch.utils.data where behaviour is deterministic, and against counting where it is random."""

from __future__ import annotations

import collections
import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.utils.data as tud
from torch.utils.data import default_collate as torch_collate

import genesis
from genesis.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
    default_convert,
    random_split,
)
from tests.optest import GENESIS_DTYPE, TORCH_DTYPE

Point = collections.namedtuple("Point", ["x", "label"])


def assert_same_batch(ours, theirs, path="batch"):
    """Same structure, container types, tensor dtypes, shapes and values as torch's batch."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, genesis.Tensor), f"{path}: {type(ours)}"
        assert ours.dtype is GENESIS_DTYPE[theirs.dtype], f"{path}: {ours.dtype} vs {theirs.dtype}"
        assert ours.shape == tuple(theirs.shape), path
        expected = theirs.float().numpy() if theirs.dtype == torch.bfloat16 else theirs.numpy()
        actual = ours._data.astype(np.float32) if ours.dtype is genesis.bfloat16 else ours._data
        np.testing.assert_array_equal(actual, expected, err_msg=path)
        return
    assert type(ours) is type(theirs), f"{path}: {type(ours)} vs {type(theirs)}"
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), path
        for key in theirs:
            assert_same_batch(ours[key], theirs[key], f"{path}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_batch(a, b, f"{path}[{i}]")
    else:
        assert ours == theirs, path


def paired_tensor_datasets(n=23, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, 3, 2)).astype(np.float32)
    labels = rng.integers(0, 10, size=n)
    halves = rng.standard_normal((n, 4)).astype(np.float16)
    ours = TensorDataset(genesis.tensor(features), genesis.tensor(labels), genesis.tensor(halves))
    theirs = tud.TensorDataset(torch.tensor(features), torch.tensor(labels), torch.tensor(halves))
    return ours, theirs


class RecordDataset(Dataset):
    """Samples of every kind default_collate handles, built from the index alone (so torch gets the same)."""

    def __init__(self, n, to_tensor):
        self.n, self.to_tensor = n, to_tensor

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng(i)
        image = rng.standard_normal((2, 5)).astype(np.float32)
        return {
            "image": image,
            "weight": float(i) / 3,
            "label": i % 4,
            "flag": i % 2 == 0,
            "name": f"sample-{i}",
            "pair": (np.int16(i), [np.float64(i) * 0.5, self.to_tensor(rng.integers(0, 5, size=(3,)))]),
            "point": Point(np.float32(i), i),
        }


# ---- batches without shuffling match torch ---------------------------------------------


@pytest.mark.parametrize(
    "batch_size, drop_last", [(1, False), (5, False), (5, True), (7, True), (23, True), (30, False), (30, True)]
)
def test_tensor_dataset_batches_match_torch(batch_size, drop_last):
    ours, theirs = paired_tensor_datasets()
    loader = DataLoader(ours, batch_size=batch_size, drop_last=drop_last)
    reference = tud.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    expected = list(reference)
    assert len(loader) == len(reference) == len(batches) == len(expected)
    for ours_batch, torch_batch in zip(batches, expected):
        assert_same_batch(ours_batch, torch_batch)


def test_fast_path_equals_per_sample_collate():
    ours, _ = paired_tensor_datasets(n=17)
    fast = list(DataLoader(ours, batch_size=4))
    slow = list(DataLoader(ours, batch_size=4, collate_fn=lambda samples: default_collate(samples)))
    assert len(fast) == len(slow) == 5
    for a, b in zip(fast, slow):
        assert type(a) is type(b) is list
        for x, y in zip(a, b):
            assert x.dtype is y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x._data, y._data)


def test_mixed_records_match_torch():
    ours = RecordDataset(11, genesis.tensor)
    theirs = RecordDataset(11, torch.tensor)
    for batch_size, drop_last in [(4, False), (4, True), (11, False)]:
        loader = DataLoader(ours, batch_size=batch_size, drop_last=drop_last)
        reference = tud.DataLoader(theirs, batch_size=batch_size, drop_last=drop_last)
        assert len(loader) == len(reference)
        for a, b in itertools.zip_longest(loader, reference):
            assert_same_batch(a, b)


def test_no_batching_converts_like_torch():
    ours = RecordDataset(3, genesis.tensor)
    theirs = RecordDataset(3, torch.tensor)
    loader = DataLoader(ours, batch_size=None)
    reference = tud.DataLoader(theirs, batch_size=None)
    assert len(loader) == len(reference) == 3
    for a, b in zip(loader, reference):
        assert_same_batch(a, b)


# ---- default_collate ------------------------------------------------------------------


def test_default_collate_matches_torch_on_every_kind_of_leaf():
    rng = np.random.default_rng(3)
    cases = [
        [1, 2, 3],
        [0.5, -1.25, 1e300],  # Python floats: float64, as in torch
        [True, False, True],
        [1, 2.5],  # the first element decides the branch; the tensor's inference decides the dtype
        [np.float32(1.5), np.float32(2.0)],
        [np.int16(3), np.int16(-4)],
        [np.bool_(True), np.bool_(False)],
        [rng.standard_normal((3, 2)), rng.standard_normal((3, 2))],
        [rng.integers(0, 9, size=(0, 4)).astype(np.uint8)] * 3,
        ["a", "bc"],
        [b"x", b"y"],
        [{"a": 1, "b": [2.0, 3.0]}, {"a": 4, "b": [5.0, 6.0]}],
        [(1, "x"), (2, "y")],
        [Point(1.0, 2), Point(3.0, 4)],
        [collections.OrderedDict(z=1, a=2), collections.OrderedDict(z=3, a=4)],
    ]
    for samples in cases:
        assert_same_batch(default_collate(samples), torch_collate(samples), f"collate({samples!r})")


@pytest.mark.parametrize("dtype", list(TORCH_DTYPE), ids=lambda d: d.name)
def test_default_collate_stacks_tensors_of_every_dtype(dtype):
    arrays = [np.random.default_rng(i).standard_normal((2, 3)) * 4 for i in range(5)]
    ours = [genesis.tensor(a).to(dtype) for a in arrays]
    theirs = [torch.tensor(a).to(TORCH_DTYPE[dtype]) for a in arrays]
    assert_same_batch(default_collate(ours), torch_collate(theirs))
    assert_same_batch(default_collate([(t, 1) for t in ours]), torch_collate([(t, 1) for t in theirs]))


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="NoneType"):
        default_collate([None, None])
    with pytest.raises(TypeError, match="<U"):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(genesis.errors.ShapeError, match="equal shape"):
        default_collate([genesis.zeros(2), genesis.zeros(3)])
    with pytest.raises(KeyError, match="keys"):
        default_collate([{"a": 1}, {"b": 2}])
    with pytest.raises(ValueError, match="empty batch"):
        default_collate([])


def test_default_convert_keeps_structure():
    sample = {"a": np.arange(3), "b": (np.float32(2), "s"), "c": 4}
    assert_same_batch(default_convert(sample), tud.default_convert(sample))


# ---- shuffling ------------------------------------------------------------------------


def epoch_orders(loader, epochs):
    return [np.concatenate([batch[1]._data for batch in loader]).tolist() for _ in range(epochs)]


def test_shuffle_visits_every_sample_once_and_reproducibly():
    n = 37
    dataset = TensorDataset(genesis.randn(n, 2), genesis.arange(n))

    def loader(seed, **kwargs):
        return DataLoader(
            dataset, batch_size=6, shuffle=True, generator=genesis.Generator().manual_seed(seed), **kwargs
        )

    orders = epoch_orders(loader(7), epochs=4)
    for order in orders:
        assert sorted(order) == list(range(n))
    assert len({tuple(o) for o in orders}) == 4  # each epoch its own order
    assert orders[0] != list(range(n))
    assert epoch_orders(loader(7), epochs=4) == orders  # the same seed repeats every epoch
    assert epoch_orders(loader(8), epochs=1)[0] != orders[0]

    dropped = loader(7, drop_last=True)
    assert len(dropped) == n // 6
    for _ in range(3):
        batches = list(dropped)
        assert [len(b[1]) for b in batches] == [6] * (n // 6)
        seen = np.concatenate([b[1]._data for b in batches])
        assert len(set(seen.tolist())) == len(seen) == 6 * (n // 6)
        for features, index in zip(*[[b[i] for b in batches] for i in (0, 1)]):
            np.testing.assert_array_equal(features._data, dataset.tensors[0]._data[index._data])


def test_shuffle_without_generator_follows_manual_seed():
    dataset = TensorDataset(genesis.arange(20))
    genesis.manual_seed(11)
    first = [b[0].tolist() for b in DataLoader(dataset, batch_size=5, shuffle=True)]
    genesis.manual_seed(11)
    second = [b[0].tolist() for b in DataLoader(dataset, batch_size=5, shuffle=True)]
    assert first == second and sorted(sum(first, [])) == list(range(20))


def test_random_sampler_with_replacement():
    data = list(range(9))
    sampler = RandomSampler(data, replacement=True, num_samples=50, generator=genesis.Generator().manual_seed(2))
    draws = list(sampler)
    assert len(draws) == len(sampler) == 50 and set(draws) <= set(data) and len(set(draws)) > 1
    again = RandomSampler(data, replacement=True, num_samples=50, generator=genesis.Generator().manual_seed(2))
    assert list(again) == draws
    more = list(RandomSampler(data, num_samples=20, generator=genesis.Generator().manual_seed(2)))
    assert sorted(more[:9]) == data and sorted(more[9:18]) == data and len(more) == 20


def test_subset_random_sampler_and_custom_samplers():
    dataset = TensorDataset(genesis.arange(30) * 10)
    picks = [3, 5, 7, 11, 13]
    loader = DataLoader(dataset, batch_size=2, sampler=SubsetRandomSampler(picks, genesis.Generator().manual_seed(0)))
    values = sorted(sum((b[0].tolist() for b in loader), []))
    assert values == [10 * p for p in picks] and len(loader) == 3
    batches = [[0, 29], [4], [1, 2, 3]]
    loader = DataLoader(dataset, batch_sampler=batches)
    reference = tud.DataLoader(tud.TensorDataset(torch.arange(30) * 10), batch_sampler=batches)
    assert len(loader) == len(reference) == 3
    for a, b in zip(loader, reference):
        assert_same_batch(a, b)
    ordered = BatchSampler(SequentialSampler(range(10)), 4, drop_last=False)
    assert list(ordered) == list(tud.BatchSampler(tud.SequentialSampler(range(10)), 4, drop_last=False))
    assert len(ordered) == 3 and len(BatchSampler(range(10), 4, drop_last=True)) == 2


def test_conflicting_loader_arguments_are_refused_like_torch():
    dataset = TensorDataset(genesis.arange(10))
    conflicts = [
        dict(sampler=SequentialSampler(dataset), shuffle=True),
        dict(batch_sampler=[[0]], batch_size=2),
        dict(batch_sampler=[[0]], shuffle=True),
        dict(batch_sampler=[[0]], drop_last=True),
        dict(batch_size=None, drop_last=True),
        dict(prefetch_factor=2),  # worker options without workers
        dict(persistent_workers=True),
        dict(timeout=-1),
    ]
    for kwargs in conflicts:
        with pytest.raises(ValueError):
            tud.DataLoader(tud.TensorDataset(torch.arange(10)), **kwargs)
        with pytest.raises(ValueError):
            DataLoader(dataset, **kwargs)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(dataset, batch_size=bad)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(dataset, num_workers=2)


def test_pytorchs_other_loader_options_are_taken_in_its_order():
    dataset = TensorDataset(genesis.arange(10))
    options = dict(timeout=5, worker_init_fn=print, pin_memory_device="cuda")
    loader = DataLoader(dataset, 4, False, None, None, 0, None, True, True, **options)  # pin_memory, drop_last
    reference = tud.DataLoader(tud.TensorDataset(torch.arange(10)), 4, False, None, None, 0, None, False, True)
    assert loader.pin_memory and loader.drop_last and len(loader) == len(reference) == 2
    for (batch,), (expected,) in zip(loader, reference):
        np.testing.assert_array_equal(batch.numpy(), expected.numpy())


# ---- datasets ---------------------------------------------------------------------------


def test_tensor_dataset_checks_and_indexing():
    with pytest.raises(ValueError, match="first dimension"):
        TensorDataset(genesis.zeros(3, 2), genesis.zeros(4))
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(genesis.tensor(1.0))
    with pytest.raises(TypeError, match="not a genesis Tensor"):
        TensorDataset(np.zeros(3))
    x, y = genesis.randn(5, 3), genesis.arange(5)
    dataset = TensorDataset(x, y)
    assert len(dataset) == 5
    features, label = dataset[-1]
    np.testing.assert_array_equal(features._data, x._data[-1])
    assert label.item() == 4


def test_subset_and_concat_match_torch():
    ours = ConcatDataset([list(range(5)), list(range(100, 103)), [], list(range(200, 204))])
    theirs = tud.ConcatDataset([list(range(5)), list(range(100, 103)), [], list(range(200, 204))])
    assert len(ours) == len(theirs) == 12
    assert [ours[i] for i in range(-12, 12)] == [theirs[i] for i in range(-12, 12)]
    for bad in (12, -13):
        with pytest.raises(IndexError):
            ours[bad]
    subset = Subset(ours, genesis.tensor([11, 0, 5]))
    assert len(subset) == 3 and [subset[i] for i in range(3)] == [203, 0, 100] and subset[[0, 2]] == [203, 100]

    class Squares(Dataset):
        def __getitem__(self, i):
            return i * i

        def __len__(self):
            return 4

    joined = Squares() + Squares()
    assert isinstance(joined, ConcatDataset) and [joined[i] for i in range(8)] == [0, 1, 4, 9] * 2


@pytest.mark.parametrize(
    "n, lengths",
    [
        (10, [3, 7]),
        (10, [0.3, 0.7]),
        (7, [0.5, 0.5]),
        (10, [0.33, 0.33, 0.34]),
        (101, [0.8, 0.1, 0.1]),
        (3, [0.25, 0.25, 0.25, 0.25]),
        (5, [5, 0]),
        (0, [0.5, 0.5]),
    ],
)
def test_random_split_sizes_match_torch(n, lengths):
    with warnings.catch_warnings(record=True) as our_warnings:
        warnings.simplefilter("always")
        ours = random_split(list(range(n)), lengths, generator=genesis.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as torch_warnings:
        warnings.simplefilter("always")
        theirs = tud.random_split(list(range(n)), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert len(our_warnings) == len(torch_warnings)  # both warn once per empty split made from fractions
    everything = sorted(x for split in ours for x in (split[i] for i in range(len(split))))
    assert everything == list(range(n))  # disjoint and covering


def test_random_split_is_reproducible_and_checks_lengths():
    def split(seed):
        parts = random_split(range(50), [0.5, 0.3, 0.2], generator=genesis.Generator().manual_seed(seed))
        return [p.indices for p in parts]

    assert split(4) == split(4) and split(4) != split(5)
    assert [len(p) for p in split(4)] == [25, 15, 10]
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(range(10), [4, 5])
    with pytest.raises(ValueError, match="fractions"):
        random_split(range(10), [0.5, 0.6])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(range(10), [12, -2])


# ---- iterable datasets --------------------------------------------------------------------


class Countdown(IterableDataset):
    def __init__(self, n, sized=False):
        self.n, self.sized = n, sized

    def __iter__(self):
        return iter([{"value": float(i), "index": i} for i in range(self.n, 0, -1)])

    def __len__(self):
        if not self.sized:
            raise TypeError("Countdown has no length")
        return self.n


class TorchCountdown(tud.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter([{"value": float(i), "index": i} for i in range(self.n, 0, -1)])

    def __len__(self):
        return self.n


@pytest.mark.parametrize("batch_size, drop_last", [(3, False), (3, True), (None, False), (10, False)])
def test_iterable_dataset_batches_match_torch(batch_size, drop_last):
    loader = DataLoader(Countdown(8, sized=True), batch_size=batch_size, drop_last=drop_last)
    reference = tud.DataLoader(TorchCountdown(8), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(reference)
    batches, expected = list(loader), list(reference)
    assert len(batches) == len(expected)
    for a, b in zip(batches, expected):
        assert_same_batch(a, b)


def test_iterable_dataset_restrictions():
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(Countdown(3), shuffle=True)
    with pytest.raises(ValueError, match="sampler"):
        DataLoader(Countdown(3), sampler=[0, 1])
    with pytest.raises(TypeError, match="no length"):
        len(DataLoader(Countdown(3), batch_size=2))
    with pytest.raises(TypeError):
        Countdown(2) + Countdown(2)


def test_the_pytorch_import_path_names_the_same_classes():
    import genesis.utils.data as utils_data

    for name in utils_data.__all__:
        assert getattr(utils_data, name) is getattr(genesis.data, name)
    assert set(utils_data.__all__) == set(genesis.data.__all__)
    loader = genesis.utils.data.DataLoader(utils_data.TensorDataset(genesis.arange(6)), batch_size=4)
    assert [batch.numpy().tolist() for (batch,) in loader] == [[0, 1, 2, 3], [4, 5]]
