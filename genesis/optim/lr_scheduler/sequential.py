"""Schedulers that drive other schedulers: SequentialLR (one after another) and ChainedScheduler (all at once).

SequentialLR reproduces PyTorch's bookkeeping exactly: on construction it
resets the groups to their initial rates, undoes the step each child took
when it was built and re-takes the first child's initial step; at each
milestone the next child jumps to its epoch 0 through its closed form
(`_update_lr(0)`). The children's state dicts are saved inside its own.
"""

from __future__ import annotations

from bisect import bisect_right

from genesis.optim.lr_scheduler.base import LRScheduler, _group_values, set_group_value
from genesis.optim.lr_scheduler.plateau import ReduceLROnPlateau


def _check_children(owner: str, optimizer, schedulers) -> None:
    if len(schedulers) < 1:
        raise ValueError(f"{owner} expects at least one scheduler, but got no scheduler.")
    for index, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise TypeError(f"{owner} at index {index} should have `optimizer` as its attribute.")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError(
                f"{owner} does not support `ReduceLROnPlateau` scheduler as it requires additional "
                f"kwargs to be specified when calling `step`, but got one at index {index}."
            )
        if scheduler.optimizer is not optimizer:
            raise ValueError(
                f"{owner} expects all schedulers to belong to the same optimizer, but scheduler "
                f"{type(scheduler).__name__} at index {index} has another one."
            )


class _Composite(LRScheduler):
    """State dicts that nest the children's."""

    _unsaved_keys = ("optimizer", "_schedulers")

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        children = state_dict.pop("_schedulers")
        if len(children) != len(self._schedulers):
            raise ValueError(
                f"the state dict has {len(children)} child schedulers, this {type(self).__name__} "
                f"has {len(self._schedulers)}"
            )
        super().load_state_dict(state_dict)
        for scheduler, child_state in zip(self._schedulers, children):
            scheduler.load_state_dict(child_state)


class SequentialLR(_Composite):
    """Run `schedulers[i]` from `milestones[i - 1]` until `milestones[i]`."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch: int = -1):
        _check_children(type(self).__name__, optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(
                "Sequential Schedulers expects number of schedulers provided to be one more than the "
                f"number of milestone points, but got number of schedulers {len(schedulers)} and "
                f"the number of milestones to be equal to {len(milestones)}"
            )
        self._schedulers = list(schedulers)
        self._milestones = list(milestones)
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            set_group_value(group, "lr", group["initial_lr"])
        self._undo_construction_steps(self)
        index = bisect_right(self._milestones, 0)
        self._schedulers[index]._initial_step()
        self._last_lr = self._schedulers[index].get_last_lr()

    def _undo_construction_steps(self, scheduler) -> None:
        """Each child (nested ones too) stepped once when it was built: take that step back."""
        if hasattr(scheduler, "_schedulers"):
            for child in scheduler._schedulers:
                self._undo_construction_steps(child)
        elif hasattr(scheduler, "last_epoch"):
            scheduler.last_epoch -= 1

    def step(self) -> None:
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Step every scheduler at each step; their (chainable) effects multiply."""

    def __init__(self, schedulers, optimizer=None):
        schedulers = list(schedulers)
        optimizer = optimizer or (schedulers[0].optimizer if schedulers else None)
        _check_children(type(self).__name__, optimizer, schedulers)
        self._schedulers = schedulers
        self.optimizer = optimizer
        self._last_lr = _group_values(optimizer, "lr")

    def step(self) -> None:
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _group_values(self.optimizer, "lr")


__all__ = ["SequentialLR", "ChainedScheduler"]
