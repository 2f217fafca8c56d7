"""`genesis.Tensor`: data, dtype, device and the autograd links.

A tensor holds its data in a runtime buffer (a numpy array on the CPU), its
genesis dtype and device, and for autograd `requires_grad`, `grad` and the
`Node` that made it. Every operation goes through `genesis.dispatch.apply`;
the methods that compute are the functional layer's, installed on the class by
`genesis/__init__.py` (`tensor_methods.py`), so this module sits below every
op and never touches numpy: it holds data and reads it back to the host.
"""

from __future__ import annotations

import weakref

from genesis import dtypes, grad_mode
from genesis.arguments import normalize_dim
from genesis.printing import tensor_repr
from genesis.runtime import cpu as _cpu  # noqa: F401  (loads the CPU runtime: dtype table, warning filter)
from genesis.runtime import cuda as _cuda
from genesis.runtime import devices as _device
from genesis.runtime.host_data import array_from_data


class Tensor:
    __slots__ = (
        "_data",
        "dtype",
        "device",
        "_requires_grad",
        "grad",
        "_node",
        "_version",
        "_hooks",
        "_retains_grad",
        "_view_of",
        "__weakref__",
    )

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        array, dt = array_from_data(data, dtype)
        device = _device.device(device)
        if device is not _device.cpu:  # host data enters a device by a copy
            array = _cuda.transfer(array, device.type)
        self._init(array, dt, device, requires_grad)

    def _init(self, array, dtype, device, requires_grad=False):
        self._data = array
        self.dtype = dtype
        self.device = device
        self._requires_grad = requires_grad
        self.grad = None
        self._node = None
        self._version = [0]
        self._hooks = None
        self._retains_grad = False
        self._view_of = None  # for a view: the op, inputs and attrs that made it from its base
        if requires_grad:
            _check_can_require_grad(self)

    @classmethod
    def _make(cls, array, dtype, device=_device.cpu, requires_grad=False):
        """Wrap a runtime buffer without copying or checking (dispatch's fast path)."""
        t = object.__new__(cls)
        t._data = array
        t.dtype = dtype
        t.device = device
        t._requires_grad = requires_grad
        t.grad = None
        t._node = None
        t._version = [0]
        t._hooks = None
        t._retains_grad = False
        t._view_of = None
        return t

    # ---- metadata ---------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._data.shape

    def size(self, dim=None):
        shape = self._data.shape
        if dim is None:
            return shape
        return shape[normalize_dim(dim, len(shape))]

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return self._data.size

    def nelement(self) -> int:
        return self._data.size

    def element_size(self) -> int:
        return self.dtype.itemsize

    def stride(self, dim=None):
        """Steps in elements between neighbours along each dim, as the buffer lays them out (a traced
        tensor is taken as contiguous)."""
        if getattr(self._data, "is_symbolic", False):
            steps, step = [], 1
            for n in reversed(self.shape):
                steps.append(step)
                step *= max(n, 1)
            steps = tuple(reversed(steps))
        else:
            steps = tuple(s // self._data.itemsize for s in self._data.strides)
        return steps if dim is None else steps[normalize_dim(dim, len(steps))]

    def storage_offset(self) -> int:
        """Where this tensor's first element sits in the buffer it shares with the tensors it views."""
        data = self._memory("storage_offset()")
        base = data
        while hasattr(base.base, "__array_interface__"):
            base = base.base
        start = data.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        return start // data.itemsize

    def data_ptr(self) -> int:
        """The address of the first element (a host read: a compiled function breaks its graph here)."""
        return self._memory("data_ptr()").__array_interface__["data"][0]

    def _memory(self, asked_for: str):
        """The buffer's memory, where it is (a device's too), for questions about its layout."""
        if self.device is not _device.cpu:
            return _cuda.device_memory(self._data)
        return self._host_values(asked_for)

    def __len__(self) -> int:
        if not self._data.ndim:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    # ---- autograd state: a view's is renewed first if its memory was written since (_refresh_view) ----
    @property
    def requires_grad(self) -> bool:
        link = self._view_of
        if link is not None and link.version != self._version[0]:
            _refresh_view(self)
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        self._requires_grad = value

    @property
    def is_leaf(self) -> bool:
        link = self._view_of
        if link is not None and link.version != self._version[0]:
            _refresh_view(self)
        return self._node is None

    @property
    def grad_fn(self):
        link = self._view_of
        if link is not None and link.version != self._version[0]:
            _refresh_view(self)
        return self._node

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self.device.type == "cpu"

    @property
    def is_xpu(self) -> bool:  # PyTorch programs test it beside is_cuda (DCGAN's data_parallel check)
        return self.device.type == "xpu"

    @property
    def is_mps(self) -> bool:
        return self.device.type == "mps"

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, value):
        if value.shape != self.shape:
            raise ValueError(f"cannot assign data of shape {value.shape} to a tensor of shape {self.shape}")
        self._data = value._data
        self.dtype = value.dtype
        self.device = value.device

    # ---- host access (these read values: the compiler cannot trace past them) ----
    def _host_values(self, asked_for: str):
        """The buffer, for a read of its values. A traced tensor has none: its buffer breaks the
        graph naming `asked_for`, the call in the user's code (not the numpy call made for it)."""
        if getattr(self._data, "is_symbolic", False):
            self._data.refuse_host_read(asked_for)
        if self.device is not _device.cpu:  # device memory: the host reads a copy (runtime/cuda.py)
            return self._data.host_read(asked_for)
        return self._data

    def _refuse_on_device(self):
        if self.device is not _device.cpu:  # PyTorch's words: numpy arrays are host memory
            raise TypeError(
                f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the tensor "
                "to host memory first."
            )

    def numpy(self):
        self._refuse_on_device()
        if self.requires_grad and grad_mode.is_grad_enabled():
            raise RuntimeError("can't call numpy() on a tensor that requires grad; use tensor.detach().numpy()")
        return self._host_values(".numpy()")

    def item(self):
        return self._scalar(".item()")

    def _scalar(self, asked_for: str):
        if self._data.size != 1:
            raise ValueError(f"{asked_for} needs a tensor with exactly one element, got shape {self.shape}")
        value = self._host_values(asked_for).reshape(())
        return value.item() if self.dtype is not dtypes.bfloat16 else float(value)

    def tolist(self):
        data = self._host_values(".tolist()")
        if self.dtype is dtypes.bfloat16:
            return data.astype("float32").tolist()
        return data.tolist()

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self._data.size} elements is ambiguous")
        return bool(self._host_values("bool(), as a branch on a tensor asks").reshape(()))

    def __float__(self):
        return float(self._scalar("float()"))

    def __int__(self):
        return int(self._scalar("int()"))

    def __index__(self):
        if self.dtype.category != dtypes.INT or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self._scalar("its use as an index"))

    def __array__(self, dtype=None, copy=None):
        self._refuse_on_device()
        data = self._host_values("a conversion to a numpy array")
        return data if dtype is None else data.astype(dtype)

    # DLPack: another library's tensor sharing this one's memory (torch.from_dlpack(x)), no copy
    def __dlpack__(self, *args, **kwargs):
        return self._shared_memory("DLPack").__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._shared_memory("DLPack").__dlpack_device__()

    def _shared_memory(self, protocol: str):
        if self.device is not _device.cpu:
            raise BufferError(
                f"{protocol}: a tensor on {self.device} (the simulated device's memory is host memory that "
                "other libraries would take for a GPU's); move it with .cpu() first"
            )
        return self._host_values(f"a {protocol} export")

    def __repr__(self):
        return tensor_repr(self, self._host_values("repr() or print()"))

    def __hash__(self):
        return id(self)

    def __iter__(self):
        if not self._data.ndim:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    # ---- autograd ---------------------------------------------------------
    def detach(self):
        t = Tensor._make(self._data, self.dtype, self.device)
        t._version = self._version  # shares the buffer, so shares its version
        return t

    def detach_(self):
        self._node = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad=True):
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("you can only change requires_grad of leaf tensors")
        self.requires_grad = bool(requires_grad)
        if requires_grad:
            _check_can_require_grad(self)
        return self

    def register_hook(self, hook):
        """`hook(grad)` runs when this tensor's gradient is computed; a non-None result replaces it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        hooks = self._node.hooks if self._node is not None else None
        if hooks is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
            if self._node is not None:
                self._node.hooks = hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """`hook(tensor)` runs once this leaf's `.grad` holds the whole gradient of a backward pass
        (data-parallel training starts reducing a gradient there, while the backward goes on)."""
        if self._node is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        key = id(self)
        hooks = POST_ACCUMULATE_HOOKS.get(key)
        if hooks is None:
            hooks = POST_ACCUMULATE_HOOKS[key] = []
            weakref.finalize(self, POST_ACCUMULATE_HOOKS.pop, key, None)
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self):
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on a tensor that doesn't require gradient")
        if self._node is not None:
            self._retains_grad = True
            self._node.retain(self)


# Leaf id -> its post-accumulate-grad hooks, which the backward engine runs (autograd/engine.py). Kept
# beside the tensor, not in a slot of every tensor: few tensors have one.
POST_ACCUMULATE_HOOKS: dict[int, list] = {}

# Gives a view whose memory was written since its history was made (its link's version is behind the
# shared counter) the history it has now, as PyTorch regenerates a view's grad_fn when it is looked at.
# Dispatch, which can apply the view's op, provides it.
_refresh_view = None


def provide_view_refresh(refresh) -> None:
    global _refresh_view
    _refresh_view = refresh


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _check_can_require_grad(t):
    if t.dtype.category != dtypes.FLOAT:
        raise RuntimeError(f"only floating-point tensors can require gradients, got {t.dtype.name}")
