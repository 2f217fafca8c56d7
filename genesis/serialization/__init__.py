"""Checkpoints: nested state saved as a safetensors file (a whole nn.Module as its one pickle).

- `errors`: `CheckpointError`, and `WeightsOnlyError` for a pickle a weights-only load refuses.
- `safetensors_io`: reading and writing the safetensors format itself.
- `structure`: the nested dicts/lists/tuples around the tensors, as JSON.
- `pickled`: a whole nn.Module in that structure, pickled with its tensors set aside.
- `atomic`: replacing a file so that a crash never leaves half of one.
- `checkpoint`: `save_checkpoint` and `load_checkpoint`, which join them.
"""

from genesis.serialization.checkpoint import load_checkpoint, save_checkpoint
from genesis.serialization.errors import CheckpointError, WeightsOnlyError

__all__ = ["CheckpointError", "WeightsOnlyError", "load_checkpoint", "save_checkpoint"]
