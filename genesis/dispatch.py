"""The one bind point: every op application goes through `apply`.

Eager mode runs the op's numpy kernel and, when a gradient is wanted, records
a `Node` on the autograd tape. A tracer (installed by the compiler) receives
the same call and appends an IR node instead; user code cannot tell the modes
apart. Autocast's input casts happen here, by the op's autocast class; a
tracer instead marks the node with the autocast region and leaves the casts
to the compiler's autocast pass.
"""

from __future__ import annotations

import contextlib

import numpy as np

from genesis import dtypes, grad_mode, tape
from genesis import tensor as tensor_module
from genesis.errors import explain_kernel_failure
from genesis.ops.op import Kind, install_bind_point
from genesis.ops.transfer import to_device as _TO_DEVICE
from genesis.runtime import cuda as cuda_runtime
from genesis.runtime import devices
from genesis.runtime.cpu import NUMPY_DTYPE, wrapped_integer
from genesis.runtime.cuda import HostReadError
from genesis.runtime.devices import cpu
from genesis.tape import Node, ViewLink, recorded_inputs
from genesis.tensor import Tensor

UPCAST = {dtypes.float16: dtypes.float32, dtypes.bfloat16: dtypes.float32}  # what low precision computes in

# The trace that records op applications now (the compiler's Tracer), or None in eager mode. Only
# `tracing` sets it. The layers above never reach it: they ask the functions under "what code
# above the bind point asks of a trace" below, each of which says what it does in eager mode too.
# That list is the whole protocol a tracer implements besides `record`.
_tracer = None
# autocast's hook: rewrites an op's inputs by its autocast class (so its casts are traced like any other op)
autocast_hook = None
# the compiler's C kernels for single ops on big arrays (compiler/single_op.py), or None: numpy's
_single_op_kernels = None
# the compiler's kernels for ops on a CUDA device (compiler/device_ops.py)
_device_kernels = None
# Tests turn this on: every eager op then checks that its shape rule (what the
# tracer relies on) agrees with what its kernel produced.
verify_meta = False


def _cast(array, dtype):
    """`array` in `dtype`; a broadcast view (a stride of 0) stays one, so that the op's result is laid
    out as without the cast: numpy copies a broadcast view in an order of its own (a float16
    `x + x.expand(...)`, computed in float32, came out permuted where float32's own is C-contiguous,
    and a reshape of it then copied where PyTorch's and a compiled program's are views)."""
    if array.ndim and 0 in array.strides and array.size > 1:
        compact = array[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in array.strides)]
        return np.broadcast_to(compact.astype(dtype), array.shape)
    return array.astype(dtype)


def apply(op, *inputs, **attrs):
    if _tracer is not None:  # it records the op, autocast's casts and the tape's edges (compiler/trace.py)
        device = _result_device(op, inputs, attrs)
        if device is None:
            return _apply_across_devices(op, inputs, attrs)
        return _tracer.record(op, inputs, attrs, device)
    if op.transfers:
        return _transfer(op, inputs, attrs)
    if autocast_hook is not None:
        inputs = autocast_hook(op, inputs)
    compute, out_dtype = op.dtype(inputs, **attrs)
    if compute is not None and op.upcasts_low_precision:
        compute = UPCAST.get(compute, compute)
    arrays = []
    needs_grad = False
    device = None
    for x in inputs:
        if isinstance(x, Tensor):
            if device is None:
                device = x.device
                if device is not cpu:
                    return _apply_on_device(op, inputs, attrs, out_dtype, device)
            elif x.device is not device:
                return _apply_across_devices(op, inputs, attrs)
            if x._view_of is not None and x._view_of.version != x._version[0]:
                _refresh_view(x)
            array = x._data
            if compute is not None and x.dtype is not compute:
                array = _cast(array, NUMPY_DTYPE[compute])
            arrays.append(array)
            if x._requires_grad:  # (the property's refresh is done just above)
                needs_grad = True
        elif type(x) is int and compute is not None and compute.category == dtypes.INT:
            # numpy refuses a Python int outside the array's range (uint8 + -2); PyTorch
            # wraps it into the tensor's dtype, as C would
            arrays.append(wrapped_integer(x, compute))
        else:
            arrays.append(x)
    try:
        result = None
        threshold = op.generated_eager_from
        if threshold is not None and _single_op_kernels is not None:
            for array in arrays:  # looked at here, not in a call: most eager adds are small
                if type(array) is np.ndarray and array.size >= threshold:
                    result = _single_op_kernels(op, arrays, attrs, out_dtype)
                    break
        if result is None:
            result = op.kernel(*arrays, **attrs)
    except Exception as error:  # a numpy traceback is no answer: say what was wrong
        explained = explain_kernel_failure(op, inputs, attrs, error)
        if explained is error:
            raise
        raise explained from explained.__cause__
    if type(result) is not np.ndarray:
        result = np.asarray(result)
    out_np = NUMPY_DTYPE[out_dtype]
    if result.dtype is not out_np and result.dtype != out_np:  # numpy's dtypes are mostly singletons
        result = result.astype(out_np)
    if device is None:
        raise TypeError("an op needs at least one tensor input")
    return _result(op, inputs, attrs, Tensor._make(result, out_dtype, device), needs_grad)


