"""Activations that are one op each, as in PyTorch: GELU (exact and tanh) and SiLU.

Written from primitives they would save every intermediate for the backward
(GELU's exact form: x * 0.5, x / sqrt(2) and erf(...) + 1; a fused forward
kernel then stores three arrays that only the backward reads). As one op each
they save their input alone, and the backward recomputes what it needs from it
in its own fused kernel. Every form rounds in the same order: eager's kernel,
the C and Triton snippets and the numpy statements below.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from genesis.ops import dtype_rules as dt
from genesis.ops.elementwise import ERF_IN_C_FROM, elementwise_op, exp, sigmoid, tanh
from genesis.runtime.blocks import slow_ufunc_in_parts

SQRT1_2 = 1.0 / math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
TINY = 1e-30  # below, x * Phi(x) / x is not Phi(x) after rounding (0, subnormals)
TANH_CUBIC = 0.044715  # the cubic term of the tanh approximation (Hendrycks and Gimpel)


def _gelu_kernel(x):
    out = np.asarray(slow_ufunc_in_parts(special.erf, np.asarray(x * SQRT1_2)))
    out += 1
    out *= x
    out *= 0.5  # exact: a power of two
    return out


def _gelu_tanh_kernel(x):
    out = np.asarray(x * x * x * TANH_CUBIC)
    out += x
    out *= SQRT_2_OVER_PI
    np.tanh(out, out=out)
    out += 1
    out *= x
    out *= 0.5
    return out


def _silu_kernel(x):
    out = np.asarray(special.expit(x))
    out *= x
    return out


def _gelu_vjp(g, out, x):
    return gelu_backward(g, x, out)


def _gelu_backward_kernel(g, x, out):
    # Phi(x) = out / x: a second erf would cost the eager backward as much as the forward (numpy's
    # erf is 30x its exp). At 0, and where halving a subnormal x rounded, Phi is 1/2 to within rounding.
    x, out = np.broadcast_arrays(x, out)
    cdf = np.full(x.shape, 0.5, np.result_type(x, out))
    np.divide(out, x, out=cdf, where=np.abs(x) > TINY)
    pdf = np.exp(x * x * -0.5)
    pdf *= INV_SQRT_2PI
    pdf *= x
    pdf += cdf
    return pdf * g  # g may be the larger one (an op's operands broadcast)


def _gelu_backward_vjp_g(gg, out, g, x, gelu_out):
    return gelu_backward(gg, x, gelu_out)


def _gelu_backward_vjp_x(gg, out, g, x, gelu_out):
    # d/dx (Phi + x phi) = phi (2 - x^2); `gelu_out` only stands in for Phi(x) and takes no gradient
    return gg * g * exp(x * x * -0.5) * INV_SQRT_2PI * (2.0 - x * x)


def _gelu_tanh_vjp(g, out, x):
    inner = (x + x * x * x * TANH_CUBIC) * SQRT_2_OVER_PI
    t = tanh(inner)
    d_inner = (x * x * (3.0 * TANH_CUBIC) + 1.0) * SQRT_2_OVER_PI
    return g * ((t + 1.0) * 0.5 + x * 0.5 * (1.0 - t * t) * d_inner)


def _silu_vjp(g, out, x):
    s = sigmoid(x)
    return g * (s * (x * (1.0 - s) + 1.0))


gelu = elementwise_op(
    "gelu",
    _gelu_kernel,
    (_gelu_vjp,),
    dtype=dt.floating,
    saves=frozenset({"inputs", "output"}),  # the backward reads Phi(x) off the output
    c="g_gelu({0})",
    c_helpers=("gelu.h",),
    generated_eager_from=ERF_IN_C_FROM,
    triton=f"{{0}} * (libdevice.erf({{0}} * {SQRT1_2!r}) + 1.0) * 0.5",
    numpy=(
        f"np.multiply({{0}}, {SQRT1_2!r}, out={{out}}); special.erf({{out}}, out={{out}}); "
        "np.add({out}, 1, out={out}); np.multiply({out}, {0}, out={out}); np.multiply({out}, 0.5, out={out})"
    ),
)
# d/dx gelu(x) times g, from x and gelu(x) (as PyTorch's gelu_backward; its own gradient is exact)
gelu_backward = elementwise_op(
    "gelu_backward",
    _gelu_backward_kernel,
    (_gelu_backward_vjp_g, _gelu_backward_vjp_x, None),
    dtype=dt.floating,
    c="g_gelu_backward({0}, {1}, {2})",
    c_helpers=("exp.h", "gelu_backward.h"),
    generated_eager_from=ERF_IN_C_FROM,  # numpy's kernel makes five passes with temporaries
    triton=(
        f"{{0}} * (tl.where(tl.abs({{1}}) > {TINY!r}, {{2}} / {{1}}, 0.5) "
        f"+ {{1}} * (tl.exp({{1}} * {{1}} * -0.5) * {INV_SQRT_2PI!r}))"
    ),
    numpy=(
        f"np.copyto({{out}}, 0.5); np.divide({{2}}, {{1}}, out={{out}}, where=np.abs({{1}}) > {TINY!r}); "
        f"np.add({{out}}, {{1}} * (np.exp({{1}} * {{1}} * -0.5) * {INV_SQRT_2PI!r}), out={{out}}); "
        "np.multiply({out}, {0}, out={out})"
    ),
)
gelu_tanh = elementwise_op(
    "gelu_tanh",
    _gelu_tanh_kernel,
    (_gelu_tanh_vjp,),
    dtype=dt.floating,
    c="g_gelu_tanh({0})",
    c_helpers=("gelu.h",),
    triton=(
        f"{{0}} * (libdevice.tanh(({{0}} * {{0}} * {{0}} * {TANH_CUBIC!r} + {{0}}) * {SQRT_2_OVER_PI!r}) + 1.0) * 0.5"
    ),
    numpy=(
        f"np.multiply({{0}}, {{0}}, out={{out}}); np.multiply({{out}}, {{0}}, out={{out}}); "
        f"np.multiply({{out}}, {TANH_CUBIC!r}, out={{out}}); np.add({{out}}, {{0}}, out={{out}}); "
        f"np.multiply({{out}}, {SQRT_2_OVER_PI!r}, out={{out}}); np.tanh({{out}}, out={{out}}); "
        "np.add({out}, 1, out={out}); np.multiply({out}, {0}, out={out}); np.multiply({out}, 0.5, out={out})"
    ),
)
silu = elementwise_op(
    "silu",
    _silu_kernel,
    (_silu_vjp,),
    dtype=dt.floating,
    c="{0} * (1 / (1 + g_exp(-{0})))",
    c_helpers=("exp.h",),
    triton="{0} * tl.sigmoid({0})",
    numpy="special.expit({0}, out={out}); np.multiply({out}, {0}, out={out})",
)

__all__ = ["gelu", "gelu_backward", "gelu_tanh", "silu"]
