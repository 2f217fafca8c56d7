"""Atomic file replacement: a reader sees the old file or the new one, never half of one.

The bytes go to a temporary file in the target's own directory (a rename is
only atomic within one file system), are flushed and fsynced, and then
`os.replace` swaps the file in; finally the directory is fsynced so the
rename itself survives a power loss. If writing fails, the temporary file is
removed and the previous file is untouched. The temporary file is created
with mode 0o666 filtered by the umask, as `open(path, "wb")` would, rather
than `tempfile.mkstemp`'s private 0o600.

A process killed mid-write cannot remove its temporary file, so the next
save or load in the directory does (`remove_stale_temporaries`). The danger
is removing the file of a writer that is still alive (its rename would then
fail), so the rule is: a temporary's name records its writer's process id and
a tag of the machine and PID namespace it runs in,

    .<target name>.<writer tag>-<pid>.<random>.tmp

and a temporary written here (same tag) is stale exactly when that process no
longer exists. A process id from another machine or container (a shared or
network file system), or a name from before the writer was recorded, cannot be
checked; such a file is stale only once nobody has written to it for
STALE_AFTER_SECONDS, far longer than a live writer, which writes its bytes
back to back, ever pauses. A reused process id keeps a dead writer's file
until that process ends too: the rule errs towards keeping files.

The kernel cache (genesis.compiler) writes its entries here too, and builds
its C libraries in folders of the same naming, which only a directory that
genesis owns has removed (`folders=True`): a user's directory keeps any
folder. The cache skips the fsyncs (`durable=False`): its entries carry
checksums, so one that a power loss damages is detected and rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import shutil
import socket
import time

# no write for this long: the writer of a temporary we cannot check by its process id is gone
STALE_AFTER_SECONDS = 3600
_TEMPORARY = re.compile(r"\..+\.(?P<tag>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})\.[0-9a-f]{12}\.tmp")
_UNRECORDED_WRITER = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")  # the naming of earlier genesis versions


def atomic_write(path, write, *, durable: bool = True, folders: bool = False) -> None:
    """Call `write(binary_file)` and move the result over `path` atomically. `durable`: fsync the file
    and the rename; `folders`: remove stale folders too (see the module's docstring)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    remove_stale_temporaries(directory, folders=folders)
    temporary = os.path.join(directory, temporary_name(os.path.basename(path)))
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_directory(directory)


def temporary_name(target: str) -> str:
    """The name of a fresh temporary file for `target`, recording who writes it."""
    return f".{target}.{writer_tag()}-{os.getpid()}.{secrets.token_hex(6)}.tmp"


@functools.cache
def writer_tag() -> str:
    """This machine and PID namespace: where a process id names one process. The namespace tells apart
    containers that share a host name and a mounted directory but not their process ids."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: the host name alone
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]


def remove_stale_temporaries(directory, *, folders: bool = False) -> None:
    """Remove the temporaries of crashed writes in `directory` (see the module's docstring for the rule);
    `folders`: temporary folders too, with what they hold, for a directory that genesis owns. Never
    raises: a directory that cannot be listed, or a file another process removes first, is left be."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and _is_stale(entry, now):
                os.unlink(entry.path)
            elif folders and entry.is_dir(follow_symlinks=False) and _is_stale(entry, now):
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass


def make_temporary_folder(directory, target: str) -> str:
    """A fresh folder in `directory` to build `target` in, named as a temporary file is (so that
    `remove_stale_temporaries(directory, folders=True)` removes it once its writer is gone)."""
    folder = os.path.join(directory, temporary_name(target))
    os.mkdir(folder)
    return folder


def _is_stale(entry, now: float) -> bool:
    recorded = _TEMPORARY.fullmatch(entry.name)
    if recorded is None and _UNRECORDED_WRITER.fullmatch(entry.name) is None:
        return False  # not ours
    if recorded is not None and recorded["tag"] == writer_tag():
        alive = _process_exists(int(recorded["pid"]))
        if alive is not None:
            return not alive
    return now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_SECONDS


def _process_exists(pid: int) -> bool | None:
    """Whether process `pid` exists here; None where that cannot be asked (on Windows os.kill(pid, 0)
    would terminate the process, not probe it)."""
    if os.name != "posix" or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but belongs to another user
        return True
    except (OSError, OverflowError):
        return None
    return True


def fsync_directory(directory: str) -> None:
    """Make a rename in `directory` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename has still happened
    finally:
        os.close(descriptor)
