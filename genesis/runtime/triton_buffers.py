"""What the Triton interpreter needs to run genesis kernels on numpy buffers, and nothing more.

genesis buffers are numpy arrays; Triton's interpreter (triton/runtime/interpreter.py)
was written for torch tensors. Reading it tells exactly what it touches:

- launching: `hasattr(arg, "data_ptr")` marks an argument as a pointer; its
  type comes from `str(arg.dtype)` (the last dotted part: "float32",
  "bfloat16", "bool") and its address from `arg.data_ptr()`;
- before the grid runs it "copies to the host": `untyped_storage()` (with
  `data_ptr()` and `cpu()`), `new_empty(0, device="cpu")`, `set_(storage,
  storage_offset(), size(), stride())`; afterwards it copies back with
  `untyped_storage().copy_(host_storage)`.

Host memory is already where the interpreter wants it, so the adapter makes
each of those steps the identity: the kernel's loads and stores go straight
to the numpy array's bytes. No torch anywhere.

Triton's own library functions (`tl.sum`, `tl.max`, `tl.sigmoid`...) are
`@triton.jit` functions made when `triton.language` is imported, and
`triton.jit` reads TRITON_INTERPRET (`triton.knobs.runtime.interpret`) at
that moment: imported without it, they are compiled-only and refuse to run
under the interpreter. `interpreted_triton_library()` swaps each for its
interpreted twin while genesis's kernels run, and puts the originals back,
so the user need not set TRITON_INTERPRET before importing anything, and
their own kernels are left as they were.

The interpreter also cannot run `libdevice` (its functions are stubs that
return None there). `INTERPRETER_LIBDEVICE` stands in for it with the numpy
and scipy functions that genesis's eager kernels use, so an interpreted kernel
computes exactly what eager computes; on a GPU the real libdevice is used.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
from scipy import special


def triton_interprets() -> bool:
    """Kernels run under Triton's interpreter unless a CUDA GPU is present and TRITON_INTERPRET is not 1."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    try:
        from triton.backends.nvidia.driver import CudaDriver

        return not CudaDriver.is_active()
    except Exception:  # no CUDA driver library, no NVIDIA backend: nothing to launch on
        return True


class _HostStorage:
    """The storage of a host buffer: already on the host, so `cpu()` and `copy_` do nothing."""

    def __init__(self, array: np.ndarray):
        self._array = array

    def data_ptr(self) -> int:
        return self._array.ctypes.data

    def cpu(self) -> _HostStorage:
        return self

    def copy_(self, other) -> None:
        if other.data_ptr() != self.data_ptr():  # never happens for host buffers; a guard, not a path
            raise RuntimeError("genesis: a Triton interpreter storage moved; host buffers are used in place")


