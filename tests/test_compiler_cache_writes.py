"""Cache writes that cannot finish: a writer killed half-way leaves garbage that the next write in the
directory removes, and a cache that cannot take a file never fails a compilation.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import genesis
from genesis.serialization import atomic

ROOT = Path(genesis.__file__).resolve().parent.parent

# A compilation killed (SIGKILL: no handler runs) just before it renames a finished temporary into the
# cache: the program's source (`.py`) or its C library (`.so`, built in a folder of its own).
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    import genesis

    target_suffix, backend = sys.argv[1:]
    rename = os.replace

    def die_before_renaming(source, target, *args, **kwargs):
        if str(target).endswith(target_suffix):
            os.kill(os.getpid(), signal.SIGKILL)
        return rename(source, target, *args, **kwargs)

    os.replace = die_before_renaming
    genesis.compile(lambda x: (x * 3 + 1) * x, backend=backend)(genesis.randn(100))
""")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.startswith("tmp"))


def matches_eager(fn, backend):
    x = genesis.tensor(np.linspace(-2, 2, 301, dtype=np.float32))
    compiled = genesis.compile(fn, backend=backend)
    np.testing.assert_array_equal(compiled(x).numpy(), fn(x).numpy())  # no rounding differs: * and + only
    (program,) = compiled.programs
    return program.info


@pytest.mark.parametrize(
    "target_suffix, backend",
    [
        (".py", "numpy"),
        pytest.param(".so", "c", marks=pytest.mark.c_compiler),
    ],
)
def test_a_killed_compilations_temporaries_are_removed_by_the_next_write(tmp_path, monkeypatch, target_suffix, backend):
    env = dict(os.environ, GENESIS_CACHE_DIR=str(tmp_path))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, target_suffix, backend],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = leftovers(tmp_path)
    assert f"{target_suffix}.{atomic.writer_tag()}-" in left
    if backend == "c":  # the build folder, holding the sources, objects and library of the killed build
        assert (tmp_path / left).is_dir() and any(p.suffix == ".so" for p in (tmp_path / left).iterdir())
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    matches_eager(lambda x: (x - 2) * x, backend)  # another program: writes in the same directory
    assert leftovers(tmp_path) == []


def _dead_process_id() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


# build folders in the cache: whether the next write removes each, first as they are, then unwritten for long
BUILD_FOLDERS = {
    ".0123.so.{tag}-{dead}.0123456789ab.tmp": ("removed", "removed"),  # a build here, by a process now gone
    ".0123.so.{tag}-{mine}.0123456789ab.tmp": ("kept", "kept"),  # a build of this process: never
    ".0123.so.0000beef-{dead}.0123456789ab.tmp": ("kept", "removed"),  # another machine's build: by age
    ".0123.so.{tag}-{dead}.tmp": ("kept", "kept"),  # not of the cache's naming: never
    "tmp0123.so.{tag}-{dead}.0123456789ab.tmp": ("kept", "kept"),
}


def test_the_next_write_removes_the_build_folders_of_dead_writers_only(tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    folders = {
        tmp_path / name.format(tag=atomic.writer_tag(), dead=_dead_process_id(), mine=os.getpid()): fates
        for name, fates in BUILD_FOLDERS.items()
    }
    for folder in folders:
        folder.mkdir()
        (folder / "part0.o").write_bytes(b"half an object file")
    matches_eager(lambda x: x * 5 + 1, "numpy")
    assert {folder.name for folder in folders if folder.exists()} == {
        folder.name for folder, (new, _) in folders.items() if new == "kept"
    }
    old = time.time() - atomic.STALE_AFTER_SECONDS - 60
    for folder in folders:
        if folder.exists():
            os.utime(folder, (old, old))
    matches_eager(lambda x: x * 6 + 1, "numpy")
    assert {folder.name for folder in folders if folder.exists()} == {
        folder.name for folder, (_, aged) in folders.items() if aged == "kept"
    }


# ---- a cache that cannot take a file ------------------------------------------------------------------------


def cache_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "kernel cache" in str(w.message)]


@pytest.mark.parametrize("backend", ["numpy", pytest.param("c", marks=pytest.mark.c_compiler)])
@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC], ids=errno.errorcode.get)
def test_a_cache_that_refuses_writes_still_compiles_with_one_warning(tmp_path, monkeypatch, backend, code):
    """As a directory without write permission (chmod does not stop root), a read-only or a full file
    system makes it: every rename into the cache fails."""
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    rename = os.replace

    def refuse(source, target, *args, **kwargs):
        if Path(target).parent == tmp_path:
            raise OSError(code, os.strerror(code), str(target))
        return rename(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refuse)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # constants of this test's own: programs and libraries no other test has built in this process
        info = matches_eager(lambda x: (x * code + 1) * x, backend)
        matches_eager(lambda x: (x * code + 2) * x, backend)  # the same directory: no second warning
    (message,) = cache_warnings(caught)
    assert str(tmp_path) in message and os.strerror(code) in message
    assert info["c_kernels" if backend == "c" else "kernels"] == 1
    assert list(tmp_path.iterdir()) == []  # no temporary, no build folder left behind


@pytest.mark.parametrize("backend", ["numpy", pytest.param("c", marks=pytest.mark.c_compiler)])
def test_a_cache_directory_under_a_regular_file_still_compiles_with_one_warning(tmp_path, monkeypatch, backend):
    (tmp_path / "file").write_text("not a directory")
    cache = tmp_path / "file" / "cache"
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(cache))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = matches_eager(lambda x: (x * 3 - 1) * x, backend)
    assert cache_warnings(caught) == [str(w.message) for w in caught]  # nothing about corrupt entries
    (message,) = cache_warnings(caught)
    assert str(cache) in message and os.strerror(errno.ENOTDIR) in message
    assert info["c_kernels" if backend == "c" else "kernels"] == 1


@pytest.mark.c_compiler
def test_with_nowhere_to_write_a_library_the_program_runs_numpy_kernels(tmp_path, monkeypatch):
    from genesis.compiler import native

    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path / "file" / "cache"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(native.tempfile, "TemporaryDirectory", full)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = matches_eager(lambda x: (x * 3 - 2) * x, "c")
    unwritable, no_place = [str(w.message) for w in caught]
    assert unwritable in cache_warnings(caught)
    assert "no place to write a C library" in no_place and no_place.endswith("numpy kernels instead")
    assert "no place" in info["c_failed"] and info["kernels"] == 1 and "c_kernels" not in info
