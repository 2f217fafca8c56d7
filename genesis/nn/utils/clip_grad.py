"""Gradient clipping (PyTorch's torch.nn.utils.clip_grad).

`clip_grad_norm_` follows PyTorch step for step: a p-norm per gradient, the
norm of those norms, then `clip_coef = max_norm / (total_norm + 1e-6)`
clamped to 1 and multiplied into every gradient in place. The coefficient is
a tensor and is never read on the host, so under tracing the whole clip is a
norm reduction, a coefficient and multiplies that fuse into the optimizer's
update (only `error_if_nonfinite=True` must read the norm). The norm and the
coefficient are markers (ops/markers.py): a traced clip records one node for
each, and the compiler's clipping pass splices in the same composites.
Eagerly, a training loop's total norm runs as one compiled program once the
loop has called it often (functional/fused.py): per gradient a few ops, each
a pass and a dispatch, where the program makes one reduction per gradient.

Each gradient's norm is computed in fp32 when the gradient is fp16/bf16 and
rounded once to the gradient's dtype, as PyTorch's norm kernels do; the
total norm then has the dtype the norms promote to.
"""

from __future__ import annotations

import math
import types
import warnings

from genesis import dispatch, dtypes, markers
from genesis import functional as F
from genesis.creation import tensor
from genesis.functional.fused import fused_in_eager
from genesis.grad_mode import no_grad
from genesis.ops.op import OPS
from genesis.tensor import Tensor


def _as_list(parameters) -> list:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def vector_norm(x: Tensor, norm_type: float = 2.0) -> Tensor:
    """The p-norm of all of `x`'s elements, as a 0-d tensor of `x`'s dtype.

    `norm_type` may be any float: inf (max |x|), -inf (min |x|), 0 (the count
    of non-zeros), or p for (sum |x|^p)^(1/p).
    """
    p = float(norm_type)
    work = F.cast(x, dtypes.float32) if x.dtype.is_low_precision else x
    if math.isinf(p):
        if x.numel() == 0:
            raise RuntimeError(
                f"cannot compute the {norm_type} norm of an empty tensor (shape {list(x.shape)}): "
                "max and min have no identity"
            )
        magnitude = F.abs(work)
        norm = F.amax(magnitude) if p > 0 else F.amin(magnitude)
    elif p == 0:
        norm = F.cast(F.sum(work != 0), work.dtype)
    elif p == 1:
        norm = F.sum(F.abs(work))
    elif p == 2:
        norm = F.sqrt(F.sum(work * work))
    else:
        norm = F.sum(F.abs(work) ** p) ** (1.0 / p)
    return F.cast(norm, x.dtype)


@fused_in_eager  # eagerly, a loop's clip runs its per-gradient norms as one program (fused.py)
def _total_norm(*tensors, norm_type):
    """The norm of the tensors' norms: the norm of all their elements as one vector."""
    return vector_norm(F.stack([vector_norm(t, norm_type) for t in tensors]), norm_type)


def _clip_coefficient(total_norm, *, max_norm):
    """min(max_norm / (total_norm + 1e-6), 1)."""
    # PyTorch writes max_norm / (total_norm + 1e-6), which its Tensor.__rtruediv__ computes as a
    # reciprocal then a multiply (two roundings); the same two ops give the same bits in fp16/bf16.
    return F.clamp(F.reciprocal(total_norm + 1e-6) * float(max_norm), max=1.0)


# the total has the dtype the per-gradient norms stack to: the stack's own promotion rule
total_norm_of = markers.define(
    "grad_norm", "clipping", _total_norm, shape=lambda *shapes, **attrs: (), dtype=OPS["cat"].dtype
)
clip_coefficient = markers.define(
    "clip_coefficient",
    "clipping",
    _clip_coefficient,
    shape=lambda shape, **attrs: (),
    dtype=lambda inputs, **attrs: (None, inputs[0].dtype),
)


@no_grad()
def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """The norm of the tensors' norms: the norm of all their elements as one vector."""
    tensors = _as_list(tensors)
    if not tensors:
        return tensor(0.0)
    total_norm = total_norm_of(*tensors, norm_type=float(norm_type))
    if error_if_nonfinite and not F.isfinite(total_norm).item():  # the one host read, only on request
        raise RuntimeError(
            f"The total norm of order {float(norm_type)} for gradients from `parameters` is non-finite "
            f"({total_norm.item()}), so it cannot be clipped. To disable this error and scale the gradients "
            "by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return total_norm


@no_grad()
def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
    """Scale the gradients in place by min(max_norm / (total_norm + 1e-6), 1)."""
    grads = _gradients(_as_list(parameters))
    if not grads:
        return
    clip_coef_clamped = clip_coefficient(total_norm, max_norm=float(max_norm))
    for grad in grads:
        grad.mul_(clip_coef_clamped)


@no_grad()
def clip_grad_norm_(
    parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None
) -> Tensor:
    """Clip the gradients' total norm to `max_norm` in place; return the total norm (before clipping).

    `parameters` is a tensor or an iterable of tensors; those without a
    gradient are skipped. `foreach` is accepted for PyTorch compatibility.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and not parameters:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3)
    grads = _gradients(parameters)
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


@no_grad()
def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient into [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    for grad in _gradients(_as_list(parameters)):
        grad.clamp_(min=-clip_value, max=clip_value)


def _gradients(parameters) -> list[Tensor]:
    """The gradients the parameters have (a compiled call reads them anew: dispatch.gradient)."""
    return [grad for grad in map(dispatch.gradient, parameters) if grad is not None]


__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "get_total_norm",
    "clip_grads_with_norm_",
    "vector_norm",
]
