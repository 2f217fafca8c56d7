"""The disk cache of generated programs, keyed by everything that decides their code.

An entry is one generated module (`<key>.py`). Its first line carries a
SHA-256 of the rest, so a truncated or edited entry is recognised, dropped,
rebuilt and warned about instead of being executed. Writes go to a temporary
file in the same directory and are renamed into place, so another process
reads either the whole entry or none. Location: `GENESIS_CACHE_DIR`, else
`$XDG_CACHE_HOME/genesis`, else `~/.cache/genesis`.
"""

from __future__ import annotations

import functools
import hashlib
import os
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
    for folder, pattern in (("compiler", "**/*.py"), ("compiler/templates", "*.j2"), ("ops", "*.py"),
                            ("runtime", "*.py")):
        for path in sorted((_PACKAGE / folder).glob(pattern)):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load(key: str) -> str | None:
    """The cached source for `key`, or None (missing, or corrupt: then it is removed with a warning)."""
    path = cache_dir() / f"{key}.py"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        return _drop(path, f"unreadable ({error})")
    header, _, body = text.partition("\n")
    if not header.startswith(_HEADER):
        return _drop(path, "no checksum header")
    if hashlib.sha256(body.encode()).hexdigest() != header[len(_HEADER):]:
        return _drop(path, "checksum mismatch (truncated or modified)")
    return body


def store(key: str, source: str) -> Path:
    path = cache_dir() / f"{key}.py"
    checksum = hashlib.sha256(source.encode()).hexdigest()
    write_atomic(path, f"{_HEADER}{checksum}\n{source}")
    return path


def path_of(key: str) -> Path:
    return cache_dir() / f"{key}.py"


def _drop(path: Path, why: str) -> None:
    warnings.warn(f"genesis: dropping corrupt cache entry {path}: {why}; it will be rebuilt", stacklevel=3)
    try:
        path.unlink()
    except OSError:
        pass
    return None
