"""Whole training steps: genesis eager, compiled (numpy and default backends), PyTorch eager and torch.compile.

Models: MLP 784-256-256-10 at batch 64 and 784-1024-1024-10 at batch 256 (GELU),
a pre-norm transformer block (attention with 4 heads, layer_norm, a GELU
MLP) over 32 sequences of 64 tokens of width 128, and a small CNN (two
conv-BatchNorm-ReLU-maxpool stages) over 64 images of 3x32x32;
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

# (name, model, batch): an MLP by its layer sizes; ("block", width, heads, tokens) a transformer block;
# ("cnn", channels, side) the CNN over images of 3 x side x side
CONFIGS = [
    ("MLP 784-256-256-10 b64", (784, 256, 256, 10), 64),
    ("MLP 784-1024-1024-10 b256", (784, 1024, 1024, 10), 256),
    ("block d128 h4 t64 b32", ("block", 128, 4, 64), 32),
    ("CNN 32-64 BN 32x32 b64", ("cnn", 32, 32), 64),
]
CLASSES = 10


def make_model(nn_lib, spec):
    """The model of a config, in genesis (nn_lib=genesis.nn) or PyTorch (torch.nn): the same code."""
    if spec[0] == "block":
        _, width, heads, _ = spec

        class Block(nn_lib.Module):
            def __init__(self):
                super().__init__()
                self.norm1, self.norm2 = nn_lib.LayerNorm(width), nn_lib.LayerNorm(width)
                self.attention = nn_lib.MultiheadAttention(width, heads, batch_first=True)
                self.mlp = nn_lib.Sequential(
                    nn_lib.Linear(width, 4 * width), nn_lib.GELU(), nn_lib.Linear(4 * width, width)
                )
                self.head = nn_lib.Linear(width, CLASSES)

            def forward(self, x):
                h = self.norm1(x)
                x = x + self.attention(h, h, h, need_weights=False)[0]
                x = x + self.mlp(self.norm2(x))
                return self.head(x.mean(dim=1))

        return Block()
    if spec[0] == "cnn":
        _, channels, side = spec

        def stage(a, b):
            return [nn_lib.Conv2d(a, b, 3, padding=1), nn_lib.BatchNorm2d(b), nn_lib.ReLU(), nn_lib.MaxPool2d(2)]

        return nn_lib.Sequential(
            *stage(3, channels),
            *stage(channels, 2 * channels),
            nn_lib.Flatten(),
            nn_lib.Linear(2 * channels * (side // 4) ** 2, CLASSES),
        )
    layers = []
    for i, (a, b) in enumerate(zip(spec[:-1], spec[1:])):
        layers += [nn_lib.Linear(a, b)] + ([nn_lib.GELU()] if i < len(spec) - 2 else [])
    return nn_lib.Sequential(*layers)


def training_step(lib, model, optimizer):
    def step(x, y):
        optimizer.zero_grad()
        loss = lib.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    return step


def genesis_setup(spec):
    genesis.manual_seed(0)
    model = make_model(nn, spec)
    return model, training_step(genesis, model, genesis.optim.Adam(model.parameters(), lr=1e-3))


def torch_setup(spec, model):
    reference = make_model(torch.nn, spec)
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in model.state_dict().items()})
    return training_step(torch, reference, torch.optim.Adam(reference.parameters(), lr=1e-3))


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
_, step = genesis_setup({spec!r})
x, y = batch({spec!r}, {batch_size})
started = time.perf_counter()
compiled = genesis.compile(step)
compiled(x, y).item()
print(time.perf_counter() - started, compiled.stats["disk_cache_hits"])
"""


def batch(spec, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    if spec[0] == "block":
        shape, classes = (batch_size, spec[3], spec[1]), CLASSES
    elif spec[0] == "cnn":
        shape, classes = (batch_size, 3, spec[2], spec[2]), CLASSES
    else:
        shape, classes = (batch_size, spec[0]), spec[-1]
    return (
        genesis.tensor(rng.standard_normal(shape, dtype=np.float32)),
        genesis.tensor(rng.integers(0, classes, batch_size)),
    )


def warm_start_seconds(spec, batch_size, cache_dir) -> tuple[float, int]:
    """A fresh process (imports and the model built first): compile from the warm disk cache and run
    the first step, which traces and loads the generated program instead of generating it."""
    script = WARM_START.format(here=str(Path(__file__).resolve().parent), spec=spec, batch_size=batch_size)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, GENESIS_CACHE_DIR=cache_dir),
    )
    seconds, hits = done.stdout.split()
    return float(seconds), int(hits)


def run_config(name, spec, batch_size, rounds):
    cache_dir = tempfile.mkdtemp(prefix="genesis-bench-cache-")
    os.environ["GENESIS_CACHE_DIR"] = cache_dir
    x, y = batch(spec, batch_size)
    _, eager_step = genesis_setup(spec)
    model, step = genesis_setup(spec)
    compiled = genesis.compile(step)
    started = time.perf_counter()
    compiled(x, y)
    first_compile = time.perf_counter() - started
    started = time.perf_counter()
    compiled(x, y)
    second_call = time.perf_counter() - started  # traces once more (Adam made its state on the first call)
    eager_step(x, y)
    row = {
        "case": name,
        "first_call_seconds": first_compile,
        "second_call_seconds": second_call,
        "kernels_per_step": compiled.stats["kernels_per_call"],
        "peak_bytes_eager": peak_bytes(lambda: eager_step(x, y)),
        "peak_bytes_compiled": peak_bytes(lambda: compiled(x, y)),
    }
    row["warm_start_seconds"], row["warm_start_disk_hits"] = warm_start_seconds(spec, batch_size, cache_dir)
    _, numpy_step = genesis_setup(spec)
    numpy_compiled = genesis.compile(numpy_step, backend="numpy")
    row["seconds"] = measure(
        {
            "genesis eager": lambda: eager_step(x, y),
            "genesis numpy": lambda: numpy_compiled(x, y),
            "genesis compiled": lambda: compiled(x, y),
        },
        rounds,
        min_seconds=0.25,
    )
    row["_torch_inputs"] = (spec, model, x, y)
    return row


def run_torch(row, rounds, use_torch_compile):
    """The PyTorch side, measured after every genesis config (torch.compile's compile workers and
    torch's spinning OpenMP threads would otherwise steal the cores from genesis)."""
    spec, model, x, y = row.pop("_torch_inputs")
    t_step = torch_setup(spec, model)
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
        torch_compile = (
            f", torch.compile {row['torch_compile_seconds']:.2f} s" if "torch_compile_seconds" in row else ""
        )
        print(
            f"{row['case']:28s} compile: first call {row['first_call_seconds']:.2f} s, second call "
            f"{row['second_call_seconds']:.2f} s, fresh process with warm cache {row['warm_start_seconds']:.2f} s "
            f"({row['warm_start_disk_hits']} programs from disk){torch_compile}"
        )
        print(
            f"{'':28s} kernels per step {row['kernels_per_step']}; peak memory per step eager "
            f"{row['peak_bytes_eager'] / 2**20:.1f} MiB, compiled {row['peak_bytes_compiled'] / 2**20:.1f} MiB "
            f"({row['peak_bytes_compiled'] / row['peak_bytes_eager']:.2f}x)"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-torch-compile", action="store_true")
    args = parser.parse_args(argv)
    print(environment())
    rows = [run_config(name, spec, batch_size, args.rounds) for name, spec, batch_size in CONFIGS]
    for row in rows:
        if torch is not None:
            run_torch(row, args.rounds, not args.no_torch_compile)
        row.pop("_torch_inputs", None)
    print_rows(rows)
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
