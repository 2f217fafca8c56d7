"""Whole training steps: genesis eager, compiled (numpy and default backends), PyTorch eager and
torch.compile, all timed in the same interleaved rounds.

Models: MLP 784-256-256-10 at batch 64 and 784-1024-1024-10 at batch 256 (GELU), a pre-norm
transformer block (attention with 4 heads, layer_norm, a GELU MLP) over 32 sequences of 64 tokens
of width 128, a small CNN (two conv-BatchNorm-ReLU-maxpool stages) over 64 images of 3x32x32, a
ResNet-18-shaped network (CIFAR's: a 3x3 stem, four stages of two basic blocks) over 32 of them,
and an LSTM language model (embedding 64, one LSTM layer of 128, a linear head over 1000 tokens)
over 16 sequences of 32 tokens; cross-entropy, Adam, clip_grad_norm_(1.0). Besides step times:
genesis's compile time (the first call with a cold disk cache; the second call, which traces once
more), the first call of a fresh process with a warm disk cache, torch.compile's first call,
kernels per step, peak memory of one step (tracemalloc), eager against compiled, and page faults
per step (PyTorch eager's too).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import genesis
from genesis import nn
from genesis.bench.timing import fresh_cache, load_torch, measure, record

# (name, model, batch): an MLP by its layer sizes; ("block", width, heads, tokens) a transformer block;
# ("cnn", channels, side) the CNN over images of 3 x side x side; ("resnet", widths, side) a
# ResNet-18-shaped network (two basic blocks per stage) over images of 3 x side x side; ("lstm",
# vocabulary, embedding, hidden, tokens) a language model predicting each next token
CONFIGS = [
    ("MLP 784-256-256-10 b64", (784, 256, 256, 10), 64),
    ("MLP 784-1024-1024-10 b256", (784, 1024, 1024, 10), 256),
    ("block d128 h4 t64 b32", ("block", 128, 4, 64), 32),
    ("CNN 32-64 BN 32x32 b64", ("cnn", 32, 32), 64),
    ("ResNet-18 32x32 b32", ("resnet", (64, 128, 256, 512), 32), 32),
    ("LSTM LM v1000 h128 t32 b16", ("lstm", 1000, 64, 128, 32), 16),
]
QUICK = ("MLP 784-256-256-10 b64", "block d128 h4 t64 b32", "CNN 32-64 BN 32x32 b64")
CLASSES = 10


def configs(names=None) -> list[tuple]:
    return [c for c in CONFIGS if names is None or c[0] in names]


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
    if spec[0] == "resnet":
        return _resnet(nn_lib, spec[1])
    if spec[0] == "lstm":
        return _language_model(nn_lib, *spec[1:4])
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


def _resnet(nn_lib, widths):
    """ResNet-18 for 32x32 images (a 3x3 stem, no max-pool): four stages of two basic blocks."""

    class BasicBlock(nn_lib.Module):
        def __init__(self, a, b, stride):
            super().__init__()
            self.conv1 = nn_lib.Conv2d(a, b, 3, stride, 1, bias=False)
            self.bn1 = nn_lib.BatchNorm2d(b)
            self.conv2 = nn_lib.Conv2d(b, b, 3, 1, 1, bias=False)
            self.bn2 = nn_lib.BatchNorm2d(b)
            self.shortcut = (
                nn_lib.Sequential(nn_lib.Conv2d(a, b, 1, stride, bias=False), nn_lib.BatchNorm2d(b))
                if stride != 1 or a != b
                else nn_lib.Identity()
            )

        def forward(self, x):
            out = nn_lib.functional.relu(self.bn1(self.conv1(x)))
            return nn_lib.functional.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    layers = [nn_lib.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn_lib.BatchNorm2d(widths[0]), nn_lib.ReLU()]
    for stage, width in enumerate(widths):
        before = widths[max(stage - 1, 0)]
        layers += [BasicBlock(before, width, 1 if stage == 0 else 2), BasicBlock(width, width, 1)]
    layers += [nn_lib.AdaptiveAvgPool2d(1), nn_lib.Flatten(), nn_lib.Linear(widths[-1], CLASSES)]
    return nn_lib.Sequential(*layers)


def _language_model(nn_lib, vocabulary, embedding, hidden):
    """Embedding, one LSTM layer, a linear head: each position's logits for the next token, flattened
    to (batch * tokens, vocabulary) as cross-entropy takes them."""

    class LanguageModel(nn_lib.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn_lib.Embedding(vocabulary, embedding)
            self.lstm = nn_lib.LSTM(embedding, hidden, batch_first=True)
            self.head = nn_lib.Linear(hidden, vocabulary)

        def forward(self, tokens):
            states, _ = self.lstm(self.embedding(tokens))
            return self.head(states).reshape(-1, vocabulary)

    return LanguageModel()


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


def torch_setup(torch, spec, model):
    reference = make_model(torch.nn, spec)
    reference.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy()) for k, v in model.state_dict().items()})
    return training_step(torch, reference, torch.optim.Adam(reference.parameters(), lr=1e-3))


def batch(spec, batch_size, seed=0):
    rng = np.random.default_rng(seed)
    if spec[0] == "block":
        shape, classes = (batch_size, spec[3], spec[1]), CLASSES
    elif spec[0] in ("cnn", "resnet"):
        shape, classes = (batch_size, 3, spec[2], spec[2]), CLASSES
    elif spec[0] == "lstm":
        tokens = rng.integers(0, spec[1], (batch_size, spec[4] + 1))
        return genesis.tensor(tokens[:, :-1]), genesis.tensor(tokens[:, 1:].reshape(-1))
    else:
        shape, classes = (batch_size, spec[0]), spec[-1]
    return (
        genesis.tensor(rng.standard_normal(shape, dtype=np.float32)),
        genesis.tensor(rng.integers(0, classes, batch_size)),
    )


def peak_bytes(fn) -> int:
    """Peak traced memory of one call, above what was allocated before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak


