"""An LSTM layer's whole time loop as one op, forward and backward.

Unrolled into ops, an LSTM layer over T steps is T small products, T gate kernels and as many
again backward: a language model's step (T = 32, batch 16, hidden 128) spent 4.5 ms in about 160
kernel calls whose Python around them cost as much as their work. Here the loop runs in C
(ops/native/lstm.c): per step one BLAS call and one loop over the gates, the batch's sequences cut
into blocks that the thread pool runs at once (they do not interact), so the layer is two foreign
calls a step, one forward and one backward, in eager mode and in a compiled program alike.

- `lstm_layer(pre, h0, c0, w_hh, reverse=False)`: `pre` (T, N, 4H) is the input's projection with
  both biases, W_ih x_t + b_ih + b_hh, for every step; h0 and c0 (N, H); w_hh (4H, H) with
  PyTorch's gate order (i, f, g, o). The result is one flat array of three parts, in order: the
  hidden states (T, N, H), the cell states (T, N, H) and the gates after their activations (T, N,
  4H). Callers take the parts as views (`parts`); the backward reads the gates. `reverse` runs the
  steps from T - 1 down to 0 (a bidirectional layer's second direction); the states stay in time
  order.
- `lstm_layer_backward(dy, y, c0, w_hh, reverse=False)`: from the gradient of that flat result and
  the result itself, one flat array: the gradient of the gates before their activations (T, N,
  4H), which is the gradient of `pre`, then those of h0 and c0. The hidden weights' gradient is
  one product over all steps, sum_t dgates_t^T h_{t-1}, made by the vjp rule from these parts.

Where the ops' C library or numpy's OpenBLAS cannot be had, the same loop runs in numpy; the two
agree to rounding (tests/test_nn_rnn.py). Second derivatives are not defined (as with PyTorch's
fused CPU and cuDNN layers).
"""

from __future__ import annotations

import weakref

import numpy as np

from genesis.errors import ShapeError
from genesis.ops import dtype_rules as dt
from genesis.ops.elementwise import sigmoid
from genesis.ops.matmul import matmul
from genesis.ops.movement import cat
from genesis.ops.native_kernels import NativeKernels, geometry, with_gemm
from genesis.ops.op import Autocast, Kind, Op, register
from genesis.runtime import memory
from genesis.runtime import native as runtime_native
from genesis.runtime.blocks import THREADS

C_KERNELS = NativeKernels(
    "lstm.c",
    {"g_lstm_forward": "ppppppii", "g_lstm_backward": "ppppppii"},
    headers=("blas_call.h",),
    helpers=("exp.h",),
)


def parts(flat, steps: int, batch: int, hidden: int):
    """The forward's hidden states, cell states (each (T, N, H)) and gates (T, N, 4H), as views of its
    flat result (arrays or tensors)."""
    plane = steps * batch * hidden
    return (
        flat[:plane].reshape((steps, batch, hidden)),
        flat[plane : 2 * plane].reshape((steps, batch, hidden)),
        flat[2 * plane :].reshape((steps, batch, 4 * hidden)),
    )


def gradient_parts(flat, steps: int, batch: int, hidden: int):
    """(d pre (T, N, 4H), d h0 (N, H), d c0 (N, H)) as views of the backward's flat result."""
    gates = steps * batch * 4 * hidden
    plane = batch * hidden
    return (
        flat[:gates].reshape((steps, batch, 4 * hidden)),
        flat[gates : gates + plane].reshape((batch, hidden)),
        flat[gates + plane :].reshape((batch, hidden)),
    )


def _sizes(name, pre, h0, c0, w_hh) -> tuple[int, int, int]:
    """(T, N, H) of a layer's operands' shapes, or a ShapeError naming the one that does not fit."""
    if len(w_hh) != 2 or w_hh[0] != 4 * w_hh[1] or w_hh[1] == 0:
        raise ShapeError(f"{name}: the hidden weights must be (4H, H), got shape {list(w_hh)}")
    hidden = w_hh[1]
    if len(pre) != 3 or pre[2] != 4 * hidden:
        raise ShapeError(f"{name}: the input projection must be (T, N, {4 * hidden}), got shape {list(pre)}")
    for state, shape in (("h0", h0), ("c0", c0)):
        if tuple(shape) != (pre[1], hidden):
            raise ShapeError(f"{name}: {state} must be ({pre[1]}, {hidden}), got shape {list(shape)}")
    return pre[0], pre[1], hidden


