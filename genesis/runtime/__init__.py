"""Devices and buffers: where tensor data lives and how it is moved.

The CPU runtime stores a tensor's data in a numpy array; `cpu.py` maps genesis
dtypes to numpy dtypes. A GPU runtime plugs in behind the same `Device`.
"""

from genesis.runtime.devices import Device, cpu, device, is_cuda_available

__all__ = ["Device", "device", "cpu", "is_cuda_available"]
