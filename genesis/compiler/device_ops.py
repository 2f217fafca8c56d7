"""Eager ops on a CUDA device: each op is a fused group of size one, run by the Triton backend.

Dispatch hands an op whose inputs live on a CUDA device here (it cannot import the compiler above
it: `dispatch.provide_device_kernels`). The op becomes a one-node graph (tensor inputs are graph
inputs, Python scalars stay literals), which goes through fusion and the Triton backend, as a
compiled program's groups do; the program is kept per (op, attributes, inputs' shapes and dtypes,
literals) and runs on the device's memory. So eager and compiled run the very same kernels.

On the simulated device (runtime/cuda.py) the Triton kernels run under Triton's interpreter on the
device's host-backed memory, and products (a MATMUL op, cuBLAS on a GPU) run as numpy's. A group
the Triton backend does not take yet (codegen/triton_backend.py `why_not`), and an unfused op that
is not a product (gather, sort, ...), runs as its numpy kernel: on a GPU that is a round trip
through host memory, which the device's stats count (`host_round_trips`), so a test can hold a step
to none. A view (reshape, permute, slicing) moves no values: numpy's view of the device memory is
the device view, sharing its buffer as a view on the CPU does.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from genesis import dispatch
from genesis.compiler.executors import triton_executor
from genesis.compiler.ir import Graph
from genesis.compiler.passes import run_pipeline
from genesis.compiler.passes.fusion import fusion
from genesis.ops.op import Kind
from genesis.runtime import cuda as cuda_runtime
from genesis.tensor import Tensor

_KEPT = 256  # programs kept, the least recently used dropped first
_programs: OrderedDict = OrderedDict()


def device_kernel(op, inputs, attrs, out_dtype):
    """The device buffer of `op` applied to `inputs` (tensors on one CUDA device, and scalars)."""
    memory = [cuda_runtime.device_memory(x._data) if isinstance(x, Tensor) else x for x in inputs]
    if op.kind is Kind.VIEW:  # metadata only: the same bytes seen another way
        result = op.kernel(*memory, **attrs)
        return cuda_runtime.adopt(result, owns=not np.may_share_memory(result, memory[0]))
    key = (op.name, out_dtype, _signature(inputs), tuple(sorted(attrs.items(), key=lambda item: item[0])))
    program = _programs.get(key)
    if program is None:
        program = _programs[key] = _build(op, inputs, attrs, out_dtype)
        if len(_programs) > _KEPT:
            _programs.popitem(last=False)
    else:
        _programs.move_to_end(key)
    run, round_trip = program
    if round_trip:
        cuda_runtime.stats.host_round_trips += 1
    tensors = [Tensor._make(array, x.dtype) for array, x in zip(memory, inputs) if isinstance(x, Tensor)]
    (result,) = run(tensors)
    data = result._data
    if any(np.may_share_memory(data, array) for array in memory if isinstance(array, np.ndarray)):
        data = data.copy()  # a program may hand back an input as it is; eager's result is its own buffer
    if op.kind is Kind.ELEMENTWISE and not op.contiguous_result:
        data = _laid_out_as_on_the_cpu(data, memory)
    return cuda_runtime.adopt(data)


def _laid_out_as_on_the_cpu(result, memory):
    """The result in the layout the CPU's elementwise kernels give it (numpy's, as PyTorch's: they
    keep a permuted operand's memory order), where the device's kernel wrote C order: a later
    view() must succeed or fail on both devices alike."""
    for array in memory:
        if isinstance(array, np.ndarray) and array.shape == result.shape and not array.flags.c_contiguous:
            if any(stride == 0 and size > 1 for stride, size in zip(array.strides, array.shape)):
                laid = _broadcast_layout(memory, result.dtype)  # an expanded operand: its order is no one's
            else:
                laid = np.empty_like(array, dtype=result.dtype)  # (empty_like keeps a dense operand's order)
            if laid.flags.c_contiguous or laid.shape != result.shape:  # the kernel's own C order
                return result
            laid[...] = result
            return laid
    return result


def _broadcast_layout(memory, dtype):
    """An empty array laid out as numpy's ufuncs lay out their result over these operands, some of
    them broadcast: its iterator orders the dims by the operands' strides, a zero stride counting
    for nothing (PyTorch's TensorIterator does the same). Nothing is read."""
    arrays = [array for array in memory if isinstance(array, np.ndarray)]
    iterator = np.nditer(
        [*arrays, None],
        flags=["zerosize_ok"],
        op_flags=[["readonly"]] * len(arrays) + [["writeonly", "allocate"]],
        op_dtypes=[None] * len(arrays) + [dtype],
        order="K",
    )
    return iterator.operands[-1]


def _signature(inputs) -> tuple:
    return tuple((tuple(x.shape), x.dtype, x._data.strides) if isinstance(x, Tensor) else (type(x), x) for x in inputs)


def _build(op, inputs, attrs, out_dtype):
    """(run, whether the op makes a host round trip) for one signature."""
    graph = Graph()
    values = [graph.add_input(tuple(x.shape), x.dtype).name if isinstance(x, Tensor) else x for x in inputs]
    shape = op.shape(*(tuple(x.shape) if isinstance(x, Tensor) else () for x in inputs), **attrs)
    node = graph.add(op.name, values, attrs, shape=shape, dtype=out_dtype)
    graph.outputs = [node.name]
    graph = run_pipeline(graph, passes=[("fusion", fusion)])
    run, stats = triton_executor(graph)
    return run, stats["host_round_trips"] > 0 and op.kind is not Kind.MATMUL  # a product is cuBLAS's


dispatch.provide_device_kernels(device_kernel)