class TritonBuffer:
    """A C-contiguous numpy array seen as the tensor-like pointer argument a Triton kernel expects."""

    def __init__(self, array: np.ndarray):
        if not array.flags.c_contiguous:
            raise ValueError(f"genesis: a Triton kernel argument must be contiguous, got strides {array.strides}")
        self.array = array
        # str(dtype).split(".")[-1] is how Triton names the pointee: "float32", "bfloat16", "bool"
        self.dtype = array.dtype.name

    # -- what launching reads
    def data_ptr(self) -> int:
        return self.array.ctypes.data

    def element_size(self) -> int:
        return self.array.itemsize

    @property
    def shape(self) -> tuple:
        return self.array.shape

    def size(self) -> tuple:
        return self.array.shape

    def stride(self) -> tuple:
        return tuple(s // self.array.itemsize for s in self.array.strides)

    def storage_offset(self) -> int:
        return 0

    # -- what the interpreter's host round trip reads
    def untyped_storage(self) -> _HostStorage:
        return _HostStorage(self.array)

    def new_empty(self, *shape, device=None) -> TritonBuffer:
        return TritonBuffer(self.array)

    def set_(self, storage, offset, size, stride) -> TritonBuffer:
        return self  # the "host copy" is the buffer itself

    def __repr__(self) -> str:
        return f"TritonBuffer({self.dtype}, shape={self.array.shape})"


def as_buffer(array: np.ndarray) -> TritonBuffer:
    """A kernel argument for `array`: as it is when contiguous, else a contiguous copy (read-only use)."""
    return TritonBuffer(np.ascontiguousarray(array))


def matrix_argument(array: np.ndarray) -> tuple[TritonBuffer, bool]:
    """A product's operand, and whether the kernel reads it transposed: a matrix whose transpose
    is contiguous (a linear layer's `W.T`) is read in place, anything else as a contiguous copy
    (a stack of rows flattened into one matrix)."""
    if array.ndim == 2 and not array.flags.c_contiguous and array.T.flags.c_contiguous:
        return TritonBuffer(array.T), True
    return as_buffer(array), False


class _InterpreterLibdevice:
    """libdevice for the interpreter: each function maps interpreter tensors through a numpy ufunc."""

    _FUNCTIONS = {
        "log1p": np.log1p,
        "expm1": np.expm1,
        "tanh": np.tanh,
        "erf": special.erf,
        "pow": np.power,
        "sin": np.sin,
        "cos": np.cos,
    }

    def __getattr__(self, name):
        try:
            function = self._FUNCTIONS[name]
        except KeyError:
            raise NotImplementedError(
                f"genesis: libdevice.{name} has no interpreter implementation; "
                f"add it to {type(self).__name__}._FUNCTIONS"
            ) from None
        return lambda *args: _apply(function, args)


def _apply(function, args):
    import triton.language as tl
    from triton.runtime.interpreter import TensorHandle

    tensors = [a for a in args if isinstance(a, tl.tensor)]
    scalar = tensors[0].dtype.scalar
    if any(t.dtype.scalar != scalar for t in tensors):  # libdevice's own dispatch needs one type too
        raise TypeError(f"libdevice operands differ in dtype: {[t.dtype for t in tensors]}")
    values = [a.handle.data if isinstance(a, tl.tensor) else a for a in args]
    data = np.asarray(function(*values)).astype(tensors[0].handle.data.dtype, copy=False)
    blocked = any(t.type.is_block() for t in tensors)  # operands broadcast as on the GPU
    result_type = tl.block_type(scalar, list(data.shape)) if blocked else tensors[0].type
    return tl.tensor(TensorHandle(data, scalar), result_type)


INTERPRETER_LIBDEVICE = _InterpreterLibdevice()


_INTERPRETED: dict = {}  # JITFunction -> its InterpretedFunction, made once
_MISSING = object()


@contextlib.contextmanager
def _bfloat16_products():
    """The interpreter holds bfloat16 values as their uint16 bits, and its `tl.dot` multiplies
    those bits as integers (it widens only fp8). Within: bfloat16 factors are widened to fp32
    first, which is exact, as a GPU's products of bfloat16 values are."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpreterBuilder, TensorHandle

    original = InterpreterBuilder.create_dot

    def widened(handle):
        if handle.dtype.scalar != tl.bfloat16:
            return handle
        return TensorHandle((handle.data.astype(np.uint32) << 16).view(np.float32), tl.float32)

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return original(self, widened(a), widened(b), d, input_precision, max_num_imprecise_acc)

    InterpreterBuilder.create_dot = create_dot
    try:
        yield
    finally:
        InterpreterBuilder.create_dot = original


@contextlib.contextmanager
def interpreted_triton_library():
    """Within: triton.language's @jit functions are their interpreted versions, and Triton's
    interpret knob is on (constexpr functions read it while a kernel runs).

    On the way out every attribute of triton.language that anything patched is put back:
    the interpreter patches the language modules when one interpreted function calls another
    and never restores them, which would break a later `triton.compile` in the same process.
    Names the interpreter adds (its helpers, which its cached rewritten functions use) stay."""
    import triton
    import triton.experimental.gluon  # noqa: F401  (imported lazily by launches; it needs the originals)
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    patched = [tl, tl.core, tl.math, tl.standard, tl.core.tensor, tl.core.dtype]
    patched += [getattr(tl.core, name) for name in ("tensor_descriptor_base", "condition") if hasattr(tl.core, name)]
    saved = [(target, dict(vars(target))) for target in patched]
    try:
        for module in (tl, tl.core, tl.math, tl.standard):
            for name, value in list(vars(module).items()):
                if isinstance(value, JITFunction):
                    if value not in _INTERPRETED:
                        _INTERPRETED[value] = InterpretedFunction(value.fn)
                    setattr(module, name, _INTERPRETED[value])
        with triton.knobs.runtime.scope(), _bfloat16_products():
            triton.knobs.runtime.interpret = True
            yield
    finally:
        for target, before in saved:
            now = dict(vars(target))
            for name, value in before.items():
                if now.get(name, _MISSING) is not value:
                    setattr(target, name, value)
