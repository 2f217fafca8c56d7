"""Checkpoints without pickle: nested state saved as a safetensors file.

- `errors`: `CheckpointError`.
- `safetensors_io`: reading and writing the safetensors format itself.
- `structure`: the nested dicts/lists/tuples around the tensors, as JSON.
- `atomic`: replacing a file so that a crash never leaves half of one.
- `checkpoint`: `save_checkpoint` and `load_checkpoint`, which join them.
"""

from genesis.serialization.checkpoint import load_checkpoint, save_checkpoint
from genesis.serialization.errors import CheckpointError

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]
