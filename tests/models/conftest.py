import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_on_one_thread():
    # PyTorch, the reference here, spins a thread per core; on a small, shared CI machine its threads
    # fight genesis's for the cores and a 30 ms step takes a second
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fused_eager(monkeypatch):
    # the programs train as a user's would: eager batch_norm, attention and recurrent layers run fused
    # from a signature's second call (functional/fused.py), and must still give PyTorch's losses
    monkeypatch.setenv("GENESIS_FUSED_EAGER", "1")
