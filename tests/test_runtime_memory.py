"""The compiled programs' caching allocator: big blocks are pooled, cache-line aligned, and handed out
again only when no array carved from them is alive."""

import os
import platform
import resource
import subprocess
import sys

import numpy as np
import pytest

import genesis  # its import configures malloc
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
    data = np.arange(40_000, dtype=np.float64)[1:]  # numpy's own allocation, rarely line-aligned
    made = genesis.tensor(data, dtype=genesis.float32)
    assert made._data.ctypes.data % memory.ALIGNMENT == 0 and not np.shares_memory(made._data, data)
    np.testing.assert_array_equal(made.numpy(), data.astype(np.float32))


GLIBC = platform.libc_ver()[0] == "glibc"
ARRAY_BYTES = 64 << 20  # over glibc's largest dynamic mmap threshold (32 MB): by default each one is a fresh mmap


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory configures glibc's malloc; this C library is another")
def test_a_freed_large_array_is_reused_without_page_faults():
    """genesis's import asks malloc to keep freed memory: an array of a size just freed faults in no
    pages (by default a 64 MB one faults in every page again: 16,384 of 4 KB, or 32 huge pages)."""
    for _ in range(3):
        warm = np.ones(ARRAY_BYTES // 8)
        del warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    again = np.ones(ARRAY_BYTES // 8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert again.sum() == ARRAY_BYTES // 8
    assert faults < 16


def test_keeping_freed_memory_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("GENESIS_KEEP_FREED_MEMORY", "0")
    assert memory.keep_freed_memory() is False


# a compiled ResNet-18 training step on small images (the benchmark's model), called from the top of a
# fresh interpreter's stack as a training script calls it: page faults per step after warm-up
BIG_PROGRAM = """
import resource
import genesis
from genesis.bench import train
spec = ("resnet", (8, 16, 32, 64), 8)
x, y = train.batch(spec, 2)
_, step = train.genesis_setup(spec)
compiled = genesis.compile(step)
for _ in range(3):
    compiled(x, y).item()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
losses = [compiled(x, y).item() for _ in range(3)]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, losses[0] > losses[-1])
"""


def test_a_big_compiled_program_faults_in_no_pages_per_call(tmp_path):
    """A program has a local per value: a ResNet-18 training step's frame (over 1,500 locals) filled
    one of CPython's stack chunks, and as a plain function each library call it made (a
    convolution's, a few frames deep) mapped a fresh chunk and unmapped it on return: about 560
    page faults a step. Run as a generator, it faults in none."""
    environment = {**os.environ, "GENESIS_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", BIG_PROGRAM], capture_output=True, text=True, env=environment, timeout=300, check=True
    )
    faults, trains = result.stdout.split()
    assert trains == "True"
    assert int(faults) < 30, result.stdout
