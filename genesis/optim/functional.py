"""The update rules of the elementwise optimizers, one parameter at a time, in genesis ops.

Each function mutates the parameter and its state buffers in place and is
called under `no_grad`. The formulas follow PyTorch's single-tensor
implementations operation for operation (the same products, in the same
order, with the same scalars), so float32 results agree to rounding:

- `a.add(b, alpha=s)` is `a + b * s`; `addcmul(t1, t2, value=v)` is
  `self + (t1 * v) * t2`; `addcdiv(t1, t2, value=v)` is `self + (t1 * v) / t2`;
- `lerp_` with a scalar weight switches formula at 0.5, as PyTorch's kernel does;
- `number / t` is `reciprocal(t) * number` (PyTorch's `Tensor.__rtruediv__`).

The step count is a 0-d tensor, and the bias corrections are float64 tensor
ops on it: the same numbers PyTorch's host arithmetic gives, with no tensor
read back. Hyperparameters are Python numbers in eager mode and 0-d float64
tensors while a step is traced (graph inputs, so a scheduler's change needs
no recompile); both give the same float32 results.
"""

from __future__ import annotations

from genesis import functional as F
from genesis.dtypes import float64
from genesis.optim import eager_adam
from genesis.tensor import Tensor


def lerp_(target: Tensor, end: Tensor, weight) -> Tensor:
    """target += weight * (end - target), with PyTorch's choice of formula for each weight. A tensor
    weight (a traced hyperparameter) chooses in the graph: both forms, selected by the weight."""
    if isinstance(weight, Tensor):
        difference = end - target
        near_target = target + difference * weight
        near_end = end - difference * (1 - weight)
        return target.copy_(F.where(weight < 0.5, near_target, near_end))
    if weight < 0.5:
        return target.add_((end - target) * weight)
    return target.copy_(end - (end - target) * (1 - weight))


def sgd_update(param, grad, momentum_buffer, first, *, lr, momentum, dampening, nesterov, weight_decay, maximize):
    """One SGD step for one parameter; on the `first` step the momentum buffer takes the gradient."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + param * weight_decay
    if momentum_buffer is not None:
        if first:
            momentum_buffer.copy_(grad)
        else:
            momentum_buffer.mul_(momentum).add_(grad, alpha=1 - dampening)
        grad = grad + momentum_buffer * momentum if nesterov else momentum_buffer
    param.add_(grad * -lr)


def _decay_and_average(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay, decoupled, maximize):
    """The start of an Adam-family step: the gradient's sign for `maximize`, weight decay (decoupled:
    the parameter shrinks; else L2 in the gradient), then both moving averages in place. Returns the
    gradient the step uses."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        if decoupled:
            param.mul_(1 - lr * weight_decay)
        else:
            grad = grad + param * weight_decay
    lerp_(exp_avg, grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).add_(grad * (1 - beta2) * grad)
    return grad


