"""Activations that draw random numbers: rrelu and gumbel_softmax.

Both draw from genesis's default generator through `rand`, an op-table
primitive with a seed input, so they trace and a compiled program draws
afresh at every call; `genesis.manual_seed` makes a run reproducible.
"""

from __future__ import annotations

from genesis import functional as GF
from genesis.creation import rand
from genesis.nn.functional.activation import _maybe_inplace, softmax


def rrelu(x, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, inplace: bool = False):
    """x where x > 0, else a * x: a ~ U(lower, upper) per element in training, (lower + upper) / 2 in eval.

    The gradient of an element that is not positive (0 too, as in PyTorch) is its slope."""
    if not x.dtype.is_floating_point:
        raise TypeError(f"rrelu needs a floating-point input, got {x.dtype.name}")
    if lower > upper:
        raise ValueError(f"rrelu: lower bound {lower} must not exceed upper bound {upper}")
    if not training:
        return _maybe_inplace(x, GF.where(x > 0, x, x * ((lower + upper) / 2)), inplace)
    slopes = rand(x.shape, dtype=x.dtype) * (upper - lower) + lower
    return _maybe_inplace(x, GF.where(x > 0, x, x * slopes), inplace)


def gumbel_softmax(logits, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1):
    """softmax((logits + g) / tau) with g ~ Gumbel(0, 1); `hard` returns the one-hot of its argmax in the
    forward pass and the soft sample's gradient (straight-through), as PyTorch. `eps` is unused, as there."""
    if not logits.dtype.is_floating_point:
        raise TypeError(f"gumbel_softmax needs floating-point logits, got {logits.dtype.name}")
    uniform = rand(logits.shape, dtype=logits.dtype)
    # g = -log(E) with E ~ Exp(1) = -log(1 - U); E is kept above 0 so g stays finite when U draws 0
    exponential = GF.clamp(-GF.log1p(-uniform), min=_smallest_normal(logits.dtype))
    gumbels = -GF.log(exponential)
    soft = softmax((logits + gumbels) / tau, dim)
    if not hard:
        return soft
    dim = dim + soft.ndim if dim < 0 else dim
    chosen = GF.argmax(soft, dim, keepdim=True)
    positions = GF.reshape(GF.arange(soft.shape[dim], device=soft.device), (-1,) + (1,) * (soft.ndim - dim - 1))
    one_hot = (positions == chosen).to(soft.dtype)
    return one_hot - soft.detach() + soft


def _smallest_normal(dtype) -> float:
    return {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126}.get(dtype.name, 2.0**-1022)


__all__ = ["rrelu", "gumbel_softmax"]
