"""Optimizers and learning-rate schedulers with PyTorch's API and numbers.

`Optimizer` (optimizer.py) holds parameter groups and state; each concrete
optimizer is a thin class whose math lives in functional.py, written in
genesis ops so that a compiled training step records the update. LBFGS,
which decides on the host at every iteration, runs eagerly (lbfgs.py). The
schedulers live in `genesis.optim.lr_scheduler`.
"""

from genesis.optim import lr_scheduler  # noqa: F401
from genesis.optim.adadelta import Adadelta
from genesis.optim.adagrad import Adagrad
from genesis.optim.adam import Adam, AdamW
from genesis.optim.adamax import Adamax
from genesis.optim.lbfgs import LBFGS
from genesis.optim.nadam import NAdam
from genesis.optim.optimizer import Optimizer, required
from genesis.optim.radam import RAdam
from genesis.optim.rmsprop import RMSprop
from genesis.optim.sgd import SGD

__all__ = [
    "Optimizer",
    "required",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "NAdam",
    "RAdam",
    "LBFGS",
    "lr_scheduler",
]