def _result(op, inputs, attrs, out, needs_grad):
    """`out`, with what every result gets: a view's link to its base, and its node on the tape."""
    if verify_meta:
        _verify_meta(op, inputs, attrs, out)
    if op.kind is Kind.VIEW:
        out._version = inputs[0]._version  # a view shares its base's buffer, so its version too
        out._view_of = ViewLink(op, inputs, attrs, out._version[0])
    # differentiable(), written out: a call here costs 2.5% of a small eager op
    if needs_grad and grad_mode._enabled and op.vjp is not None and out.dtype.category == dtypes.FLOAT:
        record(op, inputs, attrs, out)
    return out


def _apply_on_device(op, inputs, attrs, out_dtype, device):
    """`apply` for inputs on a CUDA device: the compiler's device kernels compute the op there."""
    needs_grad = False
    for x in inputs:
        if isinstance(x, Tensor):
            if x.device is not device:
                return _apply_across_devices(op, inputs, attrs)
            if x._view_of is not None and x._view_of.version != x._version[0]:
                _refresh_view(x)
            needs_grad = needs_grad or x._requires_grad
    if _device_kernels is None:
        raise RuntimeError(f"{op.name} on {device}: genesis's device kernels are not loaded (import genesis)")
    try:
        result = _device_kernels(op, inputs, attrs, out_dtype)
    except HostReadError:
        raise
    except Exception as error:  # as on the CPU: say what was wrong, not where deep inside it failed
        explained = explain_kernel_failure(op, inputs, attrs, error)
        if explained is error:
            raise
        raise explained from explained.__cause__
    return _result(op, inputs, attrs, Tensor._make(result, out_dtype, device), needs_grad)


def _transfer(op, inputs, attrs):
    """`apply` for an op whose result lives on another device than its input (ops/transfer.py)."""
    (x,) = inputs
    if x._view_of is not None and x._view_of.version != x._version[0]:
        _refresh_view(x)
    out = Tensor._make(op.kernel(x._data, **attrs), x.dtype, devices.device(attrs["device"]))
    return _result(op, inputs, attrs, out, x._requires_grad)


def _result_device(op, inputs, attrs):
    """The device of the op's result, or None where its tensor inputs live on several devices."""
    if op.transfers:
        return devices.device(attrs["device"])
    device = _first_tensor(inputs).device
    for x in inputs:
        if isinstance(x, Tensor) and x.device is not device:
            return None
    return device


def _apply_across_devices(op, inputs, attrs):
    """Inputs on several devices: as in PyTorch, a 0-d CPU tensor (a scalar a composite made, such as
    nll_loss's weight of 1) goes where the other inputs are; any other mix is an error naming both."""
    placed = [x for x in inputs if isinstance(x, Tensor) and (x.device is not cpu or x.ndim)]
    target = placed[0].device if placed else cpu
    for x in placed:
        if x.device is not target:
            raise RuntimeError(
                f"{op.name}: expected all tensors to be on the same device, but found at least two devices, "
                f"{target} and {x.device}; move one with .to({str(target)!r}) or .to({str(x.device)!r})"
            )
    moved = [
        apply(_TO_DEVICE, x, device=str(target)) if isinstance(x, Tensor) and x.device is not target else x
        for x in inputs
    ]
    return apply(op, *moved, **attrs)


install_bind_point(apply)  # calling an op record (`ops.elementwise.mul(g, x)`) applies it here


def provide_device_kernels(provider) -> None:
    """`provider(op, inputs, attrs, out_dtype)`: the device buffer of an op whose tensor inputs all
    live on one CUDA device (compiler/device_ops.py); the compiler hands it down."""
    global _device_kernels
    _device_kernels = provider


def provide_single_op_kernels(provider) -> None:
    """`provider(op, arrays, attrs, out_dtype)`: the result of an op that sets `generated_eager_from`
    computed by a generated kernel, or None for the op's own kernel; asked only where an array has
    that many elements (`apply` looks). The compiler hands it down."""
    global _single_op_kernels
    _single_op_kernels = provider