def _forward_shape(pre, h0, c0, w_hh, *, reverse=False):
    steps, batch, hidden = _sizes("lstm_layer", pre, h0, c0, w_hh)
    return (6 * steps * batch * hidden,)


def _backward_shape(dy, y, c0, w_hh, *, reverse=False):
    hidden = w_hh[1] if len(w_hh) == 2 else 0
    batch = c0[0] if len(c0) == 2 else 0
    if not hidden or not batch or tuple(dy) != tuple(y) or y[0] % (6 * batch * hidden):
        raise ShapeError(
            f"lstm_layer_backward: a gradient {list(dy)} and result {list(y)} that do not fit states "
            f"{list(c0)} and weights {list(w_hh)}"
        )
    steps = y[0] // (6 * batch * hidden)
    _sizes("lstm_layer_backward", (steps, batch, 4 * hidden), c0, c0, w_hh)
    return (4 * steps * batch * hidden + 2 * batch * hidden,)


def _in_c(name, dtype, steps, batch, hidden, reverse):
    """The C kernel and its sizes, where the ops' library and numpy's OpenBLAS can be had; else None."""
    found = with_gemm(C_KERNELS, name, dtype)  # each block of sequences makes its products on its own thread
    if found is None:
        return None
    kernel, gemm = found
    return kernel, geometry(steps, batch, hidden, int(reverse), gemm.address(dtype), int(gemm.ilp64))


