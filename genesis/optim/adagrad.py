"""Adagrad with learning-rate decay, weight decay and maximize (PyTorch's semantics).

As in PyTorch, every parameter's state (the step count and the running sum
of squared gradients, starting at `initial_accumulator_value`) is made when
the optimizer is, not at the first step, so a state dict saved before any
step already lists it.
"""

from __future__ import annotations

from genesis.creation import full_like, zeros
from genesis.dtypes import float32
from genesis.optim.functional import adagrad_update
from genesis.optim.optimizer import Optimizer, check_nonnegative, refuse_options


class Adagrad(Optimizer):
    _per_element_state_keys = ("sum",)

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        foreach=None,
        *,
        maximize=False,
        differentiable=False,
        fused=None,
    ):
        check_nonnegative(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
        )
        refuse_options("Adagrad", differentiable=differentiable)
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            maximize=maximize,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)
        for group in self.param_groups:
            for param in group["params"]:
                self._initial_state(param)

    def _initial_state(self, param) -> dict:
        state = self.state[param]
        if not state:  # PyTorch fills from the constructor's value, whatever a group says
            state["step"] = zeros((), dtype=float32, device=param.device)
            state["sum"] = full_like(param, self.defaults["initial_accumulator_value"])
        return state

    def _update_group(self, group: dict) -> None:
        lr = self._hyper(group, "lr")
        fixed = {key: self._fixed(group, key) for key in ("lr_decay", "weight_decay", "eps", "maximize")}
        for param, grad in self._params_with_grad(group):
            state = self._initial_state(param)  # a group added later gets its state at its first step
            state["step"].add_(1)
            adagrad_update(param, grad, state["sum"], step=state["step"], lr=lr, **fixed)


__all__ = ["Adagrad"]