@contextlib.contextmanager
def tracing(tracer):
    """Hand every op application (and the host reads below) to `tracer` for the block; never nested."""
    global _tracer
    if _tracer is not None:
        raise RuntimeError(
            "genesis.compile: a compiled function was called while tracing another; nested tracing is not supported"
        )
    _tracer = tracer
    try:
        yield tracer
    finally:
        _tracer = None


def compiling_tracer():
    """The tracer installed now, or None: for the compiler's own passes (compiler/trace.py), which
    record into the graph of the trace that is running. Code below the compiler asks the functions
    that follow instead (a test holds that)."""
    return _tracer


# ---- what code above the bind point asks of a trace -------------------------------------------
def is_tracing() -> bool:
    return _tracer is not None


def host_constant(read, what: str, key):
    """A host value that code below the user's bakes into what it computes (an optimizer's eps, a
    GradScaler's growth factor): `read()`. While tracing, the compiled program is guarded on it, so
    a call that finds it changed traces anew instead of computing with the old value."""
    if _tracer is None:
        return read()
    return _tracer.guard(read, what, key)


def host_scalar(read, dtype, key):
    """A host number that each call reads afresh (a learning rate, a random seed): `read()`. While
    tracing, a 0-d graph input of `dtype` that the compiled program reads at every call."""
    if _tracer is None:
        return read()
    return _tracer.scalar_input(read, dtype, key=key)


def gradient(tensor):
    """`tensor.grad`, for code that decides by it (an optimizer skips a parameter without one, clipping
    reads every gradient). While tracing, a gradient that comes from outside the traced code is read
    anew at every call, and the compiled program is guarded on whether there is one."""
    if _tracer is None:
        return tensor.grad
    return _tracer.gradient(tensor)


def untraceable(what: str) -> None:
    """Code that a trace cannot record (it reads values on the host): while tracing, the graph breaks
    here and the function runs eagerly; in eager mode, nothing happens."""
    if _tracer is not None:
        _tracer.refuse(what)


def note_grad_reset(tensor) -> None:
    """A `.grad` dropped or zeroed: a compiled step then replaces the gradient instead of adding to it."""
    if _tracer is not None:
        _tracer.note_grad_reset(tensor)


def reshape_in_place(target, result, what: str) -> None:
    """`target` takes the shape, buffer and history of `result`, a reshaped view of it (squeeze_,
    unsqueeze_). While tracing, a graph input (an argument, a captured tensor) breaks the graph
    here, since its new shape would have to reach the caller's tensor; a value the trace made
    becomes that view.

    As in PyTorch it counts as a write (a vjp that saved the tensor refuses to run), and what was
    recorded before it keeps the old shape: the view link to the earlier self is marked, so
    `tape.recorded_inputs` finds that self for them."""
    if _tracer is not None:
        _tracer.reshape_in_place(target, result, what)
    changed = result.shape != target.shape
    target._data, target._node, target._view_of = result._data, result._node, result._view_of
    target._version[0] += 1
    if target._view_of is not None:
        target._view_of.version = target._version[0]  # its history is the reshape's, made just now
        if changed:
            tape.note_reshape(target._view_of)


def stands_for_a_non_leaf(tensor) -> bool:
    """Whether `tensor` is a traced function's argument that has a history in eager mode: a leaf of
    the trace's own tape, but one that eager allows in-place writes into. Never, in eager mode."""
    return _tracer is not None and id(tensor) in _tracer.non_leaves


def old_values(tensor):
    """A buffer holding `tensor`'s values as they are now, for a node that reads them after an
    in-place write: a copy in eager mode; while tracing, the graph value that the write renames."""
    if _tracer is None:
        return tensor._data.copy()
    _tracer.value(tensor)  # a concrete tensor (optimizer state, a gradient) becomes a captured input
    return tensor._data.alias()


def write(target, value, bases=()) -> None:
    """`target`'s buffer now holds `value`'s values (same shape and dtype). For a view, `bases` is
    what each base up its chain holds after the write, (base, value) pairs ending at the undivided
    base: eager memory shares them, a trace needs them spelled out (without them, a write into a
    view breaks the graph)."""
    if _tracer is None:
        if not target._data.flags.writeable:
            raise overlapping_write(target)
        if target.device is not cpu or value.device is not cpu:  # device code writing device memory
            if value.device is not target.device:
                raise RuntimeError(
                    f"an in-place write into a tensor on {target.device} of a value on {value.device}: "
                    f"move the value with .to({str(target.device)!r}) first"
                )
            np.copyto(cuda_runtime.device_memory(target._data), cuda_runtime.device_memory(value._data), "unsafe")
            return
        np.copyto(target._data, value._data, casting="unsafe")
    else:
        _tracer.write(target, value, bases)


