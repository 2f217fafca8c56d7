"""Whole training steps: genesis eager, compiled (numpy and default backends), PyTorch eager and torch.compile.

The models (genesis/bench/train.py): MLP 784-256-256-10 at batch 64 and 784-1024-1024-10 at
batch 256 (GELU), a pre-norm transformer block over 32 sequences of 64 tokens of width 128, a
small CNN over 64 images of 3x32x32, and a ResNet-18-shaped network over 32 images of 3x32x32;
cross-entropy, Adam, clip_grad_norm_(1.0). Reports step
times and ratios, genesis's compile time (the first call with a cold disk cache; the second call
traces once more), the first call in a fresh process with a warm disk cache, kernels per step, and
peak memory of one step, eager against compiled, and page faults per step. `python -m genesis.bench` runs
these with the other benchmarks and plots them.

Run:    python benchmarks/train_step.py [--rounds 5] [--json results.json] [--no-torch-compile]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genesis.bench import train
from genesis.bench.machine import environment
from genesis.bench.report import write_json
from genesis.bench.timing import print_comparison


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
            f"({row['peak_bytes_compiled'] / row['peak_bytes_eager']:.2f}x); page faults per step "
            + ", ".join(f"{name} {faults:.0f}" for name, faults in row["faults_per_step"].items())
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-torch-compile", action="store_true")
    args = parser.parse_args(argv)
    print(environment())
    rows = [
        train.run_config(name, spec, batch_size, args.rounds, torch_compile=not args.no_torch_compile)
        for name, spec, batch_size in train.configs()
    ]
    print_rows(rows)
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
