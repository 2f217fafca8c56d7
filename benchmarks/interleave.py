"""Two trees' genesis on the same cases, timed in short alternating blocks in one run.

A worker process per tree imports that tree's genesis, compiles every case of a benchmark script
(this tree's script, so that both trees run the same cases) and then times one block of one case
whenever the driver asks. The driver asks the trees in turn, case by case, alternating which goes
first, so a slow spell of the machine (a core at half speed for seconds, another job) falls on both;
an idle worker waits on its pipe and takes no core. Reported: per case, each tree's median block
and the median of the per-round ratios.

Run:    python benchmarks/before_after.py --base main --interleave [--scripts fusion.py train_step.py]
                                          [--rounds 15] [--cases NAME ...]
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent / "genesis" / "bench"


def _this_trees_bench():
    """This tree's `genesis.bench`, over whichever genesis the process imported: both trees time the
    same case definitions, and a base revision from before `genesis.bench` still has them."""
    spec = importlib.util.spec_from_file_location(
        "genesis.bench", BENCH / "__init__.py", submodule_search_locations=[str(BENCH)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["genesis.bench"] = package
    spec.loader.exec_module(package)
    from genesis.bench import fusion, timing, train

    return fusion, timing, train


def _fusion_calls(genesis, fusion, names) -> dict:
    calls = {}
    for case in fusion.cases(names):
        with genesis.no_grad():
            compiled, inputs = genesis.compile(case.fn), [genesis.tensor(a) for a in case.arrays]
            compiled(*inputs)

        def call(compiled=compiled, inputs=inputs):
            with genesis.no_grad():
                compiled(*inputs)

        calls[case.name] = call
    return calls


def _train_calls(genesis, train, names) -> dict:
    """Each training step compiled and eager (`<model> compiled`, `<model> eager`)."""
    calls = {}
    for name, spec, batch_size in train.configs():
        x, y = train.batch(spec, batch_size)
        for variant in ("compiled", "eager"):
            if names and f"{name} {variant}" not in names:
                continue
            _, step = train.genesis_setup(spec)
            fn = genesis.compile(step) if variant == "compiled" else step
            for _ in range(2):  # the compile, and the trace once Adam has made its state
                fn(x, y)
            calls[f"{name} {variant}"] = lambda fn=fn, x=x, y=y: fn(x, y)
    return calls


def worker(script: str, names: list, min_seconds: float) -> None:
    """Prepare the named cases, say so, then time one block per request line (a case's name)."""
    import genesis

    fusion, timing, train = _this_trees_bench()
    stem = Path(script).stem
    if stem == "fusion":
        calls = _fusion_calls(genesis, fusion, names or None)
    elif stem == "train_step":
        calls = _train_calls(genesis, train, names)
    else:
        raise SystemExit(f"interleave: fusion.py's and train_step.py's cases run in alternating blocks, not {script}'s")
    print(json.dumps({"genesis": genesis.__file__, "cases": list(calls)}), flush=True)
    for line in sys.stdin:
        call = calls[line.strip()]
        time.sleep(timing.SETTLE_SECONDS)  # the other tree's threads, still spinning from its block, go to sleep
        print(json.dumps(timing.sample(call, timing.calls_per_sample(call, min_seconds))), flush=True)


def compare(trees: dict, environments: dict, script: Path, names, rounds: int, min_seconds: float) -> list:
    """Rows of (case, {tree: median seconds}, median ratio of the last tree to the first)."""
    workers = {}
    for tree_name, tree in trees.items():
        arguments = [str(script), str(min_seconds), *(names or [])]
        command = [sys.executable, str(HERE / "interleave.py"), "--worker", *arguments]
        process = subprocess.Popen(
            command, cwd=tree, env=environments[tree_name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        ready = json.loads(process.stdout.readline())
        print(f"{tree_name}: {ready['genesis']}", file=sys.stderr, flush=True)
        names, workers[tree_name] = ready["cases"], process
    samples = {(name, tree): [] for name in names for tree in trees}
    order = list(trees)
    for round_index in range(rounds + 1):  # the first round is a warm-up
        for name in names:
            for tree_name in order if round_index % 2 else reversed(order):
                process = workers[tree_name]
                process.stdin.write(name + "\n")
                process.stdin.flush()
                seconds = json.loads(process.stdout.readline())
                if round_index:
                    samples[name, tree_name].append(seconds)
        print(f"round {round_index}/{rounds}", file=sys.stderr, flush=True)
    for process in workers.values():
        process.stdin.close()
        process.wait()
    base, new = order
    rows = []
    for name in names:
        ratios = [b / a for a, b in zip(samples[name, base], samples[name, new])]
        medians = {tree: statistics.median(samples[name, tree]) for tree in trees}
        rows.append((name, medians, statistics.median(ratios), (min(ratios), max(ratios))))
    return rows


def print_rows(rows, base: str) -> None:
    print(f"{'case':34s} {base:>12s} {'this tree':>12s} {'ratio':>7s}  (range of the rounds' ratios)")
    for name, medians, ratio, (low, high) in rows:
        old, new = medians.values()
        print(f"{name:34s} {old * 1e3:10.3f}ms {new * 1e3:10.3f}ms {ratio:7.3f}  ({low:.3f} - {high:.3f})")


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    worker(sys.argv[2], sys.argv[4:], float(sys.argv[3]))
