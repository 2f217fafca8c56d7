"""Adam and AdamW (PyTorch's semantics, including amsgrad and maximize).

AdamW is Adam with decoupled weight decay: the parameter shrinks by
`1 - lr * weight_decay` before the moment update instead of the decay
entering the gradient. The step count is a 0-d float32 tensor in the state,
as PyTorch keeps it, and the bias corrections `1 - beta ** step` are float64
tensor ops on it, so a step reads nothing back to the host and traces whole
(see functional.py).
"""

from __future__ import annotations

from genesis.creation import zeros_like
from genesis.optim.functional import adam_update
from genesis.optim.optimizer import Optimizer, check_betas, check_nonnegative


class Adam(Optimizer):
    _per_element_state_keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        amsgrad=False,
        *,
        maximize=False,
        decoupled_weight_decay=False,
        foreach=None,
        fused=None,
    ):
        check_nonnegative(lr=lr, eps=eps)
        check_betas(betas)
        check_nonnegative(weight_decay=weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults, foreach=foreach, fused=fused)

    def _update_group(self, group: dict) -> None:
        lr, beta1, beta2, fixed = self._adam_hyperparameters(
            group, ("eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
        )
        for param, grad in self._params_with_grad(group):
            state = self._counted_state(param, ("exp_avg", "exp_avg_sq"))
            if fixed["amsgrad"] and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = zeros_like(param)
            adam_update(
                param,
                grad,
                state["exp_avg"],
                state["exp_avg_sq"],
                state.get("max_exp_avg_sq"),
                step=state["step"],
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                **fixed,
            )


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2), as in Loshchilov and Hutter."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
        foreach=None,
        fused=None,
    ):
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
            foreach=foreach,
            fused=fused,
        )


__all__ = ["Adam", "AdamW"]
