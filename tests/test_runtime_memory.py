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
