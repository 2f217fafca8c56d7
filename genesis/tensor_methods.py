"""Tensor methods and operators, bound to the functional layer.

`Tensor` (tensor.py) sits below the ops and holds data; every method that
computes is installed on it from here, by `genesis/__init__.py`, once the
layers it calls exist. Most are the functional op of the same name with the
tensor as its first argument.
"""

from __future__ import annotations

from genesis import creation, dtypes
from genesis import functional as F
from genesis.arguments import normalize_shape
from genesis.autograd.engine import backward as _run_backward
from genesis.functional import inplace as I
from genesis.functional import layout, random_fill
from genesis.functional.indexing import index_put_by_indices

# methods that are exactly F.<name>(self, ...)
_SAME_NAME = """
    neg abs exp log log1p expm1 sqrt rsqrt reciprocal sin cos tanh sigmoid relu erf sign floor ceil
    isnan isinf isfinite logical_not logical_and logical_or add sub mul div pow maximum minimum
    eq ne lt le gt ge clamp clamp_min clamp_max clip square
    sum prod mean var std amax amin argmax argmin max min all any logsumexp
    permute transpose t squeeze unsqueeze flatten unflatten expand_as broadcast_to narrow split chunk
    unbind flip tril triu movedim
    gather scatter_add index_select masked_fill matmul mm bmm floor_divide remainder fmod
    sort argsort topk kthvalue cumsum cumprod roll repeat_interleave unique bincount
    softmax log_softmax norm lerp addmm baddbmm addmv mv outer cross diag diagonal trace
    index_add index_copy index_fill scatter scatter_reduce masked_scatter masked_select take take_along_dim argwhere
    nan_to_num round trunc frac log2 log10 exp2 allclose isclose equal
    median nanmedian mode quantile nanquantile nansum nanmean count_nonzero
    cummax cummin logcumsumexp diff swapaxes swapdims fliplr flipud rot90 bernoulli
""".split()

# in-place forms: x.add_(y) computes add(x, y) and writes it into x
_INPLACE = (
    "add sub mul div pow clamp clamp_min clamp_max clip neg abs exp log sqrt sigmoid tanh relu masked_fill "
    "floor_divide remainder fmod triu tril scatter scatter_add scatter_reduce index_add index_copy index_fill "
    "masked_scatter nan_to_num round trunc frac log2 log10 exp2"
).split()


def _reshape(self, *shape):
    return F.reshape(self, normalize_shape(shape))


def _expand(self, *sizes):
    return F.expand(self, *sizes)


def _repeat(self, *sizes):
    return F.repeat(self, *sizes)


def _tile(self, *dims):
    return F.tile(self, normalize_shape(dims))


def _reflected(fn):
    return lambda self, other: fn(other, self)


def _lerp_(self, end, weight):
    return I.assign_inplace(self, F.lerp(self, end, weight))


def _backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    _run_backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)


def _to(self, *args, dtype=None, device=None, copy=False, **kwargs):
    for arg in args:
        if isinstance(arg, (dtypes.DType, type)) or (isinstance(arg, str) and arg in dtypes._ALIASES):
            dtype = arg
        elif isinstance(arg, str) and arg.partition(":")[0] not in ("cpu", "cuda"):
            raise ValueError(
                f"to({arg!r}): neither a dtype genesis knows ({', '.join(sorted(dtypes._ALIASES))}) "
                "nor a device ('cpu', 'cuda[:index]')"
            )
        else:
            device = arg
    moved = self
    if device is not None:
        moved = F.to_device(self, device)  # (an unavailable device is a clear error)
        copy = copy and moved is self
    if dtype is None:
        return F.clone(moved) if copy else moved
    return F.cast(moved, dtypes.as_dtype(dtype), copy=copy)


def _type(self, dtype=None):
    if dtype is None:
        return self.dtype.name
    return self.to(dtype)


def _new_factory(make):
    """x.new_zeros(size, ...) and friends: a fresh tensor of x's dtype and device unless told otherwise."""

    def new(self, *size, dtype=None, device=None, requires_grad=False):
        return make(normalize_shape(size), dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)

    return new


def _new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    return creation.full(size, fill_value, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)


def _new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    """A copy of `data` (a tensor's values are copied, without their history), of x's dtype by default."""
    if hasattr(data, "_data"):
        data = data.detach().numpy().copy()
    return creation.tensor(data, dtype=dtype or self.dtype, device=device, requires_grad=requires_grad)


def _cast_to(dtype):
    return lambda self: F.cast(self, dtype)


