"""`LRScheduler`, the base of every scheduler, and the lambda-driven ones.

A scheduler writes each parameter group's "lr" at every `step()`; the
optimizer reads it at its next step. Like PyTorch, most schedulers are
*chainable*: `get_lr()` derives the new rate from the group's current one
(a recursive formula), so several schedulers may drive one optimizer, while
`step(epoch)` (deprecated in PyTorch) jumps straight to an epoch with the
closed form. Both are kept exactly as PyTorch writes them, because the two
forms round differently and schedules must agree with PyTorch's to the last
bits.

The constructor records each group's "initial_lr" (unless resuming with
`last_epoch >= 0`) and takes the first step, so after construction the
groups hold the rate for epoch 0. `state_dict()` is everything in the
scheduler's `__dict__` but the optimizer (and the lambdas, which may not be
picklable).
"""

from __future__ import annotations

import copy
import types
import warnings

from genesis.optim.optimizer import Optimizer
from genesis.tensor import Tensor

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being deprecated where possible. "
    "Please use `scheduler.step()` to step the scheduler. During the deprecation, if epoch is different from "
    "None, the closed form is used instead of the new chainable form, where available."
)


def _group_values(optimizer, key: str) -> list:
    return [group[key] for group in optimizer.param_groups]


def set_group_value(group: dict, key: str, value) -> None:
    """Write a group's value; a tensor lr is filled in place (a compiled step holds it as an input)."""
    if isinstance(group[key], Tensor):
        group[key].fill_(value)
    else:
        group[key] = value


def format_per_group(name: str, optimizer, value) -> list:
    """One value per parameter group, from a scalar or a list with one entry per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. {name} has "
                f"{len(value)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: subclasses implement `get_lr()` (and optionally `_get_closed_form_lr()`)."""

    def __init__(self, optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{index}] when resuming a "
                        "scheduler with last_epoch >= 0: load the optimizer's state first"
                    )
        self.base_lrs = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Reset the step count and take the constructor's step (to epoch last_epoch + 1)."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    # ---- the schedule -----------------------------------------------------------
    def get_lr(self) -> list:
        """The rates for epoch `last_epoch`; called by `step()` (use `get_last_lr()` to read them)."""
        raise NotImplementedError

    def get_last_lr(self) -> list:
        """The learning rates the last `step()` set, one per parameter group."""
        return self._last_lr

    def _warn_if_called_outside_step(self) -> None:
        if not getattr(self, "_get_lr_called_within_step", False):
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                UserWarning,
                stacklevel=3,
            )

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to `epoch`, deprecated) and write the new rates into the groups."""
        if self._step_count == 1 and getattr(self.optimizer, "_step_count", 1) == 0:
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`: call "
                "`optimizer.step()` first, or the first value of the schedule is skipped.",
                UserWarning,
                stacklevel=2,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed_form = getattr(self, "_get_closed_form_lr", None)
                values = closed_form() if closed_form is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values):
            set_group_value(group, "lr", lr)
        self._last_lr = _group_values(self.optimizer, "lr")

    # ---- checkpoints ------------------------------------------------------------
    _unsaved_keys = ("optimizer",)

    def state_dict(self) -> dict:
        """Every attribute but the optimizer, as copies (the scheduler keeps stepping after a save)."""
        return copy.deepcopy({key: value for key, value in self.__dict__.items() if key not in self._unsaved_keys})

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(copy.deepcopy(state_dict))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, last_lr={getattr(self, '_last_lr', None)})"


class _LambdaScheduler(LRScheduler):
    """Shared by LambdaLR and MultiplicativeLR: one callable per group, left out of the state dict.

    A callable object (not a plain function) saves its `__dict__`, as in
    PyTorch, so stateful lambdas are restored too.
    """

    _unsaved_keys = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer, lr_lambda, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != len(optimizer.param_groups):
                raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda should be a function, but got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["lr_lambdas"] = [
            None if isinstance(fn, types.FunctionType) else copy.deepcopy(fn.__dict__) for fn in self.lr_lambdas
        ]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        saved_lambdas = state_dict.pop("lr_lambdas", [])
        super().load_state_dict(state_dict)
        for fn, saved in zip(self.lr_lambdas, saved_lambdas):
            if saved is not None:
                fn.__dict__.update(copy.deepcopy(saved))


class LambdaLR(_LambdaScheduler):
    """lr = initial_lr * lr_lambda(epoch), one lambda for all groups or one per group."""

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(_LambdaScheduler):
    """lr *= lr_lambda(epoch) at every step after the first."""

    def get_lr(self) -> list:
        self._warn_if_called_outside_step()
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [group["lr"] * fn(self.last_epoch) for fn, group in zip(self.lr_lambdas, self.optimizer.param_groups)]


__all__ = [
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "set_group_value",
    "format_per_group",
    "EPOCH_DEPRECATION_WARNING",
]
