"""`CheckpointError`: a file that is not a checkpoint genesis can read.

It subclasses `ValueError` because a bad checkpoint is bad input data, the
same category as a malformed number in `int("x")`; callers that already
catch `ValueError` around their loading code keep working.
"""

from __future__ import annotations

import pickle


class CheckpointError(ValueError):
    """A truncated, corrupt, foreign or unsupported checkpoint; the message names the file and the problem."""


class WeightsOnlyError(CheckpointError, pickle.UnpicklingError):
    """`load_checkpoint(..., weights_only=True)` met a pickled object (a whole nn.Module), which only
    unpickling, and so running code the file names, could load. PyTorch raises an UnpicklingError
    there; this is one, and a CheckpointError too."""