def remake_views(target) -> None:
    """After an in-place write into `target` and its history, while tracing: every other live view of
    its memory takes its new value and history (eager's views share the memory, and dispatch gives
    them a fresh history at their next use). Nothing in eager mode."""
    if _tracer is not None:
        _tracer.remake_views(target)


def overlapping_write(target) -> RuntimeError:
    """The error for a write into a view several of whose elements share one memory location (a
    tracer raises it too, so a compiled function refuses what eager refuses)."""
    return RuntimeError(
        f"cannot write in place into a tensor of shape {list(target.shape)} that is a view whose elements "
        "overlap (an expanded tensor, or unfold's overlapping windows: several elements share one memory "
        "location); clone it first"
    )


def skip_writes_if(condition, select):
    """A context in which every in-place write takes effect only where `condition` is false,
    `select(condition, old, new)` choosing: a skipped step as a select in the graph, not a host
    branch. Only while tracing; eager code reads the condition and branches."""
    if _tracer is None:
        raise RuntimeError("skip_writes_if is for a traced step; in eager mode, branch on the condition")
    return _tracer.skip_writes_if(condition, select)


def symbolic_gradients(roots, root_grads, targets) -> list:
    """While tracing, the gradients of `targets` for a backward() from `roots`: values the
    compiler's autodiff pass computes once the forward is final."""
    return _tracer.gradients(roots, root_grads, targets)


def new_call() -> int:
    """While tracing, a number that ties together the nodes of one call with several results."""
    return _tracer.new_call()


def differentiable(op, out_dtype) -> bool:
    """Whether an op whose inputs need grad gets a node on the tape (the tracer asks; `apply`
    spells the same test out on its hot path)."""
    return grad_mode._enabled and op.vjp is not None and out_dtype.category == dtypes.FLOAT


def refresh_view(view):
    """A view whose memory was written since its history was made (by a write into its base or into
    another view of it), looked at: its `requires_grad`, `grad_fn`, `is_leaf`, or an op reading it.
    Its history is made again from the base as it is now, as PyTorch regenerates a view's grad_fn
    (the values are right already: they share memory). While tracing, the tracer's rule, which
    also names the view's new value."""
    if _tracer is not None:
        _tracer.refresh_view(view)
    else:
        _refresh_view(view)


def _refresh_view(view):
    if not grad_mode._enabled:
        return  # the history waits for a look with grad mode on
    link = view._view_of
    inputs = recorded_inputs(link)
    if view._node is None and not any(isinstance(x, Tensor) and x.requires_grad for x in inputs):
        return  # no history to renew, none to gain (a view made a leaf of its own stays one)
    link.version = view._version[0]
    fresh = apply(link.op, *inputs, **link.attrs)
    view._node, view._requires_grad = fresh._node, fresh._requires_grad


tensor_module.provide_view_refresh(refresh_view)


def record(op, inputs, attrs, out):
    """Attach the autograd node that will run `op.vjp` in backward."""
    versions = None
    if op.saves:  # (a list, not a generator: this runs once per recorded op)
        every = "inputs" in op.saves
        versions = (
            *[x._version[0] if isinstance(x, Tensor) and (every or _saved(op, x)) else None for x in inputs],
            out._version[0],
        )
    out._node = Node(op, inputs, attrs, versions)
    out._requires_grad = True


def _saved(op, x):
    """Whether the vjp reads input `x`'s values: all inputs, or only the integer index tensors."""
    return "inputs" in op.saves or ("indices" in op.saves and x.dtype.category == dtypes.INT)


def _verify_meta(op, inputs, attrs, out):
    shapes = [tuple(x.shape) if isinstance(x, Tensor) else () for x in inputs]
    predicted = tuple(op.shape(*shapes, **attrs))
    if predicted != out.shape:
        raise AssertionError(
            f"{op.name}: shape rule says {predicted}, kernel made {out.shape} for inputs {shapes} and attrs {attrs}"
        )
    # what a trace assumes of eager's memory layout (compiler/trace.py layout_of): a fresh result of
    # contiguous inputs is contiguous, and some ops' results always are
    contiguous = op.contiguous_result or all(x._data.flags["C_CONTIGUOUS"] for x in inputs if isinstance(x, Tensor))
    if op.kind is not Kind.VIEW and contiguous and not out._data.flags["C_CONTIGUOUS"]:
        raise AssertionError(
            f"{op.name}: kernel made a non-contiguous result of strides {out._data.strides} "
            f"from contiguous inputs {shapes} with attrs {attrs}"
        )


def _first_tensor(inputs):
    for x in inputs:
        if isinstance(x, Tensor):
            return x
    raise TypeError("an op needs at least one tensor input")
