"""The disk cache: a second process reuses generated programs, and a corrupt entry is rebuilt."""

import errno
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import genesis

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import genesis
    from genesis.compiler.codegen import wrapper

    if sys.argv[1] == "forbid-codegen":
        def refuse(graph):
            raise AssertionError("this process generated code instead of reading the cache")
        wrapper.build_source = refuse
        import genesis.compiler.executors as executors
        executors.build_source = refuse

    def chain(x, y):
        return (x * y + 1).tanh() * 0.5 + (-x).exp() * y

    compiled = genesis.compile(chain, backend="numpy")
    x = genesis.tensor(np.linspace(-2, 2, 1001, dtype=np.float32))
    out = compiled(x, x * 0.5)
    assert np.array_equal(out.numpy(), chain(x, x * 0.5).numpy())
    print(compiled.stats["disk_cache_hits"])
""")


def run_process(cache_dir, mode):
    env = dict(os.environ, GENESIS_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_a_second_process_generates_no_code(tmp_path):
    assert run_process(tmp_path, "normal") == 0  # generated and stored
    assert len(list(tmp_path.glob("*.py"))) == 1
    assert run_process(tmp_path, "forbid-codegen") == 1  # loaded, not generated


def test_a_corrupt_entry_is_dropped_rebuilt_and_warned_about(tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    fn = lambda x: (x * 2).exp()  # noqa: E731
    x = genesis.randn(100)
    genesis.compile(fn)(x)
    (entry,) = tmp_path.glob("*.py")
    intact = entry.read_text()
    entry.write_text(intact[: len(intact) // 2])  # a half-written file, as a crash could leave
    compiled = genesis.compile(fn)
    with pytest.warns(UserWarning, match=r"dropping corrupt cache entry .*checksum mismatch"):
        out = compiled(x)
    np.testing.assert_allclose(out.numpy(), fn(x).numpy(), rtol=1e-6)  # the C backend's exp: a few ulp
    assert entry.read_text() == intact and compiled.stats["disk_cache_hits"] == 0
    again = genesis.compile(fn)
    again(x)
    assert again.stats["disk_cache_hits"] == 1


def test_an_entry_without_a_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    fn = lambda x: x + 1  # noqa: E731
    genesis.compile(fn)(genesis.ones(3))
    (entry,) = tmp_path.glob("*.py")
    entry.write_text("raise SystemExit('a cache entry must never run unchecked')\n")
    with pytest.warns(UserWarning, match="no checksum header"):
        out = genesis.compile(fn)(genesis.ones(3))
    np.testing.assert_array_equal(out.numpy(), np.full(3, 2.0, np.float32))


# ---- whatever stands where an entry should be: dropped, rebuilt, one warning -------------------------------


def healing_fn(x):
    return (x * 3).exp() + 1


HEALING_INPUT = genesis.tensor(np.linspace(-1, 1, 50, dtype=np.float32))


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory):
    """A cache holding one compiled program: its Python entry, its C library and the library's checksum."""
    folder = tmp_path_factory.mktemp("built-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENESIS_CACHE_DIR", str(folder))
        genesis.compile(healing_fn, backend="c")(HEALING_INPUT)
    return folder


def not_utf8(path, monkeypatch):
    path.write_bytes(b"\xff\xfe\x80 not text")


def a_directory(path, monkeypatch):
    path.unlink()
    (path / "inside").mkdir(parents=True)


def a_symlink_loop(path, monkeypatch):  # unreadable even for root
    path.unlink()
    path.symlink_to(path.name)


def permission_denied(path, monkeypatch):
    """Unreadable as chmod 000 makes a file for anyone but root (the tests may run as root, whom it
    does not stop): reading the damaged file raises, and the rebuilt file (a new mtime) reads."""
    damaged = path.stat().st_mtime_ns

    def refuse(method):
        def read(self, *args, **kwargs):
            if self == path and self.stat().st_mtime_ns == damaged:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return method(self, *args, **kwargs)

        return read

    os.utime(path, ns=(damaged - 10**9, damaged - 10**9))
    damaged -= 10**9
    for name in ("read_bytes", "read_text"):
        monkeypatch.setattr(pathlib.Path, name, refuse(getattr(pathlib.Path, name)))


DAMAGE = {
    not_utf8: {"program": "not UTF-8 text", "library": "checksum mismatch", "checksum": "checksum mismatch"},
    a_directory: "a directory stands where the file should be",
    a_symlink_loop: "unreadable",
    permission_denied: "unreadable (Permission denied)",
}
ENTRIES = {"program": "*.py", "library": "*.so", "checksum": "*.so.sha256"}


@pytest.mark.c_compiler
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__)
def test_a_damaged_entry_is_dropped_and_rebuilt_with_one_warning(entry, damage, built_cache, tmp_path, monkeypatch):
    from genesis.compiler import native

    shutil.copytree(built_cache, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("GENESIS_CACHE_DIR", str(tmp_path))
    (path,) = tmp_path.glob(ENTRIES[entry])
    intact = path.read_bytes()
    with monkeypatch.context() as patch:
        damage(path, patch)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = genesis.compile(healing_fn, backend="c")(HEALING_INPUT)
    np.testing.assert_allclose(out.numpy(), healing_fn(HEALING_INPUT).numpy(), rtol=1e-6)
    messages = [str(w.message) for w in caught if "cache entry" in str(w.message)]
    why = DAMAGE[damage] if isinstance(DAMAGE[damage], str) else DAMAGE[damage][entry]
    assert len(messages) == 1 and path.name in messages[0] and why in messages[0], messages
    assert path.is_file() and not path.is_symlink()
    if entry == "program":
        assert path.read_bytes() == intact
    else:  # gcc's output names its temporary folder: check the rebuilt library against its checksum
        (library,) = tmp_path.glob("*.so")
        assert native._library_problem(library) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = genesis.compile(healing_fn, backend="c")
        again(HEALING_INPUT)
    assert again.stats["disk_cache_hits"] == 1
