"""The compiled programs' caching allocator: big blocks are pooled, cache-line aligned, and handed out
again only when no array carved from them is alive."""

import numpy as np

from genesis.runtime import memory


def test_pooled_blocks_are_aligned_reused_when_free_and_never_while_in_use():
    memory.clear()
    first = memory.empty((300, 257), np.float32)
    assert first.ctypes.data % memory.ALIGNMENT == 0 and first.flags.c_contiguous and first.shape == (300, 257)
    address = first.ctypes.data
    view = first[10:20]  # a view made by the user keeps the block alive
    del first
    second = memory.empty((300, 257), np.float32)
    assert second.ctypes.data != address
    del view
    third = memory.empty((257, 300), np.float32)  # same bytes, another shape
    assert third.ctypes.data == address and third.ctypes.data % memory.ALIGNMENT == 0
    assert third.ctypes.data != second.ctypes.data  # second is alive: never handed out twice


def test_small_arrays_come_from_numpy_and_reuse_reads_a_dead_buffer_as_a_new_shape():
    small = memory.empty((4, 4), np.float64)
    assert small.base is None and small.shape == (4, 4)
    big = memory.empty((1000, 100), np.float32)
    reused = memory.reuse(big, (50, 10), np.float64)
    assert reused.ctypes.data == big.ctypes.data and reused.shape == (50, 10) and reused.dtype == np.float64


def test_tensors_made_from_big_data_start_on_a_cache_line_and_own_a_copy():
    import genesis

    data = np.arange(40_000, dtype=np.float64)[1:]  # numpy's own allocation, rarely line-aligned
    made = genesis.tensor(data, dtype=genesis.float32)
    assert made._data.ctypes.data % memory.ALIGNMENT == 0 and not np.shares_memory(made._data, data)
    np.testing.assert_array_equal(made.numpy(), data.astype(np.float32))
