"""Where a compiled program's inputs come from and where its side effects go.

A traced function does more than return values: it reads parameters,
buffers, gradients and learning rates it was never passed, and it writes
parameters, optimizer state and `.grad` in place. Tracing turns all of it
into graph inputs and outputs; this module remembers, per input, where a
call finds its value, and per extra output, what a call must do with it.

Inputs ("sources"):
- ("arg", i): the i-th tensor among the call's arguments;
- ("captured", t): tensor t's current buffer (a parameter, a buffer, state);
- ("grad", t, shape, dtype): t's current gradient (zeros if it has none: the
  traced code accumulated into it, and adding to zeros is eager's fresh grad);
- ("scalar", getter, dtype): a host number read at every call (an lr).

Side effects ("writebacks"):
- ("buffer", t, k): write output k into t's buffer (an in-place update);
- ("grad", t, k, mode): output k is t's gradient; "replace" it, or
  "accumulate" into what t has at call time (eager's backward without a
  zero_grad inside the function);
- ("grad_none", t): the function set t.grad to None (zero_grad) and made none.
"""

from __future__ import annotations

import numpy as np

from genesis.autograd import grad_mode
from genesis.runtime.cpu import NUMPY_DTYPE
from genesis.tensor import Tensor


def _is_symbolic(tensor) -> bool:
    return tensor is not None and getattr(tensor._data, "is_symbolic", False)


def sources(tracer, source_of: dict) -> None:
    """Complete `source_of` (graph input name -> source; the arguments' are in it already)."""
    for t, name in tracer.captured:
        holder = tracer.grad_holders.get(id(t))
        source_of[name] = ("grad", holder, tuple(t.shape), t.dtype) if holder is not None else ("captured", t)
    for getter, dtype, name in tracer.scalars:
        source_of[name] = ("scalar", getter, dtype)


def writebacks(tracer, graph, symbolic_args) -> list:
    """After the traced function ran: what a call must write back, with the values appended to
    `graph.outputs`. `symbolic_args`: (user tensor, its stand-in, the input's name)."""
    initial_grad = {id(t): grad for t, _, _, grad, _ in tracer._saved}
    grads = tracer.grad_holders  # id(captured gradient) -> the tensor whose .grad it is
    effects = []

    def output(name) -> int:
        graph.outputs.append(name)
        return len(graph.outputs) - 1

    holders = [(user, stand_in, name) for user, stand_in, name in symbolic_args]
    holders += [(t, t, name) for t, name in tracer.captured if id(t) not in grads]
    for user, traced, original in holders:
        if traced._data.name != original:
            effects.append(("buffer", user, output(traced._data.name)))
        before, after = initial_grad.get(id(traced)), traced.grad
        if after is None:
            if before is not None:
                effects.append(("grad_none", user))
        elif after is before:
            if _is_symbolic(after) and after._data.name != _input_name(tracer, after):
                effects.append(("grad", user, output(after._data.name), "replace"))
        elif _is_symbolic(after):
            reset = before is not None or id(traced) in tracer.grad_resets
            effects.append(("grad", user, output(after._data.name), "replace" if reset else "accumulate"))
    return effects


def _input_name(tracer, tensor) -> str | None:
    return next((name for t, name in tracer.captured if t is tensor), None)


def gather(sources, leaves) -> list:
    """The tensors a call feeds the program, in the order of its graph inputs."""
    inputs = []
    for source in sources:
        kind = source[0]
        if kind == "arg":
            inputs.append(leaves[source[1]])
        elif kind == "captured":
            inputs.append(source[1])
        elif kind == "grad":
            holder, shape, dtype = source[1:]
            grad = holder.grad
            inputs.append(grad if grad is not None else Tensor._make(np.zeros(shape, NUMPY_DTYPE[dtype]), dtype))
        else:
            getter, dtype = source[1:]
            inputs.append(Tensor._make(np.array(getter(), dtype=NUMPY_DTYPE[dtype]), dtype))
    return inputs


def apply(writebacks, outputs, inputs) -> None:
    """Carry out a call's side effects on the tensors the user holds."""
    passed = {id(t) for t in inputs}
    for effect in writebacks:
        kind, tensor = effect[0], effect[1]
        if kind == "buffer":
            value = outputs[effect[2]]._data
            if value is not tensor._data:  # else the program computed it in place (a donated buffer)
                with grad_mode.no_grad():
                    tensor._data[...] = value
            tensor._version[0] += 1
        elif kind == "grad_none":
            tensor.grad = None
        else:
            value, mode = outputs[effect[2]], effect[3]
            if id(value) in passed:  # the program returned an input as it is: a gradient owns its buffer
                value = Tensor._make(value._data.copy(), value.dtype, value.device)
            if mode == "accumulate" and tensor.grad is not None:
                tensor.grad._data += value._data
                tensor.grad._version[0] += 1
            else:
                tensor.grad = value