def adam_update(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    *,
    step,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    amsgrad,
    maximize,
    decoupled_weight_decay,
):
    """One Adam step (AdamW's with `decoupled_weight_decay`); `step` counts this step (1 on the first)."""
    state = (exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else None)
    if eager_adam.applies(param, grad, state, (lr, beta1, beta2, eps, weight_decay)):
        return eager_adam.adam_update(
            param,
            grad,
            exp_avg,
            exp_avg_sq,
            max_exp_avg_sq,
            step=step,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
    _decay_and_average(
        param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay, decoupled_weight_decay, maximize
    )

    step = step.to(float64)  # PyTorch computes the corrections on the host, in double precision
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5

    if amsgrad:
        max_exp_avg_sq.copy_(F.maximum(max_exp_avg_sq, exp_avg_sq))
        second_moment = max_exp_avg_sq
    else:
        second_moment = exp_avg_sq
    denom = F.sqrt(second_moment) / bias_correction2_sqrt + eps
    param.add_(exp_avg * -step_size / denom)


def rmsprop_update(
    param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps, weight_decay, momentum, centered, maximize
):
    """One RMSprop step; `grad_avg` is used when centered, `momentum_buffer` when given (momentum > 0)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + param * weight_decay
    square_avg.mul_(alpha).add_(grad * (1 - alpha) * grad)
    if centered:
        lerp_(grad_avg, grad, 1 - alpha)
        avg = F.sqrt(square_avg - grad_avg * grad_avg)  # addcmul with value=-1: the product is exact to negate
    else:
        avg = F.sqrt(square_avg)
    avg = avg + eps
    if momentum_buffer is not None:
        momentum_buffer.mul_(momentum).add_(grad / avg)
        param.add_(momentum_buffer * -lr)
    else:
        param.add_(grad * -lr / avg)


def adagrad_update(param, grad, state_sum, *, step, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step: the learning rate decays as lr / (1 + (step - 1) * lr_decay)."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + param * weight_decay
    decayed_lr = lr / (1 + (step.to(float64) - 1) * lr_decay)
    state_sum.add_(grad * grad)
    std = F.sqrt(state_sum) + eps
    param.add_(grad * -decayed_lr / std)


def adadelta_update(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step: the update is scaled by the RMS of past updates over the RMS of gradients."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + param * weight_decay
    square_avg.mul_(rho).add_(grad * (1 - rho) * grad)
    std = F.sqrt(square_avg + eps)
    delta = F.sqrt(acc_delta + eps) / std * grad
    acc_delta.mul_(rho).add_(delta * (1 - rho) * delta)
    param.add_(delta * -lr)


def adamax_update(param, grad, exp_avg, exp_inf, *, step, lr, beta1, beta2, eps, weight_decay, maximize):
    """One Adamax step: Adam with the infinity norm of past gradients in place of the second moment."""
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + param * weight_decay
    lerp_(exp_avg, grad, 1 - beta1)
    exp_inf.copy_(F.maximum(exp_inf * beta2, F.abs(grad) + eps))
    corrected_lr = lr / (1 - beta1 ** step.to(float64))
    param.add_(exp_avg * -corrected_lr / exp_inf)


def nadam_update(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    mu_product,
    *,
    step,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    momentum_decay,
    decoupled_weight_decay,
    maximize,
):
    """One NAdam step. `mu_product`, the product of the momentum schedule so far, is a 0-d float32
    tensor as in PyTorch: it is multiplied in float32 and read in float64, as PyTorch's `.item()` is."""
    grad = _decay_and_average(
        param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay, decoupled_weight_decay, maximize
    )
    step = step.to(float64)
    bias_correction2 = 1 - beta2**step
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product.mul_(mu.to(mu_product.dtype))
    denom = F.sqrt(exp_avg_sq / bias_correction2) + eps
    product = mu_product.to(float64)
    # two separate additions, each rounded to the parameter, as PyTorch's two addcdiv_ calls
    param.add_(grad * (-lr * (1.0 - mu) / (1.0 - product)) / denom)
    param.add_(exp_avg * (-lr * mu_next / (1.0 - product * mu_next)) / denom)


def radam_update(
    param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
):
    """One RAdam step. While the variance estimate is unreliable (rho_t <= 5, the first steps) the
    update is plain momentum SGD; after it, Adam's step times the rectification term. PyTorch branches
    on the host; here both updates are computed and `where` picks one, so nothing is read back."""
    _decay_and_average(
        param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, weight_decay, decoupled_weight_decay, maximize
    )

    step = step.to(float64)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    rho_inf = 2 / (1 - beta2) - 1  # the maximum length of the approximated simple moving average
    rho_t = rho_inf - 2 * step * beta2**step / bias_correction2
    rectifies = rho_t > 5.0
    # the term is only used where rho_t > 5; elsewhere its radicand may be negative, so it takes 1 there
    radicand = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    rectification = F.where(rectifies, radicand, 1.0) ** 0.5

    plain = exp_avg / bias_correction1 * lr
    adaptive_lr = F.reciprocal(F.sqrt(exp_avg_sq) + eps) * bias_correction2**0.5
    param.sub_(F.where(rectifies, plain * adaptive_lr * rectification, plain))


__all__ = [
    "lerp_",
    "sgd_update",
    "adam_update",
    "rmsprop_update",
    "adagrad_update",
    "adadelta_update",
    "adamax_update",
    "nadam_update",
    "radam_update",
]
