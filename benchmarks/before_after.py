"""A change's effect on speed: the benchmarks of this tree and of a base revision, run in turns.

Each repeat runs every script once in each tree, alternating which tree goes first, so that a
slow spell of the machine (a core at half speed for a minute) falls on both; the table gives, per
case and variant, the median of each tree's medians and their ratio. PyTorch eager runs in both
trees unchanged: its ratio is the noise floor of the comparison.

Run:    python benchmarks/before_after.py --base main [--scripts fusion.py train_step.py]
                                          [--repeats 3] [--rounds 3]

With --interleave, both trees run this tree's cases (`genesis.bench`: fusion.py's functions,
train_step.py's steps eager and compiled) at once instead, in short alternating blocks
(`interleave.py`): finer-grained, for a change whose effect is smaller than the drift of the
machine between whole runs, and the only fair form where the scripts themselves changed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import interleave  # noqa: E402


def _environment(tree: Path) -> dict:
    """The environment under which Python imports `tree`'s genesis (checked: an installed genesis
    elsewhere must not stand in for it)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    where = subprocess.run(
        [sys.executable, "-c", "import genesis; print(genesis.__file__)"],
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"before_after: {tree} imports genesis from {where}, not its own")
    return env


def run_script(tree: Path, script: str, rounds: int, out: Path) -> list:
    """One run of `script` from `tree`'s benchmarks, importing `tree`'s genesis; its rows."""
    env = _environment(tree)
    command = [sys.executable, str(tree / "benchmarks" / script), "--rounds", str(rounds), "--no-torch-compile"]
    subprocess.run([*command, "--json", str(out)], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def collect(trees: dict, scripts: list, repeats: int, rounds: int, scratch: Path) -> dict:
    """{(script, case, variant): {tree name: [seconds per repeat]}}."""
    figures: dict = {}
    for repeat in range(repeats):
        order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
        for script in scripts:
            for name in order:
                print(f"repeat {repeat + 1}/{repeats}: {script} in {name}", file=sys.stderr, flush=True)
                for row in run_script(trees[name], script, rounds, scratch / f"{name}.json"):
                    for variant, seconds in row["seconds"].items():
                        figures.setdefault((script, row["case"], variant), {}).setdefault(name, []).append(seconds)
    return figures


def print_table(figures: dict, base: str) -> None:
    print(f"{'script':14s} {'case':30s} {'variant':26s} {base:>12s} {'this tree':>12s} {'ratio':>7s}")
    for (script, case, variant), by_tree in figures.items():
        if len(by_tree) < 2:
            continue
        old, new = statistics.median(by_tree[base]), statistics.median(by_tree["this tree"])
        print(f"{script:14s} {case:30s} {variant:26s} {old * 1e3:10.3f}ms {new * 1e3:10.3f}ms {new / old:7.3f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare against (a branch, tag or commit)")
    parser.add_argument("--scripts", nargs="+", default=["fusion.py", "train_step.py"])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each script in each tree")
    parser.add_argument("--rounds", type=int, default=3, help="the scripts' own interleaved rounds per run")
    parser.add_argument("--interleave", action="store_true", help="time both trees' cases in alternating blocks")
    parser.add_argument("--cases", nargs="+", help="with --interleave: only these cases")
    parser.add_argument("--min-seconds", type=float, default=0.1, help="with --interleave: the length of a block")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="genesis-before-after-") as scratch:
        base_tree = Path(scratch) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.base], cwd=ROOT, check=True)
        try:
            trees = {args.base: base_tree, "this tree": ROOT}
            if args.interleave:
                environments = {name: _environment(tree) for name, tree in trees.items()}
                for script in args.scripts:
                    rows = interleave.compare(
                        trees, environments, HERE / script, args.cases, args.rounds, args.min_seconds
                    )
                    interleave.print_rows(rows, args.base)
                return
            figures = collect(trees, args.scripts, args.repeats, args.rounds, Path(scratch))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=True)
    print_table(figures, args.base)


if __name__ == "__main__":
    main()
