import os
import tempfile

import pytest

import genesis
from genesis import dispatch

# Every eager op in the test suite also checks its shape rule against its kernel.
dispatch.verify_meta = True


def pytest_collection_modifyitems(config, items):
    if genesis.is_cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seeded():
    genesis.manual_seed(0)
    yield


os.environ.setdefault("GENESIS_TESTING", "1")
# compiled programs go to a cache of the test run's own, never the user's
os.environ["GENESIS_CACHE_DIR"] = tempfile.mkdtemp(prefix="genesis-test-cache-")
