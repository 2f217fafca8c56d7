"""Linear warm-up then cosine decay: `get_cosine_schedule_with_warmup`, the Hugging Face transformers schedule.

The factor rises linearly from 0 to 1 over `num_warmup_steps`, then follows
`0.5 * (1 + cos(2 * pi * num_cycles * progress))` (half a cosine, down to 0,
with the default `num_cycles=0.5`), never below 0. It is a LambdaLR whose
lambda is a `functools.partial` of a module-level function, so it pickles
and its state dict is LambdaLR's.
"""

from __future__ import annotations

import math
from functools import partial

from genesis.optim.lr_scheduler.base import LambdaLR


def cosine_with_warmup_factor(
    current_step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: float
) -> float:
    if current_step < num_warmup_steps:
        return float(current_step) / float(max(1, num_warmup_steps))
    progress = float(current_step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))


def get_cosine_schedule_with_warmup(
    optimizer, num_warmup_steps: int, num_training_steps: int, num_cycles: float = 0.5, last_epoch: int = -1
) -> LambdaLR:
    lr_lambda = partial(
        cosine_with_warmup_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, lr_lambda, last_epoch)


__all__ = ["get_cosine_schedule_with_warmup", "cosine_with_warmup_factor"]
