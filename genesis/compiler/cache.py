"""The disk cache of generated programs, keyed by everything that decides their code.

An entry is one generated module (`<key>.py`). Its first line carries a
SHA-256 of the rest, so a truncated or edited entry is recognised, dropped,
rebuilt and warned about instead of being executed. Writes go to a temporary
file in the same directory and are renamed into place, so another process
reads either the whole entry or none. Location: `GENESIS_CACHE_DIR`, else
`$XDG_CACHE_HOME/genesis`, else `~/.cache/genesis`.

The cache heals, it never fails a compilation: whatever stands where an entry
should be (a truncated or edited file, bytes that are not UTF-8, a file it
may not read, a directory) is dropped with one warning and rebuilt. The C
libraries in `native` follow the same rule with the helpers here.

Nor does a cache that cannot take a file (no permission, a read-only or full
file system, a path through a regular file): the process keeps what it
compiled in memory, and one warning (per directory and error) names both
of them. A write killed half-way leaves a temporary file, or a C
library's build folder, recording its writer; the next write in the
directory removes those whose writer is gone (serialization.atomic's rule).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import warnings
from pathlib import Path

from genesis.compiler.dump import write_atomic

_HEADER = "# genesis-cache sha256="


def cache_dir() -> Path:
    configured = os.environ.get("GENESIS_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "genesis"


def key_of(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


_PACKAGE = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """A hash of the sources that decide generated code (codegen, templates, op records, kernel runtime):
    an edited genesis never runs a stale cached program, even before the codegen version is bumped."""
    digest = hashlib.sha256()
    for folder, pattern in (
        ("compiler", "**/*.py"),
        ("compiler/templates", "*.j2"),
        ("ops", "*.py"),
        ("ops/helpers", "*"),
        ("runtime", "*.py"),
    ):
        for path in sorted((_PACKAGE / folder).glob(pattern)):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load(key: str) -> str | None:
    """The cached source for `key`, or None (missing, or corrupt: then it is removed with a warning)."""
    path = cache_dir() / f"{key}.py"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return None if missing(path, error) else _drop(path, unreadable(error))
    header, _, body = text.partition("\n")
    if not header.startswith(_HEADER):
        return _drop(path, "no checksum header")
    if hashlib.sha256(body.encode()).hexdigest() != header[len(_HEADER) :]:
        return _drop(path, "checksum mismatch (truncated or modified)")
    return body


def store(key: str, source: str) -> None:
    """Keep `source` for `key`; where the cache cannot take it, warn (once per directory) and go on."""
    checksum = hashlib.sha256(source.encode()).hexdigest()
    try:
        write_atomic(path_of(key), f"{_HEADER}{checksum}\n{source}", folders=True)
    except OSError as error:
        warn_unwritable(error)


def path_of(key: str) -> Path:
    return cache_dir() / f"{key}.py"


def missing(path: Path, error: Exception) -> bool:
    """Whether reading `path` failed because there is no entry: none there, or no directory to hold one
    (a directory that cannot be searched, or a path through a regular file), which writing reports."""
    return isinstance(error, FileNotFoundError) or (isinstance(error, OSError) and not os.path.lexists(path))


_warned_unwritable: set = set()  # (directory, errno): each warned about once per process


def warn_unwritable(error: OSError) -> None:
    """Say, once per directory and error, that the cache cannot take what this process compiles."""
    directory = cache_dir()
    if (directory, error.errno) in _warned_unwritable:
        return
    _warned_unwritable.add((directory, error.errno))
    warnings.warn(
        f"genesis: cannot write to the kernel cache {directory} ({error.strerror or error}); "
        "compiled programs are kept in memory and compiled again by the next process",
        stacklevel=4,
    )


def unreadable(error: Exception) -> str:
    """Why an entry could not be read, in a warning's words."""
    if isinstance(error, IsADirectoryError):
        return "a directory stands where the file should be"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return f"unreadable ({getattr(error, 'strerror', None) or error})"


def warn_dropped(path: Path, why: str) -> None:
    warnings.warn(f"genesis: dropping corrupt cache entry {path}: {why}; it will be rebuilt", stacklevel=4)


def clear_directory(path: Path) -> None:
    """Remove a directory standing where a cache file should be, which would make the rename of the
    rebuilt file fail. A file is left alone: the rename replaces it atomically, so a process that
    is reading it meanwhile never finds it missing."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def _drop(path: Path, why: str) -> None:
    warn_dropped(path, why)
    clear_directory(path)
    try:
        path.unlink()
    except OSError:
        pass  # gone already (another process healed it), or a directory that could not be removed
    return None
