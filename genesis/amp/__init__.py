"""Automatic mixed precision: `autocast` regions and the `GradScaler` for loss scaling.

Autocast reads each op's autocast class from the op table (see
`genesis.amp.autocast`); the scaler keeps fp16 gradients representable and
skips steps whose gradients overflowed (see `genesis.amp.grad_scaler`).
"""

from genesis.amp.autocast import autocast, get_autocast_dtype, is_autocast_enabled
from genesis.amp.grad_scaler import GradScaler, OptState

__all__ = ["autocast", "is_autocast_enabled", "get_autocast_dtype", "GradScaler", "OptState"]
