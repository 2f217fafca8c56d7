"""Where a compiled program's inputs come from and where its side effects go.

A traced function does more than return values: it reads parameters,
buffers, gradients and learning rates it was never passed, and it writes
parameters, optimizer state and `.grad` in place. Tracing turns all of it
into graph inputs and outputs; this module remembers, per input, where a
call finds its value, and per extra output, what a call must do with it.

Inputs ("sources"):
- ("arg", i): the i-th leaf of the call's arguments (each call's own tensor);
- ("arg_grad", i): the gradient that the i-th argument has at call time;
- ("captured", t): tensor t's current buffer (a parameter, a buffer, state);
- ("grad", t, shape, dtype): t's current gradient (zeros if it has none: the
  traced code accumulated into it, and adding to zeros is eager's fresh grad);
- ("scalar", getter, dtype): a host number read at every call (an lr).

Side effects ("writebacks") name their tensor by a *target*: an int i is the
i-th leaf of the call's arguments, looked up anew at every call, so a program
writes into the tensors it was given, never into the first call's; a Tensor
is a captured tensor (a parameter, optimizer state) that the program owns.
- ("buffer", target, k): write output k into the target's buffer (in place);
- ("grad", target, k, mode): output k is the target's gradient; "replace" it,
  or "accumulate" into what it has at call time (eager's backward without a
  zero_grad inside the function);
- ("grad_none", target): the function set its .grad to None (zero_grad);
- ("attr", holder, key, value): the function stored a tensor it made into
  `holder[key]` (a module's `__dict__` or registry: a cached mask); value is
  ("graph", k), output k, or ("arg", i), the i-th argument itself.
"""

from __future__ import annotations

import numpy as np

from genesis import grad_mode
from genesis.runtime import cuda as cuda_runtime
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


def writebacks(tracer, graph, arguments) -> list:
    """After the traced function ran: what a call must write back, with the values appended to
    `graph.outputs`. `arguments`: (leaf index, its stand-in, the input's name, its gradient's input
    name or None) per distinct tensor argument."""
    captured_grad = {id(t): grad for t, _, _, grad, _ in tracer._saved}
    grads = tracer.grad_holders  # id(captured gradient) -> the tensor whose .grad it is
    effects = []

    def output(name) -> int:
        graph.outputs.append(name)
        return len(graph.outputs) - 1

    # (target, the traced tensor, its input's name, its gradient when the trace began, that gradient's name)
    holders = [
        (index, stand_in, name, stand_in_grad, grad_name)
        for index, stand_in, name, stand_in_grad, grad_name in arguments
    ]
    for t, name in tracer.captured:
        if id(t) not in grads:
            before = captured_grad.get(id(t))
            holders.append((t, t, name, before, _input_name(tracer, before)))
    for target, traced, original, before, before_name in holders:
        if traced._data.name != original:
            effects.append(("buffer", target, output(traced._data.name)))
        after = traced.grad
        if after is None:
            if before is not None:
                effects.append(("grad_none", target))
        elif after is before:
            if _is_symbolic(after) and after._data.name != before_name:
                effects.append(("grad", target, output(after._data.name), "replace"))
        elif _is_symbolic(after):
            reset = before is not None or id(traced) in tracer.grad_resets
            effects.append(("grad", target, output(after._data.name), "replace" if reset else "accumulate"))
    return effects


def stored_tensors(tracer, graph, world, stand_ins: dict) -> list:
    """Tensors the traced function made and stored on a reachable module (a mask it caches): each
    becomes an ("attr", ...) writeback, so the module holds a real tensor after every call, never a
    traced one. `stand_ins`: id of an argument's stand-in -> (its leaf index, its input's name)."""
    captured = {id(t) for t, _ in tracer.captured}
    effects = []
    for holder, key, tensor in world.tensor_attributes():
        if not _is_symbolic(tensor) or id(tensor) in captured:
            continue  # a concrete tensor, or a parameter the trace read: its own object, restored after
        argument = stand_ins.get(id(tensor))
        if argument is not None and tensor._data.name == argument[1]:  # the argument itself, unchanged
            effects.append(("attr", holder, key, ("arg", argument[0])))
            continue
        if tensor.requires_grad:
            tracer.refuse(f"storing a tensor that requires grad on a module ({key!r}) inside a compiled function")
        graph.outputs.append(tensor._data.name)
        effects.append(("attr", holder, key, ("graph", len(graph.outputs) - 1)))
    return effects


def _input_name(tracer, tensor) -> str | None:
    return next((name for t, name in tracer.captured if t is tensor), None)


def target_tensor(target, leaves):
    """The tensor a writeback or source names for this call (see the module docstring)."""
    return leaves[target] if type(target) is int else target


def overlapping(arrays) -> bool:
    """Whether any two distinct arrays may share memory (views of one buffer whose ranges meet)."""
    by_root: dict[int, list] = {}
    for array in arrays:
        root = array
        while isinstance(root.base, np.ndarray):
            root = root.base
        by_root.setdefault(id(root), []).append(array)
    for group in by_root.values():
        if len(group) > 1:
            for i, a in enumerate(group):
                if any(np.may_share_memory(a, b) for b in group[i + 1 :]):
                    return True
    return False


def gather(sources, leaves) -> list:
    """The tensors a call feeds the program, in the order of its graph inputs."""
    inputs = []
    for source in sources:
        kind = source[0]
        if kind == "arg":
            inputs.append(leaves[source[1]])
        elif kind == "arg_grad":
            inputs.append(leaves[source[1]].grad)
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


def apply(writebacks, outputs, inputs, leaves) -> None:
    """Carry out a call's side effects on the tensors the user holds."""
    passed = {id(t) for t in inputs}
    for effect in writebacks:
        kind = effect[0]
        if kind == "attr":
            holder, key, (where, index) = effect[1:]
            holder[key] = outputs[index] if where == "graph" else leaves[index]
            continue
        tensor = target_tensor(effect[1], leaves)
        if kind == "buffer":
            value = outputs[effect[2]]
            data = value._data
            if value.device is not tensor.device:  # (a program runs on one device's memory)
                data = cuda_runtime.transfer(data, tensor.device.type)
            if cuda_runtime.memory_of(data) is not cuda_runtime.memory_of(tensor._data):
                # else the program computed it in place (a donated buffer)
                with grad_mode.no_grad():
                    tensor._data[...] = data
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
