"""Learning-rate schedulers with PyTorch's API and PyTorch's exact numbers.

Schedulers run on the host around the (possibly compiled) training step:
they only write each parameter group's "lr" (and, for OneCycleLR, its
momentum), which the optimizer reads at its next step. One module per
family: base (LRScheduler, LambdaLR, MultiplicativeLR), decay (fixed-shape
decays), one_cycle, sequential (SequentialLR, ChainedScheduler), plateau
(ReduceLROnPlateau), warmup (get_cosine_schedule_with_warmup).
"""

from genesis.optim.lr_scheduler.base import LambdaLR, LRScheduler, MultiplicativeLR
from genesis.optim.lr_scheduler.decay import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    StepLR,
)
from genesis.optim.lr_scheduler.one_cycle import OneCycleLR
from genesis.optim.lr_scheduler.plateau import ReduceLROnPlateau
from genesis.optim.lr_scheduler.sequential import ChainedScheduler, SequentialLR
from genesis.optim.lr_scheduler.warmup import get_cosine_schedule_with_warmup

__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "ChainedScheduler",
    "get_cosine_schedule_with_warmup",
]