# x.float(), x.long(), ...: a cast to the named dtype
_CASTS = {
    "float": dtypes.float32,
    "double": dtypes.float64,
    "half": dtypes.float16,
    "bfloat16": dtypes.bfloat16,
    "long": dtypes.int64,
    "int": dtypes.int32,
    "bool": dtypes.bool_,
}


OPERATORS = {
    "__neg__": F.neg,
    "__abs__": F.abs,
    "__invert__": F.bitwise_not,  # on bools the logical not, as in PyTorch
    "__add__": F.add,
    "__radd__": _reflected(F.add),
    "__sub__": F.sub,
    "__rsub__": _reflected(F.sub),
    "__mul__": F.mul,
    "__rmul__": _reflected(F.mul),
    "__truediv__": F.div,
    "__rtruediv__": _reflected(F.div),
    "__floordiv__": F.floor_divide,
    "__rfloordiv__": _reflected(F.floor_divide),
    "__mod__": F.remainder,  # Python's %: the remainder takes the divisor's sign, as in PyTorch
    "__rmod__": _reflected(F.remainder),
    "__pow__": F.pow,
    "__rpow__": _reflected(F.pow),
    "__matmul__": F.matmul,
    "__rmatmul__": _reflected(F.matmul),
    "__eq__": F.eq,
    "__ne__": F.ne,
    "__lt__": F.lt,
    "__le__": F.le,
    "__gt__": F.gt,
    "__ge__": F.ge,
    "__and__": F.bitwise_and,  # bitwise on integers, logical on bools, as in PyTorch
    "__rand__": _reflected(F.bitwise_and),
    "__or__": F.bitwise_or,
    "__ror__": _reflected(F.bitwise_or),
    "__xor__": F.bitwise_xor,
    "__rxor__": _reflected(F.bitwise_xor),
    "__getitem__": F.getitem,
    "__setitem__": F.setitem,
    "__iadd__": I.inplace(F.add),
    "__isub__": I.inplace(F.sub),
    "__imul__": I.inplace(F.mul),
    "__itruediv__": I.inplace(F.div),
    "__ifloordiv__": I.inplace(F.floor_divide),
    "__imod__": I.inplace(F.remainder),
}


def install(cls):
    """Give `cls` (genesis.Tensor) its computing methods and operators."""
    for name in _SAME_NAME:
        setattr(cls, name, getattr(F, name))
    for name in _INPLACE:
        setattr(cls, name + "_", I.inplace(getattr(F, name)))
    for name, fn in OPERATORS.items():
        setattr(cls, name, fn)
    cls.reshape = _reshape
    cls.view = lambda self, *shape: F.view(self, normalize_shape(shape))  # refuses where reshape would copy
    cls.nonzero = F.nonzero
    cls.expand = _expand
    cls.fill_ = I.fill_
    cls.zero_ = I.zero_
    cls.copy_ = I.copy_
    cls.lerp_ = _lerp_
    cls.squeeze_ = I.reshaped_inplace(F.squeeze)
    cls.unsqueeze_ = I.reshaped_inplace(F.unsqueeze)
    cls.repeat = _repeat
    cls.tile = _tile
    cls.unfold = layout.unfold  # sliding windows (nn.functional.unfold is im2col)
    for name in ("normal_", "uniform_", "bernoulli_", "exponential_", "random_"):
        setattr(cls, name, getattr(random_fill, name))
    cls.dot = F.dot
    cls.where = lambda self, condition, other: F.where(condition, self, other)
    cls.index_put = index_put_by_indices
    cls.index_put_ = I.inplace(index_put_by_indices)
    cls.one_hot = F.one_hot
    cls.cast = F.cast
    cls.backward = _backward
    cls.to = _to
    cls.type = _type
    cls.type_as = lambda self, other: self.to(other.dtype)
    cls.view_as = lambda self, other: F.view(self, other.shape)
    cls.new_zeros = _new_factory(creation.zeros)
    cls.new_ones = _new_factory(creation.ones)
    cls.new_empty = _new_factory(creation.empty)
    cls.new_full = _new_full
    cls.new_tensor = _new_tensor
    cls.multinomial = creation.multinomial
    for name, dtype in _CASTS.items():
        setattr(cls, name, _cast_to(dtype))
    cls.cpu = lambda self: F.to_device(self, "cpu")
    cls.cuda = lambda self, device=None, non_blocking=False: F.to_device(
        self, "cuda" if device is None else device if not isinstance(device, int) else f"cuda:{device}"
    )
    cls.clone = F.clone
    cls.contiguous = F.contiguous
    cls.is_contiguous = F.is_contiguous
    cls.T = property(lambda self: F.permute(self, tuple(reversed(range(self.ndim)))))
    cls.mT = property(lambda self: F.transpose(self, -2, -1))
