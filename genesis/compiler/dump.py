"""Write what the compiler decided to a directory a person can read.

`dump_dir=` or `GENESIS_DUMP=dir`: one subdirectory per compiled program
(`<function>_<n>`), holding the IR after each pass (`00_traced.txt`,
`01_autocast.txt`, ...), the final graph as Graphviz (`graph.dot`), every generated
kernel, the wrapper, and `report.json`. Files are written whole (temporary
file, then rename), so a reader never sees half of one.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from genesis.compiler import debug, ir_json
from genesis.serialization.atomic import atomic_write


def write_atomic(path: Path, text: str, *, folders: bool = False) -> None:
    """`text` (UTF-8) as the file at `path`, whole or not at all, its directory made if missing. Not
    fsynced: a dump is for reading now, and the cache checks its entries' checksums. `folders`: the
    directory is genesis's own, so stale temporary folders in it go too (see serialization.atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda file: file.write(text.encode("utf-8")), durable=False, folders=folders)


class Dump:
    """Collects the files of one compilation; does nothing when no directory is set."""

    def __init__(self, root, fn):
        self.directory = None
        name = getattr(fn, "__name__", None) or type(fn).__name__
        self.function = name
        if root:
            base = Path(root)
            n = 0
            while (base / f"{name}_{n}").exists():
                n += 1
            self.directory = base / f"{name}_{n}"
            self.directory.mkdir(parents=True)

    def __bool__(self) -> bool:
        return self.directory is not None

    def write(self, filename: str, text: str) -> None:
        if self.directory is not None:
            write_atomic(self.directory / filename, text if text.endswith("\n") else text + "\n")

    def graph(self, stem: str, graph) -> None:
        """The IR after a pass (GENESIS_DEBUG=3 prints it too). The traced graph is also written as
        JSON, which `ir_json.from_json` loads to run the passes again."""
        if self.directory is not None or debug.enabled(debug.PASSES):
            text = str(graph)
            self.write(f"{stem}.txt", text)
            debug.show(debug.PASSES, f"--- {self.function}: {stem}\n{text}")
        if self.directory is not None and stem.endswith("00_traced"):
            try:
                self.write(f"{stem}.json", ir_json.to_json(graph))
            except TypeError as error:  # an attribute with no JSON form: the dump goes on without it
                warnings.warn(f"genesis: the dump has no {stem}.json: {error}", stacklevel=2)

    def source(self, filename: str, text: str) -> None:
        """A generated program or kernel source (GENESIS_DEBUG=4 prints it too)."""
        self.write(filename, text)
        debug.show(debug.SOURCES, f"--- {self.function}: {filename}\n{text}")

    def report(self, report: dict) -> None:
        self.write("report.json", json.dumps(report, indent=2, default=str))

    def finish(self, graph, report: dict) -> None:
        if self.directory is not None:
            self.write("graph.dot", graph.to_dot())
            self.report(report)
