"""What crashed saves leave behind: the next save or load in the directory removes it, and only it.

A writer killed mid-save (SIGKILL: no handler runs) leaves its temporary file; a writer that is
still alive must keep its own, or its rename would fail. Both are real processes here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import genesis
from genesis.serialization import atomic

ROOT = Path(genesis.__file__).resolve().parent.parent

# A save that writes half of its second tensor and then dies, or, when told to, tells the parent
# and waits for it (a writer that is alive in the middle of a save).
WRITER = textwrap.dedent("""
    import os, signal, sys
    import genesis
    from genesis.serialization import safetensors_io

    written = []

    def half_then_stop(file, array):
        if written:
            file.write(array.reshape(-1).view("u1")[: array.nbytes // 2].tobytes())
            file.flush()
            if sys.argv[2] == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            print("writing", flush=True)
            sys.stdin.readline()  # the parent kills this process while it waits here
        written.append(1)
        file.write(array.reshape(-1).view("u1").tobytes())

    safetensors_io.write_tensor_bytes = half_then_stop
    genesis.save_checkpoint({"a": genesis.randn(100), "b": genesis.randn(1000)}, sys.argv[1])
""")


def start_writer(path, mode):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def temporaries(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))


def test_a_killed_writers_temporary_is_removed_by_the_next_save(tmp_path):
    writer = start_writer(tmp_path / "model.safetensors", "die")
    writer.communicate(timeout=120)
    assert writer.returncode == -signal.SIGKILL
    (left,) = temporaries(tmp_path)
    assert left.startswith(".model.safetensors.") and (tmp_path / left).stat().st_size > 400
    assert not (tmp_path / "model.safetensors").exists()
    genesis.save_checkpoint({"step": 1}, tmp_path / "other.safetensors")  # another file in the same directory
    assert temporaries(tmp_path) == []
    assert genesis.load_checkpoint(tmp_path / "other.safetensors") == {"step": 1}


def test_a_live_writers_temporary_is_kept_until_the_writer_dies(tmp_path):
    genesis.save_checkpoint({"step": 0}, tmp_path / "model.safetensors")
    writer = start_writer(tmp_path / "model.safetensors", "wait")
    try:
        assert writer.stdout.readline() == "writing\n"
        (left,) = temporaries(tmp_path)
        genesis.save_checkpoint({"step": 1}, tmp_path / "other.safetensors")
        assert genesis.load_checkpoint(tmp_path / "model.safetensors") == {"step": 0}
        assert temporaries(tmp_path) == [left]
    finally:
        writer.kill()
        writer.communicate(timeout=120)  # reaped: a zombie's process id still counts as taken
    assert genesis.load_checkpoint(tmp_path / "model.safetensors") == {"step": 0}  # a load cleans up too
    assert temporaries(tmp_path) == []


def test_a_temporary_of_this_process_is_never_stale(tmp_path):
    mine = tmp_path / atomic.temporary_name("model.safetensors")  # another thread's save, in progress
    mine.write_bytes(b"half")
    genesis.save_checkpoint({"step": 1}, tmp_path / "model.safetensors")
    assert mine.exists()


def _dead_process_id() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.parametrize(
    "name, stale_when_new",
    [
        (".model.safetensors.{tag}-{dead}.0123456789ab.tmp", True),  # written here, by a process now gone
        (".model.safetensors.0000beef-{dead}.0123456789ab.tmp", False),  # another machine's process: by age
        (".model.safetensors.0123456789ab.tmp", False),  # an earlier genesis's naming: by age
        (".model.safetensors.{tag}-{dead}.0123456789AB.tmp", None),  # not ours: never
        ("model.safetensors.{tag}-{dead}.0123456789ab.tmp", None),  # not hidden, so not ours
        (".model.tmp", None),
        (".model.safetensors.1234.tmp", None),
    ],
)
def test_which_temporaries_are_stale(tmp_path, name, stale_when_new):
    path = tmp_path / name.format(tag=atomic.writer_tag(), dead=_dead_process_id())
    path.write_bytes(b"left behind")
    genesis.save_checkpoint({"step": 1}, tmp_path / "model.safetensors")
    assert path.exists() == (stale_when_new is not True)
    if path.exists():  # unwritten for longer than any live writer pauses
        old = time.time() - atomic.STALE_AFTER_SECONDS - 60
        os.utime(path, (old, old))
        genesis.load_checkpoint(tmp_path / "model.safetensors")
        assert path.exists() == (stale_when_new is None)


def test_a_directory_of_our_naming_is_left_alone(tmp_path):
    folder = tmp_path / f".model.safetensors.{atomic.writer_tag()}-{_dead_process_id()}.0123456789ab.tmp"
    folder.mkdir()
    old = time.time() - 10 * atomic.STALE_AFTER_SECONDS
    os.utime(folder, (old, old))
    genesis.save_checkpoint({"step": 1}, tmp_path / "model.safetensors")
    assert folder.is_dir()
