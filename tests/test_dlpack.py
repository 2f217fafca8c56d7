"""DLPack: genesis tensors and other libraries' share memory both ways, without a copy."""

import numpy as np
import pytest
import torch

import genesis


def test_a_pytorch_tensor_becomes_a_genesis_tensor_on_the_same_memory():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    g = genesis.from_dlpack(t)
    assert g.dtype is genesis.float32 and g.shape == (2, 3)
    t[0, 0] = 100.0  # a write on either side shows on the other
    assert g[0, 0].item() == 100.0
    g.add_(1.0)
    expected = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    expected[0, 0] = 101.0
    np.testing.assert_array_equal(t.numpy(), expected)
    assert genesis.from_dlpack(torch.tensor(True)).dtype is genesis.bool


def test_a_genesis_tensor_becomes_a_pytorch_tensor_on_the_same_memory_strides_kept():
    g = genesis.tensor(np.arange(4, dtype=np.int64))
    t = torch.from_dlpack(g)
    t[1] = 50
    assert g.tolist() == [0, 50, 2, 3] and t.dtype == torch.int64
    strided = genesis.tensor(np.ones((4, 6), np.float32))[:, ::2]
    assert torch.from_dlpack(strided).stride() == strided.stride() == (6, 2)


def test_what_cannot_be_shared_says_why():
    with pytest.raises(TypeError, match="from_dlpack expects an object with __dlpack__"):
        genesis.from_dlpack([1, 2])
    with pytest.raises(TypeError, match="from_dlpack: Tensor could not be shared with genesis on the CPU"):
        genesis.from_dlpack(torch.ones(2, dtype=torch.bfloat16))  # numpy reads no bfloat16 capsule


@pytest.mark.gpu
def test_a_tensor_on_the_simulated_device_is_not_shared():
    d = genesis.ones(3, device="cuda")
    with pytest.raises(BufferError, match="a tensor on cuda:0"):
        torch.from_dlpack(d)
