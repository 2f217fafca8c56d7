"""The disk cache: a second process reuses generated programs, and a corrupt entry is rebuilt."""

import os
import subprocess
import sys
import textwrap

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
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_a_second_process_generates_no_code(tmp_path):
    assert run_process(tmp_path, "normal") == 0          # generated and stored
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