WARM_UP_STEPS = 3  # the first steps grow pools, caches and the allocator's arenas


def faults_per_call(fn, calls: int = 3, warm_up: int = WARM_UP_STEPS) -> float:
    """Minor page faults per call after warm-up: each is memory the OS hands out afresh (about 2.5 us
    a page on the 2-core machine), and a step that reuses its memory makes none. getrusage counts
    them over the whole process, every thread, so the count is exact and ignores the machine's load."""
    for _ in range(warm_up):
        fn()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


WARM_START = """
import sys, time
from genesis.bench.train import genesis_setup, batch
import genesis
_, step = genesis_setup({spec!r})
x, y = batch({spec!r}, {batch_size})
started = time.perf_counter()
compiled = genesis.compile(step)
compiled(x, y).item()
print(time.perf_counter() - started, compiled.stats["disk_cache_hits"])
"""


def warm_start_seconds(spec, batch_size, cache_dir) -> tuple[float, int]:
    """A fresh process (imports and the model built first): compile from the warm disk cache and run
    the first step, which traces and loads the generated program instead of generating it. The
    process imports the genesis this one runs."""
    checkout = str(Path(genesis.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (checkout, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", WARM_START.format(spec=spec, batch_size=batch_size)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=dict(os.environ, GENESIS_CACHE_DIR=cache_dir, PYTHONPATH=path),
    )
    seconds, hits = done.stdout.split()
    return float(seconds), int(hits)


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run_config(name, spec, batch_size, rounds, min_seconds=0.25, torch_compile=True) -> dict:
    """One model's figures; its step variants timed in the same interleaved rounds."""
    x, y = batch(spec, batch_size)
    _, eager_step = genesis_setup(spec)
    model, step = genesis_setup(spec)
    row = {"group": "train", "case": name}
    with fresh_cache() as cache_dir:
        compiled = genesis.compile(step)
        row["first_call_seconds"] = timed(lambda: compiled(x, y))
        # the second call traces once more: Adam made its state on the first
        row["second_call_seconds"] = timed(lambda: compiled(x, y))
        row["warm_start_seconds"], row["warm_start_disk_hits"] = warm_start_seconds(spec, batch_size, cache_dir)
        _, numpy_step = genesis_setup(spec)
        numpy_compiled = genesis.compile(numpy_step, backend="numpy")
        for _ in range(2):  # the compile and its confirming trace, while the cache directory exists
            numpy_compiled(x, y)
    row["kernels_per_step"] = compiled.stats["kernels_per_call"]
    row["peak_bytes_eager"] = peak_bytes(lambda: eager_step(x, y))
    row["peak_bytes_compiled"] = peak_bytes(lambda: compiled(x, y))
    variants = {
        "genesis eager": lambda: eager_step(x, y),
        "genesis numpy": lambda: numpy_compiled(x, y),
        "genesis compiled": lambda: compiled(x, y),
    }
    torch = load_torch()
    if torch is not None:
        t_step = torch_setup(torch, spec, model)
        tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())
        variants["torch eager"] = lambda: t_step(tx, ty)
        if torch_compile:
            t_compiled = torch.compile(t_step)
            row["torch_compile_seconds"] = timed(lambda: t_compiled(tx, ty))
            variants["torch.compile"] = lambda: t_compiled(tx, ty)
    # the steps above warmed every variant but torch's up: one more step each is warm-up enough
    row["faults_per_step"] = {
        name: faults_per_call(variants[name], warm_up=1 if name.startswith("genesis") else WARM_UP_STEPS)
        for name in ("genesis eager", "genesis compiled", "torch eager")
        if name in variants
    }
    return record(row, measure(variants, rounds, min_seconds))
