import os
import tempfile

import pytest

import genesis
from genesis import dispatch

# Every eager op in the test suite also checks its shape rule against its kernel.
dispatch.verify_meta = True


def pytest_collection_modifyitems(config, items):
    from genesis.compiler import native

    no_compiler = native.find_compiler() is None
    skip_c = pytest.mark.skip(reason="needs a C compiler (cc, gcc or clang; or GENESIS_CC)")
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        if no_compiler and ("c_compiler" in item.keywords or backend == "c"):
            item.add_marker(skip_c)


@pytest.fixture(autouse=True)
def _seeded():
    genesis.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _cuda_device(request, monkeypatch):
    """Tests marked `gpu` run on a CUDA device: the simulated one (genesis/runtime/cuda.py), the only
    CUDA runtime genesis has so far, so they run everywhere, CI included."""
    if "gpu" in request.keywords:
        monkeypatch.setenv("GENESIS_FAKE_CUDA", "1")
    yield


os.environ.setdefault("GENESIS_TESTING", "1")
# eager runs op by op, the reference the compiled paths are held to; the fused eager composites
# (functional/fused.py) are tested where they are turned on: tests/test_fused_eager.py, tests/models
os.environ["GENESIS_FUSED_EAGER"] = "0"
# compiled programs go to a cache of the test run's own, never the user's
os.environ["GENESIS_CACHE_DIR"] = tempfile.mkdtemp(prefix="genesis-test-cache-")
