"""Every benchmark in one run: the machine and its ceilings first, then each group's cases, into one
results dict that `report` turns into JSON and markdown and `plots` into pictures."""

from __future__ import annotations

import datetime
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from genesis.bench import eager, fusion, plots, train
from genesis.bench.machine import machine, peaks, versions
from genesis.bench.report import markdown, write_json, write_text

GROUPS = ("fusion", "train", "eager")


@dataclass(frozen=True)
class Settings:
    rounds: int  # interleaved rounds per case; each variant's median is over these
    min_seconds: float  # the shortest sample of a function or a training step
    # the shortest sample of a single eager op: on a loaded machine a library whose threads sleep between
    # calls (PyTorch's) waits a time slice on some calls, and a sample of a few calls catches too few of them
    op_seconds: float
    torch_compile: bool
    copy_mib: int  # the copy whose bandwidth is the roofline's memory ceiling
    gemm_size: int  # the matmul whose rate is its compute ceiling


FULL = Settings(rounds=5, min_seconds=0.25, op_seconds=0.05, torch_compile=True, copy_mib=256, gemm_size=2048)
# about a minute on two cores: fewer and shorter rounds, fewer cases, and no torch.compile, whose first
# calls alone take 15-35 s per training step there
QUICK = Settings(rounds=3, min_seconds=0.05, op_seconds=0.05, torch_compile=False, copy_mib=64, gemm_size=2048)


def plan(groups=GROUPS, quick: bool = False) -> dict[str, list]:
    """The cases each group runs: all of them, or with `quick` the smaller set each group names."""
    chosen = {
        "fusion": lambda: fusion.cases(fusion.QUICK if quick else None),
        "train": lambda: train.configs(train.QUICK if quick else None),
        "eager": lambda: eager.cases(eager.QUICK if quick else None),
    }
    return {group: chosen[group]() for group in groups}


def run_case(group: str, case, settings: Settings) -> dict:
    if group == "fusion":
        return fusion.run_case(case, settings.rounds, settings.min_seconds, settings.torch_compile)
    if group == "train":
        return train.run_config(*case, settings.rounds, settings.min_seconds, settings.torch_compile)
    return eager.run_case(*case, settings.rounds, settings.op_seconds)


def _case_name(group: str, case) -> str:
    return case.name if group == "fusion" else case[1] if group == "eager" else case[0]


def run(cases: dict[str, list], settings: Settings, *, quick: bool = False, log=None) -> dict:
    """Run `cases` (group -> its cases, as `plan` makes them) and return every figure with the machine,
    the versions and the settings they were measured under."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    started = time.perf_counter()
    results = {
        "format": 1,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "settings": asdict(settings),
        "machine": machine(),
        "versions": versions(),
    }
    log("measuring the machine's copy bandwidth and GEMM rate")
    results["ceilings"] = peaks(settings.rounds, settings.copy_mib, settings.gemm_size)
    results["groups"] = {}
    for group, group_cases in cases.items():
        rows = results["groups"].setdefault(group, [])
        for case in group_cases:
            case_started = time.perf_counter()
            rows.append(run_case(group, case, settings))
            log(f"{group}: {_case_name(group, case)} ({time.perf_counter() - case_started:.1f} s)")
    if hasattr(os, "getloadavg"):
        results["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
    results["seconds"] = time.perf_counter() - started
    return results


def save(results: dict, out: Path) -> list[Path]:
    """results.json and results.md (each written atomically) and the plots, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.json", out / "results.md"]
    write_json(written[0], results)
    write_text(written[1], markdown(results))
    return written + plots.save(results, out)
