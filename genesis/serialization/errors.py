"""`CheckpointError`: a file that is not a checkpoint genesis can read.

It subclasses `ValueError` because a bad checkpoint is bad input data, the
same category as a malformed number in `int("x")`; callers that already
catch `ValueError` around their loading code keep working.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A truncated, corrupt, foreign or unsupported checkpoint; the message names the file and the problem."""
