"""The command line: read a dump, or run a benchmark.

    python -m genesis.compiler show DUMP_DIR [--ir PASS]   # each program's report, or its IR after a pass
    python -m genesis.compiler bench fusion|train_step|eager_overhead [ARGS...]

`show` reads what `dump_dir=` / `GENESIS_DUMP` wrote: one section per
compiled program with the report (groups, kernels, bytes, refusals); `--ir
11_fusion` prints that pass's IR instead. `bench` runs a script from the
source checkout's `benchmarks/` folder (it is not installed with the package).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

from genesis.compiler.report import format_report

BENCHMARKS = ("fusion", "train_step", "eager_overhead")


def show(directory: Path, ir: str | None) -> int:
    programs = sorted(p for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []
    if not programs:
        print(
            f"no compiled programs in {directory} (expected the folder given as dump_dir or GENESIS_DUMP)",
            file=sys.stderr,
        )
        return 1
    for program in programs:
        print(f"== {program.name}")
        if ir is not None:
            matches = sorted(program.glob(f"{ir}*.txt"))
            print(matches[0].read_text() if matches else f"(no IR file named {ir}*.txt)")
            continue
        report = program / "report.json"
        try:
            print(format_report(json.loads(report.read_text())))
        except (OSError, ValueError, KeyError) as error:
            print(f"(cannot read {report}: {error})")
    return 0


def bench(name: str, arguments: list[str]) -> int:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    if not script.exists():
        print(f"{script} not found: the benchmarks live in genesis's source checkout", file=sys.stderr)
        return 1
    sys.argv = [str(script), *arguments]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesis.compiler", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show_parser = commands.add_parser("show", help="print the reports (or one pass's IR) of a dump folder")
    show_parser.add_argument("directory", type=Path)
    show_parser.add_argument("--ir", help="a pass's file name prefix, e.g. 00_traced or 11_fusion")
    bench_parser = commands.add_parser("bench", help="run a benchmark script")
    bench_parser.add_argument("name", choices=BENCHMARKS)
    bench_parser.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "show":
        return show(args.directory, args.ir)
    return bench(args.name, args.arguments)


if __name__ == "__main__":
    sys.exit(main())
