"""Atomic file replacement: a reader sees the old file or the new one, never half of one.

The bytes go to a temporary file in the target's own directory (a rename is
only atomic within one file system), are flushed and fsynced, and then
`os.replace` swaps the file in; finally the directory is fsynced so the
rename itself survives a power loss. If writing fails, the temporary file is
removed and the previous file is untouched. The temporary file is created
with mode 0o666 filtered by the umask, as `open(path, "wb")` would, rather
than `tempfile.mkstemp`'s private 0o600.
"""

from __future__ import annotations

import os
import secrets


def atomic_write(path, write) -> None:
    """Call `write(binary_file)` and move the result over `path` atomically."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path}: the directory {directory} does not exist")
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


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
