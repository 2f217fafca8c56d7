"""`torch.utils.data` under its PyTorch name: the datasets, samplers and DataLoader of `genesis.data`,
the same objects (`genesis.data.__all__` lists them)."""

from genesis.data import *  # noqa: F403  (every public name, so the two paths cannot drift apart)
from genesis.data import __all__  # noqa: F401
