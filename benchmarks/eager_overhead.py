"""Eager dispatch overhead: genesis against raw numpy and PyTorch eager, side by side.

Small ops (64x64, inputs with requires_grad) show what genesis's Python dispatch and autograd
recording cost per op; large ops (4M elements) show whether that cost disappears behind the kernel
(the cases: genesis/bench/eager.py). Every variant of one case is timed in interleaved rounds in
the same process, and the medians are compared, so the ratios hold even on a noisy machine.

Run: python benchmarks/eager_overhead.py [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genesis.bench import eager
from genesis.bench.machine import environment
from genesis.bench.report import write_json
from genesis.bench.timing import format_time


def run(rounds: int) -> list[dict]:
    # a large op's sample is long already: fewer rounds keep the run short
    return [
        eager.run_case(size, name, variants, rounds if size == "small" else max(3, rounds // 2))
        for size, name, variants in eager.cases()
    ]


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'case':32s} {'numpy':>11s} {'genesis':>11s} {'torch':>11s} {'genesis/numpy':>14s} {'genesis/torch':>14s}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        t = row["seconds"]
        torch_time = format_time(t["torch"]) if "torch" in t else "-"
        vs_torch = f"{row['genesis/torch']:.2f}x" if "genesis/torch" in row else "-"
        print(
            f"{row['case']:32s} {format_time(t['numpy']):>11s} {format_time(t['genesis']):>11s} "
            f"{torch_time:>11s} {row['genesis/numpy']:>13.2f}x {vs_torch:>14s}"
        )
    print("\ntargets: small ops genesis/torch <= 2x; 4M-element ops genesis/numpy <= 1.10x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per case (median is reported)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    print(environment())
    rows = run(args.rounds)
    print_table(rows)
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