def _run(native, arrays, batch):
    """Blocks of sequences, one per thread: a block's products get as many rows as can be had."""
    (function, entry), sizes = native
    blocks = min(THREADS, batch)
    bounds = [batch * i // blocks for i in range(blocks + 1)]
    runtime_native.run_native(function, (*arrays, sizes), (), list(zip(bounds[:-1], bounds[1:])), entry)


def _order(steps, reverse):
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _forward_kernel(pre, h0, c0, w_hh, *, reverse=False):
    steps, batch, hidden = _sizes("lstm_layer", pre.shape, h0.shape, c0.shape, w_hh.shape)
    pre, h0, c0, w_hh = (np.ascontiguousarray(a) for a in (pre, h0, c0, w_hh))
    y = memory.empty((6 * steps * batch * hidden,), pre.dtype)
    native = _in_c("g_lstm_forward", pre.dtype, steps, batch, hidden, reverse)
    if native is not None and batch:
        _run(native, (pre, h0, c0, w_hh, y), batch)
        return y
    hs, cs, gates = parts(y, steps, batch, hidden)
    h, c = h0, c0
    for t in _order(steps, reverse):
        a = pre[t] + h @ w_hh.T
        i, f, o = (sigmoid.kernel(a[:, k * hidden : (k + 1) * hidden]) for k in (0, 1, 3))
        n = np.tanh(a[:, 2 * hidden : 3 * hidden])
        c = f * c + i * n
        h = o * np.tanh(c)
        gates[t] = np.concatenate([i, f, n, o], axis=1)
        hs[t], cs[t] = h, c
    return y


def _backward_kernel(dy, y, c0, w_hh, *, reverse=False):
    batch, hidden = c0.shape
    steps = y.shape[0] // (6 * batch * hidden)
    dy, y, c0, w_hh = (np.ascontiguousarray(a) for a in (dy, y, c0, w_hh))
    grads = memory.empty((4 * steps * batch * hidden + 2 * batch * hidden,), y.dtype)
    native = _in_c("g_lstm_backward", y.dtype, steps, batch, hidden, reverse)
    if native is not None and batch:
        _run(native, (dy, y, c0, w_hh, grads), batch)
        return grads
    _, cs, gates = parts(y, steps, batch, hidden)
    dh_out, dc_out, dgates_out = parts(dy, steps, batch, hidden)
    d_pre, dh, dc = gradient_parts(grads, steps, batch, hidden)
    dh[...], dc[...] = 0, 0
    order = list(_order(steps, reverse))
    for s in reversed(range(steps)):
        t = order[s]
        c_prev = c0 if s == 0 else cs[order[s - 1]]
        i, f, n, o = (gates[t][:, k * hidden : (k + 1) * hidden] for k in range(4))
        di_out, df_out, dn_out, do_out = (dgates_out[t][:, k * hidden : (k + 1) * hidden] for k in range(4))
        tc = np.tanh(cs[t])
        dh_t = dh_out[t] + dh
        dc_t = dc_out[t] + dc + dh_t * o * (1 - tc * tc)
        d_pre[t] = np.concatenate(
            [
                (dc_t * n + di_out) * i * (1 - i),
                (dc_t * c_prev + df_out) * f * (1 - f),
                (dc_t * i + dn_out) * (1 - n * n),
                (dh_t * tc + do_out) * o * (1 - o),
            ],
            axis=1,
        )
        dc[...] = dc_t * f
        dh[...] = d_pre[t] @ w_hh
    return grads


# The vjp rules of one node run one after another with the same gradient and result: the backward
# loop runs once for all of them (eagerly; a traced program's CSE would merge the calls anyway). The
# last rule that will run lets go of the result, which may be big.
_last_backward: list = [None, None, None]


def _backward(g, y, operands, index, reverse):
    """The backward's flat result for the vjp rule of input `index` of `operands` (pre, h0, c0, w_hh)."""
    cached_g, cached_y, grads = _last_backward
    if cached_g is None or cached_g() is not g or cached_y() is not y:
        grads = lstm_layer_backward(g, y, operands[2], operands[3], reverse=reverse)
        _last_backward[:] = weakref.ref(g), weakref.ref(y), grads
    if not any(getattr(x, "requires_grad", False) for x in operands[index + 1 :]):
        _last_backward[:] = None, None, None
    return grads


def _steps(y, c0):
    batch, hidden = c0.shape
    return y.shape[0] // (6 * batch * hidden), batch, hidden


def _state_grad(index):
    """The rule for pre (0), h0 (1) or c0 (2): that part of the backward's result."""

    def rule(g, y, *operands, reverse=False):
        return gradient_parts(_backward(g, y, operands, index, reverse), *_steps(y, operands[2]))[index]

    return rule


def _w_hh_grad(g, y, pre, h0, c0, w_hh, *, reverse=False):
    """sum over steps of d gates_t^T h_{t-1}: one product over the steps' rows."""
    steps, batch, hidden = _steps(y, c0)
    d_pre = gradient_parts(_backward(g, y, (pre, h0, c0, w_hh), 3, reverse), steps, batch, hidden)[0]
    rows = steps * batch
    hs = y[: rows * hidden].reshape((rows, hidden))
    # the state each step started from: h0 for the first step, the step before's otherwise
    if reverse:
        previous = cat(hs[batch:], h0, dim=0)
    else:
        previous = cat(h0, hs[: rows - batch], dim=0)
    return matmul(d_pre.reshape((rows, 4 * hidden)).transpose(0, 1), previous)


lstm_layer = register(
    Op(
        name="lstm_layer",
        kind=Kind.OPAQUE,
        kernel=_forward_kernel,
        shape=_forward_shape,
        dtype=dt.require_floating("lstm_layer", dt.floating),
        vjp=(_state_grad(0), _state_grad(1), _state_grad(2), _w_hh_grad),
        saves=frozenset({"inputs", "output"}),
        autocast=Autocast.LOW_PRECISION,  # products in fp16/bf16 as PyTorch's fused layer; the states in fp32
        contiguous_result=True,
    )
)
lstm_layer_backward = register(
    Op(
        name="lstm_layer_backward",
        kind=Kind.OPAQUE,
        kernel=_backward_kernel,
        shape=_backward_shape,
        dtype=dt.require_floating("lstm_layer_backward", dt.floating),
        saves=frozenset(),
        contiguous_result=True,
    )
)

__all__ = ["gradient_parts", "lstm_layer", "lstm_layer_backward", "parts"]
