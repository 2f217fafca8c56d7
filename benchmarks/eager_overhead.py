"""Eager dispatch overhead: genesis against raw numpy and PyTorch eager, side by side.

Small ops (64x64, inputs with requires_grad) show what genesis's Python
dispatch and autograd recording cost per op; large ops (4M elements) show
whether that cost disappears behind the kernel. Every variant of one case is
timed in interleaved rounds in the same process, and the medians are compared,
so the ratios hold even on a noisy machine.

Run: python benchmarks/eager_overhead.py [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import genesis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import environment, format_time, measure, save_json  # noqa: E402

try:
    import torch
except ImportError:  # torch is a test-only dependency: report without it
    torch = None


def small_cases():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 64, 64), dtype=np.float32)
    ga, gb = (genesis.tensor(v, requires_grad=True) for v in (a, b))
    cases = {
        "add 64x64 (requires_grad)": {
            "numpy": lambda: np.add(a, b),
            "genesis": lambda: ga + gb,
        },
        "matmul 64x64 (requires_grad)": {
            "numpy": lambda: np.matmul(a, b),
            "genesis": lambda: ga @ gb,
        },
    }
    if torch is not None:
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
        cases["add 64x64 (requires_grad)"]["torch"] = lambda: ta + tb
        cases["matmul 64x64 (requires_grad)"]["torch"] = lambda: ta @ tb
    return cases


def large_cases():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4 * 1024 * 1024), dtype=np.float32)
    m1, m2 = rng.standard_normal((2, 2048, 2048), dtype=np.float32)
    ga, gb = genesis.tensor(a), genesis.tensor(b)
    gm1, gm2 = genesis.tensor(m1), genesis.tensor(m2)
    cases = {
        "add 4M": {"numpy": lambda: np.add(a, b), "genesis": lambda: ga + gb},
        "exp 4M": {"numpy": lambda: np.exp(a), "genesis": lambda: ga.exp()},
        "sum 4M": {"numpy": lambda: np.sum(a), "genesis": lambda: ga.sum()},
        "matmul 2048x2048": {"numpy": lambda: np.matmul(m1, m2), "genesis": lambda: gm1 @ gm2},
    }
    if torch is not None:
        ta, tb, tm1, tm2 = (torch.from_numpy(v) for v in (a, b, m1, m2))
        cases["add 4M"]["torch"] = lambda: ta + tb
        cases["exp 4M"]["torch"] = lambda: ta.exp()
        cases["sum 4M"]["torch"] = lambda: ta.sum()
        cases["matmul 2048x2048"]["torch"] = lambda: tm1 @ tm2
    return cases


def run(rounds: int) -> list[dict]:
    rows = []
    for group, cases, group_rounds in (("small", small_cases(), rounds), ("large", large_cases(), max(3, rounds // 2))):
        for name, variants in cases.items():
            times = measure(variants, group_rounds)
            row = {"group": group, "case": name, "seconds": times, "genesis/numpy": times["genesis"] / times["numpy"]}
            if "torch" in times:
                row["genesis/torch"] = times["genesis"] / times["torch"]
            rows.append(row)
    return rows


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
    save_json(args.json, rows)


if __name__ == "__main__":
    main()
