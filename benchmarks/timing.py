"""Timing shared by the benchmarks: interleaved rounds, the median of each, one process.

Machines are noisy, so variants of a case are timed round-robin (a burst of
noise hits all of them alike) and the median of the rounds is reported.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


def time_per_call(fn, min_seconds=0.02) -> float:
    """Seconds per call, from a loop long enough to swamp the clock's resolution."""
    fn()
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls
        calls *= 2


def measure(variants: dict, rounds: int, min_seconds=0.02) -> dict:
    """Median seconds per call of each variant, after one discarded warm-up round (the first calls in a
    process pay for thread pools, allocator growth and caches, whichever variant comes first)."""
    samples = {name: [] for name in variants}
    for round_index in range(rounds + 1):
        for name, fn in variants.items():
            seconds = time_per_call(fn, min_seconds)
            if round_index:
                samples[name].append(seconds)
    return {name: statistics.median(times) for name, times in samples.items()}


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


def environment() -> str:
    """One line naming the versions (and torch's thread count) the figures were measured with."""
    import numpy

    import genesis

    try:
        import torch

        peer = f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        peer = "torch not installed"
    from genesis.compiler.api import default_backend

    return (
        f"python {sys.version.split()[0]}, numpy {numpy.__version__}, genesis {genesis.__version__} "
        f"(compiled: the {default_backend()} backend), {peer}\n"
    )


def save_json(path: Path | None, rows) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=2))
