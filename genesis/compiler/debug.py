"""`GENESIS_DEBUG`: what the compiler tells a person as it works, on stderr. The one place that reads it.

- 1: one line per compile: the function, the backend, why it compiled (its
  first call, or the guard that missed), the time of each phase (trace,
  passes, codegen and build) and what came out (kernels, library calls,
  fallbacks, whether the disk cache had it);
- 2: and the fusion report: the groups, what did not fuse and why, the groups
  a backend left to numpy kernels;
- 3: and the IR after each pass;
- 4: and the source of every generated program and kernel.

Unset or 0 prints nothing. `GENESIS_DUMP=dir` writes the same things to files.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

LEVELS = range(5)
COMPILES, DECISIONS, PASSES, SOURCES = 1, 2, 3, 4


def level() -> int:
    """The level `GENESIS_DEBUG` asks for (read on each call, so a test or a session can change it)."""
    value = os.environ.get("GENESIS_DEBUG", "").strip()
    if value in ("", "0"):
        return 0
    if not value.isdigit() or int(value) not in LEVELS:
        raise ValueError(f"GENESIS_DEBUG={value!r}: expected a level from 0 (nothing) to 4 (every kernel's source)")
    return int(value)


def enabled(at: int) -> bool:
    return level() >= at


def show(at: int, text: str) -> None:
    """Print `text` when the level is at least `at`."""
    if enabled(at):
        print(text, file=sys.stderr, flush=True)


class PhaseTimes:
    """Seconds spent in each phase of one compile, summed over the forward and backward programs."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def compile_line(name: str, backend: str, why: str, seconds: dict, stats: dict) -> str:
    """The level-1 line for one compile."""
    total = sum(seconds.values())
    phases = ", ".join(f"{phase} {value:.3f}" for phase, value in seconds.items())
    fallbacks = len(stats.get("fallbacks") or {})  # groups a backend left to numpy kernels
    cached = "; from the disk cache" if stats.get("cache_hit") else ""
    made = ", ".join(
        _count(stats.get(key, 0) if key != "fallbacks" else fallbacks, word)
        for key, word in (("kernels", "kernel"), ("library_calls", "library call"), ("fallbacks", "numpy fallback"))
    )
    return f"genesis: compiled {name} for {backend} ({why}) in {total:.3f} s ({phases}): {made}{cached}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
