"""Composites that eager mode runs as compiled programs, where that pays.

A composite is a chain of primitive ops, and eagerly each op is a pass over memory: batch_norm's
training step makes about twenty passes over its input, forward and backward, where PyTorch's
native kernels make four. An eager call of a composite wrapped by `fused_in_eager`, on big
float inputs, runs it through genesis.compile instead (this layer cannot import the compiler
above it, which hands its function down: `provide_compiler`). Its chains and reductions then fuse
into a few C kernels, its backward is the compiled backward, a second derivative comes from its
joint graph run eagerly (compiler/backward.py), and its in-place updates (running statistics) are
written back as eager writes them. The values are the op-by-op path's up to rounding: a fused
kernel may sum in another order.

One compiled function is kept per call signature (shapes, dtypes, requires_grad and the other
arguments' values), so each signature compiles once (0.2-0.5 s; an unrolled LSTM layer of 32
steps, a few seconds) and none recompiles; a signature compiles at its second call (`HOT_AFTER`),
so a call made once, a test's or a script's, never waits for a compile (its second call's values
then differ from its first's by rounding), and after `MAX_COMPILES` signatures a composite compiles
no more. A small signature (under `min_elements` float elements in all) compiles only once a loop
has called it `HOT_AFTER_SMALL` times: its cost is its dozen ops' dispatch, not memory passes, so a
compile pays back only over a training loop's many calls (cross_entropy over 64 rows of 10 logits,
forward and backward: 330 us op by op, 115 compiled). A compiled call that fails (a class index
out of range) runs op by op again, which raises the error eager raises, with its message (the
program writes nothing back before it finishes).
Wrapped today: batch_norm, layer_norm, scaled_dot_product_attention and cross_entropy (big from
`FUSED_FROM` elements), clipping's total norm of the gradients (nn/utils/clip_grad.py) and a
recurrent layer's time loop (nn/modules/rnn.py), whose costs are their many small ops (big from
any size).
The op-by-op path runs instead under a trace (the outer program sees the composite's ops), under
autocast, for a small signature's first calls (where a compile would not pay back), for dtypes
other than float32 and float64, where no compiler is at hand, and with GENESIS_FUSED_EAGER=0: every op as written,
the debugging path.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict

from genesis import autocast_state, dispatch, dtypes
from genesis.tensor import Tensor

FUSED_FROM = 1 << 18  # float elements of the inputs in all, by default
HOT_AFTER = 2  # calls of one signature, the last of them compiled: a one-off call runs op by op
HOT_AFTER_SMALL = 64  # the same for a signature under `min_elements`: a loop's, not a test's
# signatures compiled per composite at most: inputs whose shapes keep changing (sequences of every
# length) would otherwise compile on and on; their calls run op by op
MAX_COMPILES = 16
_FLOATS = (dtypes.float32, dtypes.float64)
_KEPT = 64  # compiled functions kept per composite, the least recently used dropped first

# compile(fn) -> a compiled callable, or None where none can be had (no C compiler): set by the compiler
_compile = None


def provide_compiler(compile_fn) -> None:
    global _compile
    _compile = compile_fn


def enabled() -> bool:
    return _compile is not None and os.environ.get("GENESIS_FUSED_EAGER", "1") != "0"


def fused_in_eager(composite=None, *, min_elements: int = FUSED_FROM):
    """`composite`, run compiled when it is called eagerly again with the same signature on float
    inputs of `min_elements` or more in all, or often (see the module); as
    `@fused_in_eager(min_elements=n)` too."""
    if composite is None:
        return functools.partial(fused_in_eager, min_elements=min_elements)
    programs: OrderedDict = OrderedDict()  # signature -> compiled function, or a count of calls so far

    @functools.wraps(composite)
    def run(*args, **kwargs):
        key = _signature(args, kwargs, min_elements)
        if key is None or dispatch.is_tracing() or autocast_state.is_autocast_enabled() or not enabled():
            return composite(*args, **kwargs)
        compiled = programs.get(key, 0)
        if type(compiled) is int:  # not compiled yet: a signature called once is not worth a compile
            calls = compiled + 1
            hot = calls >= (HOT_AFTER if key[0] else HOT_AFTER_SMALL) and len(compiles) < MAX_COMPILES
            compiled = programs[key] = (_compile(composite) or composite) if hot else calls
            if hot:
                compiles.append(key)
            if len(programs) > _KEPT:
                programs.popitem(last=False)
            if not hot:
                return composite(*args, **kwargs)
        else:
            programs.move_to_end(key)
        try:
            return compiled(*args, **kwargs)
        except Exception:  # noqa: BLE001  (op by op again: eager's error, with eager's message)
            return composite(*args, **kwargs)

    compiles: list = []  # the signatures compiled so far
    run.composite = composite
    run.programs = programs  # by call signature: the compiled function, or how often it ran op by op
    run.compiles = compiles
    return run


def _signature(args, kwargs, min_elements):
    """The call's key, its first entry whether the float tensors have `min_elements` in all; or None
    where it should run op by op: a floating tensor of another dtype than float32/float64, a tensor
    on another device than the CPU, or an argument that cannot be a key."""
    key, elements = [], 0
    for arg in (*args, *kwargs.items()):
        if isinstance(arg, Tensor):
            if arg.device.type != "cpu" or (arg.dtype.is_floating_point and arg.dtype not in _FLOATS):
                return None
            key.append((tuple(arg.shape), arg.dtype, arg.requires_grad))
            if arg.dtype.is_floating_point:
                elements += arg.numel()
        elif _plain(arg):
            key.append((type(arg), arg))
        else:
            return None
    return (elements >= min_elements, *key)


def _plain(arg) -> bool:
    """None, a bool, int, float or str, or a tuple of them: a value the key can hold (and a guard
    compare)."""
    if isinstance(arg, tuple):
        return all(_plain(item) for item in arg)
    return arg is None or isinstance(arg, (bool, int, float, str))
