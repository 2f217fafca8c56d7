"""Whole training steps: genesis eager, compiled (numpy and default backends), PyTorch eager and torch.compile.

Models: MLP 784-256-256-10 at batch 64 and 784-1024-1024-10 at batch 256, GELU,
cross-entropy, Adam, clip_grad_norm_(1.0). Reports step times and ratios,
genesis's compile time (the first call with a cold disk cache; the second call
traces once more), the first call in a fresh process with a warm disk cache,
kernels per step, and peak memory of one step (tracemalloc) eager against
compiled.

Run:    python benchmarks/train_step.py [--rounds 5] [--json results.json] [--no-torch-compile]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

import genesis
from genesis import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import environment, measure, print_comparison, save_json  # noqa: E402

try:
    import torch
except ImportError:  # torch is a test-only dependency: report without it
    torch = None

CONFIGS = [("MLP 784-256-256-10 b64", (784, 256, 256, 10), 64),
           ("MLP 784-1024-1024-10 b256", (784, 1024, 1024, 10), 256)]


def genesis_setup(sizes):
    genesis.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.GELU()] if i < len(sizes) - 2 else [])
    model = nn.Sequential(*layers)
    optimizer = genesis.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    return model, step


def torch_setup(sizes, model):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.GELU()] if i < len(sizes) - 2 else [])
    reference = torch.nn.Sequential(*layers)
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in model.state_dict().items()})
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3)

    def step(x, y):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(reference(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        optimizer.step()
        return loss

    return step


def peak_bytes(fn) -> int:
    """Peak traced memory of one call, above what was allocated before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak


WARM_START = """
import sys, time
sys.path.insert(0, {here!r})
from train_step import genesis_setup, batch
import genesis
_, step = genesis_setup({sizes!r})
x, y = batch({sizes!r}, {batch_size})
started = time.perf_counter()
compiled = genesis.compile(step)
compiled(x, y).item()
print(time.perf_counter() - started, compiled.stats["disk_cache_hits"])
"""


def batch(sizes, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    return (genesis.tensor(rng.standard_normal((batch_size, sizes[0]), dtype=np.float32)),
            genesis.tensor(rng.integers(0, sizes[-1], batch_size)))


def warm_start_seconds(sizes, batch_size, cache_dir) -> tuple[float, int]:
    """A fresh process (imports and the model built first): compile from the warm disk cache and run
    the first step, which traces and loads the generated program instead of generating it."""
    script = WARM_START.format(here=str(Path(__file__).resolve().parent), sizes=sizes, batch_size=batch_size)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, GENESIS_CACHE_DIR=cache_dir))
    seconds, hits = done.stdout.split()
    return float(seconds), int(hits)


def run_config(name, sizes, batch_size, rounds):
    cache_dir = tempfile.mkdtemp(prefix="genesis-bench-cache-")
    os.environ["GENESIS_CACHE_DIR"] = cache_dir
    x, y = batch(sizes, batch_size)
    _, eager_step = genesis_setup(sizes)
    model, step = genesis_setup(sizes)
    compiled = genesis.compile(step)
    started = time.perf_counter()
    compiled(x, y)
    first_compile = time.perf_counter() - started
    started = time.perf_counter()
    compiled(x, y)
    second_call = time.perf_counter() - started  # traces once more (Adam made its state on the first call)
    eager_step(x, y)
    row = {"case": name, "first_call_seconds": first_compile, "second_call_seconds": second_call,
           "kernels_per_step": compiled.stats["kernels_per_call"],
           "peak_bytes_eager": peak_bytes(lambda: eager_step(x, y)),
           "peak_bytes_compiled": peak_bytes(lambda: compiled(x, y))}
    row["warm_start_seconds"], row["warm_start_disk_hits"] = warm_start_seconds(sizes, batch_size, cache_dir)
    _, numpy_step = genesis_setup(sizes)
    numpy_compiled = genesis.compile(numpy_step, backend="numpy")
    row["seconds"] = measure({"genesis eager": lambda: eager_step(x, y), "genesis numpy": lambda: numpy_compiled(x, y),
                              "genesis compiled": lambda: compiled(x, y)}, rounds, min_seconds=0.25)
    row["_torch_inputs"] = (sizes, model, x, y)
    return row


def run_torch(row, rounds, use_torch_compile):
    """The PyTorch side, measured after every genesis config (torch.compile's compile workers and
    torch's spinning OpenMP threads would otherwise steal the cores from genesis)."""
    sizes, model, x, y = row.pop("_torch_inputs")
    t_step = torch_setup(sizes, model)
    tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())
    variants = {"torch eager": lambda: t_step(tx, ty)}
    if use_torch_compile:
        t_compiled = torch.compile(t_step)
        started = time.perf_counter()
        t_compiled(tx, ty)
        row["torch_compile_seconds"] = time.perf_counter() - started
        variants["torch.compile"] = lambda: t_compiled(tx, ty)
    row["seconds"].update(measure(variants, rounds, min_seconds=0.25))


def print_rows(rows) -> None:
    print_comparison(rows)
    for row in rows:
        torch_compile = f", torch.compile {row['torch_compile_seconds']:.2f} s" if "torch_compile_seconds" in row else ""
        print(f"{row['case']:28s} compile: first call {row['first_call_seconds']:.2f} s, second call "
              f"{row['second_call_seconds']:.2f} s, fresh process with warm cache {row['warm_start_seconds']:.2f} s "
              f"({row['warm_start_disk_hits']} programs from disk){torch_compile}")
        print(f"{'':28s} kernels per step {row['kernels_per_step']}; peak memory per step eager "
              f"{row['peak_bytes_eager'] / 2**20:.1f} MiB, compiled {row['peak_bytes_compiled'] / 2**20:.1f} MiB "
              f"({row['peak_bytes_compiled'] / row['peak_bytes_eager']:.2f}x)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-torch-compile", action="store_true")
    args = parser.parse_args(argv)
    print(environment())
    rows = [run_config(name, sizes, batch_size, args.rounds) for name, sizes, batch_size in CONFIGS]
    for row in rows:
        if torch is not None:
            run_torch(row, args.rounds, not args.no_torch_compile)
        row.pop("_torch_inputs", None)
    print_rows(rows)
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
