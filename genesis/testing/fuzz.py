"""The fuzz campaign: `python -m genesis.testing.fuzz --count N --seed S [--backends ...] [--jobs J]`.

Programs for seeds S .. S+N-1 run eagerly and compiled on each backend;
the summary counts outcomes per backend and groups the failures by signature
(status, backend, error type and the genesis function that raised it, or for
a mismatch what kind of value differed and on which call). The first failure
of each group is shrunk and printed as a snippet that pastes into a test;
`--show-all` prints every failing program, `--out DIR` writes each snippet to
a file. Compiled kernels go to a fresh cache directory unless
GENESIS_CACHE_DIR is set. Every eager op checks its shape rule against its
kernel (`dispatch.verify_meta`), and every compiled graph is verified after
each pass (`run_pipeline` always does).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import tempfile
import time

from genesis import dispatch
from genesis.testing.generator import generate
from genesis.testing.report import snippet
from genesis.testing.runner import run_program
from genesis.testing.shrink import shrink


def _setup():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    dispatch.verify_meta = True


def run_seed(task):
    """Generate and run one program; the outcomes and the seconds each backend took."""
    seed, backends, tiny = task
    _setup()
    program = generate(seed, tiny=tiny)
    outcomes, seconds = [], {}
    for backend in backends:
        start = time.perf_counter()
        outcomes += run_program(program, [backend])
        seconds[backend] = time.perf_counter() - start
    return outcomes, seconds, program.ops()


def shrink_failure(task):
    """The shrunk program of one failure, as a snippet."""
    outcome, tiny, max_seconds = task

    _setup()
    program = shrink(generate(outcome.seed, tiny=tiny), outcome, max_seconds=max_seconds)
    return outcome, snippet(program, outcome.backend, outcome.summary()), len(program.statements)


def campaign(
    seeds,
    backends,
    *,
    jobs=1,
    tiny=False,
    shrink=True,
    shrink_seconds=60.0,
    show_all=False,
    out=None,
    stream=sys.stdout,
):
    """Run the seeds and print the summary; returns the failing outcomes."""
    started = time.perf_counter()
    counts = collections.Counter()
    seconds = collections.Counter()
    failures = []
    tasks = [(seed, tuple(backends), tiny) for seed in seeds]
    with _pool(jobs) as pool:
        mapped = pool.imap_unordered(run_seed, tasks, chunksize=4) if pool else map(run_seed, tasks)
        for done, (outcomes, taken, _) in enumerate(mapped, 1):
            for outcome in outcomes:
                counts[outcome.backend, outcome.status] += 1
                if outcome.reportable:  # named at once: a long campaign's failures can be chased while it runs
                    failures.append(outcome)
                    print(f"... seed {outcome.seed} {outcome.backend}: {outcome.status}", file=stream, flush=True)
            seconds.update(taken)
            if done % 500 == 0:
                print(f"... {done}/{len(tasks)} programs, {len(failures)} failures", file=stream, flush=True)
    failures.sort(key=lambda o: (o.seed, o.backend))
    elapsed = time.perf_counter() - started
    print(f"\n{len(tasks)} programs on {', '.join(backends)} in {elapsed:.0f} s ({jobs} jobs)", file=stream)
    for backend in backends:
        statuses = ", ".join(
            f"{status} {counts[backend, status]}"
            for status in ("match", "mismatch", "crash", "accepted", "refused", "eager_unclear", "graph_break")
        )
        rate = len(tasks) / seconds[backend] if seconds[backend] else float("inf")
        print(f"  {backend:7s} {statuses}   ({rate:.1f} programs/s per job)", file=stream)
    groups = collections.defaultdict(list)
    for outcome in failures:
        groups[outcome.signature()].append(outcome)
    print(f"\n{len(failures)} failures in {len(groups)} groups", file=stream)
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    for signature, members in ordered:
        seeds_text = ", ".join(str(o.seed) for o in members[:20]) + (" ..." if len(members) > 20 else "")
        print(f"\n[{len(members)}] {' | '.join(s for s in signature if s)}\n  seeds: {seeds_text}", file=stream)
        print("  " + members[0].summary().replace("\n", "\n  "), file=stream)
    if show_all:
        for outcome in failures:
            print(f"\n{outcome.summary()}\n{generate(outcome.seed, tiny=tiny).source()}", file=stream)
    if shrink and failures:
        print("\nshrunk reproducers (the first failure of each group):", file=stream)
        tasks = [(members[0], tiny, shrink_seconds) for _, members in ordered]
        with _pool(jobs) as pool:
            for outcome, text, length in pool.imap(shrink_failure, tasks) if pool else map(shrink_failure, tasks):
                print(
                    f"\n{'=' * 100}\n# group {' | '.join(s for s in outcome.signature() if s)}: "
                    f"{length} statements\n{text}",
                    file=stream,
                )
                if out:
                    os.makedirs(out, exist_ok=True)
                    path = os.path.join(out, f"fuzz_seed_{outcome.seed}_{outcome.backend}.py")
                    with open(path, "w") as f:
                        f.write(text)
    return failures


WORKER_TASKS = 100  # chunks of programs a worker runs before a fresh one takes over


class _pool:
    """A process pool for jobs > 1, else None (runs in this process: easier to debug)."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.pool = None

    def __enter__(self):
        if self.jobs > 1:
            # fresh workers now and then: each program's C library stays loaded in its process, and
            # a worker that has loaded thousands ran a campaign at half its first speed
            self.pool = multiprocessing.get_context("fork").Pool(self.jobs, maxtasksperchild=WORKER_TASKS)
        return self.pool

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genesis.testing.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="programs to run")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--seeds", help="run exactly these seeds (comma-separated) instead of --count/--seed")
    parser.add_argument("--backends", default="c,numpy,triton,eager")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--tiny", action="store_true", help="tensors of at most 48 elements")
    parser.add_argument("--no-shrink", action="store_true", help="print failures as generated")
    parser.add_argument("--shrink-seconds", type=float, default=60.0, help="time to shrink each group's reproducer")
    parser.add_argument("--show-all", action="store_true", help="print every failing program")
    parser.add_argument("--out", help="write each group's reproducer to this directory")
    args = parser.parse_args(argv)
    if "GENESIS_CACHE_DIR" not in os.environ:
        os.environ["GENESIS_CACHE_DIR"] = tempfile.mkdtemp(prefix="genesis-fuzz-cache-")
    _setup()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else range(args.seed, args.seed + args.count)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    failures = campaign(
        seeds,
        backends,
        jobs=args.jobs,
        tiny=args.tiny,
        shrink=not args.no_shrink,
        shrink_seconds=args.shrink_seconds,
        show_all=args.show_all,
        out=args.out,
    )
    return 1 if any(outcome.failed for outcome in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
