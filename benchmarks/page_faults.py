"""Page faults per training step: genesis eager and compiled, and PyTorch eager, after warm-up.

A minor page fault costs about 2.5 us on the 2-core machine; an array that
comes fresh from the OS faults once per 4 KiB page it touches. A step that
reuses its memory faults 0 times, however long it runs. Counts come from
`resource.getrusage` over the whole process (every thread), so they are exact
and do not move with the machine's load, unlike times.

Run: python benchmarks/page_faults.py [--steps N] [--json PATH]
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import genesis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import environment, save_json  # noqa: E402
from train_step import CONFIGS, batch, genesis_setup, torch_setup  # noqa: E402

try:
    import torch
except ImportError:  # torch is a test-only dependency: report without it
    torch = None

WARM_UP = 3  # the first steps grow pools, caches and the allocator's arenas


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def faults_per_step(step, steps: int) -> float:
    for _ in range(WARM_UP):
        step()
    before = minor_faults()
    for _ in range(steps):
        step()
    return (minor_faults() - before) / steps


def measure_config(spec, batch_size, steps) -> dict:
    x, y = batch(spec, batch_size)
    model, eager_step = genesis_setup(spec)
    row = {"genesis eager": faults_per_step(lambda: eager_step(x, y), steps)}
    _, step = genesis_setup(spec)
    compiled = genesis.compile(step)
    row["genesis compiled"] = faults_per_step(lambda: compiled(x, y), steps)
    if torch is not None:
        torch_step = torch_setup(spec, model)
        tx, ty = torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())
        row["torch eager"] = faults_per_step(lambda: torch_step(tx, ty), steps)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(environment())
    rows = []
    for name, spec, batch_size in CONFIGS:
        rows.append({"case": name, "faults_per_step": measure_config(spec, batch_size, args.steps)})
        print(f"{name:28s} " + "  ".join(f"{k} {v:8.1f}" for k, v in rows[-1]["faults_per_step"].items()), flush=True)
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
