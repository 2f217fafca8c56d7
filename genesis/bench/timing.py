"""Timing: the variants of a case take turns in short rounds; each gets the median of its rounds and
their spread (the interquartile range).

A noisy machine (a core at half speed for a minute, other jobs) slows whatever runs in that spell.
Timed in turns, every variant meets the same spells, and the median over rounds drops the worst of
them; the spread says how far a median can be trusted. Figures compare only within one run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    samples: tuple  # seconds per call, one per round
    calls: int  # calls per sample

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        first, _, third = statistics.quantiles(self.samples, n=4, method="inclusive")
        return first, third

    @property
    def spread(self) -> float:
        first, third = self.quartiles
        return third - first

    def as_dict(self) -> dict:
        first, third = self.quartiles
        return {
            "median": self.median,
            "q1": first,
            "q3": third,
            "spread": self.spread,
            "samples": list(self.samples),
            "calls_per_sample": self.calls,
        }


WARM_UP_CALLS = 3  # a compiled function runs its first call eagerly and compiles at its second


def calls_per_sample(fn, min_seconds: float) -> int:
    """Enough calls for a sample to last `min_seconds`, so that the clock's resolution and the first
    call after another variant (cold caches, its page faults) weigh little."""
    for _ in range(WARM_UP_CALLS):  # the first calls pay for compiling, thread pools and allocator growth
        fn()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - start >= min_seconds:
            return calls
        calls *= 2


def sample(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


# Idle time before each sample. A library's worker threads spin for a while after its last call
# (OpenBLAS's, PyTorch's OpenMP threads, genesis's C pool) and take cores from whatever runs next:
# on the 2-core machine PyTorch's MLP b64 step took 6.4 ms right after genesis's, 1.9 ms after half
# a second's pause, and genesis's 2.7 against 1.5 ms after PyTorch's. The first call after the pause
# is slow in turn (the virtual CPUs come back from idle with cold caches: a fused Adam step of 0.5 ms
# took 15 ms after 0.5 s idle, 1.5 ms after 10 ms), so an untimed call of the variant itself goes
# before each sample.
SETTLE_SECONDS = 0.5


def measure(variants: dict, rounds: int, min_seconds: float = 0.02, settle: float | None = None) -> dict[str, Timing]:
    """Each variant's Timing over `rounds` interleaved rounds. Finding the calls per sample is the
    warm-up round, discarded. Each round starts at the next variant, so none always follows the same
    one (and inherits its cache state); each sample starts after `settle` seconds (default
    SETTLE_SECONDS) idle, so that the threads of the variant before it have gone to sleep, and one
    untimed call."""
    settle = SETTLE_SECONDS if settle is None else settle
    calls = {name: calls_per_sample(fn, min_seconds) for name, fn in variants.items()}
    names = list(variants)
    samples = {name: [] for name in names}
    for round_index in range(rounds):
        start = round_index % len(names)
        for name in names[start:] + names[:start]:
            time.sleep(settle)
            variants[name]()  # the call back from idle, untimed
            samples[name].append(sample(variants[name], calls[name]))
    return {name: Timing(tuple(samples[name]), calls[name]) for name in names}


def record(row: dict, timings: dict[str, Timing]) -> dict:
    """Put timings on a result row: `seconds` holds the medians (the format `benchmarks/before_after.py`
    compares across revisions), `timing` each variant's quartiles and samples."""
    row.setdefault("seconds", {}).update({name: t.median for name, t in timings.items()})
    row.setdefault("timing", {}).update({name: t.as_dict() for name, t in timings.items()})
    return row


@contextmanager
def fresh_cache():
    """An empty disk cache for the duration, so that the first call's compile time is a cold one."""
    before = os.environ.get("GENESIS_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="genesis-bench-cache-") as cache_dir:
        os.environ["GENESIS_CACHE_DIR"] = cache_dir
        try:
            yield cache_dir
        finally:
            if before is None:
                del os.environ["GENESIS_CACHE_DIR"]
            else:
                os.environ["GENESIS_CACHE_DIR"] = before


def load_torch():
    """PyTorch, the peer every case is timed against, or None where it is not installed. torch.compile
    compiles in this process: a pool of compile workers would keep running after its first call and
    take the cores from whatever is timed next."""
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    try:
        import torch
    except ImportError:
        return None
    return torch


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.2f} us"
    return f"{seconds * 1e3:8.2f} ms"


# "genesis compiled" is the default backend (C where a compiler is found); "genesis numpy" the numpy one
NAMES = ["genesis eager", "genesis numpy", "genesis compiled", "torch eager", "torch.compile"]


def print_comparison(rows) -> None:
    """One line per case: the variants' times, eager/compiled, and compiled against torch.compile."""
    print(f"{'case':28s}" + "".join(f"{n:>18s}" for n in NAMES) + f"{'eager/compiled':>16s}{'compiled/t.compile':>20s}")
    for row in rows:
        t = row["seconds"]
        cells = "".join(f"{format_time(t[n]) if n in t else '-':>18s}" for n in NAMES)
        vs = f"{t['genesis compiled'] / t['torch.compile']:.2f}x" if "torch.compile" in t else "-"
        print(f"{row['case']:28s}{cells}{t['genesis eager'] / t['genesis compiled']:>15.2f}x{vs:>20s}")
    print()
