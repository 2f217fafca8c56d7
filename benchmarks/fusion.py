"""Fused against eager: genesis eager, compiled (numpy and default backends), PyTorch eager and torch.compile.

The cases (genesis/bench/fusion.py): the elementwise chain tanh(x*y+1)*0.5 + exp(-x)*y over 8M
float32, softmax and layer_norm over (4096, 1024), batch_norm + relu in training and eval mode, a
bias add + GELU, and an MLP forward (784-1024-1024-10, batch 256, GELU). Each case prints its
times, the ratios, and from genesis's compile report the kernels per call and the bytes a call
moves eager against fused. `python -m genesis.bench` runs these with the other benchmarks and
plots them.

Run:    python benchmarks/fusion.py [--rounds 5] [--json results.json] [--no-torch-compile]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genesis.bench import fusion
from genesis.bench.machine import environment
from genesis.bench.report import write_json
from genesis.bench.timing import print_comparison


def print_rows(rows) -> None:
    print_comparison(rows)
    for row in rows:
        compiled = row["roofline"]["genesis compiled"]
        print(
            f"{row['case']:28s} kernels/call {row['kernels_per_call']}, bytes/call eager {row['bytes_eager']:,} "
            f"fused {row['bytes_fused']:,} ({compiled['gb_per_s']:.1f} GB/s, {compiled['gflop_per_s']:.1f} GF/s), "
            f"compile {row['genesis_compile_seconds'] * 1e3:.0f} ms"
            + (f" (torch.compile {row['torch_compile_seconds']:.1f} s)" if "torch_compile_seconds" in row else "")
            + f", max |compiled - eager| {row['max_abs_difference']:.2e}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case (median reported)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--no-torch-compile", action="store_true", help="skip torch.compile (it needs a C++ compiler)")
    args = parser.parse_args(argv)
    print(environment())
    rows = [fusion.run_case(case, args.rounds, torch_compile=not args.no_torch_compile) for case in fusion.cases()]
    print_rows(rows)
    if args.json:
        write_json(args.json, rows)


if __name__ == "__main__":
    main()
