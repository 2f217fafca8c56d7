"""`genesis.backends`: PyTorch's switch names, kept as set, and PyTorch's answers where genesis has
no cuDNN or Metal device (PyTorch's CPU build has neither, so its answers are the oracle here)."""

import torch

import genesis
import genesis.backends.cudnn as cudnn


def test_the_switches_are_pytorchs_names_and_read_back_what_was_set(monkeypatch):
    for name in ("enabled", "benchmark", "deterministic", "allow_tf32"):
        assert hasattr(torch.backends.cudnn, name)
        monkeypatch.setattr(cudnn, name, not getattr(cudnn, name))
    assert cudnn.benchmark is genesis.backends.cudnn.benchmark
    for name in vars(genesis.backends.cuda.matmul):
        assert hasattr(torch.backends.cuda.matmul, name), name
    monkeypatch.setattr(genesis.backends.cuda.matmul, "allow_tf32", True)
    assert genesis.backends.cuda.matmul.allow_tf32


def test_the_questions_answer_as_pytorchs_cpu_build():
    assert genesis.backends.cudnn.is_available() == torch.backends.cudnn.is_available() is False
    assert genesis.backends.mps.is_available() == torch.backends.mps.is_available() is False
    assert genesis.backends.cudnn.version() is None
