"""The command line: run every benchmark, or some groups, and write the results.

    python -m genesis.bench [--quick] [--out DIR] [--only fusion train eager] [--rounds N]
                            [--torch-compile | --no-torch-compile]

writes DIR/results.json, DIR/results.md (the tables, with the machine and versions) and, with
matplotlib installed, DIR/train_steps.png and DIR/roofline.png; the tables are printed too.
`train` covers the training steps' times, compile times (cold and warm), kernels, peak memory and
page faults. `--quick` (about a minute on two cores) runs fewer, shorter rounds over fewer cases
and leaves out torch.compile unless asked for.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from genesis.bench import suite
from genesis.bench.report import markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesis.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and cases, about a minute")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="the folder for results and plots")
    parser.add_argument("--only", nargs="+", choices=suite.GROUPS, default=list(suite.GROUPS), help="groups to run")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per case (the median is reported)")
    parser.add_argument(
        "--torch-compile", action=argparse.BooleanOptionalAction, help="time torch.compile (default: not with --quick)"
    )
    args = parser.parse_args(argv)
    settings = suite.QUICK if args.quick else suite.FULL
    if args.rounds is not None:
        settings = dataclasses.replace(settings, rounds=args.rounds)
    if args.torch_compile is not None:
        settings = dataclasses.replace(settings, torch_compile=args.torch_compile)
    results = suite.run(suite.plan(args.only, args.quick), settings, quick=args.quick)
    written = suite.save(results, args.out)
    print(markdown(results))
    print("wrote " + ", ".join(str(path) for path in written), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
